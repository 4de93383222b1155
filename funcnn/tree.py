"""Small pytree helpers: readable leaf paths, parameter counts, stacking."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np

from funcnn.typing import PyTree


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
