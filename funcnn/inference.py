"""Batched inference (book chapters 18, 20, 22): `evaluate` and `predict` as compiled scans.

Data of N samples is cut into `ceil(N / B)` batches; the last one is padded with
repeated rows whose weight is 0, so every sample counts exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Sharding

from funcnn.layers import Layer
from funcnn.metrics import first_argmax
from funcnn.typing import Array, ArrayLike, LossFn, MetricFn, Params, State


def on_device(value: ArrayLike) -> Array:
    """`jnp.asarray(value)` for data: arrays stay as they are; anything else is transferred
    with `jax.device_put`, which, unlike `jnp.asarray`, compiles nothing per shape."""
    if isinstance(value, jax.Array):
        return value
    placed: Array = jax.device_put(np.asarray(value))
    return placed


def check_data(where: str, x: ArrayLike, y: ArrayLike | None = None) -> tuple[Array, Array | None]:
    """Move data to the device and check it: floating x, one sample per row of x and y."""
    x_arr = on_device(x)
    if x_arr.ndim < 1:
        raise ValueError(f"{where}: x must have a leading sample axis, got a scalar")
    if not jnp.issubdtype(x_arr.dtype, jnp.floating):
        raise TypeError(f"{where}: x must be floating-point, got {x_arr.dtype}; scale or cast "
                        "it first, e.g. x.astype(np.float32)")
    if x_arr.shape[0] == 0:
        raise ValueError(f"{where}: x holds no samples")
    if y is None:
        return x_arr, None
    y_arr = on_device(y)
    if y_arr.ndim < 1 or y_arr.shape[0] != x_arr.shape[0]:
        got = y_arr.shape[0] if y_arr.ndim else "a scalar"
        raise ValueError(f"{where}: x has {x_arr.shape[0]} samples but y has {got}")
    return x_arr, y_arr


def check_batch_size(where: str, batch_size: int | None, n: int) -> int:
    """The batch size to use: `n` (full batch) when None; otherwise 1 <= batch_size <= n."""
    if batch_size is None:
        return n
    if not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool) \
            or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive int or None, got "
                         f"{batch_size!r}")
    if batch_size > n:
        raise ValueError(f"{where}: batch_size {batch_size} is larger than the {n} samples; "
                         "use batch_size=None for full-batch")
    return int(batch_size)


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


class Evaluation(NamedTuple):
    """Data loss (no regularization, as the book) and metric mean (nan without a metric)."""

    loss: Array
    accuracy: Array


def _split(rows: tuple[Array, ...], batch_sharding: Sharding | None) -> tuple[Array, ...]:
    """Annotate a batch's rows as split over devices (data parallelism), if asked."""
    if batch_sharding is None:
        return rows
    return jax.lax.with_sharding_constraint(rows, batch_sharding)  # type: ignore[no-untyped-call,no-any-return]


def evaluate_arrays(net: Layer, params: Params, state: State, loss: LossFn,
                    metric: MetricFn | None, x: Array, y: Array, batch_size: int, *,
                    batch_sharding: Sharding | None = None) -> Evaluation:
    """Pure, traceable body of `evaluate`: a scan over batches in inference mode
    (each batch laid out by `batch_sharding` when given)."""
    idx, weights = batch_plan(x.shape[0], batch_size)

    def body(totals: tuple[Array, Array], batch: tuple[Array, Array]) -> tuple[
            tuple[Array, Array], None]:
        rows, w = batch
        xb, yb, w = _split((x[rows], y[rows], w), batch_sharding)
        pred, _ = net.apply(params, state, xb, train=False)
        loss_sum = totals[0] + jnp.sum(w * checked_per_example("loss", loss, pred, yb))
        metric_sum = totals[1]
        if metric is not None:
            metric_sum = metric_sum + jnp.sum(w * checked_per_example("metric", metric, pred, yb))
        return (loss_sum, metric_sum), None

    zero = jnp.zeros((), jnp.float32)
    (loss_sum, metric_sum), _ = jax.lax.scan(body, (zero, zero), (idx, weights))
    n = jnp.float32(x.shape[0])
    accuracy = metric_sum / n if metric is not None else jnp.float32(jnp.nan)
    return Evaluation(loss_sum / n, accuracy)


def evaluate(net: Layer, params: Params, state: State, loss: LossFn, x: ArrayLike,
             y: ArrayLike, *, batch_size: int | None = None,
             metric: MetricFn | None = None) -> Evaluation:
    """Mean data loss and metric of `net` on `(x, y)` in inference mode (book chapter 20)."""
    x_arr, y_arr = check_data("evaluate", x, y)
    assert y_arr is not None
    size = check_batch_size("evaluate", batch_size, x_arr.shape[0])
    return _evaluate_jit(net, params, state, loss, metric, x_arr, y_arr, size)  # type: ignore[no-any-return]


def predict_arrays(net: Layer, params: Params, state: State, x: Array, batch_size: int, *,
                   batch_sharding: Sharding | None = None) -> Array:
    """Pure, traceable body of `predict`: outputs `(N, ...)` in inference mode (each batch
    laid out by `batch_sharding` when given)."""
    idx, _ = batch_plan(x.shape[0], batch_size)
    _, outputs = jax.lax.scan(
        lambda carry, rows: (carry, net.apply(params, state, *_split((x[rows],), batch_sharding),
                                              train=False)[0]), None, idx)
    flat = outputs.reshape((-1, *outputs.shape[2:]))
    return flat[: x.shape[0]]


def predict(net: Layer, params: Params, state: State, x: ArrayLike, *,
            batch_size: int | None = None) -> Array:
    """Outputs of `net` for every sample of `x` (inference mode), computed in batches."""
    x_arr, _ = check_data("predict", x)
    size = check_batch_size("predict", batch_size, x_arr.shape[0])
    return _predict_jit(net, params, state, x_arr, size)  # type: ignore[no-any-return]


_evaluate_jit = jax.jit(evaluate_arrays, static_argnums=(0, 3, 4, 7))
_predict_jit = jax.jit(predict_arrays, static_argnums=(0, 4))


def predict_classes(outputs: ArrayLike, threshold: float | None = None) -> Array:
    """Class predictions from outputs: `argmax` over the last axis for several classes;
    `outputs > threshold` (0.5 by default) for one output or when `threshold` is given."""
    out = jnp.asarray(outputs)
    if out.ndim < 1:
        raise ValueError("predict_classes: outputs need an output axis, got a scalar")
    if threshold is None and out.shape[-1] > 1:
        return first_argmax(out)
    return (out > (0.5 if threshold is None else threshold)).astype(jnp.int32)
