"""The `funcnn` command's named data sets as raw train / validation / test splits.

Raw means as the loaders give them (points, sine samples, pixels in 0..16 or 0..255, as
float32); the scaling is fitted on the training part (see `funcnn.cli.model_spec`). Every split
is reproducible from the seed alone, so `funcnn evaluate` rebuilds the test part that
`funcnn train` held out.

- spiral, vertical: three independent draws of `samples` points per class (3 classes)
  for train, validation and test;
- sine: the book's `x = i / N` for training, `(i + 1/2) / N` for validation and
  `(i + 1/4) / N` for test;
- digits (scikit-learn's 8x8): 70% / 15% / 15%, stratified by digit;
- mnist, fashion-mnist: 90% / 10% of the official train set (stratified), the official
  test set for test.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from funcnn import datasets
from funcnn.data import split_indices
from funcnn.typing import NumpyArray, Shape

DATASETS: tuple[str, ...] = ("spiral", "vertical", "sine", "digits", "mnist", "fashion-mnist")
"""Names accepted by `load_splits` (and by `funcnn train --dataset`)."""

GENERATED: tuple[str, ...] = ("spiral", "vertical", "sine")
"""The data sets generated from a size (`samples`); the others are fixed collections."""

DEFAULT_SAMPLES = {"spiral": 100, "vertical": 100, "sine": 1000}
"""Default `samples`: per class for spiral and vertical, in total for sine."""

POINT_CLASSES = 3
"""Classes of the generated spiral and vertical sets (the book's three)."""

DIGITS_FRACTIONS = (0.7, 0.15, 0.15)
IMAGE_VALIDATION_FRACTION = 0.1


class Part(NamedTuple):
    """Inputs `x` float32 `(N, *input_shape)` and targets `y`: int32 labels `(N,)` for
    classification, float32 `(N, 1)` for regression."""

    x: NumpyArray
    y: NumpyArray


class DataSplits(NamedTuple):
    """Train, validation and test parts of one data set, plus what describes its inputs.

    `label_names` is empty for regression; `pixel_range` is `(0, max)` for image data
    (the value a white pixel has in the raw data), None for anything else.
    """

    name: str
    train: Part
    validation: Part
    test: Part
    label_names: tuple[str, ...]
    pixel_range: tuple[float, float] | None

    @property
    def input_shape(self) -> Shape:
        """The shape of one sample, without the batch axis."""
        return tuple(int(d) for d in self.train.x.shape[1:])

    @property
    def parts(self) -> tuple[Part, Part, Part]:
        """`(train, validation, test)`."""
        return self.train, self.validation, self.test

    @property
    def is_regression(self) -> bool:
        return not self.label_names


def check_dataset_name(name: str) -> str:
    """`name` if it is one of `DATASETS`, else a ValueError listing them."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return name


def check_samples(name: str, samples: int | None) -> int | None:
    """The sample count to use for `name`: its default when None; only generated sets take one."""
    if name not in GENERATED:
        if samples is not None:
            raise ValueError(
                f"--samples applies to {', '.join(GENERATED)} only; {name} is a fixed collection"
            )
        return None
    if samples is None:
        return DEFAULT_SAMPLES[name]
    minimum = 2 if name == "sine" else 1
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < minimum:
        raise ValueError(f"--samples must be an int >= {minimum}, got {samples!r}")
    return samples


def _part(x: object, y: object, *, labels: bool = True) -> Part:
    x_arr = np.asarray(x, dtype=np.float32)
    y_arr = np.asarray(y, dtype=np.int32 if labels else np.float32)
    return Part(x_arr, y_arr)


def _points(name: str, seed: int, samples: int) -> DataSplits:
    """Spiral or vertical data: three independent draws from the seed's data key."""
    make = datasets.spiral if name == "spiral" else datasets.vertical
    key = jax.random.fold_in(jax.random.key(seed), 0)
    parts = [_part(*make(jax.random.fold_in(key, i), samples, POINT_CLASSES)) for i in range(3)]
    names = tuple(f"class {c}" for c in range(POINT_CLASSES))
    return DataSplits(name, parts[0], parts[1], parts[2], names, None)


def _sine_at(positions: NumpyArray) -> Part:
    x = positions.astype(np.float32).reshape(-1, 1)
    return Part(x, np.sin(2.0 * np.pi * x).astype(np.float32))


def _sine(samples: int) -> DataSplits:
    """The book's sine samples for training; points between them for validation and test."""
    x_train, y_train = datasets.sine(samples)
    steps = np.arange(samples, dtype=np.float64)
    return DataSplits(
        "sine",
        _part(x_train, y_train, labels=False),
        _sine_at((steps + 0.5) / samples),
        _sine_at((steps + 0.25) / samples),
        (),
        None,
    )


def _digits(seed: int) -> DataSplits:
    data = datasets.digits()
    key = jax.random.fold_in(jax.random.key(seed), 0)
    indices = split_indices(key, data.num_examples, DIGITS_FRACTIONS, stratify=data.labels)
    train, validation, test = (_part(data.images[i], data.labels[i]) for i in indices)
    return DataSplits("digits", train, validation, test, data.label_names,
                      (0.0, datasets.DIGITS_MAX))


def _idx_images(name: str, seed: int) -> DataSplits:
    data = datasets.mnist() if name == "mnist" else datasets.fashion_mnist()
    train = data.train
    key = jax.random.fold_in(jax.random.key(seed), 0)
    train_idx, val_idx = split_indices(
        key, train.num_examples, (1.0 - IMAGE_VALIDATION_FRACTION, IMAGE_VALIDATION_FRACTION),
        stratify=train.labels)
    return DataSplits(
        name,
        _part(train.images[train_idx], train.labels[train_idx]),
        _part(train.images[val_idx], train.labels[val_idx]),
        _part(data.test.images, data.test.labels),
        data.label_names,
        (0.0, 255.0),
    )


def load_splits(name: str, seed: int, samples: int | None = None) -> DataSplits:
    """Raw train, validation and test parts of data set `name`, reproducible from `seed`.

    `samples` sizes the generated sets (per class for spiral and vertical); None uses
    `DEFAULT_SAMPLES`. MNIST and Fashion-MNIST are downloaded once (see `funcnn.datasets`).
    """
    check_dataset_name(name)
    count = check_samples(name, samples)
    if name in ("spiral", "vertical"):
        assert count is not None
        return _points(name, seed, count)
    if name == "sine":
        assert count is not None
        return _sine(count)
    if name == "digits":
        return _digits(seed)
    return _idx_images(name, seed)
