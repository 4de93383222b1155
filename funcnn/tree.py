"""Small pytree helpers: readable leaf paths, parameter counts, stacking."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.typing import PyTree


def hashable(value: object) -> Hashable:
    """JSON-like `value` (mappings, lists, tuples, numbers, strings, None, dtypes) as nested
    tuples that hash and compare by content; a TypeError for anything else."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.dtype):
        return str(value)
    if isinstance(value, Mapping):
        return ("{}", *sorted((str(k), hashable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("[]", *(hashable(v) for v in value))
    raise TypeError(f"{type(value).__name__} is not plain data")


def key_to_str(key: object) -> str:
    """One key-path entry as text: dict key `w`, sequence index `0`, attribute `mu`."""
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def path_to_str(path: Sequence[object]) -> str:
    """A whole key path as `0_dense/w`."""
    return "/".join(key_to_str(k) for k in path)


def leaf_paths(tree: PyTree) -> list[str]:
    """The readable path of every leaf, in flattening order."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [path_to_str(path) for path, _ in leaves]


def count_params(params: PyTree) -> int:
    """Total number of scalars in all leaves of `params`."""
    return sum(math.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(params))


def tree_stack(trees: Sequence[PyTree]) -> PyTree:
    """One pytree whose every leaf stacks the matching leaves of `trees` on a new leading
    axis: K trees with a leaf of shape `s` give a leaf of shape `(K, *s)`."""
    if isinstance(trees, str) or not isinstance(trees, Sequence):
        raise TypeError(f"tree_stack: expected a sequence of pytrees, got {type(trees).__name__}")
    if not trees:
        raise ValueError("tree_stack: got no trees to stack")
    first_leaves, structure = jax.tree_util.tree_flatten(trees[0])
    paths = leaf_paths(trees[0])
    stacked_leaves: list[list[Any]] = [[leaf] for leaf in first_leaves]
    for i, tree in enumerate(trees[1:], start=1):
        leaves, other = jax.tree_util.tree_flatten(tree)
        if other != structure:  # type: ignore[operator]
            raise ValueError(f"tree_stack: tree {i} has structure {other}, unlike tree 0's "
                             f"{structure}")
        for path, column, leaf in zip(paths, stacked_leaves, leaves, strict=True):
            head = column[0]
            if np.shape(leaf) != np.shape(head) or jnp.result_type(leaf) != jnp.result_type(head):
                raise ValueError(
                    f"tree_stack: leaf '{path}' of tree {i} has shape {np.shape(leaf)} and dtype "
                    f"{jnp.result_type(leaf)}, but tree 0's has {np.shape(head)} and "
                    f"{jnp.result_type(head)}")
            column.append(leaf)
    return jax.tree_util.tree_unflatten(structure, [jnp.stack(column) for column in stacked_leaves])


def leading_size(tree: PyTree, where: str = "tree_unstack", expected: int | None = None) -> int:
    """The common length of every leaf's leading axis, checked against `expected` when
    given (which a tree without leaves needs); an error names the leaf that differs."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    if not leaves:
        if expected is None:
            raise ValueError(f"{where}: the tree has no leaves, so its size is unknown; pass it")
        return expected
    sizes: list[tuple[str, int]] = []
    for path, leaf in leaves:
        shape = np.shape(leaf)
        if not shape:
            raise ValueError(f"{where}: leaf '{path_to_str(path)}' is a scalar; every leaf needs "
                             "a leading (stacked) axis")
        sizes.append((path_to_str(path), int(shape[0])))
    first, size = sizes[0] if expected is None else ("", expected)
    for name, other in sizes:
        if other != size:
            given = f"leaf '{first}' has {size}" if first else f"expected {size}"
            raise ValueError(f"{where}: leaf '{name}' has leading size {other}, but {given}")
    return size


def tree_unstack(tree: PyTree, size: int | None = None) -> list[PyTree]:
    """The inverse of `tree_stack`: K pytrees, the i-th taking index i of every leaf.
    `size` (K) is checked when given and needed for a tree without leaves."""
    count = leading_size(tree, "tree_unstack", size)
    return [jax.tree.map(lambda leaf, i=i: leaf[i], tree) for i in range(count)]
