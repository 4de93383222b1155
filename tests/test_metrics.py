"""Accuracy metrics (book chapters 5, 16, 17) by hand, with the book's examples, in float32,
float64 (x64 on) and bfloat16, and their score dtypes."""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funcnn import losses, metrics

DTYPES = ("float32", "float64", "bfloat16")
# the dtype of the scores for predictions of each dtype: promote(dtype, float32)
SCORE_DTYPE = {"float32": jnp.float32, "float64": jnp.float64, "bfloat16": jnp.float32,
               "float16": jnp.float32}


def x64(dtype: str) -> Any:
    """x64 on for float64, off otherwise."""
    return jax.enable_x64(dtype == "float64")


def cast(x: Any, dtype: str) -> jax.Array:
    """`x` (NumPy float64 or a list) as a jax array of `dtype`."""
    return jnp.asarray(np.asarray(x, np.float64), dtype)


def exact(x: Any) -> np.ndarray:
    """The values `x` holds, in float64."""
    return np.asarray(x, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_book_categorical_accuracy_example(dtype: str) -> None:
    """Chapter 5: argmax [0, 0, 1] against targets [0, 1, 1] -> 2/3."""
    with x64(dtype):
        softmax_outputs = cast([[0.7, 0.2, 0.1], [0.5, 0.1, 0.4], [0.02, 0.9, 0.08]], dtype)
        class_targets = jnp.array([0, 1, 1])
        per_example = metrics.categorical_accuracy(softmax_outputs, class_targets)
        np.testing.assert_array_equal(exact(per_example), [1.0, 0.0, 1.0])
        assert per_example.dtype == SCORE_DTYPE[dtype]
        assert losses.mean(per_example).dtype == SCORE_DTYPE[dtype]
        np.testing.assert_allclose(exact(losses.mean(per_example)), 2 / 3,
                                   rtol=1e-12 if dtype == "float64" else 1e-7)
        one_hot = jax.nn.one_hot(class_targets, 3, dtype=dtype)
        np.testing.assert_array_equal(metrics.categorical_accuracy(softmax_outputs, one_hot),
                                      per_example)


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_accuracy_sparse_and_one_hot_agree_on_random_batches(dtype: str) -> None:
    rng = np.random.default_rng(0)
    with x64(dtype):
        probs = cast(rng.uniform(size=(4, 50, 6)), dtype)
        labels = jnp.asarray(rng.integers(0, 6, size=(4, 50)), jnp.int32)
        sparse = metrics.categorical_accuracy(probs, labels)
        assert sparse.shape == (4, 50)
        assert sparse.dtype == SCORE_DTYPE[dtype]
        np.testing.assert_array_equal(sparse, metrics.categorical_accuracy(
            probs, jax.nn.one_hot(labels, 6, dtype=dtype)))
        # NumPy's argmax of the values held (bfloat16's rounding makes ties: first wins)
        expected = np.argmax(exact(probs), -1) == np.asarray(labels)
        np.testing.assert_array_equal(exact(sparse), expected.astype(np.float64))
        # Works on logits as well: argmax is unchanged by a monotone map.
        np.testing.assert_array_equal(metrics.categorical_accuracy(probs * 2 - 1, labels),
                                      sparse)


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_accuracy_ties_go_to_the_first_class(dtype: str) -> None:
    """np.argmax (the book's) picks the first maximum."""
    with x64(dtype):
        probs = cast([[0.5, 0.5], [0.5, 0.5]], dtype)
        np.testing.assert_array_equal(
            exact(metrics.categorical_accuracy(probs, jnp.array([0, 1]))), [1.0, 0.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_accuracy_is_strict_at_one_half(dtype: str) -> None:
    with x64(dtype):  # 0.51 and 0.49 stay on their side of 0.5 in bfloat16
        p = cast([[0.5], [0.5], [0.51], [0.49], [0.9]], dtype)
        y = np.array([[0.0], [1.0], [1.0], [0.0], [0.0]])
        # predictions (p > 0.5): 0, 0, 1, 0, 1
        per_example = metrics.binary_accuracy(p, cast(y, dtype))
        assert per_example.dtype == SCORE_DTYPE[dtype]
        np.testing.assert_array_equal(exact(per_example), [1.0, 0.0, 1.0, 1.0, 0.0])
        np.testing.assert_allclose(exact(losses.mean(per_example)), 0.6,
                                   rtol=1e-12 if dtype == "float64" else 1e-7)
        # Integer and bool targets are the same labels.
        np.testing.assert_array_equal(
            metrics.binary_accuracy(p, jnp.asarray(y, jnp.int32)), per_example)
        np.testing.assert_array_equal(metrics.binary_accuracy(p, y > 0.5), per_example)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_accuracy_multi_label_is_the_mean_over_outputs(dtype: str) -> None:
    with x64(dtype):
        p = cast([[0.9, 0.2, 0.7, 0.4], [0.1, 0.6, 0.5, 0.8]], dtype)
        y = cast([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], dtype)
        # row 0: 1,0,1,0 vs 1,0,0,0 -> 3/4; row 1: 0,1,0,1 vs 1,1,1,1 -> 2/4
        np.testing.assert_array_equal(exact(metrics.binary_accuracy(p, y)), [0.75, 0.5])


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_accuracy_on_logits_with_threshold_zero(dtype: str) -> None:
    with x64(dtype):
        z = cast([[-2.0], [0.0], [3.0]], dtype)
        y = cast([[0.0], [1.0], [1.0]], dtype)
        np.testing.assert_array_equal(exact(metrics.binary_accuracy(z, y, threshold=0.0)),
                                      [1.0, 0.0, 1.0])
        # Same answer as thresholding sigmoid(z) at 0.5.
        np.testing.assert_array_equal(exact(metrics.binary_accuracy(jax.nn.sigmoid(z), y)),
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


@pytest.mark.parametrize("dtype", DTYPES)
def test_regression_accuracy_strict_within_precision(dtype: str) -> None:
    with x64(dtype):
        y = cast(np.zeros((5, 1)), dtype)
        p = cast([[0.125], [0.25], [-0.3], [-0.2], [0.0]], dtype)
        # |p - y| < 0.25: yes, no (equal), no, yes, yes
        per_example = metrics.regression_accuracy(p, y, precision=0.25)
        assert per_example.dtype == SCORE_DTYPE[dtype]
        np.testing.assert_array_equal(exact(per_example), [1.0, 0.0, 0.0, 1.0, 1.0])
        two_outputs = metrics.regression_accuracy(cast([[0.1, 0.5]], dtype),
                                                  cast(np.zeros((1, 2)), dtype), precision=0.25)
        np.testing.assert_array_equal(exact(two_outputs), [0.5])


@pytest.mark.parametrize("dtype", DTYPES)
def test_regression_accuracy_with_the_books_precision_on_sine(dtype: str) -> None:
    """Every other prediction off by half the precision, the rest by twice it: 0.5 in
    float32 and float64. bfloat16's spacing near 1 (2^-8) exceeds the precision (0.0028),
    so there the score is NumPy's on the rounded values."""
    x = np.arange(1000, dtype=np.float64)[:, None] / 1000
    y64 = np.sin(2 * np.pi * x)
    precision = metrics.regression_precision(y64)
    offsets = np.where(np.arange(1000)[:, None] % 2 == 0, 0.5, 2.0) * precision
    accuracy = functools.partial(metrics.regression_accuracy, precision=precision)
    with x64(dtype):
        y = cast(y64, dtype)
        for p in (cast(y64 + offsets, dtype), cast(y64 - offsets, dtype)):
            expected = np.mean(np.abs(exact(p) - exact(y)) < precision)
            if dtype != "bfloat16":
                assert expected == 0.5
            np.testing.assert_allclose(exact(losses.mean(accuracy(p, y))), expected, rtol=1e-7)
            np.testing.assert_allclose(exact(losses.mean(jax.jit(accuracy)(p, y))), expected,
                                       rtol=1e-7)


@pytest.mark.parametrize("dtype", [*DTYPES, "float16"])
def test_every_metric_scores_in_at_least_float32(dtype: str) -> None:
    """bfloat16 and float16 predictions score in float32; float32 and float64 in theirs."""
    with x64(dtype):
        p = cast([[0.7, 0.3], [0.4, 0.6]], dtype)
        y = cast([[1.0, 0.0], [1.0, 1.0]], dtype)
        scores = [metrics.categorical_accuracy(p, jnp.array([0, 0])),
                  metrics.categorical_accuracy(p, y),
                  jax.jit(metrics.binary_accuracy)(p, y),
                  metrics.regression_accuracy(p, y, precision=0.35)]
        for score in scores:
            assert score.dtype == SCORE_DTYPE[dtype]
        np.testing.assert_array_equal(exact(scores[0]), [1.0, 0.0])
        np.testing.assert_array_equal(exact(scores[2]), [1.0, 0.5])
        np.testing.assert_array_equal(exact(scores[3]), [1.0, 0.0])
        assert metrics.first_argmax(p).dtype == metrics.threshold_classes(p).dtype == jnp.int32


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
