"""scikit-learn's bundled 8x8 handwritten digits: real data that needs no download.

Needs the optional extra `data` (`pip install funcnn[data]`); scikit-learn is imported only
when `digits()` is called.
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

DIGITS_MAX = 16.0
"""Largest pixel value of the 8x8 digits: each pixel counts the set bits of a 4x4 block."""

_MISSING = (
    "funcnn.datasets.digits needs scikit-learn, which is not installed; "
    "install it with `pip install funcnn[data]`"
)


def digits() -> LabelledImages:
    """The 1,797 UCI digits: images float32 `(N, 8, 8)` with integer values in [0, 16].

    Labels are int32 in 0..9, names `"0"` ... `"9"`; samples come in scikit-learn's order.
    Divide by `DIGITS_MAX` for [0, 1] or use `funcnn.data.fit_min_max(x, per_feature=False)`
    for the book's [-1, 1].
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(_MISSING) from error
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32)
    labels = np.asarray(bunch.target, dtype=np.int32)
    return check_labelled(LabelledImages(images, labels, DIGIT_NAMES), "sklearn digits")


def digits_split(
    key: PRNGKey, *, test_fraction: float = 0.2, stratified: bool = True
) -> ImageDataset:
    """`digits()` split reproducibly into train and test (stratified by digit by default)."""
    return split_labelled(key, digits(), test_fraction=test_fraction, stratified=stratified)
