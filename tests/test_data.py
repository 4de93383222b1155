"""Shuffles, splits, scalers, one-hot labels, flattening and photo preprocessing."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from funcnn.data import (
    MinMaxScaler,
    StandardScaler,
    fit_min_max,
    fit_standardize,
    flatten,
    one_hot,
    part_sizes,
    preprocess_image,
    shuffle,
    split,
    split_indices,
    train_test_split,
)

KEY = jax.random.key(0)


# --- shuffle ---------------------------------------------------------------------------


def test_shuffle_applies_one_permutation_to_all_arrays() -> None:
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 10
    sx, sy = shuffle(KEY, x, y)
    assert isinstance(sx, jax.Array) and sx.shape == (10, 2)
    np.testing.assert_array_equal(np.asarray(sx[:, 0]) * 5, np.asarray(sy))
    assert sorted(np.asarray(sy).tolist()) == y.tolist()
    assert not np.array_equal(np.asarray(sy), y)
    np.testing.assert_array_equal(np.asarray(shuffle(KEY, x, y)[1]), np.asarray(sy))
    assert not np.array_equal(np.asarray(shuffle(jax.random.key(1), y)[0]), np.asarray(sy))


def test_shuffle_under_jit_matches_eager() -> None:
    x = jnp.arange(12.0).reshape(6, 2)
    eager = shuffle(KEY, x)[0]
    jitted = jax.jit(shuffle)(KEY, x)[0]
    np.testing.assert_array_equal(np.asarray(eager), np.asarray(jitted))


def test_shuffle_rejects_unequal_lengths_and_scalars() -> None:
    with pytest.raises(ValueError, match=re.escape(
        "shuffle: arrays differ in length along axis 0: (3, 2), (4,)"
    )):
        shuffle(KEY, np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="shuffle needs at least one array"):
        shuffle(KEY)
    with pytest.raises(ValueError, match="array 1 is a scalar"):
        shuffle(KEY, np.zeros(3), 1.0)


# --- splits ----------------------------------------------------------------------------


def test_part_sizes_use_largest_remainders() -> None:
    assert part_sizes(10, (0.7, 0.3)) == (7, 3)
    assert part_sizes(1797, (0.8, 0.2)) == (1438, 359)
    assert part_sizes(10, (1 / 3, 1 / 3, 1 / 3)) == (4, 3, 3)
    assert part_sizes(100, (0.29, 0.71)) == (29, 71)
    with pytest.raises(ValueError, match=r"fractions must sum to 1, got \(0.5, 0.4\)"):
        part_sizes(10, (0.5, 0.4))
    with pytest.raises(ValueError, match="fractions must be positive and finite"):
        part_sizes(10, (1.2, -0.2))
    with pytest.raises(ValueError, match=re.escape(
        "splitting 3 examples by fractions (0.9, 0.1) leaves a part empty (sizes (3, 0))"
    )):
        part_sizes(3, (0.9, 0.1))


def test_split_sizes_disjoint_covering_aligned_and_reproducible() -> None:
    x = np.arange(100)
    y = x * 2.0
    parts = split(KEY, x, y, fractions=(0.6, 0.3, 0.1))
    assert [p[0].shape[0] for p in parts] == [60, 30, 10]
    together = np.concatenate([np.asarray(p[0]) for p in parts])
    np.testing.assert_array_equal(np.sort(together), x)
    for px, py in parts:
        np.testing.assert_array_equal(np.asarray(px) * 2.0, np.asarray(py))
    again = split(KEY, x, y, fractions=(0.6, 0.3, 0.1))
    np.testing.assert_array_equal(np.asarray(again[2][0]), np.asarray(parts[2][0]))
    other = split(jax.random.key(5), x, y, fractions=(0.6, 0.3, 0.1))
    assert not np.array_equal(np.asarray(other[2][0]), np.asarray(parts[2][0]))
    assert not np.array_equal(np.asarray(parts[0][0]), np.sort(np.asarray(parts[0][0])))


def test_train_test_split_on_jax_arrays() -> None:
    x = jnp.arange(50.0).reshape(25, 2)
    (x_train, ), (x_test, ) = train_test_split(KEY, x, test_fraction=0.2)
    assert x_train.shape == (20, 2) and x_test.shape == (5, 2)
    rows = {tuple(r) for r in np.asarray(x_train).tolist()} | {
        tuple(r) for r in np.asarray(x_test).tolist()}
    assert len(rows) == 25
    with pytest.raises(ValueError, match="test_fraction must lie strictly between 0 and 1"):
        train_test_split(KEY, x, test_fraction=1.0)


def test_stratified_split_keeps_class_proportions() -> None:
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    np.random.default_rng(0).shuffle(labels)
    x = np.arange(100)
    (x_train, y_train), (x_test, y_test) = train_test_split(
        KEY, x, labels, test_fraction=0.2, stratify=labels
    )
    np.testing.assert_array_equal(np.bincount(np.asarray(y_test)), [10, 6, 4])
    np.testing.assert_array_equal(np.bincount(np.asarray(y_train)), [40, 24, 16])
    np.testing.assert_array_equal(labels[np.asarray(x_test)], np.asarray(y_test))
    assert len(set(np.asarray(x_train).tolist()) | set(np.asarray(x_test).tolist())) == 100
    # the test part is mixed, not grouped by class
    assert not np.array_equal(np.asarray(y_test), np.sort(np.asarray(y_test)))


@pytest.mark.parametrize("seed", range(6))
def test_stratified_split_indices_on_awkward_counts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 40, size=rng.integers(2, 6))
    labels = rng.permutation(np.repeat(np.arange(counts.size), counts))
    fractions = tuple(rng.dirichlet(np.ones(3)) * 0.7 + 0.1)
    fractions = tuple(np.asarray(fractions) / sum(fractions))
    n = labels.size
    parts = split_indices(jax.random.key(seed), n, fractions, stratify=labels)
    sizes = part_sizes(n, fractions)
    assert tuple(p.size for p in parts) == sizes
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n))
    for size, part in zip(sizes, parts, strict=True):
        got = np.bincount(labels[part], minlength=counts.size)
        assert np.all(np.abs(got - counts * size / n) < 2)


def test_stratify_labels_must_match() -> None:
    with pytest.raises(ValueError, match=r"stratify labels must have shape \(10,\), got \(9,\)"):
        split_indices(KEY, 10, (0.5, 0.5), stratify=np.zeros(9))
    with pytest.raises(TypeError, match="needs a concrete key"):
        jax.jit(lambda k: split_indices(k, 10, (0.5, 0.5))[0].size)(KEY)


# --- scalers ---------------------------------------------------------------------------


TRAIN = np.array([[0.0, 10.0], [5.0, 20.0], [10.0, 30.0]], dtype=np.float32)
TEST = np.array([[20.0, 0.0]], dtype=np.float32)


def test_min_max_known_values_fit_on_train_applied_to_test() -> None:
    scaler = fit_min_max(TRAIN)
    np.testing.assert_allclose(np.asarray(scaler.transform(TRAIN)), [[-1, -1], [0, 0], [1, 1]])
    np.testing.assert_allclose(np.asarray(scaler.transform(TEST)), [[3.0, -2.0]])
    unit = fit_min_max(TRAIN, (0.0, 1.0))
    np.testing.assert_allclose(np.asarray(unit.transform(TEST)), [[2.0, -0.5]])
    single = scaler.transform(np.array([5.0, 30.0]))  # one example, no batch axis
    np.testing.assert_allclose(np.asarray(single), [0.0, 1.0])


def test_min_max_round_trip_and_zero_range_without_nan() -> None:
    x = np.array([[1.0, 7.0, -3.0], [4.0, 7.0, 5.0], [2.5, 7.0, 1.0]], dtype=np.float32)
    scaler = fit_min_max(x)
    y = scaler.transform(x)
    assert not np.any(np.isnan(np.asarray(y)))
    np.testing.assert_allclose(np.asarray(y[:, 1]), [-1.0, -1.0, -1.0])  # constant -> low
    np.testing.assert_allclose(np.asarray(scaler.inverse_transform(y)), x, rtol=1e-6)


def test_min_max_global_is_the_books_pixel_scaling() -> None:
    pixels = np.array([[0, 255, 128], [64, 1, 200]], dtype=np.uint8)
    scaler = fit_min_max(pixels, per_feature=False)
    y = scaler.transform(pixels)
    assert y.dtype == jnp.float32 and scaler.data_min.shape == ()
    np.testing.assert_allclose(np.asarray(y), (pixels - 127.5) / 127.5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(scaler.inverse_transform(y)), pixels, atol=1e-4)


def test_standardize_known_values_and_constant_features() -> None:
    scaler = fit_standardize(TRAIN)
    np.testing.assert_allclose(np.asarray(scaler.mean), [5.0, 20.0])
    np.testing.assert_allclose(np.asarray(scaler.scale), np.sqrt([50 / 3, 200 / 3]), rtol=1e-6)
    z = np.asarray(scaler.transform(TRAIN))
    np.testing.assert_allclose(z.mean(axis=0), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(z.std(axis=0), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(scaler.transform(TEST)), [[15 / np.sqrt(50 / 3), -20 / np.sqrt(200 / 3)]],
        rtol=1e-6,
    )
    constant = np.array([[0.1, 1.0], [0.1, 2.0], [0.1, 3.0]], dtype=np.float32)
    fitted = fit_standardize(constant)
    out = np.asarray(fitted.transform(constant))
    np.testing.assert_array_equal(out[:, 0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(np.asarray(fitted.inverse_transform(out)), constant, rtol=1e-6)


def test_scalers_are_pytrees_usable_under_jit() -> None:
    scaler = fit_standardize(TRAIN)
    jitted = jax.jit(lambda s, x: s.transform(x))(scaler, TEST)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(scaler.transform(TEST)))
    assert isinstance(jax.tree_util.tree_map(lambda a: a, scaler), StandardScaler)
    assert len(jax.tree_util.tree_leaves(fit_min_max(TRAIN))) == 4
    assert isinstance(fit_min_max(TRAIN), MinMaxScaler)


def test_scaler_errors() -> None:
    scaler = fit_min_max(TRAIN)
    with pytest.raises(ValueError, match=re.escape(
        "MinMaxScaler was fitted on features of shape (2,), got input of shape (4, 3)"
    )):
        scaler.transform(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="feature_range must be finite with low < high"):
        fit_min_max(TRAIN, (1.0, -1.0))
    with pytest.raises(ValueError, match="fit_standardize: data contains NaN or infinity"):
        fit_standardize(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="fit_min_max needs at least one example"):
        fit_min_max(np.zeros((0, 3)))


# --- one_hot and flatten -----------------------------------------------------------------


def test_one_hot_values() -> None:
    encoded = one_hot(np.array([2, 0, 1]), 3)
    assert encoded.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(encoded), [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(
        np.asarray(one_hot(jnp.array([[1], [0]], jnp.uint8), 2, dtype=jnp.int32)),
        [[[0, 1]], [[1, 0]]],
    )
    jitted = jax.jit(lambda y: one_hot(y, 4))(jnp.array([3, 1]))
    np.testing.assert_array_equal(np.asarray(jitted), [[0, 0, 0, 1], [0, 1, 0, 0]])


def test_one_hot_errors() -> None:
    message = "labels must lie in [0, 3), found values from 0 to 3"
    with pytest.raises(ValueError, match=re.escape(message)):
        one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="found values from -1 to 1"):
        one_hot(np.array([-1, 1]), 3)
    with pytest.raises(TypeError, match="one_hot needs integer labels, got dtype float32"):
        one_hot(np.array([1.0, 0.0], dtype=np.float32), 2)
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        one_hot(np.array([0]), 0)


def test_flatten_keeps_the_first_axis() -> None:
    x = np.arange(24).reshape(2, 3, 4)
    np.testing.assert_array_equal(np.asarray(flatten(x)), x.reshape(2, 12))
    assert flatten(np.zeros(5)).shape == (5, 1)
    assert flatten(np.zeros((0, 28, 28))).shape == (0, 784)
    with pytest.raises(ValueError, match="flatten needs an example axis"):
        flatten(np.float32(1.0))


# --- preprocess_image ----------------------------------------------------------------------


def test_preprocess_image_at_target_size_is_exact() -> None:
    pixels = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)
    result = preprocess_image(pixels)
    assert result.shape == (784,) and result.dtype == jnp.float32
    expected = ((255.0 - pixels.astype(np.float64)) - 127.5) / 127.5
    np.testing.assert_allclose(np.asarray(result), expected.reshape(-1), atol=1e-7)
    plain = preprocess_image(pixels, invert=False, flatten=False)
    assert plain.shape == (28, 28)
    np.testing.assert_allclose(np.asarray(plain), (pixels - 127.5) / 127.5, atol=1e-7)
    assert float(result.min()) >= -1.0 and float(result.max()) <= 1.0


def test_preprocess_image_resizes_a_constant_photo() -> None:
    result = preprocess_image(np.full((60, 40), 200, np.uint8))
    np.testing.assert_allclose(np.asarray(result), np.full(784, (55.0 - 127.5) / 127.5), atol=1e-7)


def test_preprocess_image_resizes_halves_and_converts_colour(tmp_path: Path) -> None:
    photo = np.zeros((56, 56, 3), np.uint8)
    photo[:, 28:] = 255  # left half black, right half white
    result = np.asarray(preprocess_image(photo, flatten=False))
    np.testing.assert_allclose(result[:, :12], 1.0)  # black, inverted to white
    np.testing.assert_allclose(result[:, 16:], -1.0)
    red = np.zeros((28, 28, 3), np.uint8)
    red[..., 0] = 255  # Pillow's luma of pure red is 76
    np.testing.assert_allclose(np.asarray(preprocess_image(red)), (179.0 - 127.5) / 127.5,
                               atol=1e-7)
    path = tmp_path / "tshirt.png"
    Image.fromarray(photo).save(path)
    from_path = preprocess_image(path, flatten=False)
    from_pillow = preprocess_image(Image.fromarray(photo), flatten=False)
    np.testing.assert_array_equal(np.asarray(from_path), result)
    np.testing.assert_array_equal(np.asarray(from_pillow), result)
    np.testing.assert_array_equal(np.asarray(preprocess_image(str(path), flatten=False)), result)


def test_preprocess_image_of_a_16_bit_png_agrees_with_image_folder(tmp_path: Path) -> None:
    from funcnn.datasets import image_folder

    values = np.linspace(0, 65535, 28 * 28).round().astype(np.uint16).reshape(28, 28)
    path = tmp_path / "0" / "deep.png"
    path.parent.mkdir()
    Image.fromarray(values).save(path)
    eight_bit = ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v / 257)
    folder = image_folder(tmp_path).images[0]
    np.testing.assert_array_equal(folder, eight_bit)
    assert (folder.min(), folder.max()) == (0, 255)
    expected = np.asarray(preprocess_image(eight_bit, flatten=False))
    np.testing.assert_allclose(expected, (255.0 - eight_bit - 127.5) / 127.5, atol=1e-7)
    with Image.open(path) as opened:
        from_pillow = preprocess_image(opened, flatten=False)
        # What Pillow before 10.3 returns for this file: mode "I" (int32), format PNG.
        old_pillow = opened.convert("I")
        old_pillow.format = "PNG"
        from_old_pillow = preprocess_image(old_pillow, flatten=False)
    for result in (preprocess_image(path, flatten=False), from_pillow, from_old_pillow):
        np.testing.assert_array_equal(np.asarray(result), expected)


def test_preprocess_image_refuses_wide_pixels_it_cannot_scale() -> None:
    wide = Image.fromarray(np.array([[-3, 0], [255, 1000]], np.int32))
    assert wide.mode == "I"
    with pytest.raises(ValueError, match=re.escape(
        "preprocess_image: pixel values span -3..1000, beyond 0..255, and Pillow mode I images "
        "have no known bit depth; save the image as 8- or 16-bit grayscale"
    )):
        preprocess_image(wide)
    floats = Image.fromarray(np.array([[0.0, np.nan], [1.0, 2.0]], np.float32))
    with pytest.raises(ValueError, match=r"^preprocess_image: pixel values include NaN, and "
                                         r"Pillow mode F images have no known bit depth"):
        preprocess_image(floats)


def test_preprocess_image_errors() -> None:
    with pytest.raises(TypeError, match=r"needs uint8 pixels in 0\.\.255, got dtype float64"):
        preprocess_image(np.zeros((28, 28)))
    message = "shape (H, W) or (H, W, 1|3|4), got (28, 28, 2)"
    with pytest.raises(ValueError, match=re.escape(message)):
        preprocess_image(np.zeros((28, 28, 2), np.uint8))
    with pytest.raises(ValueError, match="size must be positive"):
        preprocess_image(np.zeros((28, 28), np.uint8), size=(0, 28))
