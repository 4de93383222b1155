"""The static configuration of one compiled training program, and how it lays data out
over a mesh."""

from __future__ import annotations

from typing import NamedTuple

from jax.sharding import Mesh

from funcnn import parallel
from funcnn.nn.layer import Layer
from funcnn.optim.base import GradientTransformation
from funcnn.typing import LossFn, MetricFn, PyTree

__all__ = ["TrainConfig", "replicated", "split_rows"]


class TrainConfig(NamedTuple):
    """The static configuration of one compiled training program. With a `mesh`, every
    minibatch is split over its `"data"` axis and params and states stay replicated."""

    net: Layer
    loss: LossFn
    optimizer: GradientTransformation
    metric: MetricFn | None
    batch_size: int | None  # None: full batch, data in its given order
    shuffle: bool
    val_batch_size: int
    unroll: int
    mesh: Mesh | None = None
    rollback: bool = True  # restore a non-finite epoch's starting values in the program
    # a ragged last minibatch as its own smaller step instead of padded with weight-0 rows
    # (networks with state: padding rows would count in BatchNorm's batch statistics)
    exact_tail: bool = False


def split_rows(cfg: TrainConfig, arrays: PyTree) -> PyTree:
    """Under a mesh, annotate each array's rows as split over the `"data"` axis."""
    return arrays if cfg.mesh is None else parallel.constrain_batch(arrays, cfg.mesh)


def replicated(cfg: TrainConfig, tree: PyTree) -> PyTree:
    """Under a mesh, annotate `tree` as replicated (params, states, figures)."""
    return tree if cfg.mesh is None else parallel.constrain_replicated(tree, cfg.mesh)
