"""MNIST and Fashion-MNIST from their public IDX files: downloaded once, verified, cached.

Both sets use the same four file names, so each lives in its own directory (see
`funcnn.datasets.download`). Images are uint8 `(N, 28, 28)` in 0..255 with a black
background; labels are int32 `(N,)` in 0..9. The book scales images with
`(x - 127.5) / 127.5` into [-1, 1] (`funcnn.data.fit_min_max(x, per_feature=False)`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from funcnn.datasets.base import DIGIT_NAMES, ImageDataset, LabelledImages, check_labelled
from funcnn.datasets.download import DEFAULT_TIMEOUT, fetch_files
from funcnn.datasets.idx import read_idx
from funcnn.typing import NumpyArray

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
"""The four IDX file names shared by MNIST and Fashion-MNIST."""

IMAGE_SHAPE = (28, 28)

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
"""Public copies of LeCun, Cortes and Burges' MNIST files, tried in order."""

MNIST_SHA256: dict[str, str] = {
    TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
"""SHA-256 of the original gzipped MNIST files (as in tensorflow-datasets' url_checksums)."""

FASHION_MNIST_MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
"""Zalando Research's Fashion-MNIST files, tried in order."""

FASHION_MNIST_SHA256: dict[str, str] = {
    TRAIN_IMAGES: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    TRAIN_LABELS: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    TEST_IMAGES: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    TEST_LABELS: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
"""SHA-256 of the gzipped Fashion-MNIST files (as in tensorflow-datasets' url_checksums)."""

FASHION_MNIST_LABELS: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST's ten class names; `FASHION_MNIST_LABELS[k]` names label `k`."""


def _read_images(path: Path) -> NumpyArray:
    images = read_idx(path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            f"{path}: expected uint8 images of shape (N, 28, 28), "
            f"got {images.dtype} {images.shape}"
        )
    return images


def _read_labels(path: Path) -> NumpyArray:
    labels = read_idx(path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{path}: expected uint8 labels of shape (N,), "
                         f"got {labels.dtype} {labels.shape}")
    return labels.astype(np.int32)


def load_idx_dataset(
    paths: Mapping[str, Path], label_names: tuple[str, ...]
) -> ImageDataset:
    """Read the four IDX files in `paths` (keyed by `IDX_FILES` names) into an ImageDataset."""
    parts = []
    for images_name, labels_name in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images_path, labels_path = paths[images_name], paths[labels_name]
        part = LabelledImages(_read_images(images_path), _read_labels(labels_path), label_names)
        parts.append(check_labelled(part, f"{images_path} / {labels_path.name}"))
    return ImageDataset(parts[0], parts[1])


def _load(
    name: str,
    label_names: tuple[str, ...],
    data_dir: str | os.PathLike[str] | None,
    mirrors: Sequence[str],
    checksums: Mapping[str, str],
    download: bool,
    timeout: float,
) -> ImageDataset:
    missing = [f for f in IDX_FILES if f not in checksums]
    if missing:
        raise ValueError(f"checksums for {name} lack entries for {', '.join(missing)}")
    files = {f: checksums[f] for f in IDX_FILES}
    paths = fetch_files(name, files, mirrors, data_dir, download=download, timeout=timeout)
    return load_idx_dataset(paths, label_names)


def mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    checksums: Mapping[str, str] = MNIST_SHA256,
    download: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> ImageDataset:
    """The MNIST digits: 60,000 train and 10,000 test uint8 images `(N, 28, 28)`, int32 labels.

    `data_dir` is the directory holding (or to receive) the four `.gz` files; by default
    `$FUNCNN_DATA/mnist` or `~/.cache/funcnn/mnist`. Label names are `"0"` ... `"9"`.
    """
    return _load("mnist", DIGIT_NAMES, data_dir, mirrors, checksums, download, timeout)


def fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] = FASHION_MNIST_MIRRORS,
    checksums: Mapping[str, str] = FASHION_MNIST_SHA256,
    download: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> ImageDataset:
    """Fashion-MNIST (the book's chapter 19-22 data): like `mnist`, ten clothing classes.

    Default directory `$FUNCNN_DATA/fashion_mnist` or `~/.cache/funcnn/fashion_mnist`;
    label names are `FASHION_MNIST_LABELS`.
    """
    return _load(
        "fashion_mnist", FASHION_MNIST_LABELS, data_dir, mirrors, checksums, download, timeout
    )
