"""The optimizer protocol: a pair of pure functions over pytrees, as in optax.

`init(params) -> state` builds the optimizer state; `update(updates, state, params=None)
-> (updates, state)` turns gradients into *additive* updates, which `apply_updates` adds
to the parameters. Any object with these two fields works wherever funcnn expects an
optimizer, optax's `GradientTransformation` included, and funcnn's run inside optax.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, Protocol, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.tree import path_to_str
from funcnn.typing import Array, PyTree

Updates: TypeAlias = PyTree
"""A pytree shaped like the parameters: gradients going in, additive updates coming out."""

OptState: TypeAlias = PyTree
"""An optimizer state: a NamedTuple (or a tuple of them, for a chain) of array leaves."""

Mask: TypeAlias = PyTree | Callable[[PyTree], PyTree]
"""A pytree of Python bools shaped like the parameters (or a prefix of them), or a
function `params -> such a pytree`."""

_INT32_MAX = np.iinfo(np.int32).max


class TransformInitFn(Protocol):
    """`params -> state`."""

    def __call__(self, params: PyTree) -> OptState: ...


class TransformUpdateFn(Protocol):
    """`(updates, state, params=None) -> (new_updates, new_state)`."""

    def __call__(
        self, updates: Updates, state: OptState, params: PyTree | None = None
    ) -> tuple[Updates, OptState]: ...


class GradientTransformation(NamedTuple):
    """An optimizer (or one stage of one): `init(params) -> state` and
    `update(updates, state, params=None) -> (updates, state)`, both pure; the same two
    fields as optax's.

    `structure` (see `with_structure`) describes what `update` does apart from the
    hyper-parameter values in the state (e.g. `("adam", None, False)`): funcnn's own
    built-ins have one, so that `fit` compiles once for `adam(1e-3)` and `adam(1e-2)`.
    None (optax transforms, one's own): `fit` tells optimizers apart by identity. The
    object itself still compares by its functions, because `init` puts the
    hyper-parameter values into the state."""

    init: TransformInitFn
    update: TransformUpdateFn

    @property
    def structure(self) -> Hashable | None:
        return _STRUCTURES.get(self.update)


_STRUCTURES: weakref.WeakKeyDictionary[Any, Hashable] = weakref.WeakKeyDictionary()
"""The structure of each built-in transformation, by its `update` function."""


def with_structure(transform: GradientTransformation, structure: Hashable | None,
                   ) -> GradientTransformation:
    """`transform`, recorded as described by `structure` (None: by identity). Only for a
    transformation whose `update` depends on nothing but `structure` and its state."""
    if structure is not None:
        _STRUCTURES[transform.update] = structure
    return transform


class EmptyState(NamedTuple):
    """The state of a transformation that keeps nothing between steps."""


class MaskedNode(NamedTuple):
    """Stands in for a parameter a `masked` transformation leaves alone (an empty pytree)."""


def structure_of(transform: object) -> Hashable | None:
    """The `structure` of a funcnn transformation, None for anything else."""
    return transform.structure if isinstance(transform, GradientTransformation) else None


def float_dtype() -> np.dtype[Any]:
    """The default float dtype: float32, or float64 when `jax_enable_x64` is on."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def zeros_of(shape: tuple[int, ...], dtype: Any, like: Any = None) -> Array:
    """`jnp.zeros(shape, dtype)`; outside tracing made on the host and transferred, which
    compiles nothing (`jnp.zeros` compiles a small program per shape, ~10 ms each)."""
    if isinstance(like, jax.core.Tracer):
        return jnp.zeros(shape, dtype)
    placed: Array = jax.device_put(np.zeros(shape, dtype))
    return placed


def moment_dtype(dtype: Any) -> np.dtype[Any]:
    """The dtype of a parameter's optimizer moments: `promote(dtype, float32)`, so float32
    for bfloat16 or float16 parameters (whose 8 or 11 bits would lose small squared
    gradients), float32 and float64 kept, whether or not x64 is on."""
    return np.dtype(jnp.promote_types(dtype, jnp.float32))


def zeros_buffer(params: PyTree) -> PyTree:
    """Zeros shaped like `params`, each leaf in its parameter's `moment_dtype`."""
    return jax.tree.map(
        lambda p: zeros_of(jnp.shape(p), moment_dtype(jnp.result_type(p)), p), params)


def cast_like(tree: PyTree, reference: PyTree) -> PyTree:
    """`tree` cast leaf by leaf to the dtypes of `reference` (same structure): updates to
    their gradients' dtype, new moments to the dtype their buffers were made in."""
    return jax.tree.map(lambda x, r: x.astype(jnp.result_type(r)), tree, reference)


def zero_count() -> Array:
    """The int32 step counter of a fresh state."""
    return zeros_of((), np.int32)


def increment_count(count: Array) -> Array:
    """`count + 1`, saturating at the int32 maximum instead of wrapping around."""
    return jnp.where(count < _INT32_MAX, count + 1, jnp.asarray(_INT32_MAX, jnp.int32))


def check_same_shapes(updates: Updates, reference: PyTree, what: str) -> None:
    """Raise a ValueError naming the first leaf where `updates` and `reference` differ in
    structure or shape (nothing is ever broadcast silently)."""
    ref_leaves, ref_def = jax.tree_util.tree_flatten_with_path(reference)
    upd_leaves, upd_def = jax.tree_util.tree_flatten_with_path(updates)
    if ref_def != upd_def:  # type: ignore[operator]
        raise ValueError(
            f"updates do not match the structure of the {what}: expected {ref_def}, got {upd_def}"
        )
    for (path, ref), (_, upd) in zip(ref_leaves, upd_leaves, strict=True):
        if jnp.shape(ref) != jnp.shape(upd):
            raise ValueError(
                f"updates at '{path_to_str(path)}' have shape {jnp.shape(upd)}, "
                f"but the {what} there has shape {jnp.shape(ref)}"
            )


def apply_updates(params: PyTree, updates: Updates) -> PyTree:
    """`params + updates` leaf by leaf; each result keeps its parameter's dtype (bfloat16
    parameters stay bfloat16 under float32 updates). `None` leaves stay `None`."""
    params_leaves, params_def = jax.tree_util.tree_flatten_with_path(
        params, is_leaf=lambda x: x is None
    )
    updates_leaves, updates_def = jax.tree_util.tree_flatten(updates, is_leaf=lambda x: x is None)
    if params_def != updates_def:  # type: ignore[operator]
        raise ValueError(
            "apply_updates: updates do not match the structure of params: "
            f"params {params_def}, updates {updates_def}"
        )
    new_leaves: list[Array | None] = []
    for (path, p), u in zip(params_leaves, updates_leaves, strict=True):
        if p is None:
            new_leaves.append(None)
            continue
        if jnp.shape(p) != jnp.shape(u):
            raise ValueError(
                f"apply_updates: update at '{path_to_str(path)}' has shape {jnp.shape(u)}, "
                f"but the parameter has shape {jnp.shape(p)}"
            )
        new_leaves.append(jnp.asarray(p + u).astype(jnp.result_type(p)))
    return jax.tree_util.tree_unflatten(params_def, new_leaves)


def _is_static_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


def full_mask(mask: Mask, tree: PyTree, what: str) -> PyTree:
    """`mask` (a pytree of bools, possibly a prefix of `tree`, or a callable giving one from
    `tree`) expanded to one Python bool per leaf of `tree`."""
    mask_tree = mask(tree) if callable(mask) else mask
    for path, leaf in jax.tree_util.tree_flatten_with_path(mask_tree)[0]:
        if not _is_static_bool(leaf):
            where = path_to_str(path) or "<root>"
            raise TypeError(
                f"mask leaves must be Python bools (a mask is static), got "
                f"{type(leaf).__name__} at '{where}'"
            )
    try:
        return jax.tree.map(lambda m, sub: jax.tree.map(lambda _: bool(m), sub), mask_tree, tree)
    except ValueError as error:
        raise ValueError(f"mask does not match the structure of the {what}: {error}") from None


def keep_where(mask_tree: PyTree, tree: PyTree) -> PyTree:
    """`tree` with every leaf whose mask is False replaced by a `MaskedNode`."""
    return jax.tree.map(lambda m, x: x if m else MaskedNode(), mask_tree, tree)
