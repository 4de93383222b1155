"""Embedding: integer ids through the layer contract, init, summary, fit, evaluate and
predict; out-of-range ids are errors (eagerly and in the data checks), NaN under jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from layer_contract import DTYPES, ContractCase, run_contract

import funcnn as fn


def token_ids(key: jax.Array, shape: tuple[int, ...], dtype: str) -> jax.Array:
    del dtype  # ids stay integers whatever the params' dtype
    return jax.random.randint(key, shape, 0, 7)


CASES = [
    ContractCase("embedding", lambda: fn.Embedding(3, vocab=7), (4,), token_ids, float_input=False),
    ContractCase("embedding_scalar_id", lambda: fn.Embedding(2, vocab=7, w_l1=1e-2, w_l2=1e-2), (),
                 token_ids,
                 float_input=False),
    ContractCase("embedding_net", lambda: fn.serial(fn.Embedding(3, vocab=7), fn.Flatten(),
                                                    fn.Dense(2)), (4,), token_ids,
                 float_input=False),
    ContractCase("position_embedding", lambda: fn.PositionEmbedding(scale=0.5), (4, 3)),
    ContractCase("token_and_position", lambda: fn.serial(fn.Embedding(3, vocab=7),
                                                         fn.PositionEmbedding()), (4,),
                 token_ids, float_input=False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_contract(case: ContractCase, dtype: str) -> None:
    run_contract(case, dtype)


def test_rows_of_the_table_and_their_gradient() -> None:
    layer = fn.Embedding(2, vocab=5)
    params, _ = layer.init(jax.random.key(0), (3,))
    table = np.asarray(params["table"])
    ids = np.array([[4, 0, 4], [1, 1, 2]], np.int32)
    out, _ = layer.apply(params, {}, ids)
    np.testing.assert_array_equal(out, table[ids])
    # d/dtable of sum(w * out): each id's row collects the w of every place it occurs
    w = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    grad = jax.grad(lambda p: jnp.sum(w * layer.apply(p, {}, ids)[0]))(params)["table"]
    expected = np.zeros_like(table)
    np.add.at(expected, ids, w)
    np.testing.assert_array_equal(grad, expected)
    assert float(np.std(table)) > 0.5  # N(0, 1) init


def test_out_of_range_ids_are_errors_and_nan_under_jit() -> None:
    layer = fn.Embedding(2, vocab=5)
    params, _ = layer.init(jax.random.key(0), (2,))
    with pytest.raises(fn.LayerError, match=r"id 5 at index \(1, 0\) is outside 0..4"):
        layer.apply(params, {}, jnp.array([[0, 1], [5, 2]]))
    with pytest.raises(fn.LayerError, match=r"id -1 at index \(0,\)"):
        layer.apply(params, {}, jnp.array([-1, 2]))
    out, _ = jax.jit(layer.apply)(params, {}, jnp.array([[0, 7]]))
    assert np.isfinite(out[0, 0]).all() and np.isnan(out[0, 1]).all()  # never clamped
    with pytest.raises(fn.LayerTypeError, match="expected integer ids, got float32"):
        layer.apply(params, {}, jnp.zeros((2,)))
    for bad in ({"vocab": 0, "features": 2}, {"vocab": 3, "features": 2.0}):
        with pytest.raises(ValueError, match="must be a positive int"):
            fn.Embedding(**bad)  # type: ignore[arg-type]


def _parity_data() -> tuple[np.ndarray, np.ndarray]:
    ids = np.random.default_rng(0).integers(0, 6, size=(48, 4)).astype(np.int32)
    return ids, (ids[:, 0] % 2).astype(np.int32)


def test_token_ids_train_through_fit_evaluate_predict_and_summary() -> None:
    ids, labels = _parity_data()
    net = fn.serial(fn.Embedding(4, vocab=6), fn.Flatten(), fn.Dense(8), fn.Tanh(), fn.Dense(2),
                    fn.Softmax())
    assert net.input_dtype == jnp.int32 and net.input_bounds == (0, 6)
    params, state = net.init(jax.random.key(0), (4,))
    rows, _ = fn.summary_rows(net, (4,))
    assert [(r.path, r.output_shape, r.n_params) for r in rows[:2]] == [
        ("0_embedding", (4, 4), 24), ("1_flatten", (16,), 0)]
    result = fn.fit(net, params, state, fn.optim.adam(0.05), fn.losses.categorical_crossentropy,
                    ids, labels, key=jax.random.key(0), epochs=20, batch_size=16,
                    validation_data=(ids, labels), metric=fn.metrics.categorical_accuracy,
                    progress=False)
    assert result.history.accuracy[-1] == 1.0  # the label is the first id's parity
    scored = fn.evaluate(net, result.params, result.state, fn.losses.categorical_crossentropy,
                         ids, labels, metric=fn.metrics.categorical_accuracy)
    assert float(scored.accuracy) == 1.0
    np.testing.assert_array_equal(
        fn.predict_classes(net, result.params, result.state, ids), labels)


@pytest.mark.parametrize("call", ["fit", "evaluate", "predict"])
def test_the_data_checks_name_out_of_range_and_float_ids(call: str) -> None:
    ids, labels = _parity_data()
    net = fn.serial(fn.Embedding(2, vocab=6), fn.Flatten(), fn.Dense(2), fn.Softmax())
    params, state = net.init(jax.random.key(0), (4,))
    bad = ids.copy()
    bad[5, 1] = 6
    cce = fn.losses.categorical_crossentropy
    run = {
        "fit": lambda x: fn.fit(net, params, state, fn.optim.sgd(), cce, x, labels,
                                key=jax.random.key(0), epochs=1, progress=False),
        "evaluate": lambda x: fn.evaluate(net, params, state, cce, x, labels),
        "predict": lambda x: fn.predict(net, params, state, x),
    }[call]
    with pytest.raises(ValueError, match=rf"{call}: row 5 of x has values outside \[0, 6\)"):
        run(bad)
    with pytest.raises(TypeError, match=rf"{call}: the network takes integer input \(int32 "
                       r"ids\), got x of dtype float32"):
        run(ids.astype(np.float32))


def test_a_float_network_still_refuses_integer_x_with_a_hint() -> None:
    net = fn.serial(fn.Dense(2), fn.Softmax())
    params, state = net.init(jax.random.key(0), (3,))
    with pytest.raises(TypeError, match="need a network that starts with an Embedding"):
        fn.predict(net, params, state, np.zeros((2, 3), np.int32))


def test_the_table_penalty_is_the_books_sum() -> None:
    layer = fn.Embedding(3, vocab=5, w_l1=0.1, w_l2=0.01)
    params, _ = layer.init(jax.random.key(0), (2,))
    table = np.asarray(params["table"], np.float64)
    expected = 0.1 * np.abs(table).sum() + 0.01 * (table ** 2).sum()
    assert float(layer.penalty(params)) == pytest.approx(expected, rel=1e-6)
    assert float(fn.Embedding(3, vocab=5).penalty(params)) == 0.0
    with pytest.raises(ValueError, match="Embedding: w_l2 must be a finite number >= 0"):
        fn.Embedding(3, vocab=5, w_l2=-1.0)


def test_position_embedding_adds_one_row_per_position_to_every_example() -> None:
    layer = fn.PositionEmbedding(scale=1.0)
    params, _ = layer.init(jax.random.key(3), (4, 2))
    table = np.asarray(params["table"])
    assert table.shape == (4, 2) and 0.2 < table.std() < 3.0
    x = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    y, _ = layer.apply(params, {}, x)
    np.testing.assert_allclose(np.asarray(y), x + table[None], rtol=1e-6)
    assert fn.layer_spec(layer)["config"] == {"scale": 1.0, "dtype": "float32"}


@pytest.mark.parametrize(("shape", "match"), [((4,), "rank >= 2"), ((2, 4, 3), r"\(T, F\)")])
def test_position_embedding_rejects_inputs_that_are_not_one_sequence(
        shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(fn.LayerError, match=match):
        fn.PositionEmbedding().init(jax.random.key(0), shape)


def test_position_embedding_rejects_a_longer_sequence_and_bad_scale() -> None:
    layer = fn.PositionEmbedding()
    params, _ = layer.init(jax.random.key(0), (4, 2))
    with pytest.raises(fn.LayerError, match=r"expected input \(\.\.\., 4, 2\), got \(1, 5, 2\)"):
        layer.apply(params, {}, jnp.zeros((1, 5, 2)))
    with pytest.raises(ValueError, match="scale must be a finite number >= 0"):
        fn.PositionEmbedding(scale=-1.0)
