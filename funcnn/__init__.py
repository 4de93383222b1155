"""funcnn: a typed, functional neural-network library in pure JAX.

Networks are `Layer(init, apply, penalty)` triples of pure functions over plain dicts
of arrays; see the guide in docs/ for the path from one neuron to a trained classifier.
"""

from funcnn import activations, initializers, losses, metrics
from funcnn.combinators import named, serial, summary, summary_table
from funcnn.errors import LayerError, LayerTypeError
from funcnn.gradcheck import GradientCheck, check_gradients
from funcnn.layers import (
    Activation,
    Dense,
    Dropout,
    Flatten,
    Layer,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
)
from funcnn.tree import count_params

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Dense",
    "Dropout",
    "Flatten",
    "GradientCheck",
    "Layer",
    "LayerError",
    "LayerTypeError",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Step",
    "Tanh",
    "activations",
    "check_gradients",
    "count_params",
    "initializers",
    "losses",
    "metrics",
    "named",
    "serial",
    "summary",
    "summary_table",
]
