"""Preparing data: shuffles, splits, scalers fitted on training data, one-hot labels,
flattening, and the book's chapter-22 preprocessing of a new photo.

Numpy or jax arrays go in; jax arrays come out (so float64 numpy input becomes float32
unless `jax_enable_x64` is on). The first axis is always the example axis.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.typing import Array, ArrayLike, DTypeLike, NumpyArray, PRNGKey

_FRACTION_TOLERANCE = 1e-6


def _is_traced(x: object) -> bool:
    return isinstance(x, jax.core.Tracer)


def _common_length(where: str, arrays: Sequence[ArrayLike]) -> int:
    """The shared length of `arrays`' first axis; errors name `where` and the shapes."""
    if not arrays:
        raise ValueError(f"{where} needs at least one array")
    shapes = [np.shape(a) for a in arrays]
    for index, shape in enumerate(shapes):
        if len(shape) == 0:
            raise ValueError(f"{where}: array {index} is a scalar; arrays need an example axis")
    lengths = {shape[0] for shape in shapes}
    if len(lengths) > 1:
        listed = ", ".join(str(shape) for shape in shapes)
        raise ValueError(f"{where}: arrays differ in length along axis 0: {listed}")
    return int(shapes[0][0])


def _take(array: ArrayLike, index: ArrayLike) -> Array:
    """Rows `index` of `array`; host arrays are indexed on the host, then moved once."""
    if isinstance(array, jax.Array):
        return jnp.take(array, jnp.asarray(index), axis=0)
    return jnp.asarray(np.asarray(array)[np.asarray(index)])


def shuffle(key: PRNGKey, *arrays: ArrayLike) -> tuple[Array, ...]:
    """`arrays` reordered by one random permutation of their shared first axis (jittable)."""
    n = _common_length("shuffle", arrays)
    order = jax.random.permutation(key, n)
    return tuple(_take(a, order) for a in arrays)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(f) for f in fractions)
    if not values:
        raise ValueError("fractions must name at least one part")
    if any(not math.isfinite(f) or f <= 0.0 for f in values):
        raise ValueError(f"fractions must be positive and finite, got {values}")
    if abs(sum(values) - 1.0) > _FRACTION_TOLERANCE:
        raise ValueError(f"fractions must sum to 1, got {values} (sum {sum(values):.6g})")
    return values


def part_sizes(n: int, fractions: Sequence[float]) -> tuple[int, ...]:
    """Sizes summing to `n`, each `floor(n * f)` plus one for the largest remainders.

    Raises ValueError when a part would be empty.
    """
    values = _check_fractions(fractions)
    raw = np.round(n * np.asarray(values), 9)
    sizes = np.floor(raw).astype(np.int64)
    leftover = n - int(sizes.sum())
    sizes[np.argsort(-(raw - sizes), kind="stable")[:leftover]] += 1
    if np.any(sizes == 0):
        raise ValueError(
            f"splitting {n} examples by fractions {values} leaves a part empty "
            f"(sizes {tuple(int(s) for s in sizes)})"
        )
    return tuple(int(s) for s in sizes)


def _interleaved_parts(sizes: Sequence[int]) -> NumpyArray:
    """Part ids for positions 0..n-1, spread evenly: part p at times (j + 1/2) / size_p."""
    parts = np.concatenate([np.full(s, p) for p, s in enumerate(sizes)])
    times = np.concatenate([(np.arange(s) + 0.5) / s for s in sizes])
    return parts[np.lexsort((parts, times))]


def host_rng(key: PRNGKey) -> np.random.Generator:
    """A numpy Generator seeded with the bits of a jax key: host-side randomness, no device."""
    if _is_traced(key):
        raise TypeError("host-side splitting needs a concrete key; call it outside jax.jit")
    bits = np.asarray(jax.random.key_data(key), dtype=np.uint32).reshape(-1)
    return np.random.default_rng(bits)


