"""Layers to and from JSON-friendly descriptions: `layer_spec(net)` describes a network
built from registered layer kinds, `layer_from_spec(spec)` builds it again.

A spec is `{"kind": layer.name, "config": {...}, "children": [...], "key": ...}`: the
layer's kind, its `config` (lists for tuples), the specs of a combinator's children and
the param key set with `named` (or None). The registry maps each kind to a builder
`build(config, children) -> Layer`; every public family of `funcnn.nn` is registered
below, and a user's own layer joins with `register_layer(kind, build)`.

What a spec keeps is what a layer's `config` keeps. Initializers (`w_init`, `b_init`,
`Embedding`'s `init`) are functions, not stored: a rebuilt layer has the default ones,
which matters only for a new `init`, not for params loaded from a file. A layer's param
`dtype` and a convolution's or pool's `lowering` are not in its config either; a rebuilt
layer has the defaults (float32, "auto") unless the spec's config names them (a config
may hold any argument of the kind's constructor, e.g. `{"features": 3, "dtype":
"float64"}`). An `Activation(fn, name)` of one's own is described only once its name is
registered (its function cannot be written down); `layer_spec` names any layer it cannot
describe.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from funcnn.nn import activation, conv, normalization, pool
from funcnn.nn.attention import MultiHeadAttention
from funcnn.nn.branches import fan_out, residual
from funcnn.nn.combinators import named, serial
from funcnn.nn.dense import Dense
from funcnn.nn.dropout import Dropout
from funcnn.nn.embedding import Embedding, PositionEmbedding
from funcnn.nn.errors import LayerError
from funcnn.nn.layer import Layer
from funcnn.nn.masking import drop_mask, keep_mask
from funcnn.nn.precision import mixed_precision
from funcnn.nn.recurrent import GRU, LSTM, RNN, Bidirectional
from funcnn.nn.recurrent_cells import Cell, GRUCell, LSTMCell
from funcnn.nn.reshape import Flatten

__all__ = [
    "LayerBuilder",
    "LayerSpecError",
    "config_builder",
    "layer_from_spec",
    "layer_spec",
    "register_layer",
    "registered_kinds",
]

LayerBuilder: TypeAlias = Callable[[Mapping[str, Any], tuple[Layer, ...]], Layer]
"""`build(config, children) -> Layer`: a layer of one kind from its config and the already
built children (empty for a layer that is not a combinator)."""

SPEC_KEYS = ("kind", "config", "children", "key")


class LayerSpecError(LayerError):
    """A layer that cannot be described, or a spec that cannot be built; `path` locates
    it (`serial[2]/Dense`)."""


_REGISTRY: dict[str, LayerBuilder] = {}


def register_layer(kind: str, build: LayerBuilder, *, replace: bool = False) -> None:
    """Let `layer_spec` and `layer_from_spec` handle layers named `kind` (their
    `Layer.name`), built by `build(config, children)`; a kind already registered needs
    `replace=True`."""
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"register_layer: kind must be a non-empty string, got {kind!r}")
    if not callable(build):
        raise TypeError(f"register_layer: build must be callable, got {type(build).__name__}")
    if kind in _REGISTRY and not replace:
        raise ValueError(f"register_layer: kind {kind!r} is already registered; pass "
                         "replace=True to replace its builder")
    _REGISTRY[kind] = build


def registered_kinds() -> tuple[str, ...]:
    """The layer kinds `layer_from_spec` can build, sorted."""
    return tuple(sorted(_REGISTRY))


def config_builder(constructor: Callable[..., Layer]) -> LayerBuilder:
    """The builder of a layer that is not a combinator: `constructor(**config)`, no
    children allowed."""

    def build(config: Mapping[str, Any], children: tuple[Layer, ...]) -> Layer:
        if children:
            raise ValueError(f"takes no child layers, got {len(children)}")
        return constructor(**config)

    return build


# --- describing ----------------------------------------------------------------------


def _json_value(value: Any, where: str) -> Any:
    """`value` as plain JSON data (tuples become lists), or a ValueError naming `where`."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}, which JSON cannot hold")
        return float(value)
    if isinstance(value, list | tuple):
        return [_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f"{where} has keys that are not strings")
        return {k: _json_value(v, f"{where}.{k}") for k, v in value.items()}
    raise ValueError(f"{where} is a {type(value).__name__}, not JSON data")


