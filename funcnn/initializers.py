"""Weight initializers `(key, shape, dtype) -> Array` (book chapter 3 and modern ones).

The signature is the one of `jax.nn.initializers`, so any of those plugs in as well.
Fan-in and fan-out are read from a weight of shape `(fan_in, fan_out)`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from funcnn.typing import Array, DTypeLike, Initializer, PRNGKey, Shape


def book_normal(scale: float = 0.01) -> Initializer:
    """The book's weights: `scale * N(0, 1)` (scale 0.01; chapter 17 uses 0.1)."""
    if not scale > 0:
        raise ValueError(f"book_normal: scale must be > 0, got {scale}")

    def init(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        return scale * jax.random.normal(key, shape, dtype)

    return init


def zeros(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
    """All zeros (the book's biases); the key is unused."""
    del key
    return jnp.zeros(shape, dtype)


def constant(value: float) -> Initializer:
    """Every entry equal to `value`."""

    def init(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        del key
        return jnp.full(shape, value, dtype)

    return init


def _fans(shape: Shape) -> tuple[int, int]:
    """`(fan_in, fan_out)` of a weight: the last two axes, times any leading receptive field."""
    if len(shape) < 1:
        raise ValueError(f"initializer: weight shape must have at least 1 axis, got {shape}")
    if any(d <= 0 for d in shape):
        raise ValueError(
            f"initializer: weight shape must have positive axes to compute fan-in and "
            f"fan-out, got {shape}"
        )
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
    """Shared body of glorot/he: variance `scale / fan`, uniform or normal."""

    def init(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / fan
        if distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return jax.random.uniform(key, shape, dtype, -limit, limit)
        return math.sqrt(variance) * jax.random.normal(key, shape, dtype)

    return init


def glorot_uniform() -> Initializer:
    """Glorot/Xavier uniform: `U(-a, a)`, `a = sqrt(6 / (fan_in + fan_out))`."""
    return _variance_scaling(1.0, "fan_avg", "uniform")


def glorot_normal() -> Initializer:
    """Glorot/Xavier normal: `N(0, 2 / (fan_in + fan_out))`."""
    return _variance_scaling(1.0, "fan_avg", "normal")


def he_uniform() -> Initializer:
    """He/Kaiming uniform for ReLU: `U(-a, a)`, `a = sqrt(6 / fan_in)`."""
    return _variance_scaling(2.0, "fan_in", "uniform")


def he_normal() -> Initializer:
    """He/Kaiming normal for ReLU: `N(0, 2 / fan_in)`."""
    return _variance_scaling(2.0, "fan_in", "normal")


def orthogonal(scale: float = 1.0) -> Initializer:
    """A (semi-)orthogonal matrix times `scale` (`jax.nn.initializers.orthogonal`), drawn in
    at least float32 and cast to the dtype asked for, so bfloat16 works; the usual
    initializer of recurrent weights (Keras's default)."""
    draw = jax.nn.initializers.orthogonal(scale)

    def init(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        matrix: Array = draw(key, shape, jnp.promote_types(dtype, jnp.float32))
        return matrix.astype(dtype)

    return init
