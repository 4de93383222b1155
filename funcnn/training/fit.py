"""`fit` (book chapters 10-19): epochs of shuffled minibatches as few compiled calls, the
History of per-epoch figures, and a clear stop when the loss becomes non-finite."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from funcnn import parallel, sharding
from funcnn.nn.layer import Layer
from funcnn.optim.base import GradientTransformation
from funcnn.training.batching import rows_of
from funcnn.training.checks import (
    check_batch_size,
    check_count,
    check_key,
    check_optimizer,
    checked_pair,
    refuse_traced,
)
from funcnn.training.config import TrainConfig
from funcnn.training.epochs import (
    auto_unroll,
    epoch_inputs,
    epochs_per_program,
    key_seed,
)
from funcnn.training.history import Callback, History
from funcnn.training.loop import run_epochs_jit
from funcnn.training.progress import ProgressBar
from funcnn.tree import count_params
from funcnn.typing import Array, ArrayLike, LossFn, MetricFn, Params, PRNGKey, PyTree, State

__all__ = ["FitResult", "NonFiniteLossError", "PreparedFit", "check_same_examples", "fit",
           "owned_copy", "prepare_fit"]


class FitResult(NamedTuple):
    """What `fit` returns: trained params, layer state, optimizer state and the History."""

    params: Params
    state: State
    opt_state: PyTree
    history: History


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss; holds the last finite params, states and history."""

    def __init__(self, epoch: int, result: FitResult) -> None:
        super().__init__(
            f"fit: the loss became non-finite in epoch {epoch}; training stopped. The "
            f"parameters from before that epoch (the last finite ones) are in error.result"
        )
        self.epoch = epoch
        self.result = result


class PreparedFit(NamedTuple):
    """The checked inputs of a training run: its compiled program's configuration, the data
    (replicated on the mesh when there is one) and the number of minibatches per epoch."""

    cfg: TrainConfig
    x: Array
    y: Array
    x_val: Array | None
    y_val: Array | None
    n_batches: int
    epochs: int  # as plain ints, however given (NumPy integers too)
    initial_epoch: int


def prepare_fit(where: str, net: Layer, loss: LossFn, optimizer: GradientTransformation,
                metric: MetricFn | None, x: ArrayLike, y: ArrayLike, *, epochs: int,
                initial_epoch: int, batch_size: int | None,
                validation_data: tuple[ArrayLike, ArrayLike] | None,
                validation_batch_size: int | None, shuffle: bool, unroll: int | None,
                mesh: Mesh | None, template: tuple[Params, State],
                shard_params: str | None = None) -> PreparedFit:
    """Check `fit`'s arguments (errors start with `where`) and place the data. `template`
    is one model's (params, state), possibly abstract: the shapes, labels and input limits
    of the data are checked against it, and its size picks the unroll factor when `unroll`
    is None (see `auto_unroll`). `shard_params` must name an axis of `mesh`."""
    epochs = check_count(where, "epochs", epochs)
    initial_epoch = check_count(where, "initial_epoch", initial_epoch)
    check_optimizer(where, optimizer)
    if mesh is not None:
        mesh = parallel.check_data_mesh(where, mesh)
    if shard_params is not None:
        sharding.check_param_axis(where, mesh, shard_params)
    x_arr, y_arr = checked_pair(where, net, *template, x, y)
    n = rows_of(x_arr)
    size = check_batch_size(where, batch_size, n)
    if mesh is not None:
        parallel.check_divisible(where, batch_size, size, mesh)
    x_val = y_val = None
    val_size = 1
    if validation_data is not None:
        if not (isinstance(validation_data, tuple | list) and len(validation_data) == 2):
            raise ValueError(f"{where}: validation_data must be a pair (x_val, y_val)")
        x_val, y_val = checked_pair(f"{where} (validation_data)", net, *template,
                                    *validation_data)
        check_same_examples(where, x_arr, y_arr, x_val, y_val)
        val_size = check_batch_size(f"{where} (validation_data)",
                                    validation_batch_size or min(batch_size or n,
                                                                 rows_of(x_val)),
                                    rows_of(x_val))
    if unroll is None:
        unroll = auto_unroll(size, count_params(template[0]))
    elif not isinstance(unroll, int) or isinstance(unroll, bool) or unroll < 1:
        raise ValueError(f"{where}: unroll must be a positive int or None, got {unroll!r}")
    # with layer state (running statistics), padding rows must not reach the network
    exact_tail = bool(jax.tree.leaves(template[1])) and batch_size is not None
    ways = 1 if mesh is None else parallel.data_parallel_size(mesh)
    if exact_tail and (n % size) % ways:
        raise ValueError(f"{where}: the network has state (e.g. BatchNorm), so its last, "
                         f"smaller batch of {n % size} samples runs as its own step, which "
                         f"does not split evenly over the mesh's {ways} devices; pick a "
                         f"batch_size whose remainder of {n} samples is a multiple of {ways}")
    cfg = TrainConfig(net, loss, optimizer, metric, None if batch_size is None else size,
                      shuffle, val_size, unroll, mesh, exact_tail=exact_tail,
                      param_axis=shard_params)
    if mesh is not None:
        x_arr, y_arr, x_val, y_val = parallel.replicate((x_arr, y_arr, x_val, y_val), mesh)
    return PreparedFit(cfg, x_arr, y_arr, x_val, y_val, math.ceil(n / size), epochs,
                       initial_epoch)