def _describe(layer: Layer, path: str) -> dict[str, Any]:
    """The spec of `layer` at `path`, without the rebuild check."""
    if not isinstance(layer, Layer):
        raise TypeError(f"layer_spec: {path} is a {type(layer).__name__}, not a Layer")
    if layer.name not in _REGISTRY:
        raise LayerSpecError(path, f"layer kind {layer.name!r} cannot be described: no "
                             "builder is registered for it (an Activation(fn, name) of "
                             "your own, or a layer of your own?); register one with "
                             f"funcnn.nn.registry.register_layer({layer.name!r}, build); known "
                             f"kinds: {', '.join(registered_kinds())}")
    try:
        config = _json_value(dict(layer.config), "config")
    except ValueError as err:
        raise LayerSpecError(path, f"cannot be described: its {err}") from None
    children = [_describe(child, f"{path}[{i}]/{child.name}")
                for i, child in enumerate(layer.children)]
    return {"kind": layer.name, "config": config, "children": children, "key": layer.key}


def layer_spec(layer: Layer) -> dict[str, Any]:
    """The JSON-friendly description of `layer` and its children (module docstring).

    Checks that the spec builds again into a layer with the same description, so a spec
    that `layer_from_spec` would refuse is refused here, when the network is saved; a
    `LayerSpecError` names the first layer that cannot be described.
    """
    spec = _describe(layer, layer.name if isinstance(layer, Layer) else "layer")
    rebuilt = _describe(layer_from_spec(spec), spec["kind"])
    if rebuilt != spec:
        raise LayerSpecError(spec["kind"], "cannot be described: rebuilt from its spec it "
                             f"has another description ({rebuilt} instead of {spec})")
    return spec


# --- building ------------------------------------------------------------------------


def _entry(spec: Mapping[str, Any], name: str, kinds: type | tuple[type, ...], label: str,
           default: Any, path: str) -> Any:
    value = spec.get(name, default)
    if not isinstance(value, kinds):
        raise LayerSpecError(path, f"spec entry {name!r} must be {label}, got "
                             f"{type(value).__name__}")
    return value


def _build(spec: object, prefix: str) -> Layer:
    """The layer of `spec`, at path `prefix + kind` (`prefix` is `"serial[2]/"` for the
    third child of a root serial, empty for the root)."""
    if not isinstance(spec, Mapping):
        raise LayerSpecError(f"{prefix}?", f"a layer spec must be a mapping with keys "
                             f"{', '.join(SPEC_KEYS)}, got {type(spec).__name__}")
    kind = spec.get("kind")
    if not isinstance(kind, str):
        raise LayerSpecError(f"{prefix}?", f"spec entry 'kind' must be a string, got {kind!r}")
    path = prefix + kind
    unknown = sorted(set(map(str, spec)) - set(SPEC_KEYS))
    if unknown:
        raise LayerSpecError(path, f"unknown spec entries {unknown}; a layer spec has "
                             f"{', '.join(SPEC_KEYS)}")
    if kind not in _REGISTRY:
        raise LayerSpecError(path, f"unknown layer kind {kind!r}; known kinds: "
                             f"{', '.join(registered_kinds())} (a layer of your own joins "
                             "with funcnn.nn.registry.register_layer)")
    config = _entry(spec, "config", Mapping, "a mapping", {}, path)
    child_specs = _entry(spec, "children", (list, tuple), "a list", [], path)
    key = _entry(spec, "key", (str, type(None)), "a string or null", None, path)
    children = tuple(_build(child, f"{path}[{i}]/") for i, child in enumerate(child_specs))
    try:
        layer = _REGISTRY[kind](config, children)
        return layer if key is None else named(key, layer)
    except (TypeError, ValueError) as err:
        raise LayerSpecError(path, f"cannot build {kind} from config {dict(config)} and "
                             f"{len(children)} children: {err}") from None


def layer_from_spec(spec: Mapping[str, Any]) -> Layer:
    """The layer `spec` describes (see `layer_spec`); a `LayerSpecError` names the first
    part of the spec that is wrong, e.g. `serial[1]/Dense: cannot build Dense from ...`."""
    return _build(spec, "")


# --- the registered families ---------------------------------------------------------


def _no_config(kind: str, config: Mapping[str, Any]) -> None:
    if config:
        raise ValueError(f"{kind} takes no config, got {sorted(config)}")


