"""Activation functions (book chapter 4) as pure array functions.

Each takes an array of any shape and returns an array of the same shape; floating inputs
keep their dtype, integer inputs of the smooth functions (sigmoid, tanh, softmax ...) come
back as the default float. `softmax` and `log_softmax` normalise over `axis` (the last).
A NaN input gives NaN outputs where `jax.nn` gives them (the element, or the whole row for
the normalising functions and the row reductions), never a finite value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from funcnn.typing import Array, ArrayLike


def step(x: ArrayLike) -> Array:
    """Heaviside step: `1 if x > 0 else 0` (NaN for NaN, as `jnp.heaviside`), in x's dtype."""
    x = jnp.asarray(x)
    return jnp.where(jnp.isnan(x), x, (x > 0).astype(x.dtype))


def linear(x: ArrayLike) -> Array:
    """Identity `y = x` (the regression output of chapter 17)."""
    return jnp.asarray(x)


def _inexact(x: ArrayLike) -> Array:
    """`x` as an array; integer and bool inputs become the default float, like `jnp.tanh`."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return x
    return x.astype(jnp.result_type(float))


def sigmoid(x: ArrayLike) -> Array:
    """Logistic `1 / (1 + exp(-x))`, computed without overflow for large |x|."""
    return jax.nn.sigmoid(_inexact(x))


def tanh(x: ArrayLike) -> Array:
    """Hyperbolic tangent."""
    return jnp.tanh(x)


def relu(x: ArrayLike) -> Array:
    """Rectified linear unit `max(x, 0)`, NaN for NaN; its derivative at 0 is 0, as in the
    book. (The test is `x <= 0`, false for NaN, so a NaN passes through unmasked.)"""
    x = jnp.asarray(x)
    return jnp.where(x <= 0, jnp.zeros_like(x), x)


def leaky_relu(x: ArrayLike, negative_slope: float = 0.01) -> Array:
    """`x if x > 0 else negative_slope * x` (NaN for NaN: `negative_slope * NaN`)."""
    x = jnp.asarray(x)
    return jnp.where(x > 0, x, negative_slope * x)


SMALL_LAST_AXIS = 16
"""Up to this many entries, `row_max` and `row_sum` combine whole columns element-wise
instead of reducing along the short last axis, which XLA:CPU does one row at a time
(measured on the book's 3-class spiral net: the accuracy's reductions alone cost 8% of a
training step)."""


def row_max(x: Array) -> Array:
    """`jnp.max(x, axis=-1, keepdims=True)`; column by column for a short last axis."""
    if x.ndim == 0 or x.shape[-1] > SMALL_LAST_AXIS:
        return jnp.max(x, axis=-1, keepdims=True)
    out = x[..., 0]
    for c in range(1, x.shape[-1]):
        out = jnp.maximum(out, x[..., c])
    return out[..., None]


def row_sum(x: Array) -> Array:
    """`jnp.sum(x, axis=-1, keepdims=True)`; column by column for a short last axis."""
    if x.ndim == 0 or x.shape[-1] > SMALL_LAST_AXIS:
        return jnp.sum(x, axis=-1, keepdims=True)
    out = x[..., 0]
    for c in range(1, x.shape[-1]):
        out = out + x[..., c]
    return out[..., None]


def _axis_max(x: Array, axis: int) -> Array:
    """`jnp.max(x, axis, keepdims=True)`, by columns (`row_max`) over a short last axis."""
    return row_max(x) if axis in (-1, x.ndim - 1) else jnp.max(x, axis=axis, keepdims=True)


def _axis_sum(x: Array, axis: int) -> Array:
    """`jnp.sum(x, axis, keepdims=True)`, by columns (`row_sum`) over a short last axis."""
    return row_sum(x) if axis in (-1, x.ndim - 1) else jnp.sum(x, axis=axis, keepdims=True)


def softmax(x: ArrayLike, axis: int = -1) -> Array:
    """`exp(x - max x) / sum exp(x - max x)` along `axis` (stable for |x| up to float max)."""
    x = _inexact(x)
    exps = jnp.exp(x - jax.lax.stop_gradient(_axis_max(x, axis)))
    return exps / _axis_sum(exps, axis)


def log_softmax(x: ArrayLike, axis: int = -1) -> Array:
    """`x - max x - log(sum exp(x - max x))` along `axis`; never -inf for finite x."""
    x = _inexact(x)
    shifted = x - jax.lax.stop_gradient(_axis_max(x, axis))
    return shifted - jnp.log(_axis_sum(jnp.exp(shifted), axis))
