"""Transforms fitted on training data (min-max and standard scalers), one-hot labels and
flattening. Numpy or jax arrays go in; jax arrays come out (so float64 numpy input becomes
float32 unless `jax_enable_x64` is on)."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnn.data.splits import is_traced
from funcnn.typing import Array, ArrayLike, DTypeLike


def _as_float(where: str, x: ArrayLike) -> Array:
    array = jnp.asarray(x)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(jnp.float32)
    if array.ndim == 0 or array.shape[0] == 0:
        raise ValueError(f"{where} needs at least one example along axis 0, got {array.shape}")
    if not is_traced(array) and not bool(jnp.all(jnp.isfinite(array))):
        raise ValueError(f"{where}: data contains NaN or infinity")
    return array


def _align(where: str, stat: Array, x: ArrayLike) -> tuple[Array, Array]:
    """`x` as the scaler's dtype and `stat` reshaped to `x`'s rank (explicit broadcast)."""
    array = jnp.asarray(x, dtype=stat.dtype)
    tail = array.shape[array.ndim - stat.ndim:] if stat.ndim else ()
    if array.ndim < stat.ndim or tail != stat.shape:
        raise ValueError(
            f"{where} was fitted on features of shape {stat.shape}, got input of shape "
            f"{array.shape}"
        )
    return array, stat.reshape((1,) * (array.ndim - stat.ndim) + stat.shape)


class MinMaxScaler(NamedTuple):
    """`y = low + (x - data_min) * (high - low) / (data_max - data_min)`, per feature.

    A feature with zero range maps to `low` (no NaN); `inverse_transform` undoes `transform`.
    Values outside the fitted range land outside `[low, high]` (no clipping).
    """

    data_min: Array
    data_max: Array
    low: Array
    high: Array

    def _scale(self) -> Array:
        span = self.data_max - self.data_min
        return (self.high - self.low) / jnp.where(span > 0, span, jnp.ones_like(span))

    def transform(self, x: ArrayLike) -> Array:
        """Scaled `x` of shape `(..., *feature_shape)`, in the scaler's dtype."""
        array, data_min = _align("MinMaxScaler", self.data_min, x)
        _, scale = _align("MinMaxScaler", self._scale(), array)
        return self.low + (array - data_min) * scale

    def inverse_transform(self, y: ArrayLike) -> Array:
        """`x` such that `transform(x) == y`."""
        array, data_min = _align("MinMaxScaler", self.data_min, y)
        _, scale = _align("MinMaxScaler", self._scale(), array)
        return data_min + (array - self.low) / scale


class StandardScaler(NamedTuple):
    """`y = (x - mean) / scale`, `scale` the population std (1 for constant features)."""

    mean: Array
    scale: Array

    def transform(self, x: ArrayLike) -> Array:
        """Standardized `x` of shape `(..., *feature_shape)`, in the scaler's dtype."""
        array, mean = _align("StandardScaler", self.mean, x)
        _, scale = _align("StandardScaler", self.scale, array)
        return (array - mean) / scale

    def inverse_transform(self, y: ArrayLike) -> Array:
        """`x` such that `transform(x) == y`."""
        array, mean = _align("StandardScaler", self.mean, y)
        _, scale = _align("StandardScaler", self.scale, array)
        return array * scale + mean


def fit_min_max(
    x: ArrayLike,
    feature_range: tuple[float, float] = (-1.0, 1.0),
    *,
    per_feature: bool = True,
) -> MinMaxScaler:
    """A MinMaxScaler onto `feature_range` fitted on training data `x` `(N, *features)`.

    `per_feature=False` uses one global min and max, the book's image scaling: uint8 pixels
    spanning 0..255 map by `(x - 127.5) / 127.5` into [-1, 1].
    """
    low, high = (float(v) for v in feature_range)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"feature_range must be finite with low < high, got {feature_range}")
    array = _as_float("fit_min_max", x)
    axis = 0 if per_feature else None
    return MinMaxScaler(
        jnp.min(array, axis=axis),
        jnp.max(array, axis=axis),
        jnp.asarray(low, dtype=array.dtype),
        jnp.asarray(high, dtype=array.dtype),
    )


def fit_standardize(x: ArrayLike, *, per_feature: bool = True) -> StandardScaler:
    """A StandardScaler fitted on training data `x` `(N, *features)` (zero mean, unit std).

    A constant feature gets `mean` equal to its value and `scale` 1, so it maps to exactly 0.
    """
    array = _as_float("fit_standardize", x)
    axis = 0 if per_feature else None
    constant = jnp.min(array, axis=axis) == jnp.max(array, axis=axis)
    mean = jnp.where(constant, jnp.min(array, axis=axis), jnp.mean(array, axis=axis))
    std = jnp.std(array, axis=axis)
    return StandardScaler(mean, jnp.where(constant, jnp.ones_like(std), std))


def one_hot(labels: ArrayLike, num_classes: int, *, dtype: DTypeLike = jnp.float32) -> Array:
    """Integer labels `(...)` as one-hot rows `(..., num_classes)` of `dtype`.

    Non-integer labels raise TypeError; labels outside `[0, num_classes)` raise ValueError
    (checked whenever the labels are concrete, i.e. outside `jit`).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    array = jnp.asarray(labels)
    if not jnp.issubdtype(array.dtype, jnp.integer):
        raise TypeError(f"one_hot needs integer labels, got dtype {array.dtype}")
    if not is_traced(array) and array.size:
        low, high = int(jnp.min(array)), int(jnp.max(array))
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"labels must lie in [0, {num_classes}), found values from {low} to {high}"
            )
    return jax.nn.one_hot(array, num_classes, dtype=dtype)


def flatten(x: ArrayLike) -> Array:
    """`(N, d1, d2, ...)` -> `(N, d1 * d2 * ...)`; `(N,)` becomes `(N, 1)`."""
    array = jnp.asarray(x)
    if array.ndim == 0:
        raise ValueError("flatten needs an example axis, got a scalar")
    return array.reshape(array.shape[0], math.prod(array.shape[1:]))
