"""The static configuration of one compiled training program, and how it lays data out
over a mesh."""

from __future__ import annotations

from typing import NamedTuple

import jax
from jax.sharding import Mesh

from funcnn import parallel, sharding
from funcnn.nn.layer import Layer
from funcnn.optim.base import GradientTransformation, structure_of
from funcnn.typing import LossFn, MetricFn, PyTree

__all__ = ["TrainConfig", "constrain_model", "replicated", "split_rows"]


class TrainConfig(NamedTuple):
    """The static configuration of one compiled training program. With a `mesh`, every
    minibatch is split over its `"data"` axis; params, layer state and optimizer state are
    replicated, or with `param_axis` split over that mesh axis by `sharding.param_spec`."""

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
    param_axis: str | None = None  # FSDP: the mesh axis the model trees are split over

    # The static argument of the compiled training programs: configurations that compare
    # equal share one program. The network compares by its structure (`Layer`); the
    # optimizer by its `structure` when it has one, since its hyper-parameter values are
    # data in the optimizer state, and by identity otherwise (optax, one's own).
    def program_key(self) -> tuple[object, ...]:
        """The fields, the optimizer replaced by its structure where it has one."""
        structure = structure_of(self.optimizer)
        optimizer = self.optimizer if structure is None else ("optimizer", structure)
        return (self.net, self.loss, optimizer, *self[3:])

    def __hash__(self) -> int:
        return hash(self.program_key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainConfig) and self.program_key() == other.program_key()

    def __ne__(self, other: object) -> bool:
        return not self == other


def split_rows(cfg: TrainConfig, arrays: PyTree) -> PyTree:
    """Under a mesh, annotate each array's rows as split over the `"data"` axis."""
    return arrays if cfg.mesh is None else parallel.constrain_batch(arrays, cfg.mesh)


def replicated(cfg: TrainConfig, tree: PyTree) -> PyTree:
    """Under a mesh, annotate `tree` as replicated (params, states, figures)."""
    return tree if cfg.mesh is None else parallel.constrain_replicated(tree, cfg.mesh)


def constrain_model(cfg: TrainConfig, tree: PyTree) -> PyTree:
    """Under a mesh, annotate a model tree (params, layer state, optimizer state) with the
    placement the program keeps it in: each leaf split by `sharding.param_spec` over
    `cfg.param_axis` when that is set, else replicated on every device."""
    if cfg.mesh is None or cfg.param_axis is None:
        return replicated(cfg, tree)
    return jax.lax.with_sharding_constraint(  # type: ignore[no-untyped-call]
        tree, sharding.param_shardings(tree, cfg.mesh, cfg.param_axis))
