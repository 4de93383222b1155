"""What a `funcnn train` checkpoint describes, and how a network is rebuilt from it.

The checkpoint (`funcnn.checkpoint`) holds the parameters under `params/...` and JSON
metadata: the layer configuration (`ModelConfig`), the label names, the data set and seed
that give back its splits, the input scaling (`Preprocessing`), the training settings and
the per-epoch History. `load_model` checks all of it and returns a ready network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn import losses, metrics
from funcnn.checkpoint import StrPath, load_checkpoint, read_metadata, save_checkpoint
from funcnn.initializers import book_normal, glorot_uniform, he_normal
from funcnn.nn import (
    Dense,
    Dropout,
    Flatten,
    Layer,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    serial,
)
from funcnn.typing import LossFn, MetricFn, NumpyArray, Params, Shape, State

MODEL_KEY = "funcnn_model"
"""Metadata entry holding the model description; its value is the format version."""

MODEL_FORMAT = 1

ACTIVATIONS: dict[str, Callable[[], Layer]] = {
    "relu": ReLU, "leaky-relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh,
}
"""Hidden-layer activations by command-line name."""

INITS = ("glorot", "he", "book")
"""Dense weight initializers: Glorot-uniform, He-normal, or the book's `init_scale * N(0, 1)`
(0.01; 0.1 for the chapter-17 regression). Biases start at 0."""

OUTPUTS = ("softmax", "linear")
"""Output kinds: `softmax` (classification, cross-entropy) or `linear` (regression, MSE)."""


class ModelFileError(ValueError):
    """A checkpoint whose metadata does not describe a model `funcnn` can rebuild or use."""


class ModelConfig(NamedTuple):
    """The network `Flatten? -> [Dense(h) -> act -> Dropout?] * len(hidden) -> Dense(n_outputs)
    -> softmax | linear`; Dense weights drawn by `init` (one of `INITS`; `init_scale` is the
    book initializer's scale), hidden layers with `w_l2 = b_l2 = l2`. Inputs of rank > 1
    (images) are flattened first."""

    input_shape: Shape
    hidden: tuple[int, ...]
    activation: str
    output: str
    n_outputs: int
    dropout: float = 0.0
    l2: float = 0.0
    init: str = "glorot"
    init_scale: float = 0.01

    def check(self) -> ModelConfig:
        """This config after checking every field; errors name the field."""
        if not self.input_shape or any(_bad_size(d) for d in self.input_shape):
            raise ValueError(f"input_shape must be positive ints, got {self.input_shape}")
        if any(_bad_size(h) for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive ints, got {list(self.hidden)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {self.activation!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if _bad_size(self.n_outputs):
            raise ValueError(f"n_outputs must be a positive int, got {self.n_outputs!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (math.isfinite(self.l2) and self.l2 >= 0.0):
            raise ValueError(f"l2 must be a finite number >= 0, got {self.l2}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if not (math.isfinite(self.init_scale) and self.init_scale > 0.0):
            raise ValueError(f"init_scale must be a finite number > 0, got {self.init_scale}")
        return self

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "input_shape": list(self.input_shape),
                "hidden": list(self.hidden)}


def _bad_size(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or value < 1


def build_network(config: ModelConfig) -> Layer:
    """The `serial` network `config` describes."""
    config.check()
    init = {"glorot": glorot_uniform(), "he": he_normal(),
            "book": book_normal(config.init_scale)}[config.init]
    layers: list[Layer] = []
    if len(config.input_shape) > 1:
        layers.append(Flatten(len(config.input_shape)))
    for size in config.hidden:
        layers += [Dense(size, w_init=init, w_l2=config.l2, b_l2=config.l2),
                   ACTIVATIONS[config.activation]()]
        if config.dropout > 0.0:
            layers.append(Dropout(config.dropout))
    layers.append(Dense(config.n_outputs, w_init=init))
    layers.append(Softmax() if config.output == "softmax" else Linear())
    return serial(*layers)


def params_template(net: Layer, config: ModelConfig) -> tuple[Params, State]:
    """Shapes and dtypes of the network's params and state, without computing them."""
    template: tuple[Params, State] = jax.eval_shape(
        lambda key: net.init(key, config.input_shape), jax.random.key(0))
    return template


def loss_and_metric(config: ModelConfig, precision: float | None) -> tuple[LossFn, MetricFn]:
    """Cross-entropy and accuracy for softmax outputs; MSE and the book's regression accuracy
    `|pred - y| < precision` for linear ones."""
    if config.output == "softmax":
        return losses.categorical_crossentropy, metrics.categorical_accuracy
    if precision is None or not precision > 0.0:
        raise ValueError(f"a regression model needs a precision > 0, got {precision}")
    return losses.mean_squared_error, partial(metrics.regression_accuracy, precision=precision)


class Preprocessing(NamedTuple):
    """Input scaling fitted on training data: `min_max` maps `[data_min, data_max]` (one
    global range, the book's image scaling) onto `[low, high]`; `identity` keeps inputs."""

    kind: str = "identity"
    data_min: float = 0.0
    data_max: float = 1.0
    low: float = -1.0
    high: float = 1.0

    @classmethod
    def fit_min_max(cls, x: NumpyArray) -> Preprocessing:
        """`[min x, max x] -> [-1, 1]` over all of the training inputs `x`."""
        return cls("min_max", float(np.min(x)), float(np.max(x)), -1.0, 1.0)

    def apply(self, x: NumpyArray) -> NumpyArray:
        """Scaled float32 copy of raw inputs `x` of any shape (on the host: the formula of
        `funcnn.data.MinMaxScaler` without compiling anything)."""
        raw = np.asarray(x, dtype=np.float32)
        if self.kind == "identity":
            return raw.copy()
        span = self.data_max - self.data_min
        scale = np.float32((self.high - self.low) / span if span > 0 else 0.0)
        scaled: NumpyArray = np.float32(self.low) + (raw - np.float32(self.data_min)) * scale
        return scaled.astype(np.float32)

    def check(self) -> Preprocessing:
        values = (self.data_min, self.data_max, self.low, self.high)
        if self.kind not in ("identity", "min_max"):
            raise ValueError(f"preprocessing kind must be identity or min_max, got {self.kind!r}")
        if not all(math.isfinite(v) for v in values) or self.low >= self.high:
            raise ValueError(f"preprocessing ranges must be finite with low < high, got {values}")
        return self


class ModelInfo(NamedTuple):
    """Everything a checkpoint's metadata says about its model (see the module docstring).

    `samples` is the generated data set's size (None for fixed collections); `pixel_range`
    the raw value range of image pixels (None when inputs are not images); `precision` the
    regression accuracy's tolerance (None for classifiers).
    """

    config: ModelConfig
    label_names: tuple[str, ...]
    dataset: str
    seed: int
    samples: int | None
    pixel_range: tuple[float, float] | None
    preprocessing: Preprocessing
    precision: float | None
    training: dict[str, Any]
    history: dict[str, list[Any]]
    results: dict[str, float]

    @property
    def is_image_model(self) -> bool:
        return self.pixel_range is not None

    def to_metadata(self) -> dict[str, Any]:
        return {
            MODEL_KEY: MODEL_FORMAT,
            "model": self.config.to_json(),
            "labels": list(self.label_names),
            "data": {"dataset": self.dataset, "seed": self.seed, "samples": self.samples,
                     "pixel_range": None if self.pixel_range is None else list(self.pixel_range)},
            "preprocessing": self.preprocessing._asdict(),
            "precision": self.precision,
            "training": self.training,
            "history": self.history,
            "results": self.results,
        }


def _entry(source: Path, mapping: Mapping[str, Any], key: str, kinds: type | tuple[type, ...],
           where: str = "") -> Any:
    """`mapping[key]` after checking its type; errors name the file and the entry."""
    name = f"{where}.{key}" if where else key
    if key not in mapping:
        raise ModelFileError(f"{source}: checkpoint metadata has no '{name}' entry")
    value = mapping[key]
    wrong_bool = isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple)
                                                          else (kinds,))
    if not isinstance(value, kinds) or wrong_bool:
        raise ModelFileError(f"{source}: checkpoint metadata entry '{name}' has the wrong type "
                             f"({type(value).__name__})")
    return value


