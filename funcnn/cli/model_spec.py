"""What a `funcnn train` checkpoint describes, and how a network is rebuilt from it.

The checkpoint (`funcnn.checkpoint`) holds the parameters under `params/...` and JSON
metadata: the network as a layer spec (`funcnn.nn.registry`, format 2), how the command
chose it and the task (`ModelConfig`), the label names, the data set and seed that give
back its splits, the input scaling (`Preprocessing`), the training settings and the
per-epoch History. `load_model` checks all of it and returns a ready network; files of
format 1 (Dense networks described by their `ModelConfig` alone) still load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from funcnn import losses, metrics
from funcnn.checkpoint import StrPath, load_checkpoint, read_metadata, save_checkpoint
from funcnn.cli.networks import (
    ACTIVATIONS,
    ARCHITECTURES,
    INITS,
    OUTPUTS,
    ModelConfig,
    build_network,
)
from funcnn.nn import Layer, init_shapes, output_shape
from funcnn.nn.registry import layer_from_spec, layer_spec
from funcnn.typing import LossFn, MetricFn, NumpyArray, Params, Shape, State

__all__ = ["ACTIVATIONS", "ARCHITECTURES", "INITS", "OUTPUTS", "LoadedModel", "ModelConfig",
           "ModelFileError", "ModelInfo", "Preprocessing", "build_network", "load_model",
           "params_template", "save_model"]

MODEL_KEY = "funcnn_model"
"""Metadata entry holding the model description; its value is the format version."""

MODEL_FORMAT = 2
"""Format 2 stores the network as a layer spec (`funcnn.nn.registry`) under `network`;
format 1 (read still) stored only the `model` config of a Dense network."""

READABLE_FORMATS = (1, 2)


class ModelFileError(ValueError):
    """A checkpoint whose metadata does not describe a model `funcnn` can rebuild or use."""


def params_template(net: Layer, config: ModelConfig) -> tuple[Params, State]:
    """Shapes and dtypes of the network's params and state, without computing them."""
    return init_shapes(net, config.input_shape)


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

    def to_metadata(self, net: Layer) -> dict[str, Any]:
        """The metadata of a model file holding `net`, described by its layer spec."""
        return {
            MODEL_KEY: MODEL_FORMAT,
            "model": self.config.to_json(),
            "network": layer_spec(net),
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


def _config(source: Path, model: Mapping[str, Any]) -> ModelConfig:
    """The checked `ModelConfig` of a metadata `model` entry (no `architecture` and
    `filters`: an mlp, as every model of format 1)."""
    number = (int, float)
    return ModelConfig(
        tuple(_entry(source, model, "input_shape", list, "model")),
        tuple(_entry(source, model, "hidden", list, "model")),
        _entry(source, model, "activation", str, "model"),
        _entry(source, model, "output", str, "model"),
        _entry(source, model, "n_outputs", int, "model"),
        float(_entry(source, model, "dropout", number, "model")),
        float(_entry(source, model, "l2", number, "model")),
        _entry(source, model, "init", str, "model"),
        float(_entry(source, model, "init_scale", number, "model")),
        _entry(source, model, "architecture", str, "model") if "architecture" in model
        else "mlp",
        tuple(_entry(source, model, "filters", list, "model")) if "filters" in model else (),
    ).check()


def info_from_metadata(source: Path, metadata: Mapping[str, Any]) -> ModelInfo:
    """Parse and check the metadata `ModelInfo.to_metadata` wrote; ModelFileError otherwise."""
    if MODEL_KEY not in metadata:
        raise ModelFileError(f"{source}: a funcnn checkpoint, but not a model saved by "
                             "`funcnn train` (its metadata has no model description)")
    if metadata[MODEL_KEY] not in READABLE_FORMATS:
        raise ModelFileError(f"{source}: model format {metadata[MODEL_KEY]!r} is not supported "
                             f"(this funcnn reads formats "
                             f"{', '.join(map(str, READABLE_FORMATS))})")
    model = _entry(source, metadata, "model", dict)
    data = _entry(source, metadata, "data", dict)
    prep = _entry(source, metadata, "preprocessing", dict)
    number = (int, float)
    try:
        config = _config(source, model)
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


def save_model(path: StrPath, info: ModelInfo, params: Params, state: State,
               net: Layer | None = None) -> None:
    """Write params, state, `info` and the layer spec of `net` (by default the network
    `info.config` describes) as one checkpoint (atomically)."""
    network = build_network(info.config) if net is None else net
    save_checkpoint(path, {"params": params, "state": state},
                    metadata=info.to_metadata(network))


def network_from_metadata(source: Path, metadata: Mapping[str, Any],
                          config: ModelConfig) -> Layer:
    """The network a model file holds: its layer spec (format 2), or the Dense network its
    config describes (format 1); checked to take `config.input_shape` and to give
    `config.n_outputs` outputs."""
    if metadata[MODEL_KEY] == 1:
        return build_network(config)
    spec = _entry(source, metadata, "network", dict)
    try:
        net = layer_from_spec(spec)
        params, state = init_shapes(net, config.input_shape)
        shape = output_shape(net, params, state, config.input_shape)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{source}: invalid network description ({error})") from None
    if shape != (config.n_outputs,):
        raise ModelFileError(f"{source}: the network gives outputs of shape {shape}, but the "
                             f"model has {config.n_outputs} outputs")
    return net


def load_model(path: StrPath) -> LoadedModel:
    """Read a `funcnn train` checkpoint and rebuild its network; every parameter's path,
    shape and dtype is checked against the network its metadata describes."""
    source = Path(path)
    metadata = read_metadata(source)
    info = info_from_metadata(source, metadata)
    net = network_from_metadata(source, metadata, info.config)
    params, state = params_template(net, info.config)
    tree, _ = load_checkpoint(source, {"params": params, "state": state})
    return LoadedModel(info, net, tree["params"], tree["state"])


def _without_channel(shape: Shape) -> Shape | None:
    """`(H, W)` for a one-channel image shape `(H, W, 1)`, else None."""
    return tuple(shape[:-1]) if len(shape) == 3 and shape[-1] == 1 else None


def takes_samples_of(info: ModelInfo, shape: Shape) -> bool:
    """Whether samples of `shape` fit the model's input shape: as they are, or with a
    channel axis added (`(H, W)` images for a `(H, W, 1)` network)."""
    expected = info.config.input_shape
    return tuple(shape) in (expected, _without_channel(expected))


def check_input_shape(info: ModelInfo, shape: Shape, what: str) -> None:
    """A ModelFileError unless samples of `shape` fit the model (`takes_samples_of`)."""
    if not takes_samples_of(info, shape):
        raise ModelFileError(f"the model (trained on {info.dataset}) takes samples of shape "
                             f"{sample_shapes(info)}, but {what} has samples of shape "
                             f"{tuple(shape)}")


def sample_shapes(info: ModelInfo) -> str:
    """The sample shapes the model takes: `(8, 8)`, or `(8, 8, 1) or (8, 8)`."""
    expected = info.config.input_shape
    bare = _without_channel(expected)
    return str(expected) if bare is None else f"{expected} or {bare}"


def model_input(info: ModelInfo, x: NumpyArray) -> NumpyArray:
    """Samples `x` `(N, *shape)` in the model's input shape: `(N, H, W)` images get the
    channel axis of a `(H, W, 1)` network; other shapes are left as they are."""
    expected = info.config.input_shape
    if x.shape[1:] != expected and x.shape[1:] == _without_channel(expected):
        return x[..., None]
    return x
