"""The bodies of `funcnn train`, `evaluate`, `predict` and `summary` (parsing is in
`funcnn.cli`). Each takes plain, already checked values and prints its report."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import optim
from funcnn.cli.dataset_splits import DataSplits, Part, check_samples, load_splits
from funcnn.cli.model_spec import (
    LoadedModel,
    ModelConfig,
    ModelFileError,
    ModelInfo,
    Preprocessing,
    build_network,
    check_input_shape,
    load_model,
    loss_and_metric,
    model_input,
    sample_shapes,
    save_model,
    takes_samples_of,
)
from funcnn.cli.networks import describe_network
from funcnn.nn import Layer, summary_table
from funcnn.optim.base import GradientTransformation
from funcnn.training import fit
from funcnn.training.inference import Evaluation, evaluate_arrays, predict
from funcnn.typing import Array, LossFn, MetricFn, NumpyArray, Params, State

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
BOOK_LEARNING_RATES = {"sgd": 1.0, "adagrad": 1.0, "rmsprop": 1e-3, "adam": 1e-3}
"""The book's default learning rate of each optimizer."""

EVAL_BATCH = 4096
SPLITS = ("train", "validation", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class Preset(NamedTuple):
    """A data set's default network and training settings (Adam, as in the book)."""

    hidden: tuple[int, ...]
    learning_rate: float
    decay: float
    epochs: int
    batch_size: int | None  # None: full batch


PRESETS: dict[str, Preset] = {
    "spiral": Preset((64,), 0.05, 5e-7, 10_000, None),
    "vertical": Preset((64,), 0.05, 5e-7, 1_000, None),
    "sine": Preset((64, 64), 0.005, 1e-3, 10_000, None),
    "digits": Preset((64,), 0.005, 1e-3, 30, 32),
    "mnist": Preset((128, 128), 0.001, 1e-3, 10, 128),
    "fashion-mnist": Preset((128, 128), 0.001, 1e-3, 10, 128),
}

CNN_PRESETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "digits": ((16, 32), (64,)),
    "mnist": ((32, 64), (128,)),
    "fashion-mnist": ((32, 64), (128,)),
}
"""`--model cnn` on an image data set: its conv filters and Dense hidden sizes by default
(the learning rate, epochs and batch size are the data set's preset)."""


class TrainOptions(NamedTuple):
    """Everything `train_model` needs; `momentum` is for SGD only (None elsewhere)."""

    dataset: str
    hidden: tuple[int, ...]
    activation: str
    optimizer: str
    learning_rate: float
    decay: float
    momentum: float | None
    l2: float
    dropout: float
    epochs: int
    batch_size: int | None
    seed: int
    samples: int | None
    progress: bool
    init: str = "glorot"
    architecture: str = "mlp"
    filters: tuple[int, ...] = ()
    data_dir: Path | None = None  # train on this .npy directory (`funcnn.cli.npy_data`)


class TrainedModel(NamedTuple):
    """A freshly trained model and the data splits it was trained and measured on."""

    model: LoadedModel
    splits: DataSplits


def make_optimizer(name: str, learning_rate: float, decay: float,
                   momentum: float | None) -> GradientTransformation:
    """The book's optimizer `name` with inverse-time decay `lr / (1 + decay * t)`."""
    if name == "sgd":
        return optim.sgd(learning_rate, decay=decay, momentum=momentum or 0.0)
    makers: dict[str, Callable[..., GradientTransformation]] = {
        "adagrad": optim.adagrad, "rmsprop": optim.rmsprop, "adam": optim.adam}
    if name not in makers:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return makers[name](learning_rate, decay=decay)


def scaled(model: LoadedModel | ModelInfo, part: Part) -> tuple[NumpyArray, NumpyArray]:
    """`(preprocessed x, y)` of a raw data part."""
    info = model.info if isinstance(model, LoadedModel) else model
    return model_input(info, info.preprocessing.apply(part.x)), part.y


