"""Initializers: the book's 0.01*N(0,1), constants, Glorot/He against their formulas.

Statistical checks draw 10^5+ samples and allow bands of 10+ standard errors of the
estimate, so they hold for any key; they also run on a fixed key, so they never flake.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn import initializers
from funcnn.typing import Initializer

KEY = jax.random.key(42)
# Random draws compile once per (distribution, shape, dtype): the tests share a few shapes.
STAT_SHAPE = (300, 400)  # 120,000 samples: 10 s.e. of a sample std is 2.0%
SMALL = (8, 5)


def sample_std_band(n: int, sigmas: float = 10.0) -> float:
    """Relative band on a sample std: its standard error is about std / sqrt(2 n)."""
    return sigmas / math.sqrt(2 * n)


@pytest.mark.parametrize("scale", [0.01, 0.1, 1.0])
def test_book_normal_has_std_scale_and_mean_zero(scale: float) -> None:
    w = np.asarray(initializers.book_normal(scale)(KEY, STAT_SHAPE, jnp.float32), np.float64)
    assert w.shape == STAT_SHAPE
    n = w.size
    np.testing.assert_allclose(w.std(), scale, rtol=sample_std_band(n))
    assert abs(w.mean()) < 10 * scale / math.sqrt(n)
    # Normal tails: 4.55% of samples beyond 2 sigma (binomial s.e. 0.06%).
    beyond = np.mean(np.abs(w) > 2 * scale)
    assert abs(beyond - 0.0455) < 0.006


def test_book_normal_is_exactly_scale_times_standard_normal() -> None:
    w = initializers.book_normal(0.01)(KEY, SMALL, jnp.float32)
    np.testing.assert_array_equal(w, 0.01 * jax.random.normal(KEY, SMALL, jnp.float32))


@pytest.mark.parametrize("scale", [0.0, -0.01, float("nan")])
def test_book_normal_rejects_non_positive_scale(scale: float) -> None:
    with pytest.raises(ValueError, match=r"book_normal: scale must be > 0, got"):
        initializers.book_normal(scale)


def test_zeros_and_constant() -> None:
    z = initializers.zeros(KEY, (2, 3), jnp.float32)
    assert z.shape == (2, 3) and z.dtype == jnp.float32
    np.testing.assert_array_equal(z, np.zeros((2, 3)))
    c = initializers.constant(0.25)(KEY, (4,), jnp.float32)
    np.testing.assert_array_equal(c, np.full(4, 0.25))
    assert c.dtype == jnp.float32
    # The key is unused: any key gives the same array.
    np.testing.assert_array_equal(initializers.constant(-3.0)(jax.random.key(7), (2,),
                                                              jnp.float32), [-3.0, -3.0])


# (name, initializer, fan_in, fan_out -> (uniform limit or None, expected std))
FanFormula = Callable[[int, int], tuple[float | None, float]]
VARIANCE_SCALING: list[tuple[str, Callable[[], Initializer], FanFormula]] = [
    ("glorot_uniform", initializers.glorot_uniform,
     lambda i, o: (math.sqrt(6 / (i + o)), math.sqrt(2 / (i + o)))),
    ("glorot_normal", initializers.glorot_normal, lambda i, o: (None, math.sqrt(2 / (i + o)))),
    ("he_uniform", initializers.he_uniform, lambda i, o: (math.sqrt(6 / i), math.sqrt(2 / i))),
    ("he_normal", initializers.he_normal, lambda i, o: (None, math.sqrt(2 / i))),
]
VS_IDS = [case[0] for case in VARIANCE_SCALING]


@pytest.mark.parametrize(("name", "factory", "formula"), VARIANCE_SCALING, ids=VS_IDS)
def test_variance_scaling_matches_formula(name: str, factory: Callable[[], Initializer],
                                          formula: FanFormula) -> None:
    w = np.asarray(factory()(KEY, STAT_SHAPE, jnp.float32), np.float64)
    assert w.shape == STAT_SHAPE
    limit, std = formula(*STAT_SHAPE)
    np.testing.assert_allclose(w.std(), std, rtol=sample_std_band(w.size))
    assert abs(w.mean()) < 10 * std / math.sqrt(w.size)
    if limit is not None:
        assert np.abs(w).max() <= limit
        # With 10^5 uniform samples the extremes come within 0.1% of the limit.
        assert w.max() > 0.999 * limit and w.min() < -0.999 * limit
    else:
        assert np.abs(w).max() > 3.5 * std  # a normal, not a bounded distribution


@pytest.mark.parametrize(("name", "factory", "formula"),
                         [c for c in VARIANCE_SCALING if "uniform" in c[0]],
                         ids=[i for i in VS_IDS if "uniform" in i])
def test_leading_axes_are_the_receptive_field(name: str, factory: Callable[[], Initializer],
                                              formula: FanFormula) -> None:
    """A (k, in, out) kernel has fan_in = k*in, fan_out = k*out; the limit pins them."""
    w = np.asarray(factory()(KEY, (3, 200, 100), jnp.float32))
    limit, _ = formula(3 * 200, 3 * 100)
    assert limit is not None
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.999 * limit


def test_one_dimensional_shape_uses_its_length_for_both_fans() -> None:
    w = np.asarray(initializers.glorot_uniform()(KEY, (60000,), jnp.float32))
    limit = math.sqrt(6 / (60000 + 60000))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.999 * limit


@pytest.mark.parametrize(("shape", "message"), [
    ((), r"weight shape must have at least 1 axis, got \(\)"),
    ((0, 3), r"weight shape must have positive axes .* got \(0, 3\)"),
])
def test_variance_scaling_rejects_bad_shapes(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        initializers.he_normal()(KEY, shape, jnp.float32)


ALL: list[tuple[str, Initializer]] = [
    ("book_normal", initializers.book_normal()),
    ("zeros", initializers.zeros),
    ("constant", initializers.constant(0.5)),
    ("glorot_uniform", initializers.glorot_uniform()),
    ("glorot_normal", initializers.glorot_normal()),
    ("he_uniform", initializers.he_uniform()),
    ("he_normal", initializers.he_normal()),
]
ALL_IDS = [case[0] for case in ALL]
RANDOM = [case for case in ALL if case[0] not in ("zeros", "constant")]


@pytest.mark.parametrize(("name", "init"), RANDOM, ids=[c[0] for c in RANDOM])
def test_same_key_same_values_other_key_other_values(name: str, init: Initializer) -> None:
    a = init(jax.random.key(3), SMALL, jnp.float32)
    b = init(jax.random.key(3), SMALL, jnp.float32)
    c = init(jax.random.key(4), SMALL, jnp.float32)
    np.testing.assert_array_equal(a, b)
    assert not np.any(np.asarray(a) == np.asarray(c))


@pytest.mark.parametrize(("name", "init"), ALL, ids=ALL_IDS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dtype_is_honoured(name: str, init: Initializer, dtype: jnp.dtype) -> None:
    w = init(KEY, SMALL, dtype)
    assert w.dtype == dtype and w.shape == SMALL
    assert np.all(np.isfinite(np.asarray(w, np.float32)))


@pytest.mark.parametrize(("name", "init"), ALL, ids=ALL_IDS)
def test_float64_under_x64(name: str, init: Initializer) -> None:
    with jax.enable_x64(True):
        w = init(KEY, SMALL, jnp.float64)
        assert w.dtype == jnp.float64
        assert np.all(np.isfinite(np.asarray(w)))


def test_default_dtype_is_float32() -> None:
    assert initializers.book_normal()(KEY, SMALL).dtype == jnp.float32  # type: ignore[call-arg]
    assert initializers.zeros(KEY, SMALL).dtype == jnp.float32
    assert initializers.he_uniform()(KEY, SMALL).dtype == jnp.float32  # type: ignore[call-arg]


X = jax.random.normal(jax.random.key(1), (7, 128))


def dense_weights(w_init: Initializer, **kwargs: object) -> np.ndarray:
    """`w` of a Dense(64) on 128 features built with `w_init`, after checking its forward."""
    layer = fn.Dense(64, w_init=w_init, **kwargs)  # type: ignore[arg-type]
    params, _ = layer.init(KEY, (128,))
    y, _ = layer.apply(params, {}, X)
    w = np.asarray(params["w"], np.float64)
    np.testing.assert_allclose(y, np.asarray(X) @ w + np.asarray(params["b"])[None, :],
                               rtol=1e-4, atol=1e-4)
    return w


def test_jax_nn_initializers_plug_into_dense() -> None:
    inits = jax.nn.initializers
    np.testing.assert_array_equal(dense_weights(inits.ones), np.ones((128, 64)))
    layer = fn.Dense(3, w_init=inits.ones, b_init=inits.constant(0.5))
    params, _ = layer.init(KEY, (4,))
    y, _ = layer.apply(params, {}, jnp.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(y, [10.5, 10.5, 10.5])

    orthogonal = dense_weights(inits.orthogonal())
    np.testing.assert_allclose(orthogonal.T @ orthogonal, np.eye(64), atol=1e-5)

    lecun = dense_weights(inits.lecun_normal())  # std sqrt(1 / fan_in), truncated normal
    np.testing.assert_allclose(lecun.std(), math.sqrt(1 / 128), rtol=sample_std_band(lecun.size))
    assert np.abs(lecun).max() <= 2 * math.sqrt(1 / 128) / 0.87962566103423978 + 1e-6


def test_dense_default_is_the_books_init() -> None:
    params, _ = fn.Dense(STAT_SHAPE[1]).init(KEY, (STAT_SHAPE[0],))
    w = np.asarray(params["w"], np.float64)
    assert w.shape == STAT_SHAPE
    np.testing.assert_allclose(w.std(), 0.01, rtol=sample_std_band(w.size))
    np.testing.assert_array_equal(params["b"], np.zeros(STAT_SHAPE[1]))
