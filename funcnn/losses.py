"""Losses (book chapters 5, 16, 17) as per-example functions, plus a weighted mean.

Every loss maps `(predictions (..., K), targets) -> per-example losses (...)`: the
last axis holds a sample's outputs. The data loss of a batch is `mean(loss(p, y))`.
A NaN anywhere in an example's predictions (or targets) makes its loss NaN.

Dtypes: every loss (and `mean`) computes and returns `promote(predictions.dtype,
float32)`: float32 for bfloat16 or float16 predictions (their 8 or 11 bits can hold
neither a sum over a batch nor the log of a small probability), float32 and float64
unchanged. Targets are cast to it; gradients come back in the predictions' dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import activations
from funcnn.typing import Array, ArrayLike, DTypeLike

CLIP = 1e-7
"""The book's clipping: predictions are clipped to `[1e-7, 1 - 1e-7]` before the log."""


@jax.custom_jvp
def clipped_log(p: Array) -> Array:
    """`log(clip(p, 1e-7, 1 - 1e-7))` with the book's gradient `1 / clip(p)`.

    The book's backward pass never zeroes the gradient where the clip is active (its
    softmax + cross-entropy gradient is `(p - y) / N` everywhere); plain autodiff of
    `clip` would, and a saturated network could then never recover.
    """
    return jnp.log(jnp.clip(p, CLIP, 1.0 - CLIP))


@clipped_log.defjvp
def _clipped_log_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (p,), (dp,) = primals, tangents
    clipped = jnp.clip(p, CLIP, 1.0 - CLIP)
    return jnp.log(clipped), dp / clipped


def _compute_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """The dtype a loss or metric of `dtype` predictions computes in and returns:
    `promote(dtype, float32)` (bfloat16 and float16 -> float32; float32, float64 kept)."""
    return np.dtype(jnp.promote_types(dtype, jnp.float32))


def _as_float_predictions(name: str, predictions: ArrayLike) -> Array:
    """Floating predictions with an output axis, cast to their `_compute_dtype`."""
    pred = jnp.asarray(predictions)
    if not jnp.issubdtype(pred.dtype, jnp.floating):
        raise TypeError(f"{name}: predictions must be floating-point, got {pred.dtype}")
    if pred.ndim < 1:
        raise ValueError(f"{name}: predictions need an output axis, got a scalar")
    return pred.astype(_compute_dtype(pred.dtype))


def is_concrete(x: Array) -> bool:
    """True when `x` holds values now (not a tracer inside jit/grad/vmap)."""
    return not isinstance(x, jax.core.Tracer)


def class_targets(name: str, predictions: ArrayLike, labels: ArrayLike) -> tuple[Array, Array,
                                                                                  bool]:
    """Validate categorical targets: sparse integer labels of shape `p.shape[:-1]`, or
    one-hot (or soft) labels of shape `p.shape`. Returns `(p, labels, is_sparse)`, `p` in
    its `_compute_dtype` and one-hot labels cast to it."""
    pred = _as_float_predictions(name, predictions)
    y = jnp.asarray(labels)
    n_classes = pred.shape[-1]
    integer = jnp.issubdtype(y.dtype, jnp.integer) or y.dtype == jnp.bool_
    if y.shape == pred.shape[:-1]:
        if not integer:
            raise TypeError(
                f"{name}: sparse labels must be integers, got {y.dtype}; "
                "cast them with y.astype(jnp.int32)"
            )
        if is_concrete(y):
            values = np.asarray(y)
            bad = values[(values < 0) | (values >= n_classes)]
            if bad.size:
                raise ValueError(f"{name}: label {bad[0]} is out of range for {n_classes} classes")
        return pred, y, True
    if y.shape == pred.shape:
        return pred, y.astype(pred.dtype), False
    raise ValueError(
        f"{name}: labels of shape {y.shape} do not match predictions of shape {pred.shape}; "
        f"expected integer labels of shape {pred.shape[:-1]} or one-hot labels of shape "
        f"{pred.shape}"
    )


