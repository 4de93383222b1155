"""Accuracy metrics (book chapters 5, 16, 17) by hand, with the book's examples."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funcnn import losses, metrics


def test_book_categorical_accuracy_example() -> None:
    """Chapter 5: argmax [0, 0, 1] against targets [0, 1, 1] -> 2/3."""
    softmax_outputs = jnp.array([[0.7, 0.2, 0.1], [0.5, 0.1, 0.4], [0.02, 0.9, 0.08]])
    class_targets = jnp.array([0, 1, 1])
    per_example = metrics.categorical_accuracy(softmax_outputs, class_targets)
    np.testing.assert_array_equal(per_example, [1.0, 0.0, 1.0])
    assert per_example.dtype == jnp.float32
    np.testing.assert_allclose(losses.mean(per_example), 2 / 3, rtol=1e-7)
    one_hot = jax.nn.one_hot(class_targets, 3)
    np.testing.assert_array_equal(metrics.categorical_accuracy(softmax_outputs, one_hot),
                                  per_example)


def test_categorical_accuracy_sparse_and_one_hot_agree_on_random_batches() -> None:
    rng = np.random.default_rng(0)
    probs = jnp.asarray(rng.uniform(size=(4, 50, 6)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 6, size=(4, 50)), jnp.int32)
    sparse = metrics.categorical_accuracy(probs, labels)
    assert sparse.shape == (4, 50)
    np.testing.assert_array_equal(sparse, metrics.categorical_accuracy(
        probs, jax.nn.one_hot(labels, 6)))
    expected = np.argmax(np.asarray(probs), -1) == np.asarray(labels)
    np.testing.assert_array_equal(sparse, expected.astype(np.float32))
    # Works on logits as well: argmax is unchanged by softmax.
    np.testing.assert_array_equal(metrics.categorical_accuracy(jnp.log(probs), labels), sparse)


def test_categorical_accuracy_ties_go_to_the_first_class() -> None:
    """np.argmax (the book's) picks the first maximum."""
    probs = jnp.array([[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_array_equal(metrics.categorical_accuracy(probs, jnp.array([0, 1])),
                                  [1.0, 0.0])


def test_binary_accuracy_is_strict_at_one_half() -> None:
    p = jnp.array([[0.5], [0.5], [0.51], [0.49], [0.9]])
    y = jnp.array([[0.0], [1.0], [1.0], [0.0], [0.0]])
    # predictions (p > 0.5): 0, 0, 1, 0, 1
    per_example = metrics.binary_accuracy(p, y)
    np.testing.assert_array_equal(per_example, [1.0, 0.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(losses.mean(per_example), 0.6, rtol=1e-7)
    # Integer and bool targets are the same labels.
    np.testing.assert_array_equal(metrics.binary_accuracy(p, y.astype(jnp.int32)), per_example)
    np.testing.assert_array_equal(metrics.binary_accuracy(p, y > 0.5), per_example)


def test_binary_accuracy_multi_label_is_the_mean_over_outputs() -> None:
    p = jnp.array([[0.9, 0.2, 0.7, 0.4], [0.1, 0.6, 0.5, 0.8]])
    y = jnp.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    # row 0: 1,0,1,0 vs 1,0,0,0 -> 3/4; row 1: 0,1,0,1 vs 1,1,1,1 -> 2/4
    np.testing.assert_allclose(metrics.binary_accuracy(p, y), [0.75, 0.5], rtol=1e-7)


def test_binary_accuracy_on_logits_with_threshold_zero() -> None:
    z = jnp.array([[-2.0], [0.0], [3.0]])
    y = jnp.array([[0.0], [1.0], [1.0]])
    np.testing.assert_array_equal(metrics.binary_accuracy(z, y, threshold=0.0), [1.0, 0.0, 1.0])
    # Same answer as thresholding sigmoid(z) at 0.5.
    np.testing.assert_array_equal(metrics.binary_accuracy(jax.nn.sigmoid(z), y),
                                  [1.0, 0.0, 1.0])


def test_regression_precision_is_std_over_250() -> None:
    """Chapter 17's sine data: y = sin(2 pi x) on 1000 points, std = sqrt(1/2)."""
    x = np.arange(1000, dtype=np.float64) / 1000
    y = np.sin(2 * np.pi * x).reshape(-1, 1)
    precision = metrics.regression_precision(jnp.asarray(y, jnp.float32))
    np.testing.assert_allclose(precision, np.std(y) / 250, rtol=1e-6)
    np.testing.assert_allclose(precision, math.sqrt(0.5) / 250, rtol=1e-6)
    assert isinstance(precision, float)
    np.testing.assert_allclose(metrics.regression_precision(y, divisor=100.0),
                               np.std(y) / 100, rtol=1e-6)


@pytest.mark.parametrize("divisor", [0.0, -250.0])
def test_regression_precision_rejects_non_positive_divisor(divisor: float) -> None:
    with pytest.raises(ValueError, match=r"regression_precision: divisor must be > 0, got"):
        metrics.regression_precision(jnp.ones(3), divisor=divisor)


def test_regression_accuracy_strict_within_precision() -> None:
    y = jnp.zeros((5, 1))
    p = jnp.array([[0.125], [0.25], [-0.3], [-0.2], [0.0]])
    # |p - y| < 0.25: yes, no (equal), no, yes, yes
    per_example = metrics.regression_accuracy(p, y, precision=0.25)
    np.testing.assert_array_equal(per_example, [1.0, 0.0, 0.0, 1.0, 1.0])
    two_outputs = metrics.regression_accuracy(jnp.array([[0.1, 0.5]]), jnp.zeros((1, 2)),
                                              precision=0.25)
    np.testing.assert_allclose(two_outputs, [0.5])


def test_regression_accuracy_with_the_books_precision_on_sine() -> None:
    x = jnp.arange(1000, dtype=jnp.float32)[:, None] / 1000
    y = jnp.sin(2 * jnp.pi * x)
    precision = metrics.regression_precision(y)
    accuracy = functools.partial(metrics.regression_accuracy, precision=precision)
    # Every other prediction off by half the precision, the rest by twice it.
    offsets = jnp.where(jnp.arange(1000)[:, None] % 2 == 0, 0.5, 2.0) * precision
    np.testing.assert_allclose(losses.mean(accuracy(y + offsets, y)), 0.5, rtol=1e-7)
    np.testing.assert_allclose(losses.mean(jax.jit(accuracy)(y - offsets, y)), 0.5, rtol=1e-7)


def test_metric_errors_name_the_metric() -> None:
    probs = jnp.array([[0.7, 0.3], [0.4, 0.6]])
    with pytest.raises(ValueError, match=r"categorical_accuracy: label 2 is out of range for "
                                         r"2 classes"):
        metrics.categorical_accuracy(probs, jnp.array([0, 2]))
    with pytest.raises(TypeError, match=r"categorical_accuracy: sparse labels must be integers"):
        metrics.categorical_accuracy(probs, jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"categorical_accuracy: labels of shape \(3,\) do not "
                                         r"match predictions of shape \(2, 2\)"):
        metrics.categorical_accuracy(probs, jnp.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"binary_accuracy: targets of shape \(2,\) do not "
                                         r"match predictions of shape \(2, 1\); reshape targets "
                                         r"to \(2, 1\)"):
        metrics.binary_accuracy(probs[:, :1], jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"regression_accuracy: targets of shape \(2, 2\) do "
                                         r"not match predictions of shape \(2, 1\)"):
        metrics.regression_accuracy(probs[:, :1], probs, precision=0.1)
    with pytest.raises(TypeError, match=r"binary_accuracy: predictions must be floating-point, "
                                        r"got int32"):
        metrics.binary_accuracy(jnp.array([[1], [0]]), jnp.array([[1], [0]]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.0, 1.0, 2.0, -1.0, np.nan, np.inf, -np.inf]),
                         min_size=1, max_size=5).map(tuple), min_size=1, max_size=6)
       .filter(lambda rows: len({len(r) for r in rows}) == 1))
def test_first_argmax_is_argmax_with_ties_and_infinities_and_minus_one_for_nan_rows(
        rows: list[tuple[float, ...]]) -> None:
    values = np.asarray(rows, np.float32)
    expected = np.where(np.isnan(values).any(axis=-1), -1, np.argmax(values, axis=-1))
    np.testing.assert_array_equal(metrics.first_argmax(values), expected)
    np.testing.assert_array_equal(jax.jit(metrics.first_argmax)(values), expected)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 5).flatmap(lambda c: st.tuples(
    st.lists(st.lists(st.sampled_from([0.0, 1.0, 2.0, -1.0, np.inf, -np.inf, np.nan]),
                      min_size=c, max_size=c), min_size=1, max_size=6),
    st.lists(st.integers(0, c - 1), min_size=6, max_size=6))))
def test_categorical_accuracy_equals_argmax_and_is_nan_for_nan_rows(
        case: tuple[list[list[float]], list[int]]) -> None:
    rows, labels = case
    p = np.asarray(rows, np.float32)
    y = np.asarray(labels[:len(rows)], np.int32)
    right = (np.argmax(p, axis=-1) == y).astype(np.float32)
    expected = np.where(np.isnan(p).any(axis=-1), np.nan, right)
    np.testing.assert_array_equal(metrics.categorical_accuracy(p, y), expected)
    one_hot = np.eye(p.shape[1], dtype=np.float32)[y]
    np.testing.assert_array_equal(jax.jit(metrics.categorical_accuracy)(p, one_hot), expected)


def test_categorical_accuracy_with_many_classes_takes_the_reduction_path() -> None:
    rng = np.random.default_rng(3)
    p = rng.integers(0, 4, size=(64, 20)).astype(np.float32)  # many ties
    y = rng.integers(0, 20, size=64).astype(np.int32)
    expected = (np.argmax(p, axis=-1) == y).astype(np.float32)
    assert expected.sum() > 0
    np.testing.assert_array_equal(metrics.categorical_accuracy(p, y), expected)
    np.testing.assert_array_equal(jax.jit(metrics.categorical_accuracy)(p, np.eye(20)[y]),
                                  expected)
