"""The book's per-layer regularization (chapter 14) for any weight: `l1 * sum|w| + l2 *
sum w^2`, with the coefficient checks every layer shares."""

from __future__ import annotations

import math

import jax.numpy as jnp

from funcnn.typing import Array

__all__ = ["check_coefficient", "l1_l2"]


def check_coefficient(name: str, label: str, value: object) -> float:
    """`value` as a float, or a ValueError naming the layer and the coefficient."""
    if not (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: {label} must be a finite number >= 0, got {value!r}")
    return float(value)


def l1_l2(values: Array, l1: float, l2: float) -> Array:
    """`l1 * sum|values| + l2 * sum values^2`, float32 at least; 0 when both are 0."""
    total = jnp.zeros((), jnp.promote_types(values.dtype, jnp.float32))
    wide = values.astype(total.dtype)
    if l1:
        total = total + l1 * jnp.sum(jnp.abs(wide))
    if l2:
        total = total + l2 * jnp.sum(jnp.square(wide))
    return total