def same_shape_targets(name: str, predictions: ArrayLike, targets: ArrayLike) -> tuple[Array,
                                                                                      Array]:
    """Validate element-wise targets: exactly the predictions' shape. Returns `(p, y)`,
    both in the predictions' `_compute_dtype`."""
    pred = _as_float_predictions(name, predictions)
    y = jnp.asarray(targets)
    if y.shape != pred.shape:
        hint = ""
        if y.shape == pred.shape[:-1] and pred.shape[-1] == 1:
            hint = f"; reshape targets to {pred.shape}, e.g. y.reshape(-1, 1)"
        raise ValueError(
            f"{name}: targets of shape {y.shape} do not match predictions of shape "
            f"{pred.shape}{hint}"
        )
    return pred, y.astype(pred.dtype)


def _class_mask(shape: tuple[int, ...], index: Array) -> Array:
    """`(..., C)` booleans, True at each row's class `index[...]` (none for a bad index)."""
    return jax.lax.broadcasted_iota(jnp.int32, shape, len(shape) - 1) == index[..., None]


def _pick_sparse(values: Array, index: Array) -> Array:
    """`values[..., index]` as a masked sum, not a gather: its gradient is then a select
    that fuses with its neighbours, where a gather's is a scatter. NaN when any value of
    the row is NaN: the other classes are filled with 0, or NaN where they hold one. The
    fill is kept out of the gradient, which stays the plain pick's, a select on the label
    alone (one that tested the values too would have to keep them for the backward pass)."""
    nan_or_zero = jax.lax.stop_gradient(jnp.where(jnp.isnan(values), values, 0))
    picked = jnp.where(_class_mask(values.shape, index), values, nan_or_zero)
    return activations.row_sum(picked)[..., 0]


def _nan_unless_in_range(losses: Array, index: Array, n_classes: int) -> Array:
    """NaN where a sparse label lies outside `[0, C)` (only possible under jit, where it
    cannot be checked), instead of silently scoring another class."""
    return jnp.where((index >= 0) & (index < n_classes), losses, jnp.nan)


def _pick(values: Array, labels: Array, sparse: bool) -> Array:
    """`values[..., label]` for sparse labels (NaN for one outside `[0, C)`),
    `sum(values * labels, -1)` for one-hot."""
    if sparse:
        index = labels.astype(jnp.int32)
        return _nan_unless_in_range(_pick_sparse(values, index), index, values.shape[-1])
    return jnp.sum(values * labels, axis=-1)


def categorical_crossentropy(probs: ArrayLike, labels: ArrayLike) -> Array:
    """`-log(p[y])` on probabilities clipped to `[1e-7, 1-1e-7]` (the book's form).

    probs `(..., C)`; labels `(...)` integers or `(..., C)` one-hot -> losses `(...)`.
    One-hot and soft labels give `-sum_c y_c log p_c` (the book's `-log sum(p * y)` for
    one-hot rows, and the true cross-entropy, as `softmax_cross_entropy`, for soft ones).
    """
    p, y, sparse = class_targets("categorical_crossentropy", probs, labels)
    return -_pick(clipped_log(p), y, sparse)


def _softmax_and_clipped_log(logits: Array) -> tuple[Array, Array]:
    """`softmax(z)` and `log(clip(softmax(z), 1e-7, 1 - 1e-7))`, the log taken in the log
    domain (`z - logsumexp(z)`, then clipped): one log per row instead of one per class."""
    shifted = logits - jax.lax.stop_gradient(activations.row_max(logits))
    exps = jnp.exp(shifted)
    total = activations.row_sum(exps)
    low, high = float(np.log(CLIP)), float(np.log1p(-CLIP))  # weak: keep the logits' dtype
    return exps / total, jnp.clip(shifted - jnp.log(total), low, high)


