"""Silent wrong answers of the training API, each now a right answer or a clear error:
History's figures, unbatched prediction, summaries of branching combinators, data checks,
argument errors, abstract init, and the History's learning rate."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from types import MappingProxyType

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn as fn
from funcnn.losses import categorical_crossentropy, mean_squared_error
from funcnn.metrics import categorical_accuracy
from funcnn.optim import adam, sgd

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))
from numpy_reference import book_adam_update  # noqa: E402  (the book's Adam in NumPy)

KEY = jax.random.key(0)


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int32) % 3
    x = (rng.normal(size=(n, 2)) + 2.0 * np.eye(3)[y][:, :2]).astype(np.float32)
    return x, y


def classifier() -> fn.Layer:
    return fn.serial(fn.Dense(8), fn.ReLU(), fn.Dense(3), fn.Softmax())


# 1. History's reg_loss is the penalty of the params that were optimized -------------------

def _book_l2_losses(params: list[np.ndarray], x: np.ndarray, y: np.ndarray, *, lr: float,
                    decay: float, l2: float, updates: int) -> list[tuple[float, float]]:
    """The book's chapter 14 loop in float64 NumPy: per update, (data_loss, reg_loss) of the
    forward pass before it, then Adam (eps 1e-7, betas 0.9/0.999, lr / (1 + decay * t))."""
    w1, b1, w2, b2 = (p.astype(np.float64) for p in params)
    params = [w1, b1, w2, b2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    n = len(x)
    figures = []
    for t in range(updates):
        w1, b1, w2, b2 = params
        z1 = x @ w1 + b1
        a1 = np.maximum(0.0, z1)
        z2 = a1 @ w2 + b2
        e = np.exp(z2 - z2.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        data = float(np.mean(-np.log(np.clip(p, 1e-7, 1 - 1e-7)[np.arange(n), y])))
        reg = l2 * float(np.sum(w1 ** 2) + np.sum(b1 ** 2))
        figures.append((data, reg))
        dz2 = p.copy()
        dz2[np.arange(n), y] -= 1
        dz2 /= n
        da1 = (dz2 @ w2.T) * (z1 > 0)
        grads = [x.T @ da1 + 2 * l2 * w1, da1.sum(axis=0) + 2 * l2 * b1, a1.T @ dz2,
                 dz2.sum(axis=0)]
        book_adam_update(params, m, v, grads, t, lr=lr, decay=decay)
    return figures


def test_full_batch_history_equals_the_books_chapter_14_printout() -> None:
    x, y = fn.datasets.spiral(jax.random.key(7), samples=100, classes=3)
    net = fn.serial(fn.Dense(64, w_l2=5e-4, b_l2=5e-4), fn.ReLU(), fn.Dense(3), fn.Softmax())
    params, state = net.init(jax.random.key(1), (2,))
    result = fn.fit(net, params, state, adam(0.02, decay=5e-7), categorical_crossentropy, x, y,
                    key=KEY, epochs=3, progress=False)
    leaves = [np.asarray(params[k][leaf]) for k in ("0_dense", "2_dense") for leaf in "wb"]
    book = _book_l2_losses(leaves, np.asarray(x, np.float64), np.asarray(y), lr=0.02,
                           decay=5e-7, l2=5e-4, updates=3)
    history = result.history
    for epoch, (data, reg) in enumerate(book):
        np.testing.assert_allclose(history.data_loss[epoch], data, atol=1e-6)
        np.testing.assert_allclose(history.reg_loss[epoch], reg, atol=1e-6, rtol=1e-5)
        np.testing.assert_allclose(history.loss[epoch], data + reg, atol=1e-6)


def test_minibatch_history_is_the_mean_of_the_steps_objectives() -> None:
    net = fn.serial(fn.Dense(8, w_l2=1e-2), fn.ReLU(), fn.Dense(3), fn.Softmax())
    x, y = blobs(60)
    params, state = net.init(KEY, (2,))
    opt = adam(0.05)
    result = fn.fit(net, params, state, opt, categorical_crossentropy, x, y, key=KEY, epochs=1,
                    batch_size=16, shuffle=False, progress=False)
    step = jax.jit(fn.make_train_step(net, opt, categorical_crossentropy))
    p, s, o = params, state, opt.init(params)
    data_sum, regs = 0.0, []
    for start in range(0, 60, 16):
        rows = slice(start, start + 16)
        p, s, o, m = step(p, s, o, x[rows], y[rows])
        data_sum += float(m.data_loss) * len(x[rows])
        regs.append(float(m.reg_loss))
    np.testing.assert_allclose(result.history.reg_loss[0], np.mean(regs), rtol=1e-5)
    np.testing.assert_allclose(result.history.data_loss[0], data_sum / 60, rtol=1e-5)
    np.testing.assert_allclose(result.history.loss[0], data_sum / 60 + np.mean(regs), rtol=1e-5)
    assert not np.isclose(result.history.reg_loss[0], float(net.penalty(result.params)),
                          rtol=1e-3)  # not the penalty after the epoch's last update


# 4. predict refuses an unbatched input ----------------------------------------------------

def test_predict_refuses_one_example_without_a_batch_axis() -> None:
    net = classifier()
    params, state = net.init(KEY, (2,))
    x, _ = blobs(4)
    with pytest.raises(fn.LayerError, match=r"predict: .*x holds 2 examples of shape \(\) "
                                            r"\(a leading sample axis; for one example use "
                                            r"x\[None\]\)"):
        fn.predict(net, params, state, x[0])
    one = fn.predict(net, params, state, x[0][None])
    np.testing.assert_allclose(one, fn.predict(net, params, state, x)[:1], rtol=1e-6)
    square = fn.serial(fn.Dense(3))  # 3 features in, 3 out: a slice would look plausible
    sp, ss = square.init(KEY, (3,))
    with pytest.raises(fn.LayerError, match=r"expected last dimension 3, got a scalar"):
        fn.predict(square, sp, ss, jnp.ones(3))


def test_a_network_that_drops_the_sample_axis_is_refused() -> None:
    mean_all = fn.Activation(lambda v: jnp.mean(v, axis=0), "MeanOverRows")
    net = fn.serial(fn.Dense(3), mean_all)
    params, state = net.init(KEY, (2,))
    with pytest.raises(ValueError, match=r"predict: the network's output for a batch of 4 rows "
                                         r"has shape \(3,\)"):
        fn.predict(net, params, state, jnp.ones((4, 2)))


# 5. summary follows each combinator's own wiring ------------------------------------------

def concat_branches(left: fn.Layer, right: fn.Layer, *, wiring: bool) -> fn.Layer:
    """A user combinator: both branches see the input; outputs are concatenated."""

    def init(key: jax.Array, shape: tuple[int, ...]) -> tuple[dict, dict]:
        pl, _ = left.init(jax.random.fold_in(key, 0), shape)
        pr, _ = right.init(jax.random.fold_in(key, 1), shape)
        return {"left": pl, "right": pr}, {}

    def apply(params: dict, state: dict, x: jax.Array, *, key: jax.Array | None = None,
              train: bool = False) -> tuple[jax.Array, dict]:
        a, _ = left.apply(params["left"], {}, x)
        b, _ = right.apply(params["right"], {}, x)
        return jnp.concatenate([a, b], axis=-1), state

    def child_inputs(shape: tuple[int, ...]) -> tuple[tuple[str, fn.Layer, tuple[int, ...]],
                                                      ...]:
        return (("left", left, shape), ("right", right, shape))

    return fn.Layer(init, apply, name="Concat", config=MappingProxyType({}),
                    children=(left, right), child_inputs=child_inputs if wiring else None)


@pytest.mark.parametrize("wiring", [True, False])
def test_summary_counts_a_branching_combinator_right(wiring: bool) -> None:
    net = fn.serial(concat_branches(fn.Dense(6), fn.Dense(8), wiring=wiring), fn.Dense(2))
    rows, out = fn.summary_rows(net, (4,))
    params, _ = net.init(KEY, (4,))
    assert sum(r.n_params for r in rows) == fn.count_params(params) == 30 + 40 + 14 * 2 + 2
    assert out == (2,)
    if wiring:
        assert [(r.path, r.n_params, r.output_shape) for r in rows] == [
            ("0_concat/left", 30, (6,)), ("0_concat/right", 40, (8,)), ("1_dense", 30, (2,))]
        for row in rows:  # every printed path is a real param path
            node = params
            for part in row.path.split("/"):
                node = node[part]
    else:
        assert [(r.path, r.n_params) for r in rows] == [("0_concat", 70), ("1_dense", 30)]
    assert "total params: 100" in fn.summary_table(net, (4,))


# 6. data is checked once, up front, naming the array and the row --------------------------

def test_labels_out_of_range_are_named_before_training() -> None:
    net = classifier()
    params, state = net.init(KEY, (2,))
    x, y = blobs(30)
    for bad, value in ((7, 5), (11, -1)):
        labels = y.copy()
        labels[bad] = value
        with pytest.raises(ValueError, match=rf"fit: label y\[{bad}\] = {value} is outside "
                                             r"0..2, the 3 classes of the network's output"):
            fn.fit(net, params, state, adam(0.01), categorical_crossentropy, x, labels, key=KEY,
                   epochs=1, progress=False)
        with pytest.raises(ValueError, match=rf"evaluate: label y\[{bad}\] = {value}"):
            fn.evaluate(net, params, state, categorical_crossentropy, x, labels,
                        metric=categorical_accuracy)
        with pytest.raises(ValueError, match=rf"fit \(validation_data\): label y\[{bad}\]"):
            fn.fit(net, params, state, adam(0.01), categorical_crossentropy, x, y, key=KEY,
                   epochs=1, validation_data=(x, labels), progress=False)


def test_non_finite_inputs_and_targets_are_named_before_training() -> None:
    net = classifier()
    params, state = net.init(KEY, (2,))
    x, y = blobs(30)
    x_bad = x.copy()
    x_bad[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"fit: row 4 of x is not finite \(NaN or infinity\)"):
        fn.fit(net, params, state, adam(0.01), categorical_crossentropy, x_bad, y, key=KEY,
               epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"predict: row 4 of x is not finite"):
        fn.predict(net, params, state, x_bad)
    reg = fn.serial(fn.Dense(4), fn.Tanh(), fn.Dense(1))
    rp, rs = reg.init(KEY, (2,))
    targets = x[:, :1].copy()
    targets[9, 0] = np.nan
    with pytest.raises(ValueError, match=r"fit: row 9 of y is not finite"):
        fn.fit(reg, rp, rs, adam(0.01), mean_squared_error, x, targets, key=KEY, epochs=1,
               progress=False)


def bounded_input(low: float, high: float) -> fn.Layer:
    """An identity layer that declares the range of its inputs (as an embedding would)."""
    return fn.Activation(lambda v: v, "Bounded")._replace(input_bounds=(low, high))


def test_a_layer_declared_input_range_is_checked_by_fit() -> None:
    net = fn.serial(bounded_input(0.0, 10.0), fn.Dense(3), fn.Softmax())
    assert net.input_bounds == (0.0, 10.0)
    params, state = net.init(KEY, (2,))
    x = np.full((6, 2), 3.0, np.float32)
    y = np.zeros(6, np.int32)
    fn.fit(net, params, state, sgd(0.1), categorical_crossentropy, x, y, key=KEY, epochs=1,
           progress=False)
    x[5, 0] = 10.0
    with pytest.raises(ValueError, match=r"fit: row 5 of x has values outside \[0.0, 10.0\)"):
        fn.fit(net, params, state, sgd(0.1), categorical_crossentropy, x, y, key=KEY, epochs=1,
               progress=False)


# 7. small mistakes get one line naming the argument ---------------------------------------

def test_small_mistakes_get_one_clear_line() -> None:
    net = classifier()
    params, state = net.init(KEY, (2,))
    x, y = blobs(30)
    cce = categorical_crossentropy
    common = {"epochs": 1, "progress": False}
    with pytest.raises(ValueError, match=r"^fit: y is None; pass the targets"):
        fn.fit(net, params, state, adam(0.01), cce, x, None, key=KEY, **common)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^fit: key must be a JAX PRNG key such as "
                                        r"jax.random.key\(0\), got NoneType"):
        fn.fit(net, params, state, adam(0.01), cce, x, y, key=None, **common)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^fit: optimizer adam is a function, not an optimizer: "
                                        r"call it, e.g. adam\(learning_rate=0.001\)"):
        fn.fit(net, params, state, adam, cce, x, y, key=KEY, **common)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^make_train_step: optimizer adam is a function"):
        fn.make_train_step(net, adam, cce)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fit \(validation_data\): serial\[0\]/Dense: expected "
                                         r"last dimension 2, got 3"):
        fn.fit(net, params, state, adam(0.01), cce, x, y, key=KEY,
               validation_data=(np.ones((5, 3), np.float32), y[:5]), **common)
    done = fn.fit(net, params, state, adam(0.01), cce, x, y, key=KEY, epochs=np.int64(3),
                  batch_size=np.int64(10), initial_epoch=np.int32(2), progress=False)
    assert done.history.epoch == [2, 3, 4]


def test_fit_under_jit_or_vmap_says_it_is_a_host_level_loop() -> None:
    net = classifier()
    params, state = net.init(KEY, (2,))
    x, y = blobs(30)
    message = (r"^fit is a host-level loop: .* use make_train_step \(one step\) or net.apply; "
               r"to train many models at once use fit_ensemble")
    jitted = jax.jit(fn.fit, static_argnums=(0, 3, 4), static_argnames=("epochs",))
    with pytest.raises(TypeError, match=message):
        jitted(net, params, state, adam(0.01), categorical_crossentropy, x, y, key=KEY, epochs=1)
    stacked = jax.tree.map(lambda a: jnp.stack([a, a]), params)
    mapped = jax.vmap(partial(fn.fit, key=KEY, epochs=1, progress=False),
                      in_axes=(None, 0, None, None, None, None, None))
    with pytest.raises(TypeError, match=message):
        mapped(net, stacked, state, adam(0.01), categorical_crossentropy, x, y)


# 8. abstract init for checkpoint templates ------------------------------------------------

def test_init_shapes_is_the_abstract_init_and_eval_shape_of_init_explains_itself() -> None:
    net = classifier()
    shapes = fn.init_shapes(net, (2,))
    params, state = net.init(KEY, (2,))
    assert jax.tree.map(lambda a: (a.shape, a.dtype), shapes[0]) == jax.tree.map(
        lambda a: (a.shape, a.dtype), params)
    assert shapes[1] == state == {}
    with pytest.raises(fn.LayerError, match=r"input_shape is traced .* use "
                                            r"funcnn.init_shapes\(net, shape\)"):
        jax.eval_shape(net.init, KEY, (2,))


# 9. the History's learning rate and extend ------------------------------------------------

def test_history_reads_the_rate_of_an_injected_optax_optimizer() -> None:
    net = classifier()
    params, state = net.init(KEY, (2,))
    x, y = blobs(30)
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=0.05)
    result = fn.fit(net, params, state, opt, categorical_crossentropy, x, y, key=KEY, epochs=2,
                    progress=False)
    np.testing.assert_allclose(result.history.learning_rate, [0.05, 0.05], rtol=1e-7)
    plain = fn.fit(net, params, state, optax.adam(0.05), categorical_crossentropy, x, y,
                   key=KEY, epochs=1, progress=False)
    assert np.isnan(plain.history.learning_rate[0])  # optax.adam alone exposes no rate


def test_history_extend_works_in_place_like_list_extend() -> None:
    first, second = fn.History(), fn.History()
    first.append(0, {"loss": 1.0})
    second.append(1, {"loss": 0.5})
    joined = first + second
    assert joined.epoch == [0, 1] and first.epoch == [0]
    assert first.extend(second) is None
    assert first.epoch == [0, 1] and first.loss == [1.0, 0.5]
    assert second.epoch == [1]


def test_class_picks_of_nan_outputs_are_minus_one() -> None:
    outputs = jnp.array([[0.2, 0.7, 0.1], [jnp.nan, 0.5, 0.4]])
    np.testing.assert_array_equal(fn.classes_from_outputs(outputs), [1, -1])
    binary = jnp.array([[0.9], [jnp.nan], [0.1]])
    np.testing.assert_array_equal(fn.classes_from_outputs(binary), [[1], [-1], [0]])
    np.testing.assert_array_equal(fn.classes_from_outputs(binary, 0.05), [[1], [-1], [1]])


def test_device_data_that_passed_is_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from funcnn.training import checks

    calls = []
    original = checks._bad_rows_on_device
    monkeypatch.setattr(checks, "_bad_rows_on_device",
                        lambda *args: calls.append(1) or original(*args))
    net = classifier()
    params, state = net.init(KEY, (2,))
    x, y = blobs(30)
    xd, yd = jax.device_put((x, y))
    for _ in range(3):  # epoch by epoch on the same (immutable) device arrays
        fn.fit(net, params, state, sgd(0.1), categorical_crossentropy, xd, yd, key=KEY,
               epochs=1, progress=False)
    assert len(calls) == 1
    bad = y.copy()
    bad[3] = 9
    with pytest.raises(ValueError, match=r"label y\[3\] = 9"):  # new arrays: checked
        fn.fit(net, params, state, sgd(0.1), categorical_crossentropy, xd,
               jax.device_put(bad), key=KEY, epochs=1, progress=False)
    assert len(calls) == 2
