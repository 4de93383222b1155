"""`funcnn train --data-dir DIR` and `funcnn evaluate MODEL --data-dir DIR`: a directory of
`.npy` files as the data, streamed from disk.

DIR holds `x_train.npy`, `y_train.npy` (required) and `x_test.npy`, `y_test.npy` (both or
neither): x `(N, *sample_shape)` of integers or floats, y one target row per sample. They
are memory-mapped (`funcnn.data.load_npy_directory`) and never read whole: training is
`funcnn.fit_stream` over an `ArraySource` of the memmaps, and every full pass (the input
range, the label count, the figures after training) reads `BLOCK_BYTES` of rows at a time.

The task comes from y's dtype: integer y `(N,)` are class labels `0 .. K-1` with
`K = 1 + the largest label` of the train and test parts (a softmax classifier, labels
named "0" .. "K-1"); floating y `(N,)` or `(N, k)` are regression targets (a linear
output of k units, `(N,)` meaning k = 1; the accuracy counts `|pred - y| < std(y) / 250`,
as for the sine set). Integer x (e.g. uint8 pixels) is scaled by its training range onto
[-1, 1], as the image data sets are; floating x is used as it is. A model file records
the directory's absolute path as its data set, so `funcnn evaluate MODEL` finds it again.
There is no validation part: training reports the last epoch's figures, then the train
and test parts are measured in inference mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn.checkpoint import read_metadata
from funcnn.cli import commands
from funcnn.cli.commands import Figures, Preset, TrainOptions, figures_line, make_optimizer
from funcnn.cli.dataset_splits import DATASETS, GENERATED
from funcnn.cli.model_spec import (
    LoadedModel,
    ModelConfig,
    ModelFileError,
    ModelInfo,
    Preprocessing,
    build_network,
    check_input_shape,
    info_from_metadata,
    load_model,
    loss_and_metric,
    model_input,
    save_model,
)
from funcnn.data import ArraySource, load_npy_directory
from funcnn.training import evaluate, fit_stream
from funcnn.typing import NumpyArray, Shape

DIRECTORY_PRESET = Preset((64,), 0.001, 0.0, 10, 128)
"""`--data-dir` defaults: one hidden layer of 64, Adam at 0.001 without decay, 10 epochs
of batches of 128."""

BLOCK_BYTES = 32 * 1024 * 1024
"""The rows read at a time by a full pass over a part (about this many bytes of float32)."""

EVAL_BATCH = 4096


class RowView:
    """The rows of `array` through `transform` as they are read: `view[index]` is
    `transform(array[index])`, of shape `(rows, *shape[1:])`; nothing is read before."""

    def __init__(self, array: NumpyArray, shape: Shape,
                 transform: Callable[[NumpyArray], NumpyArray]) -> None:
        self.array, self.shape, self.transform = array, tuple(shape), transform

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, index: Any) -> NumpyArray:
        return self.transform(np.asarray(self.array[index]))


class NpyPart(NamedTuple):
    """The memory-mapped x `(N, *sample_shape)` and y `(N,)` or `(N, k)` of one part."""

    x: NumpyArray
    y: NumpyArray

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def regression(self) -> bool:
        return bool(self.y.dtype.kind == "f")

    @property
    def targets(self) -> int:
        """Values per sample of floating y (1 for `(N,)`)."""
        return 1 if self.y.ndim == 1 else int(self.y.shape[1])


class NpyDirectory(NamedTuple):
    """A checked `.npy` directory: its absolute path, the train part, the test part."""

    path: Path
    train: NpyPart
    test: NpyPart | None

    @property
    def input_shape(self) -> Shape:
        return tuple(int(d) for d in self.train.x.shape[1:])

    @property
    def parts(self) -> tuple[tuple[str, NpyPart], ...]:
        named = (("train", self.train), ("test", self.test))
        return tuple((name, part) for name, part in named if part is not None)


def _checked_part(root: Path, arrays: dict[str, NumpyArray], part: str) -> NpyPart:
    """x and y of `part` ("train" or "test") after the checks on their dtypes and shapes."""
    x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
    x_file, y_file = root / f"x_{part}.npy", root / f"y_{part}.npy"
    if x.dtype.kind not in "iuf":
        raise ValueError(f"{x_file}: holds {x.dtype} values; expected real numbers "
                         "(integers or floats)")
    if y.dtype.kind not in "iuf":
        raise ValueError(f"{y_file}: holds {y.dtype} values; expected integer class labels "
                         "or floating regression targets")
    if x.ndim < 2:
        raise ValueError(f"{x_file}: has shape {x.shape}; expected samples (N, features...), "
                         "one per row (reshape a single feature to (N, 1))")
    if y.dtype.kind in "iu" and y.ndim != 1:
        raise ValueError(f"{y_file}: integer labels must have shape (N,), got {y.shape} "
                         "(flatten them with y.reshape(-1))")
    if y.ndim not in (1, 2):
        raise ValueError(f"{y_file}: regression targets must have shape (N,) or (N, k), got "
                         f"{y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{root}: x_{part}.npy holds {x.shape[0]} samples but y_{part}.npy "
                         f"{y.shape[0]}; they need one target per sample")
    if x.shape[0] == 0:
        raise ValueError(f"{x_file}: holds no samples")
    return NpyPart(x, y)


def open_directory(directory: Path) -> NpyDirectory:
    """The memory-mapped parts of `directory`, checked: x and y of each part of equal
    length, real-valued, with the same sample shape and kind of target in both parts."""
    arrays = load_npy_directory(directory)
    root = Path(directory).resolve()
    if ("x_test" in arrays) != ("y_test" in arrays):
        have, lack = ("x", "y") if "x_test" in arrays else ("y", "x")
        raise FileNotFoundError(f"{root}: has {have}_test.npy but no {lack}_test.npy; give "
                                "both test files or neither")
    train = _checked_part(root, arrays, "train")
    test = _checked_part(root, arrays, "test") if "x_test" in arrays else None
    if test is not None:
        if test.x.shape[1:] != train.x.shape[1:]:
            raise ValueError(f"{root}: x_test.npy has samples of shape {test.x.shape[1:]}, "
                             f"x_train.npy of shape {train.x.shape[1:]}")
        if test.regression != train.regression or (
                train.regression and test.targets != train.targets):
            raise ValueError(f"{root}: y_test.npy ({test.y.dtype}, {test.y.shape}) holds "
                             f"other targets than y_train.npy ({train.y.dtype}, "
                             f"{train.y.shape})")
    return NpyDirectory(root, train, test)


def row_blocks(array: NumpyArray | RowView) -> Iterator[tuple[int, int]]:
    """`(start, stop)` of consecutive row blocks of about `BLOCK_BYTES` as float32."""
    row_bytes = 4 * int(np.prod(array.shape[1:], dtype=np.int64))
    step = max(1, BLOCK_BYTES // max(row_bytes, 1))
    for start in range(0, int(array.shape[0]), step):
        yield start, min(start + step, int(array.shape[0]))


def value_range(array: NumpyArray) -> tuple[float, float]:
    """`(min, max)` of all of `array`, read block by block."""
    ranges = [(float(np.min(array[a:b])), float(np.max(array[a:b])))
              for a, b in row_blocks(array)]
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def fit_preprocessing(x: NumpyArray) -> Preprocessing:
    """Integer inputs: `[min x, max x] -> [-1, 1]` (as `Preprocessing.fit_min_max`, read
    block by block); floating inputs: unchanged."""
    if x.dtype.kind == "f":
        return Preprocessing()
    low, high = value_range(x)
    return Preprocessing("min_max", low, high, -1.0, 1.0)


def class_count(data: NpyDirectory) -> int:
    """K = 1 + the largest label of the train and test parts; labels must be >= 0 and
    there must be at least two classes."""
    largest = 0
    for name, part in data.parts:
        low, high = value_range(part.y)
        if low < 0:
            raise ValueError(f"{data.path / f'y_{name}.npy'}: holds the label {int(low)}; "
                             "class labels must be 0, 1, ..., K-1")
        largest = max(largest, int(high))
    if largest < 1:
        raise ValueError(f"{data.path / 'y_train.npy'}: every label is 0; a classifier "
                         "needs labels of at least two classes")
    return largest + 1


def target_std(y: NumpyArray) -> float:
    """The standard deviation of all of floating `y`, read block by block (float64
    sums of the values and of their squares about the first block's mean)."""
    shift = float(np.mean(y[:next(row_blocks(y))[1]], dtype=np.float64))
    total = squares = 0.0
    for a, b in row_blocks(y):
        block = np.asarray(y[a:b], dtype=np.float64) - shift
        total, squares = total + float(block.sum()), squares + float(np.square(block).sum())
    count = float(y.size)
    return float(np.sqrt(max(squares / count - (total / count) ** 2, 0.0)))


def views(info: ModelInfo, part: NpyPart) -> tuple[RowView, RowView]:
    """x and y of `part` as the model takes them, row by row: x preprocessed (float32,
    with the channel axis of a `(H, W, 1)` network), labels int32, regression targets
    float32 `(N, k)`."""
    shape = (part.rows, *info.config.input_shape)
    x = RowView(part.x, shape, lambda rows: model_input(info, info.preprocessing.apply(rows)))
    if not part.regression:
        return x, RowView(part.y, (part.rows,), lambda rows: rows.astype(np.int32))
    return x, RowView(part.y, (part.rows, part.targets),
                      lambda rows: rows.reshape(len(rows), -1).astype(np.float32))


def measure_part(model: LoadedModel, part: NpyPart) -> Figures:
    """Mean data loss and accuracy of `model` on `part` (inference mode), evaluated on
    one block of rows at a time and weighted by the block's rows."""
    loss, metric = loss_and_metric(model.info.config, model.info.precision)
    x, y = views(model.info, part)
    sums = np.zeros(2, np.float64)
    for a, b in row_blocks(x):
        figures = evaluate(model.net, model.params, model.state, loss, x[a:b], y[a:b],
                           batch_size=min(EVAL_BATCH, b - a), metric=metric)
        sums += (b - a) * np.array([float(figures.loss), float(figures.accuracy)])
    return Figures(float(sums[0] / part.rows), float(sums[1] / part.rows))


def check_part(info: ModelInfo, part: NpyPart, what: str) -> None:
    """A ModelFileError unless the model can be evaluated on `part` (named `what`)."""
    check_input_shape(info, tuple(part.x.shape[1:]), what)
    linear = info.config.output == "linear"
    if part.regression != linear:
        kind = "regression targets" if part.regression else "class labels"
        raise ModelFileError(f"the model (trained on {info.dataset}) is a "
                             f"{info.config.output} model, but {what} holds {kind}")
    if linear and part.targets != info.config.n_outputs:
        raise ModelFileError(f"the model has {info.config.n_outputs} outputs but {what} "
                             f"holds {part.targets} targets per sample")
    if not linear:
        low, high = value_range(part.y)
        if low < 0 or high >= info.config.n_outputs:
            raise ModelFileError(f"the model has {info.config.n_outputs} classes but {what} "
                                 f"holds labels {int(low)}..{int(high)}")


def train_usage_problem(data_dir: Path | None, samples: int | None, model: str,
                        batch_size: int | None) -> str | None:
    """What is wrong with `funcnn train --data-dir` options, or None."""
    if data_dir is None:
        return None
    if samples is not None:
        return f"--samples applies to {', '.join(GENERATED)} only, not --data-dir"
    if model != "mlp":
        return "--model cnn trains on the named image datasets; --data-dir trains a Dense " \
               "network (--model mlp)"
    if batch_size == 0:
        return "--data-dir streams minibatches from disk; --batch-size full would read the " \
               "whole training set into memory: give a batch size"
    return None


def directory_model(opts: TrainOptions, data: NpyDirectory) -> ModelInfo:
    """What `funcnn train --data-dir` will train on `data`: the network for its sample
    shape and targets, the label names, the input scaling and the training settings."""
    train = data.train
    if opts.batch_size is None or opts.batch_size > train.rows:
        raise ValueError(f"--batch-size {opts.batch_size} is larger than the {train.rows} "
                         f"training samples of {data.path}")
    regression = train.regression
    n_outputs = train.targets if regression else class_count(data)
    config = ModelConfig(data.input_shape, opts.hidden, activation=opts.activation,
                         output="linear" if regression else "softmax", n_outputs=n_outputs,
                         dropout=opts.dropout, l2=opts.l2, init=opts.init,
                         init_scale=0.1 if regression else 0.01).check()
    precision = None
    if regression:
        precision = target_std(train.y) / 250.0
        if not precision > 0.0:
            raise ValueError(f"{data.path / 'y_train.npy'}: every target is the same value; "
                             "a regression needs targets that vary")
    training = {"optimizer": opts.optimizer, "learning_rate": opts.learning_rate,
                "decay": opts.decay, "momentum": opts.momentum, "epochs": opts.epochs,
                "batch_size": opts.batch_size, "streamed": True}
    labels = () if regression else tuple(str(c) for c in range(n_outputs))
    return ModelInfo(config, labels, str(data.path), opts.seed, None, None,
                     fit_preprocessing(train.x), precision, training, {}, {})


def train_directory(opts: TrainOptions, data: NpyDirectory, info: ModelInfo) -> LoadedModel:
    """Train the network `info` describes with `fit_stream` over the memory-mapped
    training part of `data` (in `fit`'s shuffled orders), then measure it on every part."""
    config = info.config
    net = build_network(config)
    root = jax.random.key(opts.seed)
    params, state = jax.jit(net.init, static_argnums=1)(jax.random.fold_in(root, 1),
                                                        config.input_shape)
    loss, metric = loss_and_metric(config, info.precision)
    key = jax.random.fold_in(root, 2)
    assert opts.batch_size is not None
    result = fit_stream(
        net, params, state,
        make_optimizer(opts.optimizer, opts.learning_rate, opts.decay, opts.momentum), loss,
        ArraySource(*views(info, data.train), opts.batch_size, key=key), key=key,
        epochs=opts.epochs, metric=metric, progress=opts.progress)
    model = LoadedModel(info._replace(history=result.history.to_dict()), net, result.params,
                        result.state)
    results: dict[str, float] = {}
    for name, part in data.parts:
        figures = measure_part(model, part)
        results[f"{name}_loss"], results[f"{name}_accuracy"] = figures
    return model._replace(info=model.info._replace(results=results))


def describe(data: NpyDirectory, info: ModelInfo) -> str:
    """One line: the directory, its part sizes, the input shape and the targets."""
    sizes = " / ".join(f"{part.rows} {name}" for name, part in data.parts)
    config = info.config
    plural = "" if config.n_outputs == 1 else "s"
    targets = (f"regression, {config.n_outputs} output{plural}" if config.output == "linear"
               else f"{config.n_outputs} classes")
    return f"{data.path}: {sizes} samples, inputs {data.input_shape}, {targets}"


def run_train(opts: TrainOptions, out: Path) -> None:
    """`funcnn train --data-dir`: train, print the train and test figures, save the model."""
    assert opts.data_dir is not None
    data = open_directory(opts.data_dir)
    info = directory_model(opts, data)
    print(describe(data, info), flush=True)
    model = train_directory(opts, data, info)
    for name, _ in data.parts:
        results = model.info.results
        print(figures_line(name, results[f"{name}_loss"], results[f"{name}_accuracy"]))
    save_model(out, model.info, model.params, model.state, model.net)
    print(f"saved the model to {out}")


def run_evaluate(path: Path, dataset: str | None, data_dir: Path | None, split: str) -> None:
    """`funcnn evaluate`: on `--data-dir`, on the directory a model was trained on, or
    (a named data set) as `commands.run_evaluate`."""
    if data_dir is None and dataset is None:
        trained_on = info_from_metadata(path, read_metadata(path)).dataset
        if trained_on not in DATASETS:
            data_dir = Path(trained_on)
            if not data_dir.is_dir():
                raise FileNotFoundError(f"{path}: the model was trained on the .npy directory "
                                        f"{data_dir}, which is gone; give --data-dir DIR")
    if data_dir is None:
        commands.run_evaluate(path, dataset, split)
        return
    if split == "validation":
        raise ValueError("a .npy directory has train and test parts only; use --split train "
                         "or --split test")
    data = open_directory(data_dir)
    part = data.train if split == "train" else data.test
    if part is None:
        raise FileNotFoundError(f"{data.path}: has no x_test.npy and y_test.npy; use --split "
                                "train")
    model = load_model(path)
    check_part(model.info, part, f"{data.path}'s {split} part")
    print(f"{path}: {data.path} {split} split")
    figures = measure_part(model, part)
    print(figures_line(split, figures.loss, figures.accuracy, part.rows))