def check_same_examples(where: str, x: PyTree, y: Array, x_val: PyTree,
                        y_val: Array | None) -> None:
    """Validation examples must have the shapes and dtypes of the training examples (for
    a pair `(x, mask)`, array by array)."""
    def describe(tree: PyTree) -> str:
        leaves = jax.tree.leaves(tree)
        parts = [f"{a.shape[1:]} ({a.dtype})" for a in leaves]
        return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"

    for name, train, val in (("x", x, x_val), ("y", y, y_val)):
        if val is None:
            continue
        same = jax.tree.structure(train) == jax.tree.structure(val) and all(  # type: ignore[operator]
            a.shape[1:] == b.shape[1:] and a.dtype == b.dtype
            for a, b in zip(jax.tree.leaves(train), jax.tree.leaves(val), strict=True))
        if not same:
            raise ValueError(f"{where}: validation_data's {name} has examples of shape "
                             f"{describe(val)} but the training {name}'s are {describe(train)}")


def owned_copy(cfg: TrainConfig, tree: PyTree) -> PyTree:
    """A private copy of `tree` that a compiled program may donate: on the default device,
    or over the mesh, each leaf split by `sharding.param_spec` over `cfg.param_axis` when
    that is set, else replicated."""
    if cfg.mesh is None:
        return _copy_tree(tree)
    if cfg.param_axis is not None:
        return sharding.shard_tree(tree, cfg.mesh, cfg.param_axis)
    return parallel.replicate(tree, cfg.mesh)


@jax.jit
def _copy_tree(tree: PyTree) -> PyTree:
    """Fresh buffers for every leaf, in one compiled program (not one per leaf shape)."""
    return jax.tree.map(lambda leaf: jnp.array(leaf, copy=True), tree)