@jax.custom_jvp
def _softmax_then_cce(logits: Array, targets: Array) -> Array:
    """`-sum_c t_c log clip(softmax(z)_c)` with the book's combined derivative."""
    return -activations.row_sum(targets * _softmax_and_clipped_log(logits)[1])[..., 0]


@_softmax_then_cce.defjvp
def _softmax_then_cce_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array],
                          ) -> tuple[Array, Array]:
    (z, t), (dz, dt) = primals, tangents
    p, log_p = _softmax_and_clipped_log(z)
    d_logits = p * activations.row_sum(t) - t  # the book's `p - y` for one-hot y
    return (-activations.row_sum(t * log_p)[..., 0],
            activations.row_sum(d_logits * dz - log_p * dt)[..., 0])


@jax.custom_jvp
def _softmax_then_sparse_cce(logits: Array, index: Array) -> Array:
    """`-log clip(softmax(z)[y])` for integer labels, with the book's `p - onehot(y)`."""
    return -_pick_sparse(_softmax_and_clipped_log(logits)[1], index)


@_softmax_then_sparse_cce.defjvp
def _softmax_then_sparse_cce_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array],
                                 ) -> tuple[Array, Array]:
    (z, index), (dz, _) = primals, tangents
    p, log_p = _softmax_and_clipped_log(z)
    d_logits = jnp.where(_class_mask(z.shape, index), p - 1, p)
    return -_pick_sparse(log_p, index), activations.row_sum(d_logits * dz)[..., 0]


def softmax_categorical_crossentropy(logits: ArrayLike, labels: ArrayLike, *,
                                     name: str = "softmax_categorical_crossentropy") -> Array:
    """`categorical_crossentropy(softmax(z), y)` from logits, with the book's combined
    backward (chapter 9): the gradient is `softmax(z) - y` (times `sum(y)` for soft labels),
    one fused expression instead of the softmax Jacobian times `-1/p`. The value is the
    book's, clipped; the gradient ignores the clip, as the book's combined class does.

    `fit` uses it by itself for a `serial(..., Softmax())` trained with
    `categorical_crossentropy`; `name` is the loss named in error messages.
    """
    z, y, sparse = class_targets(name, logits, labels)
    if not sparse:
        return _softmax_then_cce(z, y)
    index = y.astype(jnp.int32)
    return _nan_unless_in_range(_softmax_then_sparse_cce(z, index), index, z.shape[-1])


def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> Array:
    """`-log_softmax(z)[y]` on logits, stable for any finite logits, no clipping.

    logits `(..., C)`; labels `(...)` integers or `(..., C)` one-hot -> losses `(...)`.
    """
    z, y, sparse = class_targets("softmax_cross_entropy", logits, labels)
    return -_pick(activations.log_softmax(z), y, sparse)


IGNORE = -1
"""The label of a padded position in `token_crossentropy` and `token_accuracy`."""


def token_targets(name: str, predictions: ArrayLike, labels: ArrayLike, ignore: int,
                  ) -> tuple[Array, Array, Array]:
    """Per-token targets: probabilities `(B, T, ..., V)` and integer labels `(B, T, ...)`,
    `ignore` marking padding. Returns `(p, index, real)`: the labels with `ignore` replaced
    by class 0 and the mask of real tokens. A concrete label outside `[0, V)` that is not
    `ignore` is an error; under jit such a label gives NaN."""
    pred = _as_float_predictions(name, predictions)
    y = jnp.asarray(labels)
    if pred.ndim < 3 or y.shape != pred.shape[:-1]:
        raise ValueError(f"{name}: expected predictions (B, T, ..., V) and integer labels of "
                         f"their shape but the last, got {pred.shape} and {y.shape}")
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(f"{name}: labels must be integers, got {y.dtype}")
    n_classes = pred.shape[-1]
    if is_concrete(y):
        values = np.asarray(y)
        bad = values[((values < 0) | (values >= n_classes)) & (values != ignore)]
        if bad.size:
            raise ValueError(f"{name}: label {bad[0]} is out of range for {n_classes} classes "
                             f"(padding is {ignore})")
    real = y != ignore
    return pred, jnp.where(real, y, 0).astype(jnp.int32), real


