"""FSDP-style sharding of a model tree (params, layer state, optimizer state) over one
mesh axis, by a rule that reads only each leaf's shape.

The rule (`param_spec`): a leaf with at least `MIN_SHARDED_SIZE` elements is split along
its largest axis whose size the mesh axis's size divides (ties: the first such axis);
smaller leaves, scalars and leaves with no divisible axis stay replicated. An optimizer
moment has its parameter's shape, so it gets its parameter's split. Each device then
holds 1/N of every sharded leaf; XLA gathers a split weight where a step needs it whole
and reduce-scatters its gradient, from the sharding annotations alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from funcnn.typing import PyTree

__all__ = [
    "MIN_SHARDED_SIZE",
    "check_param_axis",
    "param_shardings",
    "param_spec",
    "shard_tree",
    "sharded_template",
    "unshard",
]

MIN_SHARDED_SIZE = 2**10
"""Leaves with fewer elements stay replicated: splitting a bias of 64 floats saves 224
bytes a device and costs a collective per use."""


def param_spec(shape: Sequence[int], axis_size: int, axis: str,
               min_size: int = MIN_SHARDED_SIZE) -> PartitionSpec:
    """The rule for one leaf of `shape` on a mesh axis `axis` of `axis_size` devices: one
    entry per dimension, `axis` on the largest dimension that `axis_size` divides (ties:
    the first), or `PartitionSpec()` (replicated) when `prod(shape) < min_size` or no
    dimension divides. `(16, 64)` over 8 devices: `P(None, axis)`."""
    if isinstance(axis_size, bool) or not isinstance(axis_size, int) or axis_size < 1:
        raise ValueError(f"param_spec: axis_size must be an int >= 1, got {axis_size!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
        raise ValueError(f"param_spec: min_size must be an int >= 0, got {min_size!r}")
    dims = tuple(int(size) for size in shape)
    if not dims or math.prod(dims) < min_size:
        return PartitionSpec()  # type: ignore[no-untyped-call]
    divisible = [i for i, size in enumerate(dims) if size > 0 and size % axis_size == 0]
    if not divisible:
        return PartitionSpec()  # type: ignore[no-untyped-call]
    split = max(divisible, key=lambda i: (dims[i], -i))  # largest, then the first
    return PartitionSpec(*(axis if i == split else None for i in range(len(dims))))  # type: ignore[no-untyped-call]


def check_param_axis(where: str, mesh: Mesh | None, axis: object) -> str:
    """`axis` checked to name an axis of `mesh` (which must be given); errors start with
    `where`."""
    if not isinstance(axis, str):
        raise TypeError(f"{where}: shard_params must be a mesh axis name (str), got "
                        f"{type(axis).__name__}")
    if mesh is None:
        raise ValueError(f"{where}: shard_params={axis!r} needs a mesh to split params over, "
                         "e.g. mesh=funcnn.parallel.data_mesh()")
    if axis not in mesh.axis_names:
        raise ValueError(f"{where}: shard_params={axis!r} is not an axis of the mesh (its axes "
                         f"are {mesh.axis_names})")
    return axis


def _leaf_sharding(leaf: object, mesh: Mesh, axis: str, min_size: int) -> NamedSharding:
    spec = param_spec(np.shape(leaf), int(mesh.shape[axis]), axis, min_size)  # type: ignore[call-overload]
    return NamedSharding(mesh, spec)


def param_shardings(tree: PyTree, mesh: Mesh, axis: str,
                    min_size: int = MIN_SHARDED_SIZE) -> PyTree:
    """A `NamedSharding` on `mesh` for every leaf of `tree` (arrays, tracers,
    `ShapeDtypeStruct`s or scalars), by `param_spec` over `axis`."""
    check_param_axis("param_shardings", mesh, axis)
    return jax.tree.map(lambda leaf: _leaf_sharding(leaf, mesh, axis, min_size), tree)


def sharded_template(tree: PyTree, mesh: Mesh, axis: str,
                     min_size: int = MIN_SHARDED_SIZE) -> PyTree:
    """`tree` as `jax.ShapeDtypeStruct`s carrying the rule's shardings: the template for
    `funcnn.load_checkpoint`, which places every leaf on its template's sharding (any
    device count: `load_checkpoint(path, sharded_template(like, mesh, "data"))`)."""
    shardings = param_shardings(tree, mesh, axis, min_size)
    return jax.tree.map(lambda leaf, sharding: jax.ShapeDtypeStruct(  # type: ignore[no-untyped-call]
        np.shape(leaf), _dtype_of(leaf), sharding=sharding), tree, shardings)


def _dtype_of(leaf: object) -> Any:
    dtype = getattr(leaf, "dtype", None)
    return jnp.asarray(leaf).dtype if dtype is None else dtype


def _is_key(leaf: object) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _put(leaf: object, sharding: NamedSharding) -> tuple[jax.Array, bool]:
    """`leaf` (not a key) on `sharding`, and whether its buffers may be `leaf`'s own. A
    global array (or any array in a single process) moves on the devices, where
    `device_put` may reuse a source buffer (measured: onto a replicated sharding from one
    device); host values and process-local arrays are read on the host into fresh
    buffers, each process filling its own shards."""
    if isinstance(leaf, jax.Array) and (jax.process_count() == 1
                                        or not leaf.is_fully_addressable):
        moved: jax.Array = jax.device_put(leaf, sharding)
        return moved, True
    host = np.array(leaf)  # a copy
    array: jax.Array = jax.make_array_from_callback(host.shape, sharding,
                                                    lambda index: host[index])
    return array, False


@partial(jax.jit, static_argnums=(1,))
def _copy_onto(leaves: tuple[jax.Array, ...], shardings: tuple[NamedSharding, ...],
               ) -> list[jax.Array]:
    """Fresh buffers for `leaves`, each kept on its sharding, in one compiled program."""
    return [jax.lax.with_sharding_constraint(jnp.array(leaf, copy=True), sharding)  # type: ignore[no-untyped-call]
            for leaf, sharding in zip(leaves, shardings, strict=True)]


def shard_tree(tree: PyTree, mesh: Mesh, axis: str,
               min_size: int = MIN_SHARDED_SIZE) -> PyTree:
    """Fresh arrays holding `tree` on `mesh`, each leaf split by `param_spec` over `axis`
    (PRNG keys included, their key data split like the key array). The result never
    shares buffers with `tree`, so a program may donate it. Across processes every
    process passes the same values (or the same global arrays)."""
    leaves, treedef = jax.tree.flatten(tree)
    shardings: list[NamedSharding] = jax.tree.leaves(param_shardings(tree, mesh, axis, min_size))
    placed: list[jax.Array] = []
    shared: list[int] = []  # the leaves whose buffers may still be the caller's
    for i, (leaf, sharding) in enumerate(zip(leaves, shardings, strict=True)):
        data = jax.random.key_data(leaf) if _is_key(leaf) else leaf
        array, maybe_shared = _put(data, sharding)
        placed.append(array)
        if maybe_shared:
            shared.append(i)
    if shared:
        fresh = _copy_onto(tuple(placed[i] for i in shared), tuple(shardings[i] for i in shared))
        for i, array in zip(shared, fresh, strict=True):
            placed[i] = array
    out = [jax.random.wrap_key_data(array, impl=jax.random.key_impl(leaf)) if _is_key(leaf)
           else array for leaf, array in zip(leaves, placed, strict=True)]
    return jax.tree.unflatten(treedef, out)


def unshard(tree: PyTree) -> PyTree:
    """`tree` with every leaf that is split over a mesh gathered into a full copy on each
    of its devices (`device_put` onto the replicated sharding: an all-gather on the
    devices, not through the host); other leaves as they are.
    Across processes every process must call it, e.g. before the coordinator saves a
    checkpoint of sharded params."""
    def gather(leaf: object) -> object:
        sharding = getattr(leaf, "sharding", None)
        if not isinstance(leaf, jax.Array) or not isinstance(sharding, NamedSharding) \
                or leaf.is_fully_replicated:
            return leaf
        whole = NamedSharding(sharding.mesh, PartitionSpec())  # type: ignore[no-untyped-call]
        return jax.device_put(leaf, whole, may_alias=False)

    return jax.tree.map(gather, tree)
