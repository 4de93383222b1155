"""The book's generated data: shapes, dtypes, reproducibility and the exact formulas."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from funcnn.datasets import sine, spiral, spiral_points, spiral_polar, vertical
from funcnn.datasets.synthetic import SPIRAL_NOISE, class_labels


def test_spiral_shapes_dtypes_and_class_major_labels() -> None:
    x, y = spiral(jax.random.key(0), samples=100, classes=3)
    assert x.shape == (300, 2) and x.dtype == np.float32
    assert y.shape == (300,) and y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(np.asarray(y)), [100, 100, 100])
    np.testing.assert_array_equal(np.asarray(y[:100]), np.zeros(100))
    np.testing.assert_array_equal(np.asarray(y[200:]), np.full(100, 2))


def test_spiral_same_key_same_data_other_key_other_data() -> None:
    a = spiral(jax.random.key(7), 50, 4)
    b = spiral(jax.random.key(7), 50, 4)
    c = spiral(jax.random.key(8), 50, 4)
    np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert not np.allclose(np.asarray(a[0]), np.asarray(c[0]))


def test_spiral_without_noise_is_the_books_formula() -> None:
    samples, classes = 100, 3
    x, _ = spiral(jax.random.key(0), samples, classes, noise=0.0)
    expected = []
    for c in range(classes):
        r = np.linspace(0.0, 1.0, samples)
        t = np.linspace(4.0 * c, 4.0 * (c + 1), samples)
        expected.append(np.stack([r * np.sin(2.5 * t), r * np.cos(2.5 * t)], axis=1))
    np.testing.assert_allclose(np.asarray(x), np.concatenate(expected), atol=1e-5)


def test_spiral_polar_and_points_compose_to_the_noise_free_spiral() -> None:
    radius, angle = spiral_polar(5, 2)
    np.testing.assert_allclose(np.asarray(radius[1]), [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(np.asarray(angle[1]), [4.0, 5.0, 6.0, 7.0, 8.0])
    points = np.asarray(spiral_points(radius, angle)).reshape(10, 2)
    x, _ = spiral(jax.random.key(3), 5, 2, noise=0.0)
    np.testing.assert_allclose(np.asarray(x), points, atol=1e-7)


def test_spiral_noise_moves_only_the_angle_by_0_2_standard_normal() -> None:
    samples, classes = 1000, 3
    key = jax.random.key(11)
    x = np.asarray(spiral(key, samples, classes)[0], dtype=np.float64)
    radius, clean_angle = (np.asarray(a, dtype=np.float64) for a in spiral_polar(samples, classes))
    # The radius is untouched by noise.
    np.testing.assert_allclose(np.hypot(x[:, 0], x[:, 1]), radius.reshape(-1), atol=2e-6)
    # The angle is shifted by 0.2 * N(0,1), drawn from the key as one (classes, samples) normal.
    noise = np.asarray(jax.random.normal(key, (classes, samples)), dtype=np.float64)
    delta = np.arctan2(x[:, 0], x[:, 1]) - 2.5 * clean_angle.reshape(-1)
    delta = (delta + np.pi) % (2 * np.pi) - np.pi
    valid = radius.reshape(-1) > 0.05  # the angle of a point near the origin is ill-defined
    np.testing.assert_allclose(
        delta[valid] / 2.5, SPIRAL_NOISE * noise.reshape(-1)[valid], atol=1e-3
    )


def test_vertical_centres_spread_and_reproducibility() -> None:
    samples, classes = 2000, 3
    x, y = vertical(jax.random.key(1), samples, classes)
    assert x.shape == (6000, 2) and x.dtype == np.float32 and y.dtype == np.int32
    xs = np.asarray(x, dtype=np.float64).reshape(classes, samples, 2)
    for c in range(classes):
        np.testing.assert_allclose(xs[c].mean(axis=0), [c / 3, 0.5], atol=0.01)
        np.testing.assert_allclose(xs[c].std(axis=0), [0.1, 0.1], atol=0.01)
    exact, _ = vertical(jax.random.key(1), 2, 3, noise=0.0)
    np.testing.assert_allclose(
        np.asarray(exact), [[0, 0.5], [0, 0.5], [1 / 3, 0.5], [1 / 3, 0.5], [2 / 3, 0.5],
                            [2 / 3, 0.5]], atol=1e-7
    )
    again, _ = vertical(jax.random.key(1), samples, classes)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(x))


def test_sine_values() -> None:
    x, y = sine(4)
    assert x.shape == y.shape == (4, 1) and x.dtype == y.dtype == np.float32
    np.testing.assert_allclose(np.asarray(x[:, 0]), [0.0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(np.asarray(y[:, 0]), [0.0, 1.0, 0.0, -1.0], atol=1e-6)
    x, y = sine()
    assert x.shape == (1000, 1)
    np.testing.assert_allclose(np.asarray(y), np.sin(2 * np.pi * np.arange(1000) / 1000)[:, None],
                               atol=1e-5)


def test_class_labels() -> None:
    np.testing.assert_array_equal(np.asarray(class_labels(2, 3)), [0, 0, 1, 1, 2, 2])


def test_bad_arguments_raise_clear_errors() -> None:
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="samples must be at least 1, got 0"):
        spiral(key, 0, 3)
    with pytest.raises(TypeError, match="classes must be an int, got float"):
        vertical(key, 10, 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"noise must be finite and non-negative, got -0\.1"):
        spiral(key, 10, 2, noise=-0.1)
    with pytest.raises(TypeError, match="samples must be an int, got bool"):
        sine(True)
