"""The book's per-layer regularization (chapter 14) for any weight: `l1 * sum|w| + l2 *
sum w^2` per leaf, with the coefficient checks every layer shares."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import jax.numpy as jnp

from funcnn.typing import Array

__all__ = ["check_coefficient", "coefficients", "weight_penalty"]


def check_coefficient(name: str, label: str, value: object) -> float:
    """`value` as a float, or a ValueError naming the layer and the coefficient."""
    if not (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: {label} must be a finite number >= 0, got {value!r}")
    return float(value)


def coefficients(name: str, values: Mapping[str, object]) -> dict[str, float]:
    """Every coefficient of `values` checked by `check_coefficient`, by label."""
    return {label: check_coefficient(name, label, value) for label, value in values.items()}


def weight_penalty(terms: Iterable[tuple[Array, float, float]]) -> Array:
    """`sum over (w, l1, l2) of l1 * sum|w| + l2 * sum w^2`, each sum in at least float32,
    added in the order given (0 when every coefficient is 0)."""
    total = jnp.zeros((), jnp.float32)
    for values, l1, l2 in terms:
        if not (l1 or l2):
            continue
        wide = values.astype(jnp.promote_types(values.dtype, jnp.float32))
        if l1:
            total = total + l1 * jnp.sum(jnp.abs(wide))
        if l2:
            total = total + l2 * jnp.sum(jnp.square(wide))
    return total