def fit(net: Layer, params: Params, state: State, optimizer: GradientTransformation,
        loss: LossFn, x: ArrayLike, y: ArrayLike, *, key: PRNGKey, epochs: int,
        batch_size: int | None = None,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        metric: MetricFn | None = None, shuffle: bool = True, progress: bool = True,
        callbacks: Sequence[Callback] = (), opt_state: PyTree | None = None,
        initial_epoch: int = 0, validation_batch_size: int | None = None,
        unroll: int | None = None, mesh: Mesh | None = None,
        shard_params: str | None = None) -> FitResult:
    """Train `net` for `epochs` epochs of minibatches of `batch_size` (None: full batch).

    Epoch `e` shuffles by `epoch_orders` and draws dropout masks from `fold_in(key, e)`,
    both functions of (key, e) alone, so a run resumed
    with `initial_epoch=e` and the saved `opt_state` continues exactly. Data moves to the
    device once; the caller's arrays are never donated or modified.

    With a `mesh` (one with a `"data"` axis, e.g. `funcnn.parallel.data_mesh()`), each
    minibatch is split over that axis, whose size must divide `batch_size` (or N for full
    batch); data, params and states are replicated and the result lives on the mesh.
    Across processes, every process calls `fit` with the same arguments.

    `shard_params` (a mesh axis name, typically `"data"`: FSDP / ZeRO-3) splits params,
    layer state and optimizer state over that axis instead of replicating them: a leaf
    of >= `funcnn.sharding.MIN_SHARDED_SIZE` elements along its largest axis that the
    axis size divides (ties: the first), smaller ones and scalars replicated (see
    `funcnn.sharding.param_spec`). XLA inserts the gathers and gradient reductions from
    the annotations; the results equal replicated training up to the order of float sums.

    `unroll` unrolls the scan over minibatches that many times; None picks 4 for small
    steps (batch size x params <= 2e6), where the loop's own cost dominates, else 1.
    """
    refuse_traced("fit", (params, state, x, y, opt_state))
    check_key("fit", key)
    prep = prepare_fit("fit", net, loss, optimizer, metric, x, y, epochs=epochs,
                       initial_epoch=initial_epoch, batch_size=batch_size,
                       validation_data=validation_data,
                       validation_batch_size=validation_batch_size, shuffle=shuffle,
                       unroll=unroll, mesh=mesh, template=(params, state),
                       shard_params=shard_params)
    # No rollback inside the program: keeping each epoch's starting values alive beside
    # the loop cost 5-7% of a small step (measured); a failed call is replayed instead.
    cfg = prep.cfg._replace(rollback=False)
    # Private copies: the compiled program donates (reuses) these buffers.
    params, state, opt_state = owned_copy(
        cfg, (params, state, optimizer.init(params) if opt_state is None else opt_state))
    seed = key_seed(key)
    key = key if cfg.mesh is None else parallel.replicate(key, cfg.mesh)
    history = History()
    epochs, initial_epoch = prep.epochs, prep.initial_epoch
    chunk = epochs_per_program(prep.n_batches, epochs, bool(callbacks),
                               order_entries=rows_of(prep.x) if cfg.shuffle else 0)
    bar = ProgressBar(epochs, enabled=progress)
    done = 0
    try:
        while done < epochs:
            ids = np.arange(initial_epoch + done, initial_epoch + done + chunk, dtype=np.int32)
            active = np.arange(done, done + chunk) < epochs
            inputs = epoch_inputs(cfg, ids, active, seed, rows_of(prep.x))
            start = owned_copy(cfg, (params, state, opt_state))
            params, state, opt_state, logs = run_epochs_jit(
                cfg, params, state, opt_state, prep.x, prep.y, prep.x_val, prep.y_val, key,
                *inputs)
            host = jax.device_get(logs)
            stop = False
            for i in range(int(np.sum(host["ran"]))):
                epoch_logs = {k: float(v[i]) for k, v in host.items()
                              if k not in ("finite", "ran")}
                if not host["finite"][i]:
                    # replay the call's epochs before the failed one from its start
                    before = active & (np.arange(chunk) < i)
                    params, state, opt_state, _ = run_epochs_jit(
                        cfg, *start, prep.x, prep.y, prep.x_val, prep.y_val, key,
                        *epoch_inputs(cfg, ids, before, seed, rows_of(prep.x)))
                    raise NonFiniteLossError(int(ids[i]), FitResult(params, state, opt_state,
                                                                    history))
                history.append(int(ids[i]), epoch_logs)
                bar.update(int(ids[i]), epoch_logs)
                for callback in callbacks:
                    stop = bool(callback(int(ids[i]), epoch_logs, params)) or stop
            done += chunk
            if stop:
                break
    finally:
        bar.close()
    return FitResult(params, state, opt_state, history)
