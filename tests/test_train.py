"""The training loop: step semantics, masking of the last batch, reproducibility,
compile-once, non-finite losses, callbacks, resume, evaluate and predict."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn as fn
from funcnn.losses import categorical_crossentropy, mean_squared_error
from funcnn.metrics import categorical_accuracy
from funcnn.optim import adam, sgd

KEY = jax.random.key(0)


def blobs(n: int = 30, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype(np.int32)
    centres = rng.normal(size=(classes, 2)) * 3
    x = (centres[y] + rng.normal(size=(n, 2))).astype(np.float32)
    return x, y


def small_net() -> fn.Layer:
    return fn.serial(fn.Dense(8, w_init=fn.initializers.glorot_uniform(), w_l2=1e-3),
                     fn.Tanh(), fn.Dense(3), fn.Softmax())


def test_train_step_is_one_sgd_step_on_mean_loss_plus_penalty() -> None:
    net = small_net()
    x, y = blobs()
    params, state = net.init(KEY, (2,))
    opt = sgd(0.1)
    step = jax.jit(fn.make_train_step(net, opt, categorical_crossentropy,
                                      metric=categorical_accuracy))
    new_params, _, _, metrics = step(params, state, opt.init(params), x, y)

    def total(p):  # type: ignore[no-untyped-def]
        probs = net.apply(p, state, x)[0]
        return categorical_crossentropy(probs, y).mean() + net.penalty(p)

    grads = jax.grad(total)(params)
    expected = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    chex.assert_trees_all_close(new_params, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(metrics.loss, total(params), rtol=1e-6)
    np.testing.assert_allclose(metrics.reg_loss, net.penalty(params), rtol=1e-6)
    probs = net.apply(params, state, x)[0]
    np.testing.assert_allclose(metrics.accuracy, categorical_accuracy(probs, y).mean())


def test_partial_last_batch_counts_every_sample_once() -> None:
    net = small_net()
    x, y = blobs(30)
    params, state = net.init(KEY, (2,))
    # a zero learning rate leaves params unchanged, so the epoch loss must equal the loss
    # of all 30 samples: batches of 7 are 7, 7, 7, 7 and a last one of 2 real samples.
    result = fn.fit(net, params, state, sgd(0.0), categorical_crossentropy, x, y, key=KEY,
                    epochs=1, batch_size=7, metric=categorical_accuracy, progress=False)
    full = fn.evaluate(net, params, state, categorical_crossentropy, x, y,
                       metric=categorical_accuracy)
    np.testing.assert_allclose(result.history.data_loss[0], full.loss, rtol=1e-6)
    np.testing.assert_allclose(result.history.accuracy[0], full.accuracy, rtol=1e-6)


def test_fit_without_shuffle_equals_a_hand_written_minibatch_loop() -> None:
    net = small_net()
    x, y = blobs(30)
    params, state = net.init(KEY, (2,))
    opt = adam(0.01)
    result = fn.fit(net, params, state, opt, categorical_crossentropy, x, y, key=KEY, epochs=2,
                    batch_size=7, shuffle=False, progress=False)
    step = fn.make_train_step(net, opt, categorical_crossentropy)
    p, s, o = params, state, opt.init(params)
    for _ in range(2):
        for start in range(0, 30, 7):
            p, s, o, _ = step(p, s, o, x[start:start + 7], y[start:start + 7])
    chex.assert_trees_all_close(result.params, p, rtol=1e-5, atol=1e-6)
    assert int(result.opt_state.count) == 10  # 5 batches (4 of 7, one of 2) x 2 epochs


def test_same_key_gives_bit_identical_params_and_other_keys_differ() -> None:
    net = fn.serial(fn.Dense(16), fn.ReLU(), fn.Dropout(0.2), fn.Dense(3), fn.Softmax())
    x, y = blobs(50)
    params, state = net.init(KEY, (2,))

    def run(key: jax.Array) -> fn.Params:
        return fn.fit(net, params, state, adam(0.01), categorical_crossentropy, x, y, key=key,
                      epochs=3, batch_size=16, progress=False).params

    a, b, c = run(jax.random.key(1)), run(jax.random.key(1)), run(jax.random.key(2))
    chex.assert_trees_all_equal(a, b)
    assert not np.array_equal(np.asarray(a["0_dense"]["w"]), np.asarray(c["0_dense"]["w"]))


def test_fit_does_not_touch_the_callers_arrays() -> None:
    net = small_net()
    x, y = blobs()
    params, state = net.init(KEY, (2,))
    before = jax.tree.map(np.array, params)
    fn.fit(net, params, state, adam(0.1), categorical_crossentropy, x, y, key=KEY, epochs=2,
           progress=False)
    chex.assert_trees_all_equal(params, before)  # still readable and unchanged


def test_trainer_compiles_once_not_once_per_epoch() -> None:
    net = small_net()
    x, y = blobs(40)
    params, state = net.init(KEY, (2,))
    chex.clear_trace_counter()
    loss = chex.assert_max_traces(categorical_crossentropy, n=1)
    seen: list[int] = []
    opt = adam(0.01)
    # a callback forces one compiled call per epoch: 6 calls, one trace
    fn.fit(net, params, state, opt, loss, x, y, key=KEY, epochs=6, batch_size=8,
           progress=False, callbacks=[lambda e, logs, p: seen.append(e)])
    assert seen == [0, 1, 2, 3, 4, 5]
    # a second fit of the same configuration (same net, loss and optimizer objects)
    # reuses the compiled program
    fn.fit(net, params, state, opt, loss, x, y, key=KEY, epochs=6, batch_size=8,
           progress=False, callbacks=[lambda e, logs, p: None])


def test_learning_rate_history_follows_the_books_decay() -> None:
    net = small_net()
    x, y = blobs()
    params, state = net.init(KEY, (2,))
    result = fn.fit(net, params, state, sgd(1.0, decay=0.1), categorical_crossentropy, x, y,
                    key=KEY, epochs=4, progress=False)
    # after e+1 full-batch updates the next rate is 1 / (1 + 0.1 (e+1))
    np.testing.assert_allclose(result.history.learning_rate,
                               [1 / 1.1, 1 / 1.2, 1 / 1.3, 1 / 1.4], rtol=1e-6)


def test_non_finite_loss_stops_with_the_epoch_and_last_finite_params() -> None:
    net = fn.serial(fn.Dense(1, w_init=fn.initializers.constant(1.0)))
    x = np.linspace(-1, 1, 20, dtype=np.float32).reshape(-1, 1) * 10
    y = 3 * x
    params, state = net.init(KEY, (1,))
    with pytest.raises(fn.NonFiniteLossError, match=r"non-finite in epoch \d+") as info:
        fn.fit(net, params, state, sgd(10.0), mean_squared_error, x, y, key=KEY, epochs=200,
               progress=False)
    err = info.value
    assert err.epoch > 0
    chex.assert_tree_all_finite(err.result.params)
    assert len(err.result.history.loss) == err.epoch
    assert all(np.isfinite(err.result.history.loss))
    # the kept params are those after the last finite epoch: one more step blows up
    replay = fn.fit(net, params, state, sgd(10.0), mean_squared_error, x, y, key=KEY,
                    epochs=err.epoch, progress=False)
    chex.assert_trees_all_equal(replay.params, err.result.params)
    # with a callback every call runs one epoch: the failed call's start is the answer
    with pytest.raises(fn.NonFiniteLossError) as per_epoch:
        fn.fit(net, params, state, sgd(10.0), mean_squared_error, x, y, key=KEY, epochs=200,
               progress=False, callbacks=[lambda e, logs, p: False])
    assert per_epoch.value.epoch == err.epoch
    chex.assert_trees_all_equal(per_epoch.value.result.params, err.result.params)


def test_an_optax_optimizer_trains_through_fit() -> None:
    net = small_net()
    x, y = blobs(60)
    params, state = net.init(KEY, (2,))
    result = fn.fit(net, params, state, optax.adam(0.05), categorical_crossentropy, x, y,
                    key=KEY, epochs=60, metric=categorical_accuracy, progress=False)
    assert result.history.loss[-1] < 0.5 * result.history.loss[0]
    assert np.isnan(result.history.learning_rate[-1])  # optax states expose no rate


def test_validation_figures_are_inference_mode_data_loss() -> None:
    net = fn.serial(fn.Dense(16, w_l2=1e-2), fn.ReLU(), fn.Dropout(0.5), fn.Dense(3),
                    fn.Softmax())
    x, y = blobs(60)
    xv, yv = blobs(25, seed=1)
    params, state = net.init(KEY, (2,))
    result = fn.fit(net, params, state, adam(0.01), categorical_crossentropy, x, y, key=KEY,
                    epochs=3, batch_size=16, validation_data=(xv, yv),
                    metric=categorical_accuracy, progress=False)
    final = fn.evaluate(net, result.params, result.state, categorical_crossentropy, xv, yv,
                        metric=categorical_accuracy)
    np.testing.assert_allclose(result.history.val_loss[-1], final.loss, rtol=1e-5)
    np.testing.assert_allclose(result.history.val_accuracy[-1], final.accuracy, rtol=1e-6)
    np.testing.assert_allclose(result.history.loss, np.add(result.history.data_loss,
                                                           result.history.reg_loss), rtol=1e-6)


def test_early_stopping_stops_and_keeps_the_best_params() -> None:
    net = small_net()
    x, y = blobs(60)
    params, state = net.init(KEY, (2,))
    # lr 0 never improves val_loss after the first epoch: patience 2 stops at epoch 3
    early = fn.EarlyStopping("val_loss", patience=2)
    result = fn.fit(net, params, state, sgd(0.0), categorical_crossentropy, x, y, key=KEY,
                    epochs=50, validation_data=(x, y), callbacks=[early], progress=False)
    assert len(result.history.loss) == 4
    assert early.best_epoch == 0 and early.stopped_epoch == 3
    assert early.best_params is not None
    chex.assert_trees_all_close(early.best_params, params)
    with pytest.raises(ValueError, match=r"no 'val_loss' in this epoch's figures"):
        fn.fit(net, params, state, sgd(0.1), categorical_crossentropy, x, y, key=KEY,
               epochs=2, callbacks=[fn.EarlyStopping()], progress=False)


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    net = fn.serial(fn.Dense(16), fn.ReLU(), fn.Dropout(0.1), fn.Dense(3), fn.Softmax())
    x, y = blobs(50)
    params, state = net.init(KEY, (2,))
    opt = adam(0.02, decay=1e-3)

    def train(p, s, o, first, count):  # type: ignore[no-untyped-def]
        return fn.fit(net, p, s, opt, categorical_crossentropy, x, y, key=KEY, epochs=count,
                      batch_size=16, opt_state=o, initial_epoch=first, progress=False)

    whole = train(params, state, None, 0, 6)
    half = train(params, state, None, 0, 3)
    path = tmp_path / "half.safetensors"
    fn.save_checkpoint(path, {"params": half.params, "state": half.state,
                              "opt_state": half.opt_state},
                       metadata={"history": half.history.to_dict()})
    template = {"params": params, "state": state, "opt_state": opt.init(params)}
    loaded, meta = fn.load_checkpoint(path, template)
    rest = train(loaded["params"], loaded["state"], loaded["opt_state"], 3, 3)
    chex.assert_trees_all_equal(rest.params, whole.params)
    history = fn.History.from_dict(meta["history"])
    history.extend(rest.history)
    assert history.epoch == list(range(6))
    np.testing.assert_array_equal(history.loss, whole.history.loss)


def test_bad_inputs_to_fit_are_clear_errors() -> None:
    net = small_net()
    x, y = blobs(30)
    params, state = net.init(KEY, (2,))

    def call(**kw):  # type: ignore[no-untyped-def]
        args = {"x": x, "y": y, "epochs": 1, "batch_size": None, **kw}
        return fn.fit(net, params, state, sgd(0.1), categorical_crossentropy, args["x"],
                      args["y"], key=KEY, epochs=args["epochs"], batch_size=args["batch_size"],
                      progress=False)

    with pytest.raises(TypeError, match=r"fit: x must be floating-point, got int32"):
        call(x=x.astype(np.int32))
    with pytest.raises(ValueError, match=r"fit: x has 30 samples but y has 29"):
        call(y=y[:29])
    with pytest.raises(ValueError, match=r"fit: batch_size 64 is larger than the 30 samples"):
        call(batch_size=64)
    with pytest.raises(ValueError, match=r"fit: batch_size must be a positive int or None"):
        call(batch_size=0)
    with pytest.raises(ValueError, match=r"fit: epochs must be an int >= 0, got -1"):
        call(epochs=-1)
    with pytest.raises(ValueError, match=r"categorical_crossentropy: labels of shape \(30, 1\)"):
        call(y=y.reshape(-1, 1))
    with pytest.raises(fn.LayerError, match=r"serial\[0\]/Dense: expected last dimension 2, "
                                            r"got 3"):
        call(x=np.ones((30, 3), np.float32))
    for unroll in (0, 1.5, True):
        with pytest.raises(ValueError, match=r"fit: unroll must be a positive int or None, "
                                             rf"got {unroll!r}"):
            fn.fit(net, params, state, sgd(0.1), categorical_crossentropy, x, y, key=KEY,
                   epochs=1, batch_size=7, unroll=unroll, progress=False)
    with pytest.raises(ValueError, match=r"loss returned shape \(\) for a batch of 30"):
        fn.fit(net, params, state, sgd(0.1), lambda p, t: categorical_crossentropy(p, t).mean(),
               x, y, key=KEY, epochs=1, progress=False)


def test_predict_and_evaluate_in_batches_equal_one_big_batch() -> None:
    net = small_net()
    x, y = blobs(23)
    params, state = net.init(KEY, (2,))
    whole = net.apply(params, state, x)[0]
    np.testing.assert_allclose(fn.predict(net, params, state, x, batch_size=5), whole,
                               rtol=1e-6)
    a = fn.evaluate(net, params, state, categorical_crossentropy, x, y, batch_size=4,
                    metric=categorical_accuracy)
    np.testing.assert_allclose(a.loss, categorical_crossentropy(whole, y).mean(), rtol=1e-6)
    np.testing.assert_allclose(a.accuracy, categorical_accuracy(whole, y).mean())
    np.testing.assert_array_equal(fn.classes_from_outputs(whole), np.argmax(whole, axis=-1))
    probs = jnp.array([[0.2], [0.5], [0.51]])
    np.testing.assert_array_equal(fn.classes_from_outputs(probs), [[0], [0], [1]])
    np.testing.assert_array_equal(fn.classes_from_outputs(jnp.array([[-1.0], [2.0]]), 0.0),
                                  [[0], [1]])


def test_epoch_orders_are_permutations_fixed_by_key_and_epoch() -> None:
    seed = fn.training.key_seed(jax.random.key(3))
    orders = fn.training.epoch_orders(seed, np.array([0, 1, 5]), 50)
    assert orders.shape == (3, 50) and orders.dtype == np.int32
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(50))
    assert not np.array_equal(orders[0], orders[1])
    # epoch 5's order does not depend on which other epochs were drawn with it (resume)
    np.testing.assert_array_equal(fn.training.epoch_orders(seed, np.array([5]), 50)[0], orders[2])
    other = fn.training.epoch_orders(fn.training.key_seed(jax.random.key(4)), np.array([0]), 50)
    assert not np.array_equal(other[0], orders[0])
    # raw uint32 keys work too, and an ensemble's keys give one set of orders per member
    np.testing.assert_array_equal(fn.training.key_seed(jax.random.PRNGKey(3)),
                                  fn.training.key_seed(jax.random.key(3)))
    keys = jax.random.split(jax.random.key(3), 2)
    stacked = fn.training.epoch_orders(fn.training.key_seed(keys), np.array([0, 1]), 50)
    assert stacked.shape == (2, 2, 50)
    np.testing.assert_array_equal(
        stacked[1], fn.training.epoch_orders(fn.training.key_seed(keys[1]), np.array([0, 1]), 50))


def test_fit_visits_samples_in_the_epoch_orders() -> None:
    """A linear model trained one sample per batch ends where the samples' order leads it:
    `fit` equals a hand-written SGD loop over `epoch_orders`."""
    net = fn.serial(fn.Dense(1))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 3)).astype(np.float32)
    y = rng.normal(size=(12, 1)).astype(np.float32)
    params, state = net.init(KEY, (3,))
    result = fn.fit(net, params, state, sgd(0.1), mean_squared_error, x, y, key=KEY, epochs=2,
                    batch_size=1, progress=False)
    p = jax.tree.map(np.asarray, params)
    for order in fn.training.epoch_orders(fn.training.key_seed(KEY), np.arange(2), 12):
        for i in order:
            err = x[i] @ p["0_dense"]["w"] + p["0_dense"]["b"] - y[i]
            p = {"0_dense": {"w": p["0_dense"]["w"] - 0.1 * 2 * np.outer(x[i], err),
                             "b": p["0_dense"]["b"] - 0.1 * 2 * err}}
    chex.assert_trees_all_close(result.params, p, rtol=1e-5, atol=1e-6)


def test_unrolled_minibatch_loop_trains_the_same_as_a_rolled_one() -> None:
    assert fn.training.epochs.auto_unroll(32, 12_730) == 4  # the book's digit net at batch 32
    assert fn.training.epochs.auto_unroll(128, 118_282) == 1  # 784-128-128-10 at batch 128
    net = small_net()
    x, y = blobs(30)
    params, state = net.init(KEY, (2,))
    runs = [fn.fit(net, params, state, adam(0.05), categorical_crossentropy, x, y, key=KEY,
                   epochs=3, batch_size=4, unroll=unroll, metric=categorical_accuracy,
                   progress=False) for unroll in (1, 3, None)]
    for run in runs[1:]:
        chex.assert_trees_all_close(run.params, runs[0].params, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(run.history.loss, runs[0].history.loss, rtol=1e-5)


def test_softmax_output_with_categorical_crossentropy_takes_the_combined_gradient() -> None:
    net = small_net()
    body = fn.training.step.softmax_output_body(net, categorical_crossentropy)
    assert body is not None and len(body.children) == len(net.children) - 1
    # only a layer made by Softmax() over the last axis, and only with that loss
    other_loss = lambda p, y: categorical_crossentropy(p, y)  # noqa: E731
    assert fn.training.step.softmax_output_body(net, other_loss) is None
    lookalike = fn.serial(fn.Dense(3), fn.Activation(jnp.tanh, "Softmax"))
    assert fn.training.step.softmax_output_body(lookalike, categorical_crossentropy) is None
    assert fn.training.step.softmax_output_body(fn.serial(fn.Dense(3), fn.Softmax(axis=0)),
                                        categorical_crossentropy) is None
    # the same training as through autodiff of softmax and the clipped log, to rounding
    x, y = blobs(30)
    params, state = net.init(KEY, (2,))
    runs = [fn.fit(net, params, state, adam(0.02), loss, x, y, key=KEY, epochs=5, batch_size=8,
                   metric=categorical_accuracy, progress=False)
            for loss in (categorical_crossentropy, lambda p, t: categorical_crossentropy(p, t))]
    chex.assert_trees_all_close(runs[0].params, runs[1].params, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(runs[0].history.loss, runs[1].history.loss, rtol=1e-5)
    np.testing.assert_array_equal(runs[0].history.accuracy, runs[1].history.accuracy)


def test_epochs_per_program_spreads_calls_evenly_and_bounds_the_orders() -> None:
    from funcnn.training.epochs import MAX_ORDER_ENTRIES, epochs_per_program

    assert epochs_per_program(125, 20, False) == 20  # the digit net: one call
    assert epochs_per_program(1, 10_000, False) == 3334  # 3 calls, 2 padding epochs
    assert epochs_per_program(469, 1, False) == 1
    assert epochs_per_program(10, 50, True) == 1  # callbacks see every epoch
    # 64 members x 60,000 samples: a call's orders stay within MAX_ORDER_ENTRIES
    chunk = epochs_per_program(469, 100, False, order_entries=64 * 60_000)
    assert chunk * 64 * 60_000 <= MAX_ORDER_ENTRIES and chunk >= 1
