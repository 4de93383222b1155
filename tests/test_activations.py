"""Activations (book chapter 4) against NumPy formulas, at extreme logits, and in float64."""

from __future__ import annotations

from collections.abc import Callable

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funcnn import activations

RNG = np.random.default_rng(0)

# Zero, both signs, small and large magnitudes.
GRID = np.array([[-30.0, -2.5, -1.0, -1e-3, 0.0],
                 [1e-3, 0.5, 1.0, 3.25, 30.0]], dtype=np.float32)

NpFn = Callable[[np.ndarray], np.ndarray]


def np_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The book's softmax in float64: subtract the row max, exponentiate, normalise."""
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    out: np.ndarray = e / e.sum(axis=axis, keepdims=True)
    return out


def np_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return out


ELEMENTWISE: list[tuple[str, Callable[[jax.Array], jax.Array], NpFn]] = [
    ("step", activations.step, lambda x: np.where(x > 0, 1.0, 0.0)),
    ("linear", activations.linear, lambda x: x),
    ("sigmoid", activations.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x))),
    ("tanh", activations.tanh, np.tanh),
    ("relu", activations.relu, lambda x: np.maximum(x, 0.0)),
    ("leaky_relu", activations.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x)),
    ("leaky_relu_0.2", lambda x: activations.leaky_relu(x, 0.2),
     lambda x: np.where(x > 0, x, 0.2 * x)),
    ("softmax", activations.softmax, np_softmax),
    ("log_softmax", activations.log_softmax, np_log_softmax),
]
ELEMENTWISE_IDS = [case[0] for case in ELEMENTWISE]


@pytest.mark.parametrize(("name", "fn", "reference"), ELEMENTWISE, ids=ELEMENTWISE_IDS)
def test_matches_numpy_formula_in_float32(name: str, fn: Callable[[jax.Array], jax.Array],
                                          reference: NpFn) -> None:
    out = fn(jnp.asarray(GRID))
    assert out.shape == GRID.shape
    assert out.dtype == jnp.float32
    expected = reference(GRID.astype(np.float64))
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize(("name", "fn", "reference"), ELEMENTWISE, ids=ELEMENTWISE_IDS)
def test_matches_numpy_formula_in_float64(name: str, fn: Callable[[jax.Array], jax.Array],
                                          reference: NpFn) -> None:
    x = np.random.default_rng(0).normal(scale=5.0, size=(4, 7))
    with jax.enable_x64(True):
        out = fn(jnp.asarray(x, jnp.float64))
        assert out.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(out), reference(x), rtol=1e-13, atol=1e-15)


