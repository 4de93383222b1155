"""Preparing data: shuffles and splits, scalers fitted on training data, one-hot labels,
flattening, the book's chapter-22 preprocessing of a new photo, and batch sources that
read minibatches from arrays or memmaps one at a time (`ArraySource`).

Data knows nothing of models: it takes and returns arrays.
"""

from funcnn.data.images import ImageSource, preprocess_image, read_grayscale, require_pillow
from funcnn.data.orders import epoch_orders, key_seed
from funcnn.data.source import ArraySource, EpochSource, load_npy_directory
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
    "ArraySource",
    "EpochSource",
    "ImageSource",
    "MinMaxScaler",
    "StandardScaler",
    "epoch_orders",
    "fit_min_max",
    "fit_standardize",
    "flatten",
    "host_rng",
    "key_seed",
    "load_npy_directory",
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
