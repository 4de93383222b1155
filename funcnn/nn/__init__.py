"""Layers: the `Layer` contract, the book's layers, combinators and `summary`.

Each layer family is one module here; its public names are imported below and listed in
`__all__` (tests check that the two agree), and `funcnn` star-imports them, so adding a
family touches no file outside this package.
"""

from funcnn.nn.activation import (
    Activation,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
    is_last_axis_softmax,
)
from funcnn.nn.combinators import named, output_shape, serial
from funcnn.nn.dense import Dense
from funcnn.nn.dropout import Dropout
from funcnn.nn.errors import LayerError, LayerTypeError
from funcnn.nn.layer import (
    Layer,
    check_float_input,
    check_input_shape,
    init_shapes,
    no_penalty,
    parameter_free,
    parameter_free_init,
)
from funcnn.nn.normalization import BatchNorm, GroupNorm, LayerNorm, RMSNorm
from funcnn.nn.precision import mixed_precision, policy_of, without_output_softmax
from funcnn.nn.reshape import Flatten
from funcnn.nn.summary import SummaryRow, summary, summary_rows, summary_table

__all__ = [
    "Activation",
    "BatchNorm",
    "Dense",
    "Dropout",
    "Flatten",
    "GroupNorm",
    "Layer",
    "LayerError",
    "LayerNorm",
    "LayerTypeError",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "RMSNorm",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Step",
    "SummaryRow",
    "Tanh",
    "check_float_input",
    "check_input_shape",
    "init_shapes",
    "is_last_axis_softmax",
    "mixed_precision",
    "named",
    "no_penalty",
    "output_shape",
    "parameter_free",
    "parameter_free_init",
    "policy_of",
    "serial",
    "summary",
    "summary_rows",
    "summary_table",
    "without_output_softmax",
]
