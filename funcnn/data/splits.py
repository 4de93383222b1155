"""Shuffles and reproducible (stratified) splits of data sets; the first axis is always
the example axis."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.typing import Array, ArrayLike, NumpyArray, PRNGKey

_FRACTION_TOLERANCE = 1e-6


def is_traced(x: object) -> bool:
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
    if is_traced(key):
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
