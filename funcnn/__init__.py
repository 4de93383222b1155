"""funcnn: a typed, functional neural-network library in pure JAX.

Networks are `Layer(init, apply, penalty)` triples of pure functions over plain dicts
of arrays; see the guide in docs/ for the path from one neuron to a trained classifier.
"""

from funcnn import (
    activations,
    data,
    datasets,
    ensemble,
    initializers,
    losses,
    metrics,
    optim,
    parallel,
)
from funcnn.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_arrays,
    read_metadata,
    save_checkpoint,
)
from funcnn.combinators import named, serial, summary, summary_table
from funcnn.compile_cache import enable_compilation_cache
from funcnn.ensemble import fit_ensemble, init_ensemble, predict_ensemble
from funcnn.errors import LayerError, LayerTypeError
from funcnn.gradcheck import GradientCheck, check_gradients
from funcnn.history import EarlyStopping, History
from funcnn.inference import Evaluation, evaluate, predict, predict_classes
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
from funcnn.train import FitResult, NonFiniteLossError, StepMetrics, fit, make_train_step
from funcnn.tree import count_params, tree_stack, tree_unstack

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "CheckpointError",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Evaluation",
    "FitResult",
    "Flatten",
    "GradientCheck",
    "History",
    "Layer",
    "LayerError",
    "LayerTypeError",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "NonFiniteLossError",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Step",
    "StepMetrics",
    "Tanh",
    "activations",
    "check_gradients",
    "count_params",
    "data",
    "datasets",
    "enable_compilation_cache",
    "ensemble",
    "evaluate",
    "fit",
    "fit_ensemble",
    "init_ensemble",
    "initializers",
    "load_checkpoint",
    "losses",
    "make_train_step",
    "metrics",
    "named",
    "optim",
    "parallel",
    "predict",
    "predict_classes",
    "predict_ensemble",
    "read_arrays",
    "read_metadata",
    "save_checkpoint",
    "serial",
    "summary",
    "summary_table",
    "tree_stack",
    "tree_unstack",
]