def test_step_and_relu_at_zero_are_zero_and_relu_gradient_there_is_zero() -> None:
    x = jnp.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(activations.step(x), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(activations.relu(x), [0.0, 0.0, 2.0])
    # The book's ReLU backward: dvalues where z > 0, else 0 (so 0 at z == 0).
    relu_grad = jax.vmap(jax.grad(activations.relu))(x)
    np.testing.assert_array_equal(relu_grad, [0.0, 0.0, 1.0])
    step_grad = jax.vmap(jax.grad(activations.step))(x)
    np.testing.assert_array_equal(step_grad, [0.0, 0.0, 0.0])


def test_leaky_relu_gradient_is_the_slope_below_zero() -> None:
    x = jnp.array([-3.0, -0.5, 0.5, 3.0])
    grads = jax.vmap(jax.grad(lambda v: activations.leaky_relu(v, 0.1)))(x)
    np.testing.assert_allclose(grads, [0.1, 0.1, 1.0, 1.0], rtol=1e-7)


def test_integer_inputs_keep_their_meaning() -> None:
    ints = jnp.array([-2, 0, 3])
    floats = ints.astype(jnp.float32)
    np.testing.assert_array_equal(activations.step(ints), [0, 0, 1])
    np.testing.assert_array_equal(activations.relu(ints), [0, 0, 3])
    for fn in (activations.sigmoid, activations.tanh, activations.softmax,
               activations.log_softmax):
        out = fn(ints)
        assert out.dtype == jnp.float32, fn.__name__
        np.testing.assert_allclose(out, fn(floats), rtol=1e-7, err_msg=fn.__name__)


def test_sigmoid_saturates_without_overflow() -> None:
    x = jnp.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    out = activations.sigmoid(x)
    np.testing.assert_allclose(out, [0.0, 1.9287499e-22, 0.5, 1.0, 1.0], rtol=1e-5, atol=0)
    grads = jax.vmap(jax.grad(activations.sigmoid))(x)
    assert np.all(np.isfinite(grads))
    np.testing.assert_allclose(grads[2], 0.25, rtol=1e-7)


def test_softmax_rows_sum_to_one_and_match_axis_0() -> None:
    x = jnp.asarray(RNG.normal(scale=10.0, size=(6, 5)), jnp.float32)
    rows = activations.softmax(x)
    np.testing.assert_allclose(rows.sum(axis=-1), np.ones(6), rtol=1e-6)
    np.testing.assert_allclose(rows, np_softmax(np.asarray(x)), rtol=1e-5, atol=1e-7)
    cols = activations.softmax(x, axis=0)
    np.testing.assert_allclose(cols, activations.softmax(x.T).T, rtol=1e-6)
    np.testing.assert_allclose(cols.sum(axis=0), np.ones(5), rtol=1e-6)
    np.testing.assert_allclose(activations.log_softmax(x, axis=0),
                               np_log_softmax(np.asarray(x), axis=0), rtol=1e-5, atol=1e-5)


softmax_jacobian = jax.jit(jax.jacobian(activations.softmax))
log_softmax_jacobian = jax.jit(jax.jacobian(activations.log_softmax))

# Logits of magnitude 1e4: exp overflows in float32 and float64 without the max shift.
STABILITY = [
    ([1e4, 0.0], [1.0, 0.0], [0.0, -1e4]),
    ([-1e4, 1e4, 0.0], [0.0, 1.0, 0.0], [-2e4, 0.0, -1e4]),
    ([1e4, 1e4], [0.5, 0.5], [-np.log(2.0), -np.log(2.0)]),
    ([-1e4, -1e4 + 1.0], [0.26894142, 0.73105858], [-1.31326169, -0.31326169]),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("logits", "probs", "log_probs"), STABILITY)
def test_softmax_and_log_softmax_are_stable_for_huge_logits(
        dtype: str, logits: list[float], probs: list[float], log_probs: list[float]) -> None:
    with jax.enable_x64(dtype == "float64"):
        x = jnp.asarray(logits, dtype)
        s = activations.softmax(x)
        ls = activations.log_softmax(x)
        assert s.dtype == ls.dtype == jnp.dtype(dtype)
        assert np.all(np.isfinite(s)) and np.all(np.isfinite(ls))
        np.testing.assert_allclose(s, probs, rtol=1e-6, atol=1e-30)
        np.testing.assert_allclose(ls, log_probs, rtol=1e-6)
        jac_s = softmax_jacobian(x)
        jac_ls = log_softmax_jacobian(x)
        assert np.all(np.isfinite(jac_s)) and np.all(np.isfinite(jac_ls))
        # d softmax / dz = diag(s) - s s^T;  d log_softmax / dz = I - 1 s^T.
        s64 = np.asarray(probs, np.float64)
        np.testing.assert_allclose(jac_s, np.diag(s64) - np.outer(s64, s64), atol=1e-6)
        np.testing.assert_allclose(jac_ls, np.eye(len(s64)) - s64[None, :], atol=1e-6)


def test_log_softmax_of_huge_logits_differs_from_log_of_softmax() -> None:
    """log(softmax) gives -inf once a probability underflows; log_softmax stays exact."""
    x = jnp.array([-1e4, 1e4, 0.0])
    assert np.isneginf(np.asarray(jnp.log(activations.softmax(x)))[0])
    np.testing.assert_allclose(activations.log_softmax(x)[0], -2e4, rtol=1e-7)


def test_softmax_on_a_batch_of_huge_rows() -> None:
    x = jnp.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0], [3.0, 3.0, 3.0]])
    np.testing.assert_allclose(activations.softmax(x),
                               np.array([[1, 0, 0], [0, 1, 0], [1 / 3, 1 / 3, 1 / 3]]),
                               rtol=1e-6)
    loss_grad = jax.jit(jax.grad(lambda z: -jnp.sum(activations.log_softmax(z)[:, 0])))(x)
    # d/dz of -log_softmax(z)[0] = softmax(z) - e_0, row by row.
    np.testing.assert_allclose(loss_grad,
                               np.array([[0, 0, 0], [-1, 1, 0], [-2 / 3, 1 / 3, 1 / 3]]),
                               atol=1e-6)


# Compiled once per length, so that hypothesis' many examples stay fast.
softmax_jit = jax.jit(activations.softmax)
log_softmax_jit = jax.jit(activations.log_softmax)

rows = hnp.arrays(np.float32, st.integers(1, 8),
                  elements=st.floats(-50.0, 50.0, width=32))


@settings(max_examples=60, deadline=None)
@given(x=rows, shift=st.floats(-100.0, 100.0, width=32))
def test_softmax_is_shift_invariant(x: np.ndarray, shift: float) -> None:
    base = softmax_jit(jnp.asarray(x))
    shifted = softmax_jit(jnp.asarray(x) + jnp.float32(shift))
    np.testing.assert_allclose(shifted, base, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.sum(np.asarray(base, np.float64)), 1.0, rtol=1e-5)


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, st.integers(1, 8), elements=st.floats(-1e4, 1e4, width=32)))
def test_softmax_and_log_softmax_agree_with_float64_numpy(x: np.ndarray) -> None:
    s = np.asarray(softmax_jit(jnp.asarray(x)))
    ls = np.asarray(log_softmax_jit(jnp.asarray(x)))
    assert np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
    assert np.all(np.isfinite(ls)) and np.all(ls <= 0)
    np.testing.assert_allclose(s, np_softmax(x), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ls, np_log_softmax(x), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("classes", [1, 3, 16, 17, 40])
def test_row_max_and_row_sum_equal_the_reductions_on_both_paths(classes: int) -> None:
    x = jnp.asarray(np.random.default_rng(classes).normal(size=(5, 7, classes)), jnp.float32)
    np.testing.assert_array_equal(activations.row_max(x), jnp.max(x, axis=-1, keepdims=True))
    np.testing.assert_allclose(activations.row_sum(x), jnp.sum(x, axis=-1, keepdims=True),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(activations.softmax(x), jax.nn.softmax(x, axis=-1), rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(activations.log_softmax(x), jax.nn.log_softmax(x, axis=-1),
                               rtol=1e-6, atol=1e-6)
