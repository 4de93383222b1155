"""scikit-learn's digits and image folders in the book's `root/<label>/*.png` layout."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from funcnn.datasets import (
    DIGIT_NAMES,
    DIGITS_MAX,
    digits,
    digits_split,
    image_folder,
    image_folders,
)

DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_are_the_real_uci_digits() -> None:
    images, labels, names = digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int32
    assert names == DIGIT_NAMES
    assert images.min() == 0.0 and images.max() == DIGITS_MAX == 16.0
    np.testing.assert_array_equal(images, np.round(images))  # integer counts 0..16
    np.testing.assert_array_equal(np.bincount(labels), DIGIT_COUNTS)
    np.testing.assert_array_equal(images[0, 0], [0, 0, 5, 13, 9, 1, 0, 0])  # the first "0"
    np.testing.assert_array_equal(labels[:10], np.arange(10))


def test_digits_split_is_stratified_reproducible_and_disjoint() -> None:
    split = digits_split(jax.random.key(0), test_fraction=0.2)
    again = digits_split(jax.random.key(0), test_fraction=0.2)
    assert split.train.images.shape == (1438, 8, 8) and split.test.images.shape == (359, 8, 8)
    np.testing.assert_array_equal(split.test.images, again.test.images)
    test_counts = np.bincount(split.test.labels, minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * np.asarray(DIGIT_COUNTS)) < 2)
    np.testing.assert_array_equal(test_counts + np.bincount(split.train.labels), DIGIT_COUNTS)
    # Disjoint: every original image appears exactly once across the two parts.
    every = {row.tobytes() for row in digits().images}
    seen = [row.tobytes() for row in np.concatenate([split.train.images, split.test.images])]
    assert len(seen) == 1797 and set(seen) == every
    assert split.label_names == DIGIT_NAMES


def test_digits_without_scikit_learn_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=re.escape("pip install funcnn[data]")):
        digits()


def save(path: Path, pixels: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode=mode).save(path)


def gray(value: int, size: tuple[int, int] = (4, 3)) -> np.ndarray:
    return np.full(size, value, dtype=np.uint8)


def test_image_folder_reads_labels_in_numeric_order(tmp_path: Path) -> None:
    for label in ("0", "1", "2", "10"):
        save(tmp_path / label / "b.png", gray(int(label) * 10))
        save(tmp_path / label / "a.png", gray(int(label) * 10 + 1))
    (tmp_path / "README.txt").write_text("not a label")
    save(tmp_path / ".hidden" / "x.png", gray(0))
    (tmp_path / "1" / "notes.txt").write_text("skipped")
    save(tmp_path / "1" / ".x.png", gray(0))
    images, labels, names = image_folder(tmp_path)
    assert names == ("0", "1", "2", "10")
    assert images.shape == (8, 4, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2, 3, 3])
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(images[:, 0, 0], [1, 0, 11, 10, 21, 20, 101, 100])


def test_image_folder_sorts_text_labels_and_converts_colour(tmp_path: Path) -> None:
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    save(tmp_path / "shirt" / "0.png", red, mode="RGB")
    save(tmp_path / "bag" / "0.png", gray(7, (2, 2)))
    images, labels, names = image_folder(tmp_path)
    assert names == ("bag", "shirt")
    np.testing.assert_array_equal(labels, [0, 1])
    # Pillow's luma: (255 * 19595 + 2**15) >> 16 = 76 for pure red.
    np.testing.assert_array_equal(images[1], np.full((2, 2), 76))


def test_image_folder_names_the_odd_sized_file(tmp_path: Path) -> None:
    save(tmp_path / "0" / "a.png", gray(0, (28, 28)))
    save(tmp_path / "1" / "b.png", gray(0, (28, 27)))
    with pytest.raises(ValueError, match=re.escape(
        f"{tmp_path / '1' / 'b.png'}: size 27x28 differs from a.png's 28x28 (width x height)"
    )):
        image_folder(tmp_path)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="has no label sub-directories"):
        image_folder(tmp_path)
    (tmp_path / "cat").mkdir()
    with pytest.raises(ValueError, match=re.escape(f"label directory {tmp_path / 'cat'} holds no")):
        image_folder(tmp_path)
    (tmp_path / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'cat' / 'broken.png'}: cannot")):
        image_folder(tmp_path)


SIXTEEN_BIT = np.array([[0, 128, 129, 257, 32767, 32768],
                        [1000, 65278, 65406, 65407, 65534, 65535]], np.uint16)
"""16-bit values around the rounding edges of v -> round(v * 255 / 65535) = round(v / 257)."""
SIXTEEN_BIT_AS_8 = np.array([[0, 0, 1, 1, 127, 128], [4, 254, 254, 255, 255, 255]], np.uint8)


def test_image_folder_scales_16_bit_grayscale_by_its_bit_depth(tmp_path: Path) -> None:
    path = tmp_path / "0" / "deep.png"
    path.parent.mkdir()
    Image.fromarray(SIXTEEN_BIT).save(path)
    with Image.open(path) as image:
        assert image.mode == "I;16"  # a real 16-bit grayscale PNG
    save(tmp_path / "1" / "flat.png", gray(200, (2, 6)))
    images, labels, _ = image_folder(tmp_path)
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], SIXTEEN_BIT_AS_8)
    np.testing.assert_array_equal(images[0], np.round(SIXTEEN_BIT / 257.0))
    np.testing.assert_array_equal(images[1], gray(200, (2, 6)))  # 8-bit files unchanged
    np.testing.assert_array_equal(labels, [0, 1])


def test_image_folder_refuses_32_bit_pixels_beyond_255(tmp_path: Path) -> None:
    path = tmp_path / "0" / "wide.tif"
    path.parent.mkdir()
    Image.fromarray(np.array([[0, 255], [256, 70000]], np.int32)).save(path)
    with pytest.raises(ValueError, match=re.escape(
        f"{path}: pixel values span 0..70000, beyond 0..255, and Pillow mode I images have no "
        "known bit depth; save the image as 8- or 16-bit grayscale"
    )):
        image_folder(tmp_path, extensions=(".tif",))
    Image.fromarray(np.array([[0, 255], [17, 3]], np.int32)).save(path)  # 8-bit values: fine
    np.testing.assert_array_equal(image_folder(tmp_path, extensions=(".tif",)).images[0],
                                  [[0, 255], [17, 3]])


def test_image_folders_train_and_test(tmp_path: Path) -> None:
    for part, value in (("train", 1), ("test", 2)):
        for label in ("0", "1"):
            save(tmp_path / part / label / "0000.png", gray(value, (28, 28)))
    data = image_folders(tmp_path)
    assert data.train.images.shape == data.test.images.shape == (2, 28, 28)
    assert data.label_names == ("0", "1")
    assert data.train.images[0, 0, 0] == 1 and data.test.images[0, 0, 0] == 2
    save(tmp_path / "test" / "2" / "0000.png", gray(0, (28, 28)))
    with pytest.raises(ValueError, match=r"label directories differ between train \('0', '1'\)"):
        image_folders(tmp_path)


def test_image_folder_without_pillow_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(tmp_path / "0" / "a.png", gray(0))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=re.escape("pip install funcnn[data]")):
        image_folder(tmp_path)


def test_digits_split_rejects_a_bad_fraction() -> None:
    with pytest.raises(ValueError, match=r"strictly between 0 and 1, got 1\.5"):
        digits_split(jax.random.key(0), test_fraction=1.5)