def split_indices(
    key: PRNGKey,
    n: int,
    fractions: Sequence[float],
    *,
    stratify: ArrayLike | None = None,
) -> tuple[NumpyArray, ...]:
    """Disjoint random index arrays covering `range(n)`, sized by `part_sizes(n, fractions)`.

    Computed on the host from `host_rng(key)`. With `stratify` (labels `(n,)`), the examples,
    grouped by class, are dealt to the parts in an evenly interleaved pattern, so each class
    is split in the parts' proportions to within two examples; each part is then shuffled.
    """
    sizes = part_sizes(n, fractions)
    rng = host_rng(key)
    order = rng.permutation(n)
    if stratify is None:
        return tuple(np.split(order, np.cumsum(sizes)[:-1]))
    labels = np.asarray(stratify)
    if labels.shape != (n,):
        raise ValueError(f"stratify labels must have shape ({n},), got {labels.shape}")
    _, classes = np.unique(labels, return_inverse=True)
    grouped = order[np.argsort(classes.reshape(-1)[order], kind="stable")]
    assignment = _interleaved_parts(sizes)
    return tuple(rng.permutation(grouped[assignment == p]) for p in range(len(sizes)))


def split(
    key: PRNGKey,
    *arrays: ArrayLike,
    fractions: Sequence[float] = (0.8, 0.2),
    stratify: ArrayLike | None = None,
) -> tuple[tuple[Array, ...], ...]:
    """`arrays` split into `len(fractions)` random parts: `((x0, y0), (x1, y1), ...)`.

    Reproducible from `key`; optionally stratified by labels (see `split_indices`).
    """
    n = _common_length("split", arrays)
    indices = split_indices(key, n, fractions, stratify=stratify)
    return tuple(tuple(_take(a, index) for a in arrays) for index in indices)


def train_test_split(
    key: PRNGKey,
    *arrays: ArrayLike,
    test_fraction: float = 0.2,
    stratify: ArrayLike | None = None,
) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
    """`(x_train, y_train), (x_test, y_test) = train_test_split(key, x, y, test_fraction=0.2)`."""
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    train, test = split(
        key, *arrays, fractions=(1.0 - test_fraction, test_fraction), stratify=stratify
    )
    return train, test


def _as_float(where: str, x: ArrayLike) -> Array:
    array = jnp.asarray(x)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(jnp.float32)
    if array.ndim == 0 or array.shape[0] == 0:
        raise ValueError(f"{where} needs at least one example along axis 0, got {array.shape}")
    if not _is_traced(array) and not bool(jnp.all(jnp.isfinite(array))):
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
    if not _is_traced(array) and array.size:
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


ImageSource: TypeAlias = Any
"""A path, a Pillow image, or a uint8 array `(H, W)`, `(H, W, 1)`, `(H, W, 3)` or `(H, W, 4)`."""


def _to_grayscale(image: ImageSource, image_module: Any) -> Any:
    if isinstance(image, image_module.Image):
        return image.convert("L")
    if isinstance(image, str | os.PathLike):
        from funcnn.datasets.images import read_grayscale

        return image_module.fromarray(read_grayscale(Path(image)), mode="L")
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8:
        raise TypeError(f"preprocess_image needs uint8 pixels in 0..255, got dtype {pixels.dtype}")
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    if pixels.ndim == 3 and pixels.shape[2] in modes:
        mode = modes[pixels.shape[2]]
        pixels = pixels[:, :, 0] if mode == "L" else pixels
    elif pixels.ndim == 2:
        mode = "L"
    else:
        raise ValueError(
            f"preprocess_image needs an image of shape (H, W) or (H, W, 1|3|4), got {pixels.shape}"
        )
    return image_module.fromarray(np.ascontiguousarray(pixels), mode=mode).convert("L")


def preprocess_image(
    image: ImageSource,
    *,
    size: tuple[int, int] = (28, 28),
    invert: bool = True,
    flatten: bool = True,
) -> Array:
    """The book's chapter-22 preparation of a new photo for a Fashion-MNIST model.

    Grayscale (Pillow's luma `L = 0.299 R + 0.587 G + 0.114 B`; alpha ignored, as by the
    book's `cv2.imread`), resize to `size` `(height, width)` with Pillow's bilinear filter
    (antialiased when shrinking, unlike `cv2.resize`), invert (`255 - x`, for dark-on-light
    photos), scale `(x - 127.5) / 127.5` into [-1, 1]. Returns float32 `(H * W,)` with
    `flatten`, else `(H, W)`; add a batch axis with `[None]`.
    """
    from funcnn.datasets.images import require_pillow

    height, width = size
    if min(height, width) < 1:
        raise ValueError(f"size must be positive (height, width), got {size}")
    image_module = require_pillow()
    gray = _to_grayscale(image, image_module)
    resized = gray.resize((width, height), resample=image_module.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32)
    if invert:
        pixels = 255.0 - pixels
    scaled = jnp.asarray((pixels - 127.5) / 127.5, dtype=jnp.float32)
    return scaled.reshape(-1) if flatten else scaled