def mean_over_tokens(per_token: Array, real: Array) -> Array:
    """`(B, T, ...)` values to `(B,)`: each example's mean over its real tokens (0 for an
    example with none). Short sequences weigh as much as long ones in a batch mean."""
    axes = tuple(range(1, per_token.ndim))
    total = jnp.sum(jnp.where(real, per_token, 0), axis=axes)
    count = jnp.sum(real, axis=axes).astype(per_token.dtype)
    return total / jnp.maximum(count, 1)


def token_crossentropy(probs: ArrayLike, labels: ArrayLike, *, ignore: int = IGNORE) -> Array:
    """Per-token cross-entropy `-log p[y]` (clipped as `categorical_crossentropy`), averaged
    over each example's real tokens: probs `(B, T, V)`, labels `(B, T)` with `ignore` (-1)
    at padded positions -> losses `(B,)`, which `fit` takes. In nats; `to_bits` converts."""
    p, index, real = token_targets("token_crossentropy", probs, labels, ignore)
    return mean_over_tokens(-_pick(clipped_log(p), index, True), real)


def to_bits(nats: ArrayLike) -> Array:
    """A cross-entropy in nats as bits (per character, for a character model): `/ ln 2`."""
    value = jnp.asarray(nats)
    return value / jnp.asarray(np.log(2.0), value.dtype)


def binary_crossentropy(probs: ArrayLike, targets: ArrayLike) -> Array:
    """`mean_k -(y log p + (1-y) log(1-p))` on clipped probabilities (chapter 16).

    probs and targets `(..., K)` (K independent labels) -> losses `(...)`.
    """
    p, y = same_shape_targets("binary_crossentropy", probs, targets)
    return jnp.mean(-(y * clipped_log(p) + (1.0 - y) * clipped_log(1.0 - p)), axis=-1)


def sigmoid_binary_cross_entropy(logits: ArrayLike, targets: ArrayLike) -> Array:
    """Binary cross-entropy of `sigmoid(z)` computed from logits without overflow:
    `mean_k max(z,0) - z*y + log(1 + exp(-|z|))`; shapes `(..., K) -> (...)`."""
    z, y = same_shape_targets("sigmoid_binary_cross_entropy", logits, targets)
    return jnp.mean(jnp.maximum(z, 0.0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))), axis=-1)


def mean_squared_error(predictions: ArrayLike, targets: ArrayLike) -> Array:
    """`mean_k (p - y)^2` (chapter 17); shapes `(..., K) -> (...)`."""
    p, y = same_shape_targets("mean_squared_error", predictions, targets)
    return jnp.mean(jnp.square(p - y), axis=-1)


def mean_absolute_error(predictions: ArrayLike, targets: ArrayLike) -> Array:
    """`mean_k |p - y|` (chapter 17); shapes `(..., K) -> (...)`."""
    p, y = same_shape_targets("mean_absolute_error", predictions, targets)
    return jnp.mean(jnp.abs(p - y), axis=-1)


def mean(per_example: ArrayLike, weights: ArrayLike | None = None) -> Array:
    """`sum(w * l) / sum(w)` (plain mean without weights): a batch's data loss, in the
    values' `_compute_dtype` (a float32 sum of bfloat16 losses)."""
    values = jnp.asarray(per_example)
    if jnp.issubdtype(values.dtype, jnp.floating):
        values = values.astype(_compute_dtype(values.dtype))
    if weights is None:
        return jnp.mean(values)
    w = jnp.asarray(weights, values.dtype)
    if w.shape != values.shape:
        raise ValueError(f"mean: weights of shape {w.shape} do not match values {values.shape}")
    return jnp.sum(w * values) / jnp.sum(w)
