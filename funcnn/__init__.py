"""funcnn: a typed, functional neural-network library in pure JAX.

Networks are `Layer(init, apply, penalty)` triples of pure functions over plain dicts
of arrays; see the guide in docs/ for the path from one neuron to a trained classifier.

The packages: `funcnn.nn` (layers), `funcnn.training` (step, fit, evaluate, ensembles),
`funcnn.optim` (optimizers), `funcnn.data` and `funcnn.datasets` (arrays in, arrays out),
the array math (`activations`, `initializers`, `losses`, `metrics`), `checkpoint`,
`parallel`, `precision` (mixed-precision policies), and the `funcnn` command in
`funcnn.cli`. Every public name of `funcnn.nn` and `funcnn.training` is also a name here.
"""

from __future__ import annotations

import importlib
import types

from funcnn import (
    _moved,
    activations,
    data,
    datasets,
    initializers,
    losses,
    metrics,
    nn,
    optim,
    parallel,
    precision,
    training,
)
from funcnn.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_arrays,
    read_metadata,
    save_checkpoint,
)
from funcnn.compile_cache import enable_compilation_cache
from funcnn.gradcheck import GradientCheck, check_gradients
from funcnn.nn import *  # noqa: F403  (the layer API: one line per new layer module there)
from funcnn.precision import Policy
from funcnn.training import *  # noqa: F403
from funcnn.tree import count_params, tree_stack, tree_unstack

__version__ = "0.2.0"

_moved.install()

__all__ = [
    "CheckpointError",
    "GradientCheck",
    "Policy",
    "__version__",
    "activations",
    "check_gradients",
    "count_params",
    "data",
    "datasets",
    "enable_compilation_cache",
    "initializers",
    "load_checkpoint",
    "losses",
    "metrics",
    "nn",
    "optim",
    "parallel",
    "precision",
    "read_arrays",
    "read_metadata",
    "save_checkpoint",
    "training",
    "tree_stack",
    "tree_unstack",
    *nn.__all__,
    *training.__all__,
]


def __getattr__(name: str) -> types.ModuleType:
    """0.1 module names (`funcnn.ensemble`, ...) as deprecated aliases of their new homes."""
    old = f"funcnn.{name}"
    if old in _moved.MOVED_MODULES:
        return importlib.import_module(old)  # its loader warns
    raise AttributeError(f"module 'funcnn' has no attribute {name!r}")
