"""Loss scaling for float16 training (after jmp's `StaticLossScale`/`DynamicLossScale`).

float16 holds magnitudes down to 6e-8; smaller gradient entries flush to zero in the
backward pass. The training step multiplies the loss by `scale` before differentiating
(see `loss_scale`), so the backward pass carries `scale * g`. The wrapper below divides the
gradients by `scale` again, and when any entry is not finite it skips the step: zero
updates, the inner optimizer's state unchanged, the skip counted. The dynamic form then
halves the scale (never below `min_scale`), and doubles it after `period` finite steps.
Wrap the whole optimizer: `dynamic_loss_scale(adam(1e-3))`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim.base import (
    GradientTransformation,
    OptState,
    Updates,
    structure_of,
    with_structure,
)
from funcnn.typing import Array, PyTree

__all__ = ["LossScaleState", "dynamic_loss_scale", "loss_scale", "skipped_steps",
           "static_loss_scale"]


class LossScaleState(NamedTuple):
    """`scale` (float32) multiplies the loss; `good_steps` counts finite steps since the
    scale last changed; `skipped` counts all steps skipped for non-finite gradients;
    `inner` is the wrapped optimizer's state."""

    scale: Array
    good_steps: Array
    skipped: Array
    inner: OptState


def _check_scale(name: str, value: float, minimum: float) -> float:
    if not (isinstance(value, int | float) and not isinstance(value, bool)
            and minimum <= value < float("inf")):
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")
    return float(value)


def _all_finite(tree: PyTree) -> Array:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.asarray(True)
    finite: Array = jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]).all()
    return finite


def _unscaled(grads: Updates, scale: Array) -> Updates:
    """`g / scale` leaf by leaf, computed in at least float32, in each gradient's dtype."""
    def unscale(g: Array) -> Array:
        wide = jnp.promote_types(g.dtype, jnp.float32)
        return (g.astype(wide) / scale.astype(wide)).astype(g.dtype)
    return jax.tree.map(unscale, grads)


def _scaled_wrapper(optimizer: GradientTransformation, initial: float, dynamic: bool,
                    period: int, factor: float, min_scale: float) -> GradientTransformation:
    def init(params: PyTree) -> OptState:
        return LossScaleState(jnp.asarray(initial, jnp.float32), jnp.zeros((), jnp.int32),
                              jnp.zeros((), jnp.int32), optimizer.init(params))

    def update(updates: Updates, state: OptState, params: PyTree | None = None,
               ) -> tuple[Updates, OptState]:
        grads = _unscaled(updates, state.scale)
        finite = _all_finite(grads)
        steps, inner = optimizer.update(grads, state.inner, params)
        steps = jax.tree.map(lambda s: jnp.where(finite, s, jnp.zeros_like(s)), steps)
        inner = jax.tree.map(lambda new, old: jnp.where(finite, new, old), inner, state.inner)
        skipped = state.skipped + (~finite).astype(jnp.int32)
        if not dynamic:
            return steps, LossScaleState(state.scale, state.good_steps, skipped, inner)
        grow = finite & (state.good_steps + 1 >= period)
        scale = jnp.where(grow, state.scale * factor, state.scale)
        scale = jnp.where(finite, scale, jnp.maximum(state.scale / factor, min_scale))
        good = jnp.where(finite & ~grow, state.good_steps + 1, 0)
        return steps, LossScaleState(scale.astype(jnp.float32), good.astype(jnp.int32),
                                     skipped, inner)

    inner_structure = structure_of(optimizer)
    structure = None if inner_structure is None else (
        "loss_scale", dynamic, period, factor, min_scale, inner_structure)
    return with_structure(GradientTransformation(init, update), structure)


def static_loss_scale(optimizer: GradientTransformation, scale: float = 2.0**15,
                      ) -> GradientTransformation:
    """`optimizer` trained on `scale * loss`: gradients divided by `scale` before it sees
    them; steps with non-finite gradients are skipped and counted; the scale never changes."""
    return _scaled_wrapper(optimizer, _check_scale("static_loss_scale: scale", scale, 1.0),
                           False, 1, 1.0, 1.0)


def dynamic_loss_scale(optimizer: GradientTransformation, initial: float = 2.0**15, *,
                       period: int = 2000, factor: float = 2.0, min_scale: float = 1.0,
                       ) -> GradientTransformation:
    """As `static_loss_scale`, with the scale adapted: divided by `factor` (not below
    `min_scale`) at every skipped step, multiplied by `factor` after `period` finite steps
    in a row (jmp's `DynamicLossScale` defaults)."""
    if not isinstance(period, int) or isinstance(period, bool) or period < 1:
        raise ValueError(f"dynamic_loss_scale: period must be a positive int, got {period!r}")
    factor = _check_scale("dynamic_loss_scale: factor", factor, 1.0)
    if factor == 1.0:
        raise ValueError("dynamic_loss_scale: factor must be > 1 (1 never adapts; use "
                         "static_loss_scale)")
    min_scale = _check_scale("dynamic_loss_scale: min_scale", min_scale, 1.0)
    initial = _check_scale("dynamic_loss_scale: initial", initial, min_scale)
    return _scaled_wrapper(optimizer, initial, True, period, factor, min_scale)


def _scale_states(state: PyTree) -> list[LossScaleState]:
    def is_scale(node: Any) -> bool:
        return isinstance(node, LossScaleState)
    return [s for s in jax.tree.leaves(state, is_leaf=is_scale) if is_scale(s)]


def _the_scale_state(state: PyTree) -> LossScaleState | None:
    found = _scale_states(state)
    if len(found) > 1:
        raise ValueError(f"this optimizer state holds {len(found)} loss scales; wrap the "
                         "whole optimizer once")
    return found[0] if found else None


def loss_scale(state: PyTree) -> Array | None:
    """The factor the next step multiplies its loss by, or None for a state without loss
    scaling (then the loss is used as it is)."""
    found = _the_scale_state(state)
    return None if found is None else found.scale


def skipped_steps(state: PyTree) -> Array | None:
    """How many steps were skipped for non-finite gradients so far (None without loss
    scaling)."""
    found = _the_scale_state(state)
    return None if found is None else found.skipped
