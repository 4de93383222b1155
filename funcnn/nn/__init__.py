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
from funcnn.nn.attention import MultiHeadAttention, attention_weights
from funcnn.nn.branches import fan_out, residual
from funcnn.nn.combinators import error_within, named, output_shape, serial
from funcnn.nn.conv import Conv1D, Conv2D, ConvTranspose2D
from funcnn.nn.dense import Dense
from funcnn.nn.dropout import Dropout
from funcnn.nn.embedding import Embedding, PositionEmbedding
from funcnn.nn.errors import LayerError, LayerTypeError
from funcnn.nn.layer import (
    Layer,
    check_float_input,
    check_input_shape,
    check_input_shapes,
    check_param_dtype,
    example_input,
    init_shapes,
    is_pair_shape,
    no_penalty,
    parameter_free,
    parameter_free_init,
)
from funcnn.nn.masking import drop_mask, keep_mask
from funcnn.nn.normalization import BatchNorm, GroupNorm, LayerNorm, RMSNorm
from funcnn.nn.penalties import check_coefficient, coefficients, weight_penalty
from funcnn.nn.pool import (
    AvgPool1D,
    AvgPool2D,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool1D,
    MaxPool2D,
)
from funcnn.nn.precision import mixed_precision, policy_of, without_output_softmax
from funcnn.nn.recurrent import GRU, LSTM, RNN, Bidirectional, scan_cell
from funcnn.nn.recurrent_cells import Cell, GRUCell, LSTMCell
from funcnn.nn.registry import (
    LayerSpecError,
    config_builder,
    layer_from_spec,
    layer_spec,
    register_layer,
    registered_kinds,
)
from funcnn.nn.reshape import Flatten
from funcnn.nn.summary import SummaryRow, summary, summary_rows, summary_table

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Activation",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNorm",
    "Bidirectional",
    "Cell",
    "Conv1D",
    "Conv2D",
    "ConvTranspose2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRUCell",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "GroupNorm",
    "LSTMCell",
    "Layer",
    "LayerError",
    "LayerNorm",
    "LayerSpecError",
    "LayerTypeError",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MaxPool1D",
    "MaxPool2D",
    "MultiHeadAttention",
    "PositionEmbedding",
    "RMSNorm",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Step",
    "SummaryRow",
    "Tanh",
    "attention_weights",
    "check_coefficient",
    "check_float_input",
    "check_input_shape",
    "check_input_shapes",
    "check_param_dtype",
    "coefficients",
    "config_builder",
    "drop_mask",
    "error_within",
    "example_input",
    "fan_out",
    "init_shapes",
    "is_last_axis_softmax",
    "is_pair_shape",
    "keep_mask",
    "layer_from_spec",
    "layer_spec",
    "mixed_precision",
    "named",
    "no_penalty",
    "output_shape",
    "parameter_free",
    "parameter_free_init",
    "policy_of",
    "register_layer",
    "registered_kinds",
    "residual",
    "scan_cell",
    "serial",
    "summary",
    "summary_rows",
    "summary_table",
    "weight_penalty",
    "without_output_softmax",
]
