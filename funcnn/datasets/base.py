"""The containers every image loader returns: labelled images and a train/test pair."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from funcnn.data.splits import split_indices
from funcnn.typing import NumpyArray, PRNGKey

DIGIT_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
"""Label names of the digit sets (MNIST, scikit-learn digits): `"0"` ... `"9"`."""


class LabelledImages(NamedTuple):
    """Images `(N, H, W)`, int32 labels `(N,)` and the name of each label value.

    `label_names[k]` names label `k`; unpacks as `images, labels, label_names = data`.
    """

    images: NumpyArray
    labels: NumpyArray
    label_names: tuple[str, ...]

    @property
    def num_examples(self) -> int:
        """N, the number of images (`len(data)` is the number of fields, 3)."""
        return int(self.labels.shape[0])


class ImageDataset(NamedTuple):
    """A train and a test `LabelledImages` with the same label names.

    `(x_train, y_train, names), (x_test, y_test, _) = mnist()` unpacks it.
    """

    train: LabelledImages
    test: LabelledImages

    @property
    def label_names(self) -> tuple[str, ...]:
        """The label names shared by both parts."""
        return self.train.label_names


def check_labelled(data: LabelledImages, source: str) -> LabelledImages:
    """`data` unchanged after checking lengths, label dtype and range; errors name `source`."""
    images, labels, names = data
    if labels.ndim != 1:
        raise ValueError(f"{source}: labels must have shape (N,), got {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{source}: {images.shape[0]} images but {labels.shape[0]} labels"
        )
    if labels.dtype != np.int32:
        raise TypeError(f"{source}: labels must be int32, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise ValueError(
            f"{source}: labels must lie in [0, {len(names)}), found {labels.min()}..{labels.max()}"
        )
    return data


def split_labelled(
    key: PRNGKey, data: LabelledImages, *, test_fraction: float = 0.2, stratified: bool = True
) -> ImageDataset:
    """A reproducible train/test split of `data` (numpy arrays kept on the host).

    Stratified by default: every class keeps its share in both parts (see
    `funcnn.data.split_indices`).
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    train_idx, test_idx = split_indices(
        key,
        data.num_examples,
        (1.0 - test_fraction, test_fraction),
        stratify=data.labels if stratified else None,
    )
    return ImageDataset(
        LabelledImages(data.images[train_idx], data.labels[train_idx], data.label_names),
        LabelledImages(data.images[test_idx], data.labels[test_idx], data.label_names),
    )
