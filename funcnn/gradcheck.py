"""Gradient checking (book chapter 7): `jax.grad` against central finite differences.

For a scalar `f(params, *args)` and each checked coordinate i,
`numeric_i = (f(p + eps e_i) - f(p - eps e_i)) / (2 eps)` and the error is
`|grad_i - numeric_i| / max(|grad_i|, |numeric_i|, floor)`; a NaN anywhere is the worst error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from funcnn.tree import path_to_str
from funcnn.typing import Array, PRNGKey, PyTree


class GradientCheck(NamedTuple):
    """Worst relative error per leaf path (`"0_dense/w"`), and over all leaves."""

    errors: dict[str, float]
    max_error: float
    worst_leaf: str

    def assert_close(self, tolerance: float) -> None:
        """Raise `AssertionError` naming the worst leaf if any error exceeds `tolerance`."""
        if not self.max_error <= tolerance:
            raise AssertionError(
                f"gradient check failed: {self.worst_leaf} has relative error "
                f"{self.max_error:.3g} > {tolerance:.3g} (all leaves: {self.errors})"
            )


def _leaf_spans(params: PyTree) -> list[tuple[str, int, int]]:
    """`(path, start, stop)` of each leaf inside the flat vector of `ravel_pytree`."""
    spans, start = [], 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        size = int(np.size(leaf))
        spans.append((path_to_str(path) or "<root>", start, start + size))
        start += size
    return spans


def check_gradients(
    f: Callable[..., Array],
    params: PyTree,
    *args: Any,
    eps: float | None = None,
    floor: float | None = None,
    max_coords_per_leaf: int | None = None,
    key: PRNGKey | None = None,
) -> GradientCheck:
    """Compare `jax.grad(f)(params, *args)` with central differences, leaf by leaf.

    `eps` defaults to 1e-6 for float64 params and 1e-3 for float32; `floor` (the smallest
    denominator, so near-zero gradients are compared absolutely) to 1e-8 and 1e-3.
    `max_coords_per_leaf` checks a random subset (chosen with `key`, or a fixed seed when
    `key` is None, so the same call checks the same coordinates) of large leaves.
    """
    if max_coords_per_leaf is not None and (
        not isinstance(max_coords_per_leaf, int) or isinstance(max_coords_per_leaf, bool)
        or max_coords_per_leaf < 1
    ):
        raise ValueError(
            f"check_gradients: max_coords_per_leaf must be a positive int or None, "
            f"got {max_coords_per_leaf!r}"
        )
    for label, value in (("eps", eps), ("floor", floor)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"check_gradients: {label} must be a finite number > 0, got {value}")
    flat, unravel = ravel_pytree(params)
    if flat.size == 0:
        raise ValueError("check_gradients: params have no array leaves to check")
    if not jnp.issubdtype(flat.dtype, jnp.floating):
        raise TypeError(f"check_gradients: params must be floating-point, got {flat.dtype}")
    wide = flat.dtype == jnp.float64
    eps = (1e-6 if wide else 1e-3) if eps is None else eps
    floor = (1e-8 if wide else 1e-3) if floor is None else floor

    def f_flat(v: Array) -> Array:
        out = jnp.asarray(f(unravel(v), *args))
        if out.shape != ():
            raise ValueError(f"check_gradients: f must return a scalar, got shape {out.shape}")
        return out

    analytic = jax.jit(jax.grad(f_flat))(flat)
    seed = 0 if key is None else int(jax.random.randint(key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    spans = _leaf_spans(params)
    chosen = []
    for _, start, stop in spans:
        idx = np.arange(start, stop)
        if max_coords_per_leaf is not None and idx.size > max_coords_per_leaf:
            idx = np.sort(rng.choice(idx, max_coords_per_leaf, replace=False))
        chosen.append(idx)
    indices = jnp.asarray(np.concatenate(chosen))

    def central_difference(i: Array) -> Array:
        step = jnp.zeros_like(flat).at[i].set(eps)
        return (f_flat(flat + step) - f_flat(flat - step)) / (2 * eps)

    numeric = np.asarray(jax.jit(lambda ix: jax.lax.map(central_difference, ix,
                                                        batch_size=64))(indices))
    grads = np.asarray(analytic)[np.asarray(indices)]
    rel = np.abs(grads - numeric) / np.maximum(np.maximum(np.abs(grads), np.abs(numeric)), floor)
    errors, offset = {}, 0
    for (path, _, _), idx in zip(spans, chosen, strict=True):
        errors[path] = float(rel[offset: offset + idx.size].max()) if idx.size else 0.0
        offset += idx.size
    # NaN ranks above every number: a NaN gradient must never hide behind a finite error.
    worst = max(errors, key=lambda p: (math.isnan(errors[p]), errors[p]))
    return GradientCheck(errors, errors[worst], worst)