def _evaluate_parts(net: Layer, loss: LossFn, metric: MetricFn, params: Params, state: State,
                    parts: tuple[tuple[Array, Array], ...]) -> tuple[Evaluation, ...]:
    return tuple(evaluate_arrays(net, params, state, loss, metric, x, y,
                                 min(EVAL_BATCH, x.shape[0])) for x, y in parts)


_evaluate_parts_jit = jax.jit(_evaluate_parts, static_argnums=(0, 1, 2))


class Figures(NamedTuple):
    """Mean data loss and accuracy on one split, as Python floats."""

    loss: float
    accuracy: float


def measure(model: LoadedModel, parts: Sequence[Part]) -> list[Figures]:
    """Mean data loss and accuracy of `model` on raw data parts (inference mode), all
    parts in one compiled program."""
    loss, metric = loss_and_metric(model.info.config, model.info.precision)
    arrays = tuple((jnp.asarray(x), jnp.asarray(y)) for x, y in
                   (scaled(model, part) for part in parts))
    figures = _evaluate_parts_jit(model.net, loss, metric, model.params, model.state, arrays)
    return [Figures(float(f.loss), float(f.accuracy)) for f in figures]


def check_batch_size(batch_size: int | None, n_train: int, dataset: str) -> None:
    if batch_size is not None and batch_size > n_train:
        raise ValueError(f"--batch-size {batch_size} is larger than the {n_train} training "
                         f"samples of {dataset}; use --batch-size full for full-batch training")


def train_model(opts: TrainOptions, splits: DataSplits | None = None) -> TrainedModel:
    """Build the network, train it with `fit` on `splits` (loaded from `opts` when None)
    and measure it on every split."""
    if splits is None:
        splits = load_splits(opts.dataset, opts.seed, opts.samples)
    check_batch_size(opts.batch_size, splits.train.x.shape[0], opts.dataset)
    regression = splits.is_regression
    cnn = opts.architecture == "cnn"
    if cnn and splits.pixel_range is None:
        raise ValueError(f"--model cnn needs an image data set ({', '.join(CNN_PRESETS)}), "
                         f"not {opts.dataset}")
    config = ModelConfig(
        (*splits.input_shape, 1) if cnn else splits.input_shape, opts.hidden,
        activation=opts.activation,
        output="linear" if regression else "softmax",
        n_outputs=int(splits.train.y.shape[1]) if regression else len(splits.label_names),
        dropout=opts.dropout, l2=opts.l2, init=opts.init,
        init_scale=0.1 if regression else 0.01, architecture=opts.architecture,
        filters=opts.filters).check()
    precision = float(np.std(splits.train.y)) / 250.0 if regression else None
    prep = Preprocessing.fit_min_max(splits.train.x) if splits.pixel_range else Preprocessing()
    training = {"optimizer": opts.optimizer, "learning_rate": opts.learning_rate,
                "decay": opts.decay, "momentum": opts.momentum, "epochs": opts.epochs,
                "batch_size": opts.batch_size}
    info = ModelInfo(config, splits.label_names, opts.dataset, opts.seed,
                     check_samples(opts.dataset, opts.samples),
                     splits.pixel_range, prep, precision, training, {}, {})
    net = build_network(config)
    root = jax.random.key(opts.seed)
    params, state = jax.jit(net.init, static_argnums=1)(jax.random.fold_in(root, 1),
                                                        config.input_shape)
    loss, metric = loss_and_metric(config, precision)
    result = fit(net, params, state,
                 make_optimizer(opts.optimizer, opts.learning_rate, opts.decay, opts.momentum),
                 loss, *scaled(info, splits.train), key=jax.random.fold_in(root, 2),
                 epochs=opts.epochs, batch_size=opts.batch_size,
                 validation_data=scaled(info, splits.validation), metric=metric,
                 progress=opts.progress)
    model = LoadedModel(info._replace(history=result.history.to_dict()), net, result.params,
                        result.state)
    results: dict[str, float] = {}
    for name, figures in zip(SPLITS, measure(model, splits.parts), strict=True):
        results[f"{name}_loss"] = float(figures.loss)
        results[f"{name}_accuracy"] = float(figures.accuracy)
    return TrainedModel(model._replace(info=model.info._replace(results=results)), splits)


