"""Preparing data: shuffles and splits, scalers fitted on training data, one-hot labels,
flattening, and the book's chapter-22 preprocessing of a new photo.

Data knows nothing of models: it takes and returns arrays.
"""

from funcnn.data.images import ImageSource, preprocess_image, read_grayscale, require_pillow
from funcnn.data.splits import host_rng, part_sizes, shuffle, split, split_indices, train_test_split
from funcnn.data.transforms import (
    MinMaxScaler,
    StandardScaler,
    fit_min_max,
    fit_standardize,
    flatten,
    one_hot,
)

__all__ = [
    "ImageSource",
    "MinMaxScaler",
    "StandardScaler",
    "fit_min_max",
    "fit_standardize",
    "flatten",
    "host_rng",
    "one_hot",
    "part_sizes",
    "preprocess_image",
    "read_grayscale",
    "require_pillow",
    "shuffle",
    "split",
    "split_indices",
    "train_test_split",
]
