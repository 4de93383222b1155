"""Accuracy metrics (book chapters 5, 16, 17) as per-example scores in [0, 1].

Each maps `(predictions (..., K), targets) -> scores (...)`; the accuracy of a batch is
their mean (`funcnn.losses.mean` takes sample weights too). An example with a NaN in its
predictions (or targets) scores NaN, neither right nor wrong, so that a batch holding one
has a NaN accuracy instead of a finite one that counted it; the class picks
(`first_argmax`, `threshold_classes`) give -1, never a class, for it.

Scores have the losses' dtype, `promote(predictions.dtype, float32)`: float32 for
bfloat16 or float16 predictions (a mean over outputs or a batch needs float32's digits),
float32 and float64 unchanged. The class picks are int32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from funcnn import activations
from funcnn.losses import IGNORE, class_targets, mean_over_tokens, same_shape_targets, token_targets
from funcnn.typing import Array, ArrayLike


def first_argmax(values: ArrayLike) -> Array:
    """`jnp.argmax(values, axis=-1)` (the first maximum: ties go to the first index), but
    -1 for a row holding a NaN, where argmax would name the NaN's index as if it were a
    class. Two plain reductions, `max` (NaN for such a row, so that no index matches it)
    then `min` of the matching indices, instead of argmax's paired (value, index)
    reduction, which XLA:CPU does not vectorise."""
    v = jnp.asarray(values)
    top = v == jnp.max(v, axis=-1, keepdims=True)
    index = jax.lax.broadcasted_iota(jnp.int32, v.shape, v.ndim - 1)
    first = jnp.min(jnp.where(top, index, v.shape[-1]), axis=-1)
    return jnp.where(first < v.shape[-1], first, -1)


def threshold_classes(outputs: ArrayLike, threshold: float = 0.5) -> Array:
    """`outputs > threshold` as int32 classes 0/1, element-wise; -1 for a NaN output
    (which `>` alone would call class 0)."""
    out = jnp.asarray(outputs)
    return jnp.where(jnp.isnan(out), -1, (out > threshold).astype(jnp.int32))


def _nan_where(invalid: Array, scores: Array) -> Array:
    """`scores`, NaN where `invalid` (same shape)."""
    return jnp.where(invalid, jnp.asarray(jnp.nan, scores.dtype), scores)


def _label_is_first_max_by_columns(p: Array, truth: Array) -> Array:
    """`first_argmax(p) == truth` as 1.0/0.0, NaN for rows holding a NaN or labels out of
    range, one column of `p` at a time: only element-wise operations over the batch."""
    columns = [p[..., c] for c in range(p.shape[-1])]
    picked = columns[0]
    for c, column in enumerate(columns[1:], start=1):
        picked = jnp.where(truth == c, column, picked)
    invalid = (truth < 0) | (truth >= len(columns))
    correct = ~invalid
    for c, column in enumerate(columns):
        beaten = jnp.where(c < truth, column >= picked, column > picked)
        correct = correct & ((c == truth) | ~beaten)
        invalid = invalid | jnp.isnan(column)
    return _nan_where(invalid, correct.astype(p.dtype))


def categorical_accuracy(predictions: ArrayLike, labels: ArrayLike) -> Array:
    """`argmax(p) == y` per example (ties go to the first class, as in NumPy); one-hot
    labels go through argmax too. NaN, neither right nor wrong, for a row of predictions
    or of one-hot labels holding a NaN and for a sparse label outside `[0, C)` (possible
    only under jit, where it cannot be checked).

    Up to `activations.SMALL_LAST_AXIS` classes the label's column is compared with the
    others element-wise, because XLA:CPU reduces a short last axis one row at a time."""
    p, y, sparse = class_targets("categorical_accuracy", predictions, labels)
    truth = (y if sparse else first_argmax(y)).astype(jnp.int32)
    if p.shape[-1] <= activations.SMALL_LAST_AXIS:
        return _label_is_first_max_by_columns(p, truth)
    picked = first_argmax(p)
    invalid = (picked < 0) | (truth < 0) | (truth >= p.shape[-1])
    return _nan_where(invalid, (picked == truth).astype(p.dtype))


def binary_accuracy(predictions: ArrayLike, targets: ArrayLike, threshold: float = 0.5) -> Array:
    """`mean_k ((p > threshold) == y)` per example; strict `>`, as in the book. NaN for
    an example with a NaN in its predictions or targets.

    Use `threshold=0.0` on logits.
    """
    p, y = same_shape_targets("binary_accuracy", predictions, targets)
    matches = ((p > threshold) == (y > 0.5)).astype(p.dtype)
    return jnp.mean(_nan_where(jnp.isnan(p) | jnp.isnan(y), matches), axis=-1)


def regression_precision(targets: ArrayLike, divisor: float = 250.0) -> float:
    """The book's tolerance for regression accuracy: `std(y_train) / 250`. Targets holding
    NaN or inf are an error (their std is not a tolerance)."""
    if not divisor > 0:
        raise ValueError(f"regression_precision: divisor must be > 0, got {divisor}")
    spread = float(jnp.std(jnp.asarray(targets)))
    if not math.isfinite(spread):
        raise ValueError(
            f"regression_precision: the targets' std is {spread}; they hold NaN or inf"
        )
    return spread / divisor


def regression_accuracy(predictions: ArrayLike, targets: ArrayLike, *, precision: float) -> Array:
    """`mean_k (|p - y| < precision)` per example (chapter 17); NaN for an example with a
    NaN in its predictions or targets. A NaN precision is an error.

    Bind the precision first, e.g.
    `functools.partial(regression_accuracy, precision=regression_precision(y_train))`.
    """
    if isinstance(precision, int | float) and math.isnan(precision):
        raise ValueError("regression_accuracy: precision is NaN")
    p, y = same_shape_targets("regression_accuracy", predictions, targets)
    distance = jnp.abs(p - y)
    return jnp.mean(_nan_where(jnp.isnan(distance), (distance < precision).astype(p.dtype)),
                    axis=-1)


def token_accuracy(predictions: ArrayLike, labels: ArrayLike, *, ignore: int = IGNORE,
                   ) -> Array:
    """Per example, the share of its real tokens (label not `ignore`) whose first argmax is
    the label: predictions `(B, T, V)`, labels `(B, T)` -> `(B,)`."""
    p, index, real = token_targets("token_accuracy", predictions, labels, ignore)
    hits = categorical_accuracy(p, index)
    return mean_over_tokens(hits, real)
