"""The training step (book chapters 10-19): `loss = mean_w(loss(net(x), y)) +
net.penalty(params)`, gradients by `jax.grad`, then the optimizer's additive update."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnn import activations
from funcnn.losses import categorical_crossentropy, softmax_categorical_crossentropy
from funcnn.nn.layer import Layer
from funcnn.nn.precision import without_output_softmax
from funcnn.optim.base import GradientTransformation, apply_updates
from funcnn.optim.loss_scale import loss_scale
from funcnn.training.batching import (
    check_batch_rows,
    checked_per_example,
    figure_dtype,
    rows_of,
)
from funcnn.training.checks import check_optimizer, is_optimizer
from funcnn.typing import Array, LossFn, MetricFn, Params, PRNGKey, PyTree, State

__all__ = ["BatchFigures", "StepMetrics", "batch_update", "make_train_step", "softmax_output_body"]


class StepMetrics(NamedTuple):
    """Figures of one step: `loss = data_loss + reg_loss`; accuracy is nan without a metric."""

    loss: Array
    data_loss: Array
    reg_loss: Array
    accuracy: Array


def softmax_output_body(net: Layer, loss: LossFn) -> Layer | None:
    """For `serial(..., Softmax())` (or a `mixed_precision` wrapper of one) trained with
    `categorical_crossentropy`, the network without its final softmax, so that the step can
    use the book's combined softmax + cross-entropy backward (chapter 9; the book's `Model`
    picks it the same way): the same loss values, a gradient `p - y` of one fusion. None
    for any other network or loss."""
    if loss is not categorical_crossentropy:
        return None
    return without_output_softmax(net)


def _book_softmax_cce(logits: Array, labels: Array) -> Array:
    """`categorical_crossentropy(softmax(logits), labels)`, errors naming that loss."""
    return softmax_categorical_crossentropy(logits, labels, name="categorical_crossentropy")


class BatchFigures(NamedTuple):
    """What one step measured, all at the params before its update (the objective that was
    optimized): weighted sums over the batch of the per-example data loss and metric (not
    yet divided by the sample count), and the penalty `net.penalty(params)`."""

    data_sum: Array
    metric_sum: Array
    reg_loss: Array


def batch_update(net: Layer, loss: LossFn, optimizer: GradientTransformation,
                 metric: MetricFn | None, params: Params, state: State, opt_state: PyTree,
                 x: Array, y: Array, weights: Array | None, key: PRNGKey | None,
                 count: Array | None = None) -> tuple[Params, State, PyTree, BatchFigures]:
    """One optimizer step; returns new params/state/opt_state and the step's figures.
    `count`, when given, is `sum(weights)` known beforehand (under a mesh this saves a
    cross-device reduction per step)."""

    body = softmax_output_body(net, loss)
    acc = figure_dtype(params)
    scale = loss_scale(opt_state)  # None: no loss scaling

    def objective(p: Params) -> tuple[Array, tuple[BatchFigures, State]]:
        if body is None:
            pred, new_state = net.apply(p, state, x, key=key, train=True)
            check_batch_rows("the network's output", pred, rows_of(x))
            per_example = checked_per_example("loss", loss, pred, y)
        else:  # the book's combined softmax + cross-entropy: same value, fused gradient
            logits, new_state = body.apply(p, state, x, key=key, train=True)
            check_batch_rows("the network's output", logits, rows_of(x))
            per_example = checked_per_example("loss", _book_softmax_cce, logits, y)
            pred = activations.softmax(logits)
        w = jnp.ones_like(per_example) if weights is None else weights.astype(per_example.dtype)
        total_weight = jnp.sum(w) if count is None else count.astype(per_example.dtype)
        count_or_one = jnp.maximum(total_weight, 1.0)
        data_sum = jnp.sum(w * per_example)
        metric_sum = jnp.zeros((), acc)
        if metric is not None:
            per_metric = checked_per_example("metric", metric, jax.lax.stop_gradient(pred), y)
            metric_sum = jnp.sum(w * per_metric)
        reg_loss = net.penalty(p)
        total = data_sum / count_or_one + reg_loss
        if scale is not None:  # differentiate scale * loss (see funcnn.optim.loss_scale)
            total = total * scale.astype(total.dtype)
        figures = BatchFigures(data_sum.astype(acc), metric_sum.astype(acc), reg_loss.astype(acc))
        return total, (figures, new_state)

    grads, (figures, new_state) = jax.grad(objective, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return apply_updates(params, updates), new_state, opt_state, figures


def make_train_step(net: Layer, optimizer: GradientTransformation, loss: LossFn, *,
                    metric: MetricFn | None = None) -> Callable[..., tuple[Params, State, PyTree,
                                                                          StepMetrics]]:
    """A pure, jittable step `(params, state, opt_state, x, y, *, key=None, weights=None)
    -> (params, state, opt_state, StepMetrics)` for writing one's own loop. The arguments
    come in `fit`'s order: network, optimizer, loss.

    The 0.1 order `make_train_step(net, loss, optimizer)` still works for one release,
    with a `DeprecationWarning`."""
    if not is_optimizer(optimizer) and is_optimizer(loss):
        warnings.warn("make_train_step(net, loss, optimizer) is deprecated: the order is now "
                      "make_train_step(net, optimizer, loss, metric=...), as in fit",
                      DeprecationWarning, stacklevel=2)
        optimizer, loss = loss, optimizer  # type: ignore[assignment]
    check_optimizer("make_train_step", optimizer)

    def step(params: Params, state: State, opt_state: PyTree, x: Array, y: Array, *,
             key: PRNGKey | None = None, weights: Array | None = None,
             ) -> tuple[Params, State, PyTree, StepMetrics]:
        acc = figure_dtype(params)
        count = (jnp.asarray(rows_of(x), acc) if weights is None
                 else jnp.sum(weights).astype(acc))
        new_params, new_state, new_opt, figures = batch_update(
            net, loss, optimizer, metric, params, state, opt_state, x, y, weights, key)
        data_loss = figures.data_sum / jnp.maximum(count, 1.0)
        accuracy = (figures.metric_sum / jnp.maximum(count, 1.0) if metric is not None
                    else jnp.nan)
        return new_params, new_state, new_opt, StepMetrics(
            data_loss + figures.reg_loss, data_loss, figures.reg_loss,
            jnp.asarray(accuracy, acc))

    return step
