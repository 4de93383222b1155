"""Batched inference (book chapters 18, 20, 22): `evaluate` and `predict` as compiled scans.

Data of N samples is cut into `ceil(N / B)` batches; the last one is padded with
repeated rows whose weight is 0, so every sample counts exactly once.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Sharding

from funcnn.metrics import first_argmax, threshold_classes
from funcnn.nn.layer import Layer
from funcnn.training.batching import (
    batch_plan,
    check_batch_rows,
    checked_per_example,
    figure_dtype,
    rows_of,
    take_rows,
)
from funcnn.training.checks import check_batch_size, checked_inputs, checked_pair, refuse_traced
from funcnn.typing import Array, ArrayLike, LossFn, MetricFn, Params, State


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
    idx, weights = batch_plan(rows_of(x), batch_size)

    def body(totals: tuple[Array, Array], batch: tuple[Array, Array]) -> tuple[
            tuple[Array, Array], None]:
        rows, w = batch
        xb, yb, w = _split((take_rows(x, rows), y[rows], w), batch_sharding)
        pred, _ = net.apply(params, state, xb, train=False)
        check_batch_rows("evaluate: the network's output", pred, batch_size)
        loss_sum = totals[0] + jnp.sum(w * checked_per_example("loss", loss, pred, yb)).astype(acc)
        metric_sum = totals[1]
        if metric is not None:
            metric_sum = metric_sum + jnp.sum(
                w * checked_per_example("metric", metric, pred, yb)).astype(acc)
        return (loss_sum, metric_sum), None

    acc = figure_dtype(params)
    zero = jnp.zeros((), acc)
    (loss_sum, metric_sum), _ = jax.lax.scan(body, (zero, zero), (idx, weights))
    n = jnp.asarray(rows_of(x), acc)
    accuracy = metric_sum / n if metric is not None else jnp.asarray(jnp.nan, acc)
    return Evaluation(loss_sum / n, accuracy)


def evaluate(net: Layer, params: Params, state: State, loss: LossFn, x: ArrayLike,
             y: ArrayLike, *, batch_size: int | None = None,
             metric: MetricFn | None = None) -> Evaluation:
    """Mean data loss and metric of `net` on `(x, y)` in inference mode (book chapter 20)."""
    refuse_traced("evaluate", (params, state, x, y))
    x_arr, y_arr = checked_pair("evaluate", net, params, state, x, y)
    size = check_batch_size("evaluate", batch_size, rows_of(x_arr))
    return _evaluate_jit(net, params, state, loss, metric, x_arr, y_arr, size)  # type: ignore[no-any-return]


def predict_arrays(net: Layer, params: Params, state: State, x: Array, batch_size: int, *,
                   batch_sharding: Sharding | None = None) -> Array:
    """Pure, traceable body of `predict`: outputs `(N, ...)` in inference mode (each batch
    laid out by `batch_sharding` when given)."""
    idx, _ = batch_plan(rows_of(x), batch_size)

    def body(carry: None, rows: Array) -> tuple[None, Array]:
        batch = _split((take_rows(x, rows),), batch_sharding)
        pred = net.apply(params, state, *batch, train=False)[0]
        check_batch_rows("predict: the network's output", pred, batch_size)
        return carry, pred

    _, outputs = jax.lax.scan(body, None, idx)
    flat = outputs.reshape((-1, *outputs.shape[2:]))
    return flat[: rows_of(x)]


def predict(net: Layer, params: Params, state: State, x: ArrayLike, *,
            batch_size: int | None = None) -> Array:
    """Outputs of `net` for every sample of `x` (inference mode), computed in batches."""
    refuse_traced("predict", (params, state, x))
    x_arr = checked_inputs("predict", net, params, state, x)
    size = check_batch_size("predict", batch_size, rows_of(x_arr))
    return _predict_jit(net, params, state, x_arr, size)  # type: ignore[no-any-return]


_evaluate_jit = jax.jit(evaluate_arrays, static_argnums=(0, 3, 4, 7))
_predict_jit = jax.jit(predict_arrays, static_argnums=(0, 4))


def classes_from_outputs(outputs: ArrayLike, threshold: float | None = None) -> Array:
    """Class predictions from a network's outputs `(N, K)`: the first `argmax` over the last
    axis for several classes; `outputs > threshold` (0.5 by default) for one output or when
    `threshold` is given. A NaN output gives class -1, never a valid-looking class."""
    out = jnp.asarray(outputs)
    if out.ndim < 1:
        raise ValueError("classes_from_outputs: outputs need an output axis, got a scalar")
    if threshold is None and out.shape[-1] > 1:
        return first_argmax(out)
    return threshold_classes(out, 0.5 if threshold is None else threshold)


def predict_classes(net: Layer | ArrayLike, params: Params | None = None,
                    state: State | None = None, x: ArrayLike | None = None, *,
                    batch_size: int | None = None, threshold: float | None = None) -> Array:
    """Class predictions of `net` for every sample of `x`: `classes_from_outputs(predict(net,
    params, state, x, batch_size=batch_size), threshold)`.

    The 0.1 form `predict_classes(outputs, threshold)` still works for one release, with a
    `DeprecationWarning`: use `classes_from_outputs(outputs, threshold)`.
    """
    if not isinstance(net, Layer):
        warnings.warn("predict_classes(outputs) is deprecated: call "
                      "classes_from_outputs(outputs, threshold); predict_classes now takes "
                      "(net, params, state, x) like predict", DeprecationWarning, stacklevel=2)
        legacy_threshold = params if threshold is None else threshold
        return classes_from_outputs(net, legacy_threshold)  # type: ignore[arg-type]
    if params is None or state is None or x is None:
        raise TypeError("predict_classes: takes (net, params, state, x) like predict; "
                        "for outputs you already have, call classes_from_outputs(outputs)")
    return classes_from_outputs(predict(net, params, state, x, batch_size=batch_size),
                                threshold)