def describe_data(splits: DataSplits) -> str:
    """One line: the data set, its split sizes, the input shape and the targets."""
    sizes = " / ".join(f"{part.x.shape[0]} {name}" for name, part in
                       (("train", splits.train), ("validation", splits.validation),
                        ("test", splits.test)))
    targets = "regression" if splits.is_regression else f"{len(splits.label_names)} classes"
    return f"{splits.name}: {sizes} samples, inputs {splits.input_shape}, {targets}"


def figures_line(split: str, loss: float, accuracy: float, n: int | None = None) -> str:
    """`"test        loss 0.0857  accuracy 0.9703  (270 samples)"`."""
    count = "" if n is None else f"  ({n} samples)"
    return f"{split:<11} loss {loss:.4g}  accuracy {accuracy:.4f}{count}"


def run_train(opts: TrainOptions, out: Path) -> None:
    """`funcnn train`: train, print the train and validation figures, save the checkpoint."""
    splits = load_splits(opts.dataset, opts.seed, opts.samples)
    print(describe_data(splits), flush=True)
    trained = train_model(opts, splits)
    results = trained.model.info.results
    for split in ("train", "validation"):
        print(figures_line(split, results[f"{split}_loss"], results[f"{split}_accuracy"]))
    model = trained.model
    save_model(out, model.info, model.params, model.state, model.net)
    print(f"saved the model to {out}")


def check_compatible(info: ModelInfo, splits: DataSplits) -> None:
    """A ModelFileError unless the model can be evaluated on `splits`."""
    check_input_shape(info, splits.input_shape, f"data set {splits.name}")
    if splits.is_regression != (info.config.output == "linear"):
        kind = "regression" if splits.is_regression else "classification"
        raise ModelFileError(f"the model (trained on {info.dataset}) is a {info.config.output} "
                             f"model; data set {splits.name} is a {kind} task")
    if not splits.is_regression and len(splits.label_names) != info.config.n_outputs:
        raise ModelFileError(f"the model has {info.config.n_outputs} classes but data set "
                             f"{splits.name} has {len(splits.label_names)}")


def run_evaluate(path: Path, dataset: str | None, split: str) -> None:
    """`funcnn evaluate`: loss and accuracy on a split (default the held-out test split)."""
    model = load_model(path)
    info = model.info
    name = dataset or info.dataset
    samples = info.samples if name == info.dataset else None
    splits = load_splits(name, info.seed, samples)
    check_compatible(info, splits)
    part = {"train": splits.train, "validation": splits.validation, "test": splits.test}[split]
    print(f"{path}: {name} {split} split")
    (figures,) = measure(model, [part])
    print(figures_line(split, figures.loss, figures.accuracy, part.x.shape[0]))


def _invert_wanted(pixels: NumpyArray, invert: str) -> bool:
    """`auto`: invert dark-on-light images (border brighter than mid-grey), as the
    training images are light on dark."""
    if invert != "auto":
        return invert == "yes"
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return float(np.mean(border)) > 127.5


def read_image(path: Path, info: ModelInfo, invert: str) -> NumpyArray:
    """An image file as one raw sample of the model's input shape (pixels in the training
    data's range): grayscale, resized, optionally inverted."""
    from funcnn.data import preprocess_image
    from funcnn.data.images import read_grayscale

    if info.pixel_range is None:
        raise ModelFileError(f"{path}: the model (trained on {info.dataset}) takes samples of "
                             f"shape {info.config.input_shape}, not images; give them as .npy")
    pixels = read_grayscale(path)
    height, width = info.config.input_shape[:2]
    unit = np.asarray(preprocess_image(pixels, size=(height, width), flatten=False,
                                       invert=_invert_wanted(pixels, invert)))
    low, high = info.pixel_range
    raw: NumpyArray = low + (unit + 1.0) / 2.0 * (high - low)
    return model_input(info, raw[None])


