"""Building blocks that combine with the optimizers: chain, clipping, masking, freezing.

Each is a `GradientTransformation`; `chain` runs several in order, so
`chain(clip_by_global_norm(1.0), adam(1e-3))` clips the gradients before Adam sees them.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim.base import (
    EmptyState,
    GradientTransformation,
    Mask,
    OptState,
    Updates,
    float_dtype,
    full_mask,
    keep_where,
    structure_of,
    with_structure,
)
from funcnn.optim.hyperparams import as_hyperparam, hyperparam_state
from funcnn.typing import Array, PyTree


def _takes_extra_args(transform: Any) -> bool:
    """Whether `transform.update` accepts `**extra_args` (optax's
    `GradientTransformationExtraArgs` does); others are called without them."""
    try:
        parameters = inspect.signature(transform.update).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _check_transform(transform: object, where: str) -> None:
    if not (
        callable(getattr(transform, "init", None)) and callable(getattr(transform, "update", None))
    ):
        raise TypeError(
            f"{where} must be a GradientTransformation (an object with init and update), "
            f"got {type(transform).__name__}"
        )


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Run `transforms` in order, each on the previous one's updates; the state is the
    tuple of their states. Extra keyword arguments given to `update` reach the members
    that accept them (as in `optax.chain`)."""
    for index, transform in enumerate(transforms):
        _check_transform(transform, f"chain argument {index}")
    takes_extra = [_takes_extra_args(t) for t in transforms]

    def init(params: PyTree) -> OptState:
        return tuple(t.init(params) for t in transforms)

    def update(
        updates: Updates, state: OptState, params: PyTree | None = None, **extra_args: Any
    ) -> tuple[Updates, OptState]:
        if not isinstance(state, tuple) or len(state) != len(transforms):
            got = f"{len(state)} states" if isinstance(state, tuple) else type(state).__name__
            raise ValueError(
                f"chain of {len(transforms)} transforms needs a tuple of {len(transforms)} "
                f"states (from its init), got {got}"
            )
        new_states = []
        for transform, sub_state, extra in zip(transforms, state, takes_extra, strict=True):
            kwargs = extra_args if extra else {}
            updates, new_sub_state = transform.update(updates, sub_state, params, **kwargs)
            new_states.append(new_sub_state)
        return updates, tuple(new_states)

    parts = tuple(structure_of(t) for t in transforms)
    return with_structure(GradientTransformation(init, update),
                          None if None in parts else ("chain", *parts))


def identity() -> GradientTransformation:
    """Pass updates through unchanged."""

    def update(
        updates: Updates, state: OptState, params: PyTree | None = None
    ) -> tuple[Updates, OptState]:
        return updates, state

    return with_structure(GradientTransformation(lambda params: EmptyState(), update),
                          ("identity",))


def scale(factor: float) -> GradientTransformation:
    """`updates * factor` (a fixed number; `factor = -lr` turns gradients into SGD steps)."""
    if isinstance(factor, bool) or not isinstance(factor, int | float):
        raise TypeError(f"factor must be a real number, got {type(factor).__name__}")

    def update(
        updates: Updates, state: OptState, params: PyTree | None = None
    ) -> tuple[Updates, OptState]:
        return jax.tree.map(lambda u: (u * factor).astype(jnp.result_type(u)), updates), state

    # the factor is a constant of the program, so it is part of the structure
    return with_structure(GradientTransformation(lambda params: EmptyState(), update),
                          ("scale", type(factor).__name__, factor))


@hyperparam_state
class ClipByGlobalNormState(NamedTuple):
    """`hyperparams = {"max_norm": scalar}`."""

    hyperparams: dict[str, Array]


def global_norm(tree: PyTree) -> Array:
    """`sqrt(sum of squares of every element of every leaf)`."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros((), float_dtype())
    squares = [
        jnp.sum(jnp.square(jnp.asarray(x).astype(jnp.promote_types(x.dtype, float_dtype()))))
        for x in leaves
    ]
    return jnp.sqrt(sum(squares))


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """When the global norm `n` of the updates exceeds `max_norm`, scale them all by
    `max_norm / n` (their direction is kept); otherwise pass them through. `max_norm`
    lives in the state (replaceable, vmappable)."""
    first = as_hyperparam("max_norm", max_norm)

    def init(params: PyTree) -> OptState:
        return ClipByGlobalNormState({"max_norm": first})

    def update(
        updates: Updates, state: OptState, params: PyTree | None = None
    ) -> tuple[Updates, OptState]:
        limit = state.hyperparams["max_norm"]
        norm = global_norm(updates)
        factor = jnp.where(norm > limit, limit / jnp.where(norm > 0, norm, 1.0), 1.0)
        clipped = jax.tree.map(lambda u: (u * factor).astype(jnp.result_type(u)), updates)
        return clipped, state

    return with_structure(GradientTransformation(init, update), ("clip_by_global_norm",))


class MaskedState(NamedTuple):
    """The state of `masked(inner, mask)`: inner's state over the selected leaves."""

    inner_state: OptState


def masked(inner: GradientTransformation, mask: Mask) -> GradientTransformation:
    """Apply `inner` only where `mask` is True; other updates pass through unchanged, and
    `inner` keeps no state for them. `mask`: pytree of bools shaped like the params (or a
    prefix), or a function `params -> such a pytree` (e.g. to skip biases)."""
    _check_transform(inner, "masked's inner")
    takes_extra = _takes_extra_args(inner)

    def init(params: PyTree) -> OptState:
        return MaskedState(inner.init(keep_where(full_mask(mask, params, "params"), params)))

    def update(
        updates: Updates, state: OptState, params: PyTree | None = None, **extra_args: Any
    ) -> tuple[Updates, OptState]:
        source = params if params is not None else updates
        selected = full_mask(mask, source, "params" if params is not None else "updates")
        kept_params = None if params is None else keep_where(selected, params)
        kwargs = extra_args if takes_extra else {}
        new_kept, new_inner = inner.update(
            keep_where(selected, updates), state.inner_state, kept_params, **kwargs
        )
        merged = jax.tree.map(lambda m, new, old: new if m else old, selected, new_kept, updates)
        return merged, MaskedState(new_inner)

    return GradientTransformation(init, update)


def freeze(mask: Mask) -> GradientTransformation:
    """Zero the updates where `mask` is True, so those parameters never change. Put it last
    in a chain (after the optimizer) so that frozen leaves get exactly zero."""

    def update(
        updates: Updates, state: OptState, params: PyTree | None = None
    ) -> tuple[Updates, OptState]:
        source = params if params is not None else updates
        frozen = full_mask(mask, source, "params" if params is not None else "updates")
        return jax.tree.map(lambda m, u: jnp.zeros_like(u) if m else u, frozen, updates), state

    return GradientTransformation(lambda params: EmptyState(), update)