def _only_child(kind: str, children: tuple[Layer, ...]) -> Layer:
    if len(children) != 1:
        raise ValueError(f"{kind} wraps exactly one layer, got {len(children)} children")
    return children[0]


def _serial(config: Mapping[str, Any], children: tuple[Layer, ...]) -> Layer:
    _no_config("serial", config)
    return serial(*children)


def _residual(config: Mapping[str, Any], children: tuple[Layer, ...]) -> Layer:
    _no_config("residual", config)
    return residual(_only_child("residual", children))


def _fan_out(config: Mapping[str, Any], children: tuple[Layer, ...]) -> Layer:
    return fan_out(*children, **config)


def _mixed_precision(config: Mapping[str, Any], children: tuple[Layer, ...]) -> Layer:
    if set(config) != {"policy"}:
        raise ValueError(f"MixedPrecision needs config {{'policy': ...}}, got {sorted(config)}")
    return mixed_precision(_only_child("MixedPrecision", children), config["policy"])


def _keep_mask(config: Mapping[str, Any], children: tuple[Layer, ...]) -> Layer:
    _no_config("keep_mask", config)
    return keep_mask(_only_child("keep_mask", children))


def _drop_mask(config: Mapping[str, Any], children: tuple[Layer, ...]) -> Layer:
    _no_config("drop_mask", config)
    if children:
        raise ValueError(f"drop_mask takes no child layers, got {len(children)}")
    return drop_mask()


_CELLS: Mapping[str, Callable[..., Cell]] = {"LSTMCell": LSTMCell, "GRUCell": GRUCell}
_RNN_SETTINGS = ("return_sequences", "reverse", "unroll", "lowering")


def _recurrent(kind: str) -> LayerBuilder:
    """The builder of `LSTM`, `GRU` or a plain `RNN`: the config names its cell and holds
    the cell's settings beside the sequence settings."""

    def build(config: Mapping[str, Any], children: tuple[Layer, ...]) -> Layer:
        if children:
            raise ValueError(f"{kind} takes no child layers, got {len(children)}")
        settings = dict(config)
        cell_kind = settings.pop("cell", None)
        if cell_kind not in _CELLS:
            raise ValueError(f"{kind} needs config 'cell' of {sorted(_CELLS)}, got "
                             f"{cell_kind!r}")
        sequence = {k: settings.pop(k) for k in _RNN_SETTINGS if k in settings}
        if kind == "RNN":
            return RNN(_CELLS[cell_kind](**settings), **sequence)
        expected = f"{kind}Cell"
        if cell_kind != expected:
            raise ValueError(f"{kind} runs a {expected}, got config 'cell' {cell_kind!r}")
        return (LSTM if kind == "LSTM" else GRU)(**settings, **sequence)

    return build


def _bidirectional(config: Mapping[str, Any], children: tuple[Layer, ...]) -> Layer:
    if len(children) != 2:
        raise ValueError(f"Bidirectional has 2 children (forward, backward), got "
                         f"{len(children)}")
    return Bidirectional(children[0], children[1], **config)


_LEAVES: Sequence[Callable[..., Layer]] = (
    Dense, Dropout, Flatten, Embedding, PositionEmbedding,
    activation.ReLU, activation.LeakyReLU, activation.Sigmoid, activation.Tanh,
    activation.Linear, activation.Step, activation.Softmax, activation.LogSoftmax,
    conv.Conv1D, conv.Conv2D, conv.ConvTranspose2D,
    pool.MaxPool1D, pool.MaxPool2D, pool.AvgPool1D, pool.AvgPool2D,
    pool.GlobalMaxPool, pool.GlobalAvgPool,
    normalization.BatchNorm, normalization.LayerNorm, normalization.GroupNorm,
    normalization.RMSNorm, MultiHeadAttention,
)
"""Constructors whose layers are named after them and rebuild as `constructor(**config)`."""

for _constructor in _LEAVES:
    register_layer(_constructor.__name__, config_builder(_constructor))
register_layer("serial", _serial)
register_layer("residual", _residual)
register_layer("fan_out", _fan_out)
register_layer("MixedPrecision", _mixed_precision)
register_layer("keep_mask", _keep_mask)
register_layer("drop_mask", _drop_mask)
for _kind in ("LSTM", "GRU", "RNN"):
    register_layer(_kind, _recurrent(_kind))
register_layer("Bidirectional", _bidirectional)
