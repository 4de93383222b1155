"""Batching shared by training and inference: checked device data, and a plan that cuts N
samples into `ceil(N / B)` batches whose padded last rows weigh 0."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.typing import Array, ArrayLike, DTypeLike, PyTree

__all__ = [
    "batch_plan",
    "check_batch_rows",
    "check_data",
    "checked_per_example",
    "figure_dtype",
    "on_device",
    "param_dtype",
]


def on_device(value: ArrayLike) -> Array:
    """`jnp.asarray(value)` for data: arrays stay as they are; anything else is transferred
    with `jax.device_put`, which, unlike `jnp.asarray`, compiles nothing per shape."""
    if isinstance(value, jax.Array):
        return value
    placed: Array = jax.device_put(np.asarray(value))
    return placed


def rows_of(x: PyTree) -> int:
    """The number of samples of `x`: one array, or the pair `(x, mask)` (its first array)."""
    return int(jax.tree.leaves(x)[0].shape[0])


def take_rows(x: PyTree, rows: Array) -> PyTree:
    """`x[rows]` for one array or each array of a pair `(x, mask)`."""
    return jax.tree.map(lambda a: a[rows], x)


def _check_x(where: str, x: ArrayLike, input_dtype: DTypeLike | None) -> Array:
    """One x array on the device: a leading sample axis; floating, or integer for a
    network whose `input_dtype` is integer (token ids)."""
    x_arr = on_device(x)
    if x_arr.ndim < 1:
        raise ValueError(f"{where}: x must have a leading sample axis, got a scalar")
    takes_integers = input_dtype is not None and jnp.issubdtype(input_dtype, jnp.integer)
    if takes_integers and not jnp.issubdtype(x_arr.dtype, jnp.integer):
        raise TypeError(f"{where}: the network takes integer input ({jnp.dtype(input_dtype)}"
                        f" ids), got x of dtype {x_arr.dtype}")
    if not takes_integers and not jnp.issubdtype(x_arr.dtype, jnp.floating):
        raise TypeError(f"{where}: x must be floating-point, got {x_arr.dtype}; scale or cast "
                        "it first, e.g. x.astype(np.float32) (integer token ids need a "
                        "network that starts with an Embedding)")
    if x_arr.shape[0] == 0:
        raise ValueError(f"{where}: x holds no samples")
    return x_arr


def _check_pair(where: str, x: tuple[Any, ...], input_dtype: DTypeLike | None,
                ) -> tuple[Array, ...]:
    """The pair `(x, mask)` on the device: x as `_check_x`, a bool mask per row of x."""
    if len(x) != 2:
        raise ValueError(f"{where}: x is a pair (x, mask) or one array, got {len(x)} arrays")
    values = _check_x(where, x[0], input_dtype)
    mask = on_device(x[1])
    if mask.dtype != jnp.bool_:
        raise TypeError(f"{where}: the mask of the pair (x, mask) must be bool (True: a real "
                        f"position), got {mask.dtype}")
    if mask.ndim < 1 or mask.shape[0] != values.shape[0]:
        got = mask.shape[0] if mask.ndim else "a scalar"
        raise ValueError(f"{where}: x has {values.shape[0]} samples but its mask has {got}")
    return values, mask


def check_data(where: str, x: ArrayLike | tuple[ArrayLike, ...], y: ArrayLike | None = None,
               input_dtype: DTypeLike | None = None) -> tuple[PyTree, Array | None]:
    """Move data to the device and check it: one sample per row of x (one array, or the
    pair `(x, mask)`) and of y; x floating, or integer for a network whose `input_dtype` is
    integer (token ids)."""
    x_arr: PyTree = (_check_pair(where, x, input_dtype) if isinstance(x, tuple | list)
                     else _check_x(where, x, input_dtype))
    if y is None:
        return x_arr, None
    n = rows_of(x_arr)
    y_arr = on_device(y)
    if y_arr.ndim < 1 or y_arr.shape[0] != n:
        got = y_arr.shape[0] if y_arr.ndim else "a scalar"
        raise ValueError(f"{where}: x has {n} samples but y has {got}")
    return x_arr, y_arr


def batch_plan(n: int, batch_size: int, order: Array | None = None) -> tuple[Array, Array]:
    """`(indices (n_batches, B), weights (n_batches, B))` covering `order` (default 0..n-1)
    once; the padding of the last batch repeats leading rows with weight 0."""
    n_batches = math.ceil(n / batch_size)
    pad = n_batches * batch_size - n
    idx = jnp.arange(n, dtype=jnp.int32) if order is None else order.astype(jnp.int32)
    idx = jnp.concatenate([idx, idx[:pad]])
    weights = (jnp.arange(n_batches * batch_size) < n).astype(jnp.float32)
    return idx.reshape(n_batches, batch_size), weights.reshape(n_batches, batch_size)


def checked_per_example(name: str, fn: Callable[[Array, Array], Array], pred: Array,
                        y: Array) -> Array:
    """Call a loss or metric and check that it returned one value per example."""
    values = fn(pred, y)
    if values.shape != pred.shape[:1]:
        raise ValueError(
            f"{name} returned shape {values.shape} for a batch of {pred.shape[0]}; a {name} maps "
            f"predictions (B, ...) and targets to per-example values (B,)"
        )
    return values


def check_batch_rows(what: str, values: Array, rows: int) -> None:
    """When tracing: `values` must have one leading entry per row of a batch of `rows`."""
    if values.ndim < 1 or values.shape[0] != rows:
        raise ValueError(f"{what} for a batch of {rows} rows has shape {values.shape}, not "
                         f"({rows}, ...): the network must keep the leading sample axis")


def param_dtype(params: PyTree) -> np.dtype[Any] | None:
    """The floating dtype of the params (their common result type), None without any."""
    dtypes = [leaf.dtype for leaf in jax.tree.leaves(params)
              if jnp.issubdtype(leaf.dtype, jnp.floating)]
    return np.dtype(jnp.result_type(*dtypes)) if dtypes else None


def figure_dtype(params: PyTree) -> np.dtype[Any]:
    """The dtype of sums over a batch or an epoch (loss, metric, penalty): float64 when the
    params are float64, else float32 (also for bfloat16 and float16 params)."""
    dtype = param_dtype(params)
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)