def info_from_metadata(source: Path, metadata: Mapping[str, Any]) -> ModelInfo:
    """Parse and check the metadata `ModelInfo.to_metadata` wrote; ModelFileError otherwise."""
    if MODEL_KEY not in metadata:
        raise ModelFileError(f"{source}: a funcnn checkpoint, but not a model saved by "
                             "`funcnn train` (its metadata has no model description)")
    if metadata[MODEL_KEY] != MODEL_FORMAT:
        raise ModelFileError(f"{source}: model format {metadata[MODEL_KEY]!r} is not supported "
                             f"(this funcnn reads format {MODEL_FORMAT})")
    model = _entry(source, metadata, "model", dict)
    data = _entry(source, metadata, "data", dict)
    prep = _entry(source, metadata, "preprocessing", dict)
    number = (int, float)
    try:
        config = ModelConfig(
            tuple(_entry(source, model, "input_shape", list, "model")),
            tuple(_entry(source, model, "hidden", list, "model")),
            _entry(source, model, "activation", str, "model"),
            _entry(source, model, "output", str, "model"),
            _entry(source, model, "n_outputs", int, "model"),
            float(_entry(source, model, "dropout", number, "model")),
            float(_entry(source, model, "l2", number, "model")),
            _entry(source, model, "init", str, "model"),
            float(_entry(source, model, "init_scale", number, "model")),
        ).check()
        preprocessing = Preprocessing(
            _entry(source, prep, "kind", str, "preprocessing"),
            *(float(_entry(source, prep, k, number, "preprocessing"))
              for k in ("data_min", "data_max", "low", "high"))).check()
    except ModelFileError:
        raise
    except ValueError as error:
        raise ModelFileError(f"{source}: invalid model description ({error})") from None
    labels = tuple(str(n) for n in _entry(source, metadata, "labels", list))
    expected = config.n_outputs if config.output == "softmax" else 0
    if len(labels) != expected:
        raise ModelFileError(f"{source}: {len(labels)} label names for a {config.output} model "
                             f"with {config.n_outputs} outputs")
    pixels = _entry(source, data, "pixel_range", (list, type(None)), "data")
    samples = _entry(source, data, "samples", (int, type(None)), "data")
    precision = _entry(source, metadata, "precision", (int, float, type(None)))
    return ModelInfo(
        config, labels, _entry(source, data, "dataset", str, "data"),
        _entry(source, data, "seed", int, "data"), samples,
        None if pixels is None else (float(pixels[0]), float(pixels[1])),
        preprocessing, None if precision is None else float(precision),
        _entry(source, metadata, "training", dict), _entry(source, metadata, "history", dict),
        _entry(source, metadata, "results", dict))


