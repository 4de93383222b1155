"""Accuracy metrics (book chapters 5, 16, 17) as per-example scores in [0, 1].

Each maps `(predictions (..., K), targets) -> scores (...)`; the accuracy of a batch is
their mean (`funcnn.losses.mean` takes sample weights too).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from funcnn import activations
from funcnn.losses import class_targets, same_shape_targets
from funcnn.typing import Array, ArrayLike


def first_argmax(values: ArrayLike) -> Array:
    """`jnp.argmax(values, axis=-1)`, ties and NaN included (the first maximum; a NaN counts
    as the largest), from two plain reductions, `max` then `min` of the matching indices,
    instead of argmax's paired (value, index) reduction, which XLA:CPU does not
    vectorise."""
    v = jnp.asarray(values)
    top = (v == jnp.max(v, axis=-1, keepdims=True)) | jnp.isnan(v)
    index = jax.lax.broadcasted_iota(jnp.int32, v.shape, v.ndim - 1)
    return jnp.min(jnp.where(top, index, v.shape[-1]), axis=-1)


def _label_is_first_max_by_columns(p: Array, truth: Array) -> Array:
    """`first_argmax(p) == truth` (False for rows with NaN or labels out of range), one
    column of `p` at a time: only element-wise operations over the batch."""
    columns = [p[..., c] for c in range(p.shape[-1])]
    picked = columns[0]
    for c, column in enumerate(columns[1:], start=1):
        picked = jnp.where(truth == c, column, picked)
    correct = (truth >= 0) & (truth < len(columns)) & ~jnp.isnan(picked)
    for c, column in enumerate(columns):
        beaten = jnp.where(c < truth, column >= picked, column > picked)
        correct = correct & ((c == truth) | ~(beaten | jnp.isnan(column)))
    return correct


def categorical_accuracy(predictions: ArrayLike, labels: ArrayLike) -> Array:
    """`argmax(p) == y` per example (ties go to the first class, as in NumPy); one-hot
    labels go through argmax too. A row of predictions holding NaN counts as wrong.

    Up to `activations.SMALL_LAST_AXIS` classes the label's column is compared with the
    others element-wise, because XLA:CPU reduces a short last axis one row at a time."""
    p, y, sparse = class_targets("categorical_accuracy", predictions, labels)
    truth = (y if sparse else first_argmax(y)).astype(jnp.int32)
    if p.shape[-1] <= activations.SMALL_LAST_AXIS:
        correct = _label_is_first_max_by_columns(p, truth)
    else:
        correct = (first_argmax(p) == truth) & ~jnp.any(jnp.isnan(p), axis=-1)
    return correct.astype(p.dtype)


def binary_accuracy(predictions: ArrayLike, targets: ArrayLike, threshold: float = 0.5) -> Array:
    """`mean_k ((p > threshold) == y)` per example; strict `>`, as in the book.

    Use `threshold=0.0` on logits.
    """
    p, y = same_shape_targets("binary_accuracy", predictions, targets)
    return jnp.mean(((p > threshold) == (y > 0.5)).astype(p.dtype), axis=-1)


def regression_precision(targets: ArrayLike, divisor: float = 250.0) -> float:
    """The book's tolerance for regression accuracy: `std(y_train) / 250`."""
    if not divisor > 0:
        raise ValueError(f"regression_precision: divisor must be > 0, got {divisor}")
    return float(jnp.std(jnp.asarray(targets))) / divisor


def regression_accuracy(predictions: ArrayLike, targets: ArrayLike, *, precision: float) -> Array:
    """`mean_k (|p - y| < precision)` per example (chapter 17).

    Bind the precision first, e.g.
    `functools.partial(regression_accuracy, precision=regression_precision(y_train))`.
    """
    p, y = same_shape_targets("regression_accuracy", predictions, targets)
    return jnp.mean((jnp.abs(p - y) < precision).astype(p.dtype), axis=-1)
