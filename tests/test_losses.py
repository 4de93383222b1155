"""Losses (book chapters 5, 16, 17): values by hand and against NumPy in float32, float64
(x64 on) and bfloat16, agreement between forms, stability, result dtypes, and every
error message."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import activations, losses

DTYPES = ("float32", "float64", "bfloat16")
# (rtol, atol) of a value whose inputs are written as decimals: each dtype's own rounding,
# and for bfloat16 the rounding of the inputs to 8 significant bits (2**-9 relative),
# which moves -log(0.9) by 2%; the losses themselves compute bfloat16 in float32
TOL = {"float32": (2e-6, 1e-7), "float64": (1e-12, 1e-15), "bfloat16": (2e-2, 1e-2)}
# the dtype a loss of predictions of each dtype returns: promote(dtype, float32)
LOSS_DTYPE = {"float32": jnp.float32, "float64": jnp.float64, "bfloat16": jnp.float32,
              "float16": jnp.float32}

# The book's chapter 5 example: three samples, three classes.
BOOK_PROBS = np.array([[0.7, 0.1, 0.2], [0.1, 0.5, 0.4], [0.02, 0.9, 0.08]])
BOOK_LABELS = np.array([0, 1, 1])
BOOK_ONE_HOT = np.eye(3)[BOOK_LABELS]

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(scale=3.0, size=(6, 4))
LABELS = np.array([0, 3, 1, 2, 3, 0])


def x64(dtype: str) -> Any:
    """x64 on for float64, off otherwise."""
    return jax.enable_x64(dtype == "float64")


def cast(x: Any, dtype: str) -> jax.Array:
    """`x` (NumPy float64 or a list) as a jax array of `dtype`."""
    return jnp.asarray(np.asarray(x, np.float64), dtype)


def exact(x: Any) -> np.ndarray:
    """The values `x` holds, in float64 (bfloat16's rounding included)."""
    return np.asarray(x, np.float64)


def close(actual: Any, expected: Any, dtype: str, loose: float = 1.0) -> None:
    """`actual` equals `expected` within `dtype`'s tolerance (times `loose`)."""
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(exact(actual), exact(expected), rtol=rtol * loose,
                               atol=atol * loose)


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_softmax(z: np.ndarray) -> np.ndarray:
    return np.exp(np_log_softmax(z))


@pytest.mark.parametrize("dtype", DTYPES)
def test_book_categorical_crossentropy_example(dtype: str) -> None:
    with x64(dtype):
        probs = cast(BOOK_PROBS, dtype)
        per_sample = losses.categorical_crossentropy(probs, BOOK_LABELS)
        assert per_sample.dtype == LOSS_DTYPE[dtype]
        close(per_sample, [-math.log(0.7), -math.log(0.5), -math.log(0.9)], dtype)
        close(losses.mean(per_sample), 0.38506088005216804, dtype)
        one_hot = losses.categorical_crossentropy(probs, cast(BOOK_ONE_HOT, dtype))
        np.testing.assert_array_equal(one_hot, per_sample)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_and_one_hot_agree_on_any_batch_shape(dtype: str) -> None:
    with x64(dtype):
        probs = activations.softmax(cast(RNG.normal(size=(2, 3, 5)), dtype))
        labels = jnp.array([[0, 4, 2], [1, 1, 3]])
        one_hot = jax.nn.one_hot(labels, 5, dtype=dtype)
        sparse_loss = losses.categorical_crossentropy(probs, labels)
        assert sparse_loss.shape == (2, 3)
        assert sparse_loss.dtype == LOSS_DTYPE[dtype]
        close(losses.categorical_crossentropy(probs, one_hot), sparse_loss, dtype)
        expected = -np.log(np.take_along_axis(exact(probs), np.asarray(labels)[..., None],
                                              axis=-1)[..., 0])
        close(sparse_loss, expected, dtype)
        # A single example (no batch axis): probs (C,), label ().
        close(losses.categorical_crossentropy(cast(BOOK_PROBS[0], dtype), jnp.array(0)),
              -math.log(0.7), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bool_labels_are_sparse_class_indices(dtype: str) -> None:
    with x64(dtype):
        probs = cast([[0.25, 0.75], [0.6, 0.4]], dtype)
        close(losses.categorical_crossentropy(probs, jnp.array([True, False])),
              [-math.log(0.75), -math.log(0.6)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clipping_at_1e_minus_7(dtype: str) -> None:
    # prob 0 -> -log(1e-7) = 16.118; prob 1 -> -log(1 - 1e-7), which float32 (the compute
    # dtype of float32 and bfloat16 probabilities) rounds to -log(1 - 2^-23) = 1.19e-7.
    top = -math.log1p(-1e-7) if dtype == "float64" else -math.log1p(-(2.0**-23))
    with x64(dtype):
        loss = losses.categorical_crossentropy(cast([[0.0, 1.0], [1.0, 0.0]], dtype),
                                               jnp.array([0, 0]))
        assert loss.dtype == LOSS_DTYPE[dtype]
        np.testing.assert_allclose(exact(loss), [-math.log(1e-7), top], rtol=1e-6)
        assert np.all(np.isfinite(exact(loss)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_crossentropy_gradient_is_minus_one_over_p(dtype: str) -> None:
    with x64(dtype):
        probs = cast(BOOK_PROBS, dtype)
        grad = jax.jit(jax.grad(lambda p: losses.mean(losses.categorical_crossentropy(
            p, BOOK_LABELS))))(probs)
        assert grad.dtype == jnp.dtype(dtype)
        expected = np.zeros((3, 3))
        expected[[0, 1, 2], [0, 1, 1]] = -1 / (3 * exact(probs)[[0, 1, 2], [0, 1, 1]])
        close(grad, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_labels_give_the_cross_entropy_in_both_forms(dtype: str) -> None:
    with x64(dtype):
        soft = cast([[0.8, 0.1, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25]], dtype)
        z = cast(LOGITS[:2], dtype)
        expected = -np.sum(exact(soft) * np_log_softmax(exact(z)), axis=-1)
        close(losses.softmax_cross_entropy(z, soft), expected, dtype, loose=5)
        # the probabilities are rounded to the dtype before the log
        probs = activations.softmax(z)
        expected_from_probs = -np.sum(exact(soft) * np.log(exact(probs)), axis=-1)
        close(losses.categorical_crossentropy(probs, soft), expected_from_probs, dtype, loose=5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_cross_entropy_equals_cce_of_softmax(one_hot: bool, dtype: str) -> None:
    with x64(dtype):
        z = cast(LOGITS, dtype)
        labels = jax.nn.one_hot(LABELS, 4, dtype=dtype) if one_hot else jnp.asarray(LABELS)
        from_logits = losses.softmax_cross_entropy(z, labels)
        assert from_logits.shape == (6,)
        assert from_logits.dtype == LOSS_DTYPE[dtype]
        close(from_logits, -np_log_softmax(exact(z))[np.arange(6), LABELS], dtype, loose=5)
        from_probs = losses.categorical_crossentropy(activations.softmax(z), labels)
        close(from_logits, from_probs, dtype, loose=5)
        grad = jax.jit(jax.grad(lambda v: losses.mean(losses.softmax_cross_entropy(v, labels))))(
            z)
        assert grad.dtype == jnp.dtype(dtype)
        expected = (np_softmax(exact(z)) - np.eye(4)[LABELS]) / 6
        close(grad, expected, dtype, loose=5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_is_exact_for_huge_logits(dtype: str) -> None:
    with x64(dtype):
        z = cast([[1e4, 0.0, -1e4]] * 3, dtype)
        big = float(z[0, 0])  # 1e4, or bfloat16's 9984
        labels = jnp.array([0, 1, 2])
        loss = losses.softmax_cross_entropy(z, labels)
        np.testing.assert_allclose(exact(loss), [0.0, big, 2 * big], rtol=1e-7, atol=0)
        # The clipped probability form saturates at -log(1e-7) instead.
        clipped = losses.categorical_crossentropy(activations.softmax(z), labels)
        np.testing.assert_allclose(exact(clipped[1:]), [-math.log(1e-7)] * 2, rtol=1e-6)
        grad = jax.jit(jax.grad(lambda v: jnp.sum(losses.softmax_cross_entropy(v, labels))))(z)
        np.testing.assert_allclose(exact(grad), [[0, 0, 0], [1, -1, 0], [1, 0, -1]], atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_crossentropy_by_hand_and_multi_label(dtype: str) -> None:
    with x64(dtype):
        probs = cast([[0.9, 0.2], [0.4, 0.7]], dtype)
        targets = np.array([[1.0, 0.0], [0.0, 1.0]])
        loss = losses.binary_crossentropy(probs, cast(targets, dtype))
        assert loss.dtype == LOSS_DTYPE[dtype]
        expected = [-(math.log(0.9) + math.log(0.8)) / 2, -(math.log(0.6) + math.log(0.7)) / 2]
        close(loss, expected, dtype)
        # Integer and bool targets mean the same.
        np.testing.assert_array_equal(
            losses.binary_crossentropy(probs, jnp.asarray(targets, jnp.int32)), loss)
        np.testing.assert_array_equal(losses.binary_crossentropy(probs, targets > 0.5), loss)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_crossentropy_clips_both_logs_at_1e_minus_7(dtype: str) -> None:
    # A confident mistake costs -log(1e-7) either way; a confident hit costs -log(1 - 1e-7),
    # which float32 (the compute dtype of float32 and bfloat16) rounds to -log(1 - 2^-23).
    hit = -math.log1p(-1e-7) if dtype == "float64" else 2.0**-23
    with x64(dtype):
        loss = losses.binary_crossentropy(cast([[0.0], [1.0], [1.0], [0.0]], dtype),
                                          cast([[1.0], [0.0], [1.0], [0.0]], dtype))
        assert loss.dtype == LOSS_DTYPE[dtype]
        np.testing.assert_allclose(exact(loss), [-math.log(1e-7), -math.log(1e-7), hit, hit],
                                   rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_binary_cross_entropy_agrees_with_bce_of_sigmoid(dtype: str) -> None:
    with x64(dtype):
        z = cast(RNG.normal(scale=4.0, size=(5, 3)), dtype)
        y = cast(RNG.integers(0, 2, size=(5, 3)), dtype)
        from_logits = losses.sigmoid_binary_cross_entropy(z, y)
        assert from_logits.shape == (5,)
        assert from_logits.dtype == LOSS_DTYPE[dtype]
        # the sigmoid taken in the loss's dtype: a bfloat16 sigmoid holds no 1 - p below 2^-8
        probs = activations.sigmoid(z.astype(LOSS_DTYPE[dtype]))
        close(from_logits, losses.binary_crossentropy(probs, y), dtype, loose=5)
        # The mean over the 3 outputs, element by element.
        p, yy = 1 / (1 + np.exp(-exact(z))), exact(y)
        close(from_logits, np.mean(-(yy * np.log(p) + (1 - yy) * np.log(1 - p)), axis=-1),
              dtype, loose=5)
        grad = jax.jit(jax.grad(lambda v: jnp.sum(losses.sigmoid_binary_cross_entropy(v, y))))(z)
        assert grad.dtype == jnp.dtype(dtype)
        close(grad, (p - yy) / 3, dtype, loose=5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_binary_cross_entropy_is_exact_for_huge_logits(dtype: str) -> None:
    with x64(dtype):
        z = cast([[1e4], [1e4], [-1e4], [-1e4]], dtype)
        big = float(z[0, 0])  # 1e4, or bfloat16's 9984
        y = cast([[0.0], [1.0], [0.0], [1.0]], dtype)
        np.testing.assert_allclose(exact(losses.sigmoid_binary_cross_entropy(z, y)),
                                   [big, 0, 0, big], rtol=1e-7, atol=0)
        grad = jax.jit(jax.grad(lambda v: jnp.sum(losses.sigmoid_binary_cross_entropy(v, y))))(z)
        np.testing.assert_allclose(exact(grad), [[1], [0], [0], [-1]], atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_and_mae_by_hand(dtype: str) -> None:
    with x64(dtype):  # small integers: exact in every dtype
        p = cast([[1.0, 2.0], [3.0, 5.0]], dtype)
        y = cast([[0.0, 2.0], [1.0, 1.0]], dtype)
        mse, mae = losses.mean_squared_error(p, y), losses.mean_absolute_error(p, y)
        assert mse.dtype == mae.dtype == LOSS_DTYPE[dtype]
        np.testing.assert_array_equal(exact(mse), [0.5, 10.0])
        np.testing.assert_array_equal(exact(mae), [0.5, 3.0])
        # One output per sample, the regression layout (B, 1).
        np.testing.assert_array_equal(exact(losses.mean_squared_error(p[:, :1], y[:, :1])),
                                      [1.0, 4.0])
        np.testing.assert_array_equal(exact(losses.mean_absolute_error(p[:, :1], y[:, :1])),
                                      [1.0, 2.0])
        grad = jax.grad(lambda v: losses.mean(losses.mean_squared_error(v, y)))(p)
        assert grad.dtype == jnp.dtype(dtype)
        np.testing.assert_array_equal(exact(grad), 2 * (exact(p) - exact(y)) / 4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_with_and_without_weights(dtype: str) -> None:
    with x64(dtype):
        values = cast([1.0, 2.0, 3.0, 4.0], dtype)
        assert losses.mean(values).dtype == LOSS_DTYPE[dtype]
        np.testing.assert_array_equal(exact(losses.mean(values)), 2.5)
        weighted = losses.mean(values, cast([1.0, 0.0, 1.0, 2.0], dtype))
        assert weighted.dtype == LOSS_DTYPE[dtype]
        np.testing.assert_array_equal(exact(weighted), 3.0)
        # A 0/1 mask keeps exactly the masked-in samples (the padded last batch).
        np.testing.assert_array_equal(
            exact(losses.mean(values, jnp.array([True, True, False, False]))), 1.5)
    with pytest.raises(ValueError, match=r"mean: weights of shape \(3,\) do not match values "
                                         r"\(4,\)"):
        losses.mean(jnp.ones(4), jnp.ones(3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_under_jit_equal_eager(dtype: str) -> None:
    with x64(dtype):
        probs, one_hot = cast(BOOK_PROBS, dtype), cast(BOOK_ONE_HOT, dtype)
        for loss, (p, y) in [
            (losses.categorical_crossentropy, (probs, BOOK_LABELS)),
            (losses.softmax_cross_entropy, (cast(LOGITS, dtype), LABELS)),
            (losses.binary_crossentropy, (probs, one_hot)),
            (losses.mean_squared_error, (probs, one_hot)),
        ]:
            close(jax.jit(loss)(p, y), loss(p, y), "float32" if dtype == "bfloat16" else dtype)


ALL_LOSSES = [losses.categorical_crossentropy, losses.softmax_cross_entropy,
              losses.softmax_categorical_crossentropy, losses.binary_crossentropy,
              losses.sigmoid_binary_cross_entropy, losses.mean_squared_error,
              losses.mean_absolute_error]


@pytest.mark.parametrize("dtype", [*DTYPES, "float16"])
def test_every_loss_returns_at_least_float32_and_gradients_in_the_predictions_dtype(
        dtype: str) -> None:
    """bfloat16 and float16 predictions give float32 losses; float32 and float64 their own."""
    with x64(dtype):
        p = cast(BOOK_PROBS, dtype)
        for loss in ALL_LOSSES:
            targets = BOOK_LABELS if loss in CLASS_LOSSES else cast(BOOK_ONE_HOT, dtype)
            values = jax.eval_shape(loss, p, targets)  # traced, not compiled
            assert values.dtype == LOSS_DTYPE[dtype], (loss.__name__, values.dtype)
            grad = jax.eval_shape(jax.grad(lambda v, f=loss, t=targets: losses.mean(f(v, t))), p)
            assert grad.dtype == jnp.dtype(dtype), (loss.__name__, grad.dtype)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_losses_are_computed_in_float32(dtype: str) -> None:
    """Against float64 NumPy on the same (rounded) inputs to float32's precision, 1e-5:
    a loss computed in bfloat16 (8 bits) would be 4e-3 off, one in float16 (11 bits) 5e-4."""
    z = cast(RNG.normal(scale=2.0, size=(64, 5)), dtype)
    labels = RNG.integers(0, 5, size=64)
    expected = -np_log_softmax(exact(z))[np.arange(64), labels]
    for loss in (losses.softmax_cross_entropy, losses.softmax_categorical_crossentropy):
        np.testing.assert_allclose(exact(jax.jit(loss)(z, labels)), expected, rtol=1e-5)
        np.testing.assert_allclose(exact(losses.mean(loss(z, labels))), expected.mean(),
                                   rtol=1e-5)
    probs = cast(np_softmax(exact(z)), dtype)
    np.testing.assert_allclose(
        exact(losses.categorical_crossentropy(probs, labels)),
        -np.log(exact(probs)[np.arange(64), labels]), rtol=1e-5)
    y = cast(RNG.uniform(size=(64, 5)), dtype)
    np.testing.assert_allclose(exact(losses.mean_squared_error(z, y)),
                               np.mean((exact(z) - exact(y)) ** 2, axis=-1), rtol=1e-5)
    # the mean of 64 float32 losses of bfloat16 values is float32's, not an 8-bit sum
    np.testing.assert_allclose(exact(losses.mean(losses.mean_absolute_error(z, y))),
                               np.mean(np.abs(exact(z) - exact(y))), rtol=1e-5)


@pytest.mark.parametrize("loss", [losses.categorical_crossentropy,
                                  losses.softmax_cross_entropy,
                                  losses.softmax_categorical_crossentropy])
def test_out_of_range_labels_under_jit_give_nan_not_another_class(
        loss: Callable[[jax.Array, jax.Array], jax.Array]) -> None:
    """Under jit labels cannot be checked; a bad one must not silently pick a class."""
    out = np.asarray(jax.jit(loss)(BOOK_PROBS, jnp.array([-1, 3, 1])))
    assert np.isnan(out[0]) and np.isnan(out[1])
    np.testing.assert_allclose(out[2], loss(BOOK_PROBS[2:], jnp.array([1]))[0], rtol=1e-6)


CLASS_LOSSES = [losses.categorical_crossentropy, losses.softmax_cross_entropy,
                losses.softmax_categorical_crossentropy]
ELEMENT_LOSSES = [losses.binary_crossentropy, losses.sigmoid_binary_cross_entropy,
                  losses.mean_squared_error, losses.mean_absolute_error]
LossFn = Callable[[jax.Array, jax.Array], jax.Array]


@pytest.mark.parametrize("loss", CLASS_LOSSES, ids=lambda f: f.__name__)
def test_class_label_errors(loss: LossFn) -> None:
    name = loss.__name__
    with pytest.raises(ValueError, match=rf"{name}: labels of shape \(3, 2\) do not match "
                                         r"predictions of shape \(3, 3\); expected integer "
                                         r"labels of shape \(3,\) or one-hot labels of shape "
                                         r"\(3, 3\)"):
        loss(BOOK_PROBS, jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match=rf"{name}: labels of shape \(3, 1\) do not match"):
        loss(BOOK_PROBS, BOOK_LABELS[:, None])
    with pytest.raises(TypeError, match=rf"{name}: sparse labels must be integers, got "
                                        r"float32; cast them with y.astype\(jnp.int32\)"):
        loss(BOOK_PROBS, jnp.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=rf"{name}: label 3 is out of range for 3 classes"):
        loss(BOOK_PROBS, jnp.array([0, 3, 1]))
    with pytest.raises(ValueError, match=rf"{name}: label -1 is out of range for 3 classes"):
        loss(BOOK_PROBS, jnp.array([0, 1, -1]))
    with pytest.raises(TypeError, match=rf"{name}: predictions must be floating-point, got "
                                        r"int32"):
        loss(jnp.array([[1, 0, 0]]), jnp.array([0]))
    with pytest.raises(ValueError, match=rf"{name}: predictions need an output axis, got a "
                                         r"scalar"):
        loss(jnp.array(0.5), jnp.array(0))


@pytest.mark.parametrize("loss", ELEMENT_LOSSES, ids=lambda f: f.__name__)
def test_element_target_errors(loss: LossFn) -> None:
    name = loss.__name__
    p = jnp.full((4, 1), 0.5)
    with pytest.raises(ValueError, match=rf"{name}: targets of shape \(4,\) do not match "
                                         r"predictions of shape \(4, 1\); reshape targets to "
                                         r"\(4, 1\), e.g. y.reshape\(-1, 1\)"):
        loss(p, jnp.zeros(4))
    with pytest.raises(ValueError, match=rf"{name}: targets of shape \(4, 2\) do not match "
                                         r"predictions of shape \(4, 3\)$"):
        loss(jnp.full((4, 3), 0.5), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match=rf"{name}: targets of shape \(4, 1\) do not match "
                                         r"predictions of shape \(4,\)$"):
        loss(jnp.full((4,), 0.5), jnp.zeros((4, 1)))
    with pytest.raises(TypeError, match=rf"{name}: predictions must be floating-point, got "
                                        r"int32"):
        loss(jnp.zeros((4, 1), jnp.int32), jnp.zeros((4, 1)))


ZS = np.array(  # logits: ordinary rows, a clipped row (p[y] ~ 1e-17), a tie
    [[2.0, 1.0, 0.1], [0.5, -1.0, 3.0], [30.0, -10.0, 0.0], [0.0, 0.0, 0.0]])
ZS_LABELS = np.array([0, 2, 1, 1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_categorical_crossentropy_has_the_books_value_and_combined_gradient(
        one_hot: bool, dtype: str) -> None:
    """Chapter 9: the value is the book's clipped CCE of softmax(z); the gradient is
    `softmax(z) - y`, also where the clip is active (row 2: p[y] ~ 1e-17). bfloat16 logits
    go through the custom JVP in float32; their gradient comes back in bfloat16."""
    with x64(dtype):
        zs = cast(ZS, dtype)
        y = jax.nn.one_hot(ZS_LABELS, 3, dtype=dtype) if one_hot else jnp.asarray(ZS_LABELS)
        value = losses.softmax_categorical_crossentropy(zs, y)
        assert value.dtype == LOSS_DTYPE[dtype]
        log_p = np.clip(np_log_softmax(exact(zs)), math.log(1e-7), math.log1p(-1e-7))
        close(value, -log_p[np.arange(4), ZS_LABELS], dtype, loose=5)
        assert float(value[2]) == pytest.approx(-math.log(1e-7), rel=1e-6)
        grad = jax.jit(jax.grad(
            lambda z: jnp.sum(losses.softmax_categorical_crossentropy(z, y))))(zs)
        assert grad.dtype == jnp.dtype(dtype)
        combined = np_softmax(exact(zs)) - np.eye(3)[ZS_LABELS]
        close(grad, combined, dtype, loose=5)
        # forward mode agrees with reverse mode
        tangent = cast(np.arange(12.0).reshape(4, 3) / 10, dtype)
        _, forward = jax.jit(lambda z, t: jax.jvp(
            lambda v: losses.softmax_categorical_crossentropy(v, y), (z,), (t,)))(zs, tangent)
        assert forward.dtype == LOSS_DTYPE[dtype]
        close(forward, np.sum(combined * exact(tangent), axis=-1), dtype, loose=5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_categorical_crossentropy_soft_labels_and_second_derivatives(
        dtype: str) -> None:
    with x64(dtype):
        soft = cast([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]], dtype)
        z = cast(ZS[:2], dtype)
        p = np_softmax(exact(z))
        expected = -np.sum(exact(soft) * np.log(p), axis=-1)
        close(losses.softmax_categorical_crossentropy(z, soft), expected, dtype, loose=5)
        grad = jax.jit(jax.grad(
            lambda v: jnp.sum(losses.softmax_categorical_crossentropy(v, soft))))(z)
        close(grad, p - exact(soft), dtype, loose=5)
        # the Hessian of a row is that of the cross-entropy: diag(p) - p p^T
        hessian = jax.jit(jax.hessian(
            lambda v: losses.softmax_categorical_crossentropy(v, soft[0])))(z[0])
        assert hessian.dtype == jnp.dtype(dtype)
        close(hessian, np.diag(p[0]) - np.outer(p[0], p[0]), dtype, loose=5)