class LoadedModel(NamedTuple):
    """A checkpoint's model, ready to use: description, network, params and state."""

    info: ModelInfo
    net: Layer
    params: Params
    state: State


def save_model(path: StrPath, info: ModelInfo, params: Params, state: State) -> None:
    """Write params, state and `info` as one checkpoint (atomically)."""
    save_checkpoint(path, {"params": params, "state": state}, metadata=info.to_metadata())


def load_model(path: StrPath) -> LoadedModel:
    """Read a `funcnn train` checkpoint and rebuild its network; every parameter's path,
    shape and dtype is checked against the network its metadata describes."""
    source = Path(path)
    info = info_from_metadata(source, read_metadata(source))
    net = build_network(info.config)
    params, state = params_template(net, info.config)
    tree, _ = load_checkpoint(source, {"params": params, "state": state})
    return LoadedModel(info, net, tree["params"], tree["state"])


def check_input_shape(info: ModelInfo, shape: Shape, what: str) -> None:
    """A ModelFileError unless samples of `shape` fit the model's input shape."""
    expected = info.config.input_shape
    if tuple(shape) != expected:
        raise ModelFileError(f"the model (trained on {info.dataset}) takes samples of shape "
                             f"{expected}, but {what} has samples of shape {tuple(shape)}")
