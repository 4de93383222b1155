"""Losses (book chapters 5, 16, 17): values by hand, agreement between forms, stability,
and every error message."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import activations, losses

# The book's chapter 5 example: three samples, three classes.
BOOK_PROBS = jnp.array([[0.7, 0.1, 0.2], [0.1, 0.5, 0.4], [0.02, 0.9, 0.08]])
BOOK_LABELS = jnp.array([0, 1, 1])
BOOK_ONE_HOT = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])

RNG = np.random.default_rng(0)
LOGITS = jnp.asarray(RNG.normal(scale=3.0, size=(6, 4)), jnp.float32)
LABELS = jnp.array([0, 3, 1, 2, 3, 0])


def test_book_categorical_crossentropy_example() -> None:
    per_sample = losses.categorical_crossentropy(BOOK_PROBS, BOOK_LABELS)
    np.testing.assert_allclose(per_sample, [-math.log(0.7), -math.log(0.5), -math.log(0.9)],
                               rtol=1e-6)
    np.testing.assert_allclose(losses.mean(per_sample), 0.38506088005216804, rtol=1e-6)
    one_hot = losses.categorical_crossentropy(BOOK_PROBS, BOOK_ONE_HOT)
    np.testing.assert_allclose(one_hot, per_sample, rtol=1e-7)


def test_sparse_and_one_hot_agree_on_any_batch_shape() -> None:
    probs = activations.softmax(jnp.asarray(RNG.normal(size=(2, 3, 5)), jnp.float32))
    labels = jnp.array([[0, 4, 2], [1, 1, 3]])
    one_hot = jax.nn.one_hot(labels, 5)
    sparse_loss = losses.categorical_crossentropy(probs, labels)
    assert sparse_loss.shape == (2, 3)
    np.testing.assert_allclose(losses.categorical_crossentropy(probs, one_hot), sparse_loss,
                               rtol=1e-6)
    expected = -np.log(np.take_along_axis(np.asarray(probs), np.asarray(labels)[..., None],
                                          axis=-1)[..., 0])
    np.testing.assert_allclose(sparse_loss, expected, rtol=1e-6)
    # A single example (no batch axis): probs (C,), label ().
    np.testing.assert_allclose(losses.categorical_crossentropy(BOOK_PROBS[0], jnp.array(0)),
                               -math.log(0.7), rtol=1e-6)


def test_bool_labels_are_sparse_class_indices() -> None:
    probs = jnp.array([[0.25, 0.75], [0.6, 0.4]])
    np.testing.assert_allclose(losses.categorical_crossentropy(probs, jnp.array([True, False])),
                               [-math.log(0.75), -math.log(0.6)], rtol=1e-6)


def test_clipping_at_1e_minus_7() -> None:
    probs = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    loss = losses.categorical_crossentropy(probs, jnp.array([0, 0]))
    # prob 0 -> -log(1e-7) = 16.118; prob 1 -> -log(1 - 1e-7), which float32 rounds to
    # -log(1 - 2^-23) = 1.19e-7 (float32 has no 1 - 1e-7).
    np.testing.assert_allclose(loss[0], -math.log(1e-7), rtol=1e-6)
    np.testing.assert_allclose(loss[1], -math.log1p(-2.0**-23), rtol=1e-3)
    assert np.all(np.isfinite(loss))
    with jax.enable_x64(True):
        loss64 = losses.categorical_crossentropy(jnp.asarray(probs, jnp.float64),
                                                 jnp.array([0, 0]))
        np.testing.assert_allclose(loss64, [-math.log(1e-7), -math.log1p(-1e-7)], rtol=1e-9)


def test_categorical_crossentropy_gradient_is_minus_one_over_p() -> None:
    grad = jax.jit(jax.grad(lambda p: losses.mean(losses.categorical_crossentropy(
        p, BOOK_LABELS))))(BOOK_PROBS)
    expected = np.zeros((3, 3))
    expected[[0, 1, 2], [0, 1, 1]] = [-1 / (3 * 0.7), -1 / (3 * 0.5), -1 / (3 * 0.9)]
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


def test_soft_labels_give_the_cross_entropy_in_both_forms() -> None:
    soft = jnp.array([[0.8, 0.1, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25]])
    z = LOGITS[:2]
    expected = -np.sum(np.asarray(soft) * np.asarray(activations.log_softmax(z)), axis=-1)
    np.testing.assert_allclose(losses.softmax_cross_entropy(z, soft), expected, rtol=1e-5)
    np.testing.assert_allclose(losses.categorical_crossentropy(activations.softmax(z), soft),
                               expected, rtol=1e-5)


@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_cross_entropy_equals_cce_of_softmax(one_hot: bool) -> None:
    labels = jax.nn.one_hot(LABELS, 4) if one_hot else LABELS
    from_logits = losses.softmax_cross_entropy(LOGITS, labels)
    from_probs = losses.categorical_crossentropy(activations.softmax(LOGITS), labels)
    assert from_logits.shape == (6,)
    np.testing.assert_allclose(from_logits, from_probs, rtol=1e-5, atol=1e-6)
    grad = jax.jit(jax.grad(lambda z: losses.mean(losses.softmax_cross_entropy(z, labels))))(
        LOGITS)
    expected = (np.asarray(activations.softmax(LOGITS)) - np.eye(4)[np.asarray(LABELS)]) / 6
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


def test_softmax_cross_entropy_is_exact_for_huge_logits() -> None:
    z = jnp.array([[1e4, 0.0, -1e4]] * 3)
    labels = jnp.array([0, 1, 2])
    loss = losses.softmax_cross_entropy(z, labels)
    np.testing.assert_allclose(loss, [0.0, 1e4, 2e4], rtol=1e-7, atol=0)
    # The clipped probability form saturates at -log(1e-7) instead.
    clipped = losses.categorical_crossentropy(activations.softmax(z), labels)
    np.testing.assert_allclose(clipped[1:], [-math.log(1e-7)] * 2, rtol=1e-6)
    grad = jax.jit(jax.grad(lambda v: jnp.sum(losses.softmax_cross_entropy(v, labels))))(z)
    np.testing.assert_allclose(grad, [[0, 0, 0], [1, -1, 0], [1, 0, -1]], atol=1e-6)


def test_binary_crossentropy_by_hand_and_multi_label() -> None:
    probs = jnp.array([[0.9, 0.2], [0.4, 0.7]])
    targets = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    loss = losses.binary_crossentropy(probs, targets)
    expected = [-(math.log(0.9) + math.log(0.8)) / 2, -(math.log(0.6) + math.log(0.7)) / 2]
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    # Integer and bool targets mean the same.
    np.testing.assert_allclose(losses.binary_crossentropy(probs, targets.astype(jnp.int32)),
                               expected, rtol=1e-6)
    np.testing.assert_allclose(losses.binary_crossentropy(probs, targets > 0.5), expected,
                               rtol=1e-6)


def test_binary_crossentropy_clips_both_logs_at_1e_minus_7() -> None:
    probs = jnp.array([[0.0], [1.0], [1.0], [0.0]])
    targets = jnp.array([[1.0], [0.0], [1.0], [0.0]])
    # A confident mistake costs -log(1e-7) either way; a confident hit costs -log(1 - 1e-7),
    # which float32 rounds to -log(1 - 2^-23).
    expected32 = [-math.log(1e-7), -math.log(1e-7), 2.0**-23, 2.0**-23]
    loss = losses.binary_crossentropy(probs, targets)
    np.testing.assert_allclose(loss, expected32, rtol=1e-5)
    with jax.enable_x64(True):
        loss64 = losses.binary_crossentropy(jnp.asarray(probs, jnp.float64),
                                            jnp.asarray(targets, jnp.float64))
        expected64 = [-math.log(1e-7), -math.log(1e-7), -math.log1p(-1e-7), -math.log1p(-1e-7)]
        np.testing.assert_allclose(loss64, expected64, rtol=1e-9)


def test_sigmoid_binary_cross_entropy_agrees_with_bce_of_sigmoid() -> None:
    z = jnp.asarray(RNG.normal(scale=4.0, size=(5, 3)), jnp.float32)
    y = jnp.asarray(RNG.integers(0, 2, size=(5, 3)), jnp.float32)
    from_logits = losses.sigmoid_binary_cross_entropy(z, y)
    assert from_logits.shape == (5,)
    np.testing.assert_allclose(from_logits,
                               losses.binary_crossentropy(activations.sigmoid(z), y),
                               rtol=1e-5, atol=1e-6)
    # The mean over the 3 outputs, element by element.
    p = 1 / (1 + np.exp(-np.asarray(z, np.float64)))
    yy = np.asarray(y, np.float64)
    np.testing.assert_allclose(from_logits,
                               np.mean(-(yy * np.log(p) + (1 - yy) * np.log(1 - p)), axis=-1),
                               rtol=1e-5)
    grad = jax.jit(jax.grad(lambda v: jnp.sum(losses.sigmoid_binary_cross_entropy(v, y))))(z)
    np.testing.assert_allclose(grad, (p - yy) / 3, rtol=1e-5, atol=1e-7)


def test_sigmoid_binary_cross_entropy_is_exact_for_huge_logits() -> None:
    z = jnp.array([[1e4], [1e4], [-1e4], [-1e4]])
    y = jnp.array([[0.0], [1.0], [0.0], [1.0]])
    np.testing.assert_allclose(losses.sigmoid_binary_cross_entropy(z, y), [1e4, 0, 0, 1e4],
                               rtol=1e-7, atol=0)
    grad = jax.jit(jax.grad(lambda v: jnp.sum(losses.sigmoid_binary_cross_entropy(v, y))))(z)
    np.testing.assert_allclose(grad, [[1], [0], [0], [-1]], atol=1e-7)


def test_mse_and_mae_by_hand() -> None:
    p = jnp.array([[1.0, 2.0], [3.0, 5.0]])
    y = jnp.array([[0.0, 2.0], [1.0, 1.0]])
    np.testing.assert_allclose(losses.mean_squared_error(p, y), [0.5, 10.0], rtol=1e-7)
    np.testing.assert_allclose(losses.mean_absolute_error(p, y), [0.5, 3.0], rtol=1e-7)
    # One output per sample, the regression layout (B, 1).
    np.testing.assert_allclose(losses.mean_squared_error(p[:, :1], y[:, :1]), [1.0, 4.0])
    np.testing.assert_allclose(losses.mean_absolute_error(p[:, :1], y[:, :1]), [1.0, 2.0])
    grad = jax.grad(lambda v: losses.mean(losses.mean_squared_error(v, y)))(p)
    np.testing.assert_allclose(grad, 2 * (np.asarray(p) - np.asarray(y)) / 4, rtol=1e-7)


def test_mean_with_and_without_weights() -> None:
    values = jnp.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(losses.mean(values), 2.5)
    np.testing.assert_allclose(losses.mean(values, jnp.array([1.0, 0.0, 1.0, 2.0])), 3.0)
    # A 0/1 mask keeps exactly the masked-in samples (the padded last batch).
    np.testing.assert_allclose(losses.mean(values, jnp.array([True, True, False, False])), 1.5)
    with pytest.raises(ValueError, match=r"mean: weights of shape \(3,\) do not match values "
                                         r"\(4,\)"):
        losses.mean(values, jnp.ones(3))


def test_losses_under_jit_equal_eager() -> None:
    for loss, (p, y) in [
        (losses.categorical_crossentropy, (BOOK_PROBS, BOOK_LABELS)),
        (losses.softmax_cross_entropy, (LOGITS, LABELS)),
        (losses.binary_crossentropy, (BOOK_PROBS, BOOK_ONE_HOT)),
        (losses.mean_squared_error, (BOOK_PROBS, BOOK_ONE_HOT)),
    ]:
        np.testing.assert_allclose(jax.jit(loss)(p, y), loss(p, y), rtol=1e-6)


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


ZS = jnp.array(  # logits: ordinary rows, a clipped row (p[y] ~ 1e-17), a tie
    [[2.0, 1.0, 0.1], [0.5, -1.0, 3.0], [30.0, -10.0, 0.0], [0.0, 0.0, 0.0]])
ZS_LABELS = jnp.array([0, 2, 1, 1])


@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_categorical_crossentropy_has_the_books_value_and_combined_gradient(
        one_hot: bool) -> None:
    """Chapter 9: the value is the book's clipped CCE of softmax(z); the gradient is
    `softmax(z) - y`, also where the clip is active (row 2: p[y] ~ 1e-17)."""
    y = jax.nn.one_hot(ZS_LABELS, 3) if one_hot else ZS_LABELS
    expected = losses.categorical_crossentropy(activations.softmax(ZS), y)
    np.testing.assert_allclose(losses.softmax_categorical_crossentropy(ZS, y), expected,
                               rtol=1e-6)
    assert float(losses.softmax_categorical_crossentropy(ZS, y)[2]) == pytest.approx(
        -math.log(1e-7), rel=1e-6)
    grad = jax.grad(lambda z: jnp.sum(losses.softmax_categorical_crossentropy(z, y)))(ZS)
    combined = activations.softmax(ZS) - jax.nn.one_hot(ZS_LABELS, 3)
    np.testing.assert_allclose(grad, combined, atol=1e-7)
    # forward mode agrees with reverse mode
    tangent = jnp.arange(12.0).reshape(4, 3) / 10
    _, forward = jax.jvp(lambda z: losses.softmax_categorical_crossentropy(z, y), (ZS,),
                         (tangent,))
    np.testing.assert_allclose(forward, jnp.sum(combined * tangent, axis=-1), rtol=1e-6)


def test_softmax_categorical_crossentropy_soft_labels_and_second_derivatives() -> None:
    soft = jnp.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    z = ZS[:2]
    expected = losses.categorical_crossentropy(activations.softmax(z), soft)
    np.testing.assert_allclose(losses.softmax_categorical_crossentropy(z, soft), expected,
                               rtol=1e-6)
    grad = jax.grad(lambda v: jnp.sum(losses.softmax_categorical_crossentropy(v, soft)))(z)
    np.testing.assert_allclose(grad, activations.softmax(z) - soft, atol=1e-7)
    # the Hessian of a row is that of the cross-entropy: diag(p) - p p^T
    hessian = jax.hessian(lambda v: losses.softmax_categorical_crossentropy(v, soft[0]))(z[0])
    p = activations.softmax(z[0])
    np.testing.assert_allclose(hessian, jnp.diag(p) - jnp.outer(p, p), atol=1e-6)
