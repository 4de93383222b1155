"""The networks `funcnn train` builds: a Dense network (`mlp`) or a small convolutional
one for the image data sets (`cnn`), described by a `ModelConfig`.

A model file stores the network itself as a layer spec (`funcnn.nn.registry`); the
`ModelConfig` records how the command chose it (what `funcnn summary` prints) and the
task: the input shape, the output kind and the number of outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from funcnn.initializers import book_normal, glorot_uniform, he_normal
from funcnn.nn import (
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    LeakyReLU,
    Linear,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    serial,
)
from funcnn.typing import Initializer, Shape

ACTIVATIONS: dict[str, Callable[[], Layer]] = {
    "relu": ReLU, "leaky-relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh,
}
"""Hidden-layer activations by command-line name."""

INITS = ("glorot", "he", "book")
"""Weight initializers: Glorot-uniform, He-normal, or the book's `init_scale * N(0, 1)`
(0.01; 0.1 for the chapter-17 regression). Biases start at 0."""

OUTPUTS = ("softmax", "linear")
"""Output kinds: `softmax` (classification, cross-entropy) or `linear` (regression, MSE)."""

ARCHITECTURES = ("mlp", "cnn")
"""`mlp`: Dense layers on the flattened input; `cnn`: conv blocks, then Dense layers, on
one-channel images `(H, W, 1)`."""

KERNEL = 3
POOL = 2
"""Each conv block: `Conv2D(filters, 3x3, SAME) -> activation -> MaxPool2D(2x2)`."""


class ModelConfig(NamedTuple):
    """`mlp`: `Flatten? -> [Dense(h) -> act -> Dropout?] * len(hidden) -> Dense(n_outputs)
    -> softmax | linear`, inputs of rank > 1 (images) flattened first. `cnn`: on `(H, W,
    1)` images, `[Conv2D(f, 3x3, SAME) -> act -> MaxPool2D(2)]` for each f in `filters`,
    `Flatten(3)`, then the same Dense layers. Weights drawn by `init` (one of `INITS`;
    `init_scale` is the book initializer's scale); hidden layers (conv and Dense) with
    `w_l2 = b_l2 = l2`."""

    input_shape: Shape
    hidden: tuple[int, ...]
    activation: str
    output: str
    n_outputs: int
    dropout: float = 0.0
    l2: float = 0.0
    init: str = "glorot"
    init_scale: float = 0.01
    architecture: str = "mlp"
    filters: tuple[int, ...] = ()

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
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got "
                             f"{self.architecture!r}")
        if self.architecture == "cnn":
            check_conv_blocks(self.input_shape, self.filters)
        elif self.filters:
            raise ValueError(f"filters {list(self.filters)} given for an mlp; conv filters "
                             "are for the cnn architecture")
        return self

    def to_json(self) -> dict[str, Any]:
        """The config as JSON data; an mlp's has no `architecture` and `filters` entries,
        as in the model files of format 1."""
        out = {**self._asdict(), "input_shape": list(self.input_shape),
               "hidden": list(self.hidden), "filters": list(self.filters)}
        if self.architecture == "mlp":
            del out["architecture"], out["filters"]
        return out


def _bad_size(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or value < 1


def check_conv_blocks(input_shape: Shape, filters: tuple[int, ...]) -> None:
    """A ValueError unless `filters` (at least one) fit one-channel images of
    `input_shape`: each block halves the height and width, which must be >= 2 first."""
    if len(input_shape) != 3 or input_shape[-1] != 1:
        raise ValueError("the cnn architecture takes one-channel images (H, W, 1), got "
                         f"input_shape {tuple(input_shape)}")
    if not filters or any(_bad_size(f) for f in filters):
        raise ValueError(f"filters must be one or more positive ints, got {list(filters)}")
    size = min(input_shape[:2])
    fits = 0
    while size >= POOL:
        size //= POOL
        fits += 1
    if len(filters) > fits:
        raise ValueError(f"{len(filters)} conv blocks do not fit {input_shape[0]}x"
                         f"{input_shape[1]} images: each halves the size, so at most {fits}")


def _initializer(config: ModelConfig) -> Initializer:
    init: Initializer = {"glorot": glorot_uniform(), "he": he_normal(),
                         "book": book_normal(config.init_scale)}[config.init]
    return init


def build_network(config: ModelConfig) -> Layer:
    """The `serial` network `config` describes."""
    config.check()
    init = _initializer(config)
    activation = ACTIVATIONS[config.activation]
    layers: list[Layer] = []
    if config.architecture == "cnn":
        for width in config.filters:
            layers += [Conv2D(width, KERNEL, padding="SAME", w_init=init, w_l2=config.l2,
                              b_l2=config.l2), activation(), MaxPool2D(POOL)]
        layers.append(Flatten(3))
    elif len(config.input_shape) > 1:
        layers.append(Flatten(len(config.input_shape)))
    for size in config.hidden:
        layers += [Dense(size, w_init=init, w_l2=config.l2, b_l2=config.l2), activation()]
        if config.dropout > 0.0:
            layers.append(Dropout(config.dropout))
    layers.append(Dense(config.n_outputs, w_init=init))
    layers.append(Softmax() if config.output == "softmax" else Linear())
    return serial(*layers)


def describe_network(config: ModelConfig) -> str:
    """One line for `funcnn summary`: the architecture and its settings."""
    init = f"book {config.init_scale:g} * N(0, 1)" if config.init == "book" else config.init
    convs = (f"cnn, filters {list(config.filters)} ({KERNEL}x{KERNEL} conv, "
             f"{POOL}x{POOL} max pool each), " if config.architecture == "cnn" else "")
    return (f"network: {convs}hidden {list(config.hidden)}, activation {config.activation}, "
            f"dropout {config.dropout:g}, l2 {config.l2:g}, init {init}")
