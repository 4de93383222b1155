"""Type aliases shared by every funcnn module.

Params and state are plain nested dicts of arrays (pytrees); a layer is the
`funcnn.nn.Layer` NamedTuple of pure functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

import jax
import numpy as np

Array: TypeAlias = jax.Array
ArrayLike: TypeAlias = jax.typing.ArrayLike
DTypeLike: TypeAlias = jax.typing.DTypeLike
PRNGKey: TypeAlias = jax.Array
Shape: TypeAlias = tuple[int, ...]
PyTree: TypeAlias = Any
Params: TypeAlias = dict[str, Any]
State: TypeAlias = dict[str, Any]
NumpyArray: TypeAlias = np.ndarray[Any, Any]

Initializer: TypeAlias = Callable[[PRNGKey, Shape, DTypeLike], Array]
"""`(key, shape, dtype) -> Array`, the same signature as `jax.nn.initializers`."""

LossFn: TypeAlias = Callable[[Array, Array], Array]
"""`(predictions (B, ...), targets) -> per-example losses (B,)`."""

MetricFn: TypeAlias = Callable[[Array, Array], Array]
"""`(predictions (B, ...), targets) -> per-example scores (B,)`; the metric is their mean."""


class InitFn(Protocol):
    """`(key, input_shape) -> (params, state)`; `input_shape` excludes the batch axis."""

    def __call__(self, key: PRNGKey, input_shape: Shape) -> tuple[Params, State]: ...


class ApplyFn(Protocol):
    """`(params, state, x, *, key=None, train=False) -> (y, new_state)`."""

    def __call__(
        self,
        params: Params,
        state: State,
        x: Array,
        *,
        key: PRNGKey | None = None,
        train: bool = False,
    ) -> tuple[Array, State]: ...


PenaltyFn: TypeAlias = Callable[[Params], Array]
"""`params -> scalar` regularization penalty (the book's L1/L2)."""