def read_array(path: Path, info: ModelInfo) -> NumpyArray:
    """A .npy file as raw samples `(N, *input_shape)`; one sample `input_shape` is allowed,
    and `(H, W)` images for a `(H, W, 1)` network."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read as a .npy array ({error})") from None
    expected = info.config.input_shape
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{path}: holds {array.dtype} values; expected real numbers")
    if takes_samples_of(info, array.shape):
        array = array[None]
    if not takes_samples_of(info, array.shape[1:]):
        raise ModelFileError(
            f"{path}: holds an array of shape {array.shape}, but the model (trained on "
            f"{info.dataset}) takes samples of shape {sample_shapes(info)} (one sample) or "
            f"(N, {', '.join(map(str, expected))}); was it made for another model?")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{path}: holds NaN or infinite values")
    return model_input(info, np.asarray(array, dtype=np.float32))


def run_predict(path: Path, files: Sequence[Path], invert: str) -> None:
    """`funcnn predict`: one line per sample, `NAME: label (confidence p)` or `NAME: value`."""
    for file in files:
        if file.is_dir():
            raise IsADirectoryError(f"{file}: is a directory; give image or .npy files")
        if not file.is_file():
            raise FileNotFoundError(f"{file}: no such file")
        if file.suffix.lower() not in (".npy", *IMAGE_SUFFIXES):
            raise ValueError(f"{file}: unknown file type; give image files "
                             f"({', '.join(IMAGE_SUFFIXES)}) or .npy arrays")
    model = load_model(path)
    names: list[str] = []
    samples: list[NumpyArray] = []
    for file in files:
        if file.suffix.lower() == ".npy":
            array = read_array(file, model.info)
            names += [str(file)] if array.shape[0] == 1 else [f"{file}[{i}]" for i in
                                                             range(array.shape[0])]
        else:
            array = read_image(file, model.info, invert)
            names.append(str(file))
        samples.append(array)
    x = model_input(model.info, model.info.preprocessing.apply(np.concatenate(samples)))
    outputs = np.asarray(predict(model.net, model.params, model.state, x,
                                 batch_size=min(EVAL_BATCH, x.shape[0])))
    for name, output in zip(names, outputs, strict=True):
        print(f"{name}: {prediction_text(model.info, output)}")


def prediction_text(info: ModelInfo, output: NumpyArray) -> str:
    """`"3 (confidence 0.9812)"` for a classifier, the output values for a regression."""
    if info.config.output == "linear":
        return " ".join(f"{float(v):.6g}" for v in output)
    best = int(np.argmax(output))
    return f"{info.label_names[best]} (confidence {float(output[best]):.4f})"


def run_summary(path: Path) -> None:
    """`funcnn summary`: what the model is, how it was trained, and its layer table."""
    model = load_model(path)
    info = model.info
    config = info.config
    if config.output == "softmax":
        shown = ", ".join(info.label_names[:10]) + (", ..." if len(info.label_names) > 10 else "")
        task = f"classifier of {info.dataset} ({config.n_outputs} classes: {shown})"
    else:
        task = f"regression model of {info.dataset} ({config.n_outputs} output)"
    t = info.training
    batch = "full" if t.get("batch_size") is None else t.get("batch_size")
    print(f"{path}: a {task}")
    print(describe_network(config))
    print(f"trained: {t.get('epochs')} epochs, {t.get('optimizer')} lr {t.get('learning_rate')} "
          f"decay {t.get('decay')}, batch {batch}, seed {info.seed}")
    for split in ("train", "validation"):
        if f"{split}_accuracy" in info.results:
            loss, accuracy = info.results[f"{split}_loss"], info.results[f"{split}_accuracy"]
            if math.isfinite(loss):
                print(f"{split}: loss {loss:.4g}, accuracy {accuracy:.4f}")
    print(summary_table(model.net, config.input_shape))
