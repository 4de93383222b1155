"""`residual` and `fan_out`: the contract, NumPy references, summary rows, error paths."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from layer_contract import DTYPES, ContractCase, run_contract

import funcnn as fn

BIAS = fn.initializers.constant(0.1)
CASES = [
    ContractCase("residual", lambda: fn.residual(fn.Dense(3, b_init=BIAS)), (3,)),
    ContractCase("residual_net", lambda: fn.residual(fn.serial(fn.Dense(5), fn.Tanh(),
                                                               fn.Dense(3, w_l2=1e-2))), (3,)),
    ContractCase("fan_out_concat", lambda: fn.fan_out(fn.Dense(2, b_init=BIAS), fn.Tanh()),
                 (3,)),
    ContractCase("fan_out_sum", lambda: fn.fan_out(fn.Dense(3), fn.Dense(3, w_l1=1e-2,
                                                                        b_init=BIAS),
                                                  merge="sum"), (3,)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_contract(case: ContractCase, dtype: str) -> None:
    run_contract(case, dtype)


def _dense(p: dict[str, jax.Array], x: np.ndarray) -> np.ndarray:
    return x @ np.asarray(p["w"]) + np.asarray(p["b"])


def test_residual_and_fan_out_equal_their_formulas() -> None:
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    res = fn.residual(fn.Dense(3, b_init=BIAS))
    p, s = res.init(jax.random.key(0), (3,))
    assert list(p) == ["0_dense"]
    np.testing.assert_allclose(res.apply(p, s, x)[0], x + _dense(p["0_dense"], x), rtol=1e-6)
    both = fn.fan_out(fn.Dense(2), fn.named("wide", fn.Dense(4)))
    p, s = both.init(jax.random.key(0), (3,))
    assert list(p) == ["0_dense", "wide"]
    np.testing.assert_allclose(
        both.apply(p, s, x)[0],
        np.concatenate([_dense(p["0_dense"], x), _dense(p["wide"], x)], axis=-1), rtol=1e-6)
    summed = fn.fan_out(fn.Dense(2), fn.Dense(2, w_l2=0.5), merge="sum")
    p, s = summed.init(jax.random.key(1), (3,))
    np.testing.assert_allclose(summed.apply(p, s, x)[0],
                               _dense(p["0_dense"], x) + _dense(p["1_dense"], x), rtol=1e-6)
    assert float(summed.penalty(p)) == pytest.approx(0.5 * float(jnp.sum(p["1_dense"]["w"] ** 2)))
    # children draw distinct keys, as in serial
    assert not np.array_equal(p["0_dense"]["w"], p["1_dense"]["w"])


def test_summary_walks_into_branches() -> None:
    net = fn.serial(fn.Dense(4), fn.residual(fn.serial(fn.Dense(4), fn.ReLU())),
                    fn.fan_out(fn.Dense(2), fn.Dense(3)))
    rows, out = fn.summary_rows(net, (3,))
    assert [(r.path, r.kind, r.output_shape, r.n_params) for r in rows] == [
        ("0_dense", "Dense", (4,), 16),
        ("1_residual/0_serial/0_dense", "Dense", (4,), 20),
        ("1_residual/0_serial/1_relu", "ReLU", (4,), 0),
        ("2_fan_out/0_dense", "Dense", (2,), 10),
        ("2_fan_out/1_dense", "Dense", (3,), 15),
    ]
    assert out == (5,)


def test_shape_errors_name_the_branch() -> None:
    with pytest.raises(fn.LayerError, match=r"residual: the layer maps \(3,\) to \(2,\)"):
        fn.residual(fn.Dense(2)).init(jax.random.key(0), (3,))
    with pytest.raises(fn.LayerError, match=r"fan_out: merge='sum' needs equal output shapes"):
        fn.fan_out(fn.Dense(2), fn.Dense(3), merge="sum").init(jax.random.key(0), (3,))
    net = fn.serial(fn.fan_out(fn.Tanh(), fn.serial(fn.Dense(2), fn.Dense(2))))
    params, state = net.init(jax.random.key(0), (3,))
    with pytest.raises(fn.LayerError,
                       match=r"serial\[0\]/fan_out\[1\]/serial\[0\]/Dense: expected last "
                             r"dimension 3, got 4"):
        net.apply(params, state, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="merge must be one of"):
        fn.fan_out(fn.Dense(2), merge="max")
    with pytest.raises(ValueError, match="needs at least one layer"):
        fn.fan_out()
    with pytest.raises(TypeError, match="not a Layer"):
        fn.fan_out(fn.Dense)  # type: ignore[arg-type]


def test_a_residual_net_trains_with_fit() -> None:
    x, y = fn.datasets.vertical(jax.random.key(0), samples=20, classes=3)
    net = fn.serial(fn.Dense(16, w_init=fn.initializers.glorot_uniform()),
                    fn.residual(fn.serial(fn.Dense(16), fn.Tanh())),
                    fn.fan_out(fn.Dense(3), fn.Dense(3), merge="sum"), fn.Softmax())
    params, state = net.init(jax.random.key(1), (2,))
    result = fn.fit(net, params, state, fn.optim.adam(0.02), fn.losses.categorical_crossentropy,
                    x, y, key=jax.random.key(0), epochs=30, progress=False)
    assert result.history.loss[-1] < 0.5 * result.history.loss[0]
