"""Image folders in the book's layout, `root/<label>/*.png`, read with Pillow.

Needs the optional extra `data` (`pip install funcnn[data]`); Pillow is imported only when
an image is read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from funcnn.data.images import read_grayscale
from funcnn.datasets.base import ImageDataset, LabelledImages, check_labelled
from funcnn.typing import NumpyArray


def sorted_label_names(names: list[str]) -> tuple[str, ...]:
    """Names in label order: numerically when all are decimal numbers, else as text."""
    if names and all(name.isascii() and name.isdigit() for name in names):
        return tuple(sorted(names, key=lambda name: (int(name), name)))
    return tuple(sorted(names))


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def image_folder(
    root: str | os.PathLike[str], *, extensions: tuple[str, ...] = (".png",)
) -> LabelledImages:
    """All images under `root/<label>/`: uint8 grayscale `(N, H, W)`, int32 labels `(N,)`.

    Every sub-directory of `root` is a label; label `k` is `label_names[k]` in sorted order
    (numeric when all names are numbers, as in the book's `0` ... `9`). Files are read in name
    order, hidden entries skipped. All images must share one size; the first that differs is
    named in the error, as is an empty label directory or an unreadable file. Colour becomes
    Pillow's luma; 16-bit grayscale is scaled `v -> round(v * 255 / 65535)`, not clipped
    (`funcnn.data.images.gray_pixels`, as in `preprocess_image`).
    """
    base = Path(root)
    if not base.is_dir():
        raise NotADirectoryError(f"image folder {base} is not a directory")
    suffixes = tuple(extension.lower() for extension in extensions)
    found = [entry.name for entry in base.iterdir() if entry.is_dir() and _visible(entry)]
    names = sorted_label_names(found)
    if not names:
        raise ValueError(f"image folder {base} has no label sub-directories")
    images: list[NumpyArray] = []
    labels: list[int] = []
    first: Path | None = None
    for label, name in enumerate(names):
        files = sorted(
            entry for entry in (base / name).iterdir()
            if entry.is_file() and _visible(entry) and entry.suffix.lower() in suffixes
        )
        if not files:
            raise ValueError(f"label directory {base / name} holds no {'/'.join(suffixes)} files")
        for path in files:
            pixels = read_grayscale(path)
            if first is None:
                first = path
            elif pixels.shape != images[0].shape:
                raise ValueError(
                    f"{path}: size {pixels.shape[1]}x{pixels.shape[0]} differs from "
                    f"{first.name}'s {images[0].shape[1]}x{images[0].shape[0]} (width x height)"
                )
            images.append(pixels)
            labels.append(label)
    data = LabelledImages(np.stack(images), np.asarray(labels, dtype=np.int32), names)
    return check_labelled(data, str(base))


def image_folders(
    root: str | os.PathLike[str],
    *,
    train: str = "train",
    test: str = "test",
    extensions: tuple[str, ...] = (".png",),
) -> ImageDataset:
    """`root/train/<label>/*` and `root/test/<label>/*` (the book's Fashion-MNIST images).

    Both parts must have the same label names and image size.
    """
    base = Path(root)
    train_part = image_folder(base / train, extensions=extensions)
    test_part = image_folder(base / test, extensions=extensions)
    if train_part.label_names != test_part.label_names:
        raise ValueError(
            f"{base}: label directories differ between {train} {train_part.label_names} "
            f"and {test} {test_part.label_names}"
        )
    if train_part.images.shape[1:] != test_part.images.shape[1:]:
        raise ValueError(
            f"{base}: {train} images are {train_part.images.shape[1:]} but {test} images are "
            f"{test_part.images.shape[1:]}"
        )
    return ImageDataset(train_part, test_part)
