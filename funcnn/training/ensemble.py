"""Ensembles and hyper-parameter sweeps: K models trained at once by one compiled program.

Every leaf of an ensemble's params, state and optimizer state has a leading member axis
of size K (`funcnn.tree.tree_stack` builds one from K trees, `tree_unstack` takes it
apart). `fit_ensemble` is `fit` under `jax.vmap`: member k trains exactly as
`fit(..., key=keys[k])` would, with its own initialization, data order, dropout masks
and, since optimizer hyper-parameters are state leaves, its own learning rate or decay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from funcnn import parallel
from funcnn.nn.layer import Layer
from funcnn.optim.base import GradientTransformation
from funcnn.optim.hyperparams import replace_hyperparams
from funcnn.training.batching import rows_of
from funcnn.training.checks import (
    check_batch_size,
    checked_inputs,
    checked_pair,
    member_template,
    refuse_traced,
)
from funcnn.training.config import TrainConfig
from funcnn.training.epochs import epoch_inputs, epochs_per_program, key_seed
from funcnn.training.fit import FitResult, owned_copy, prepare_fit
from funcnn.training.history import History
from funcnn.training.inference import Evaluation, evaluate_arrays, predict_arrays
from funcnn.training.loop import run_epochs
from funcnn.training.progress import ProgressBar
from funcnn.tree import leading_size, tree_unstack
from funcnn.typing import (
    Array,
    ArrayLike,
    LossFn,
    MetricFn,
    NumpyArray,
    Params,
    PRNGKey,
    PyTree,
    Shape,
    State,
)

__all__ = ["EnsembleResult", "evaluate_ensemble", "fit_ensemble", "init_ensemble",
           "predict_ensemble"]


class EnsembleResult(NamedTuple):
    """What `fit_ensemble` returns: stacked params, state and optimizer state (leading axis
    K), one History per member, and per member the epoch whose loss became non-finite
    (that member was rolled back to the epoch before and left there), or None."""

    params: Params
    state: State
    opt_state: PyTree
    histories: list[History]
    diverged: list[int | None]

    def members(self) -> list[FitResult]:
        """The ensemble as K separate `FitResult`s."""
        size = len(self.histories)
        return [FitResult(*parts) for parts in zip(
            tree_unstack(self.params, size), tree_unstack(self.state, size),
            tree_unstack(self.opt_state, size), self.histories, strict=True)]


def check_keys(where: str, keys: object) -> tuple[PRNGKey, int]:
    """`keys` checked to be K PRNG keys (`jax.random.split(key, K)`); returns them and K."""
    if not isinstance(keys, jax.Array):
        raise TypeError(f"{where}: keys must be a jax array of K PRNG keys, e.g. "
                        f"jax.random.split(key, K); got {type(keys).__name__}")
    typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
    raw = keys.dtype == jnp.uint32 and keys.ndim == 2
    if not ((typed and keys.ndim == 1) or raw) or keys.shape[0] < 1:
        raise ValueError(f"{where}: keys must hold K >= 1 PRNG keys, e.g. jax.random.split(key, "
                         f"K); got shape {keys.shape} and dtype {keys.dtype}")
    return keys, int(keys.shape[0])


def init_ensemble(net: Layer, keys: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
    """Params and state of K members, member k being `net.init(keys[k], input_shape)`;
    every leaf gets a leading axis K."""
    keys, _ = check_keys("init_ensemble", keys)
    shape = tuple(input_shape)
    # eager, not jitted: each member is bit-for-bit `net.init(keys[k], input_shape)`
    stacked: tuple[Params, State] = jax.vmap(lambda key: net.init(key, shape))(keys)
    return stacked


def _run_ensemble(cfg: TrainConfig, params: Params, state: State, opt_state: PyTree, x: Array,
                  y: Array, x_val: Array | None, y_val: Array | None, keys: PRNGKey,
                  epoch_ids: Array, active: Array, orders: Array | None,
                  ) -> tuple[Params, State, PyTree, dict[str, Array]]:
    """`run_epochs` mapped over members: params, states, keys and sample orders have a
    leading axis K, data and epochs are shared; figures come back with shape `(K, epochs)`."""
    mapped = jax.vmap(partial(run_epochs, cfg),
                      in_axes=(0, 0, 0, None, None, None, None, 0, None, None, 0))
    result: tuple[Params, State, PyTree, dict[str, Array]] = mapped(
        params, state, opt_state, x, y, x_val, y_val, keys, epoch_ids, active, orders)
    return result


_run_ensemble_jit = jax.jit(_run_ensemble, static_argnums=(0,), donate_argnums=(1, 2, 3))


def _member_hyperparams(opt_state: PyTree, values: Mapping[str, ArrayLike],
                        members: int) -> PyTree:
    """`opt_state` with one value per member for each named hyper-parameter."""
    checked = {}
    for name, value in values.items():
        array = np.asarray(value)
        if array.shape != (members,):
            raise ValueError(f"fit_ensemble: hyperparams[{name!r}] needs one value per member, "
                             f"shape ({members},); got shape {array.shape}")
        checked[name] = array
    try:
        return replace_hyperparams(opt_state, **checked)
    except (TypeError, ValueError) as err:
        raise type(err)(f"fit_ensemble: hyperparams: {err}") from None


def fit_ensemble(net: Layer, params: Params, state: State, optimizer: GradientTransformation,
                 loss: LossFn, x: ArrayLike, y: ArrayLike, *, keys: PRNGKey, epochs: int,
                 batch_size: int | None = None,
                 validation_data: tuple[ArrayLike, ArrayLike] | None = None,
                 metric: MetricFn | None = None, shuffle: bool = True, progress: bool = True,
                 opt_state: PyTree | None = None,
                 hyperparams: Mapping[str, ArrayLike] | None = None, initial_epoch: int = 0,
                 validation_batch_size: int | None = None, unroll: int | None = None,
                 mesh: Mesh | None = None, shard_params: str | None = None,
                 ) -> EnsembleResult:
    """Train K members at once: member k is `fit(net, params[k], state[k], optimizer, loss,
    x, y, key=keys[k], ...)`, all in one compiled program per chunk of epochs.

    `params`/`state` are stacked (see `init_ensemble`); `opt_state` too, or None for
    `optimizer.init` of each member. `hyperparams` gives members their own optimizer
    settings, each an array of K values: `{"learning_rate": rates}`. A member whose loss
    becomes non-finite stops there (see `EnsembleResult.diverged`) while the rest go on.
    `mesh` splits every minibatch over its `"data"` axis, as in `fit`. `shard_params` is
    refused: the rule would see a member's shapes inside `vmap` but the stacked shapes
    when placing them, so the two splits could disagree.
    """
    if shard_params is not None:
        raise ValueError(f"fit_ensemble: shard_params={shard_params!r} is not supported; "
                         "members' params are replicated on the mesh (use fit for FSDP)")
    refuse_traced("fit_ensemble", (params, state, x, y, opt_state))
    keys, members = check_keys("fit_ensemble", keys)
    leading_size(params, "fit_ensemble (params)", members)
    leading_size(state, "fit_ensemble (state)", members)
    # one member's template: its data checks, and the unroll factor of one member's fit, so
    # that members train exactly as fit would
    prep = prepare_fit("fit_ensemble", net, loss, optimizer, metric, x, y, epochs=epochs,
                       initial_epoch=initial_epoch, batch_size=batch_size,
                       validation_data=validation_data,
                       validation_batch_size=validation_batch_size, shuffle=shuffle,
                       unroll=unroll, mesh=mesh, template=member_template((params, state)))
    cfg = prep.cfg
    epochs, initial_epoch = prep.epochs, prep.initial_epoch
    params = owned_copy(cfg, params)
    state = owned_copy(cfg, state)
    if opt_state is None:
        opt_state = jax.vmap(optimizer.init)(params)
    else:
        leading_size(opt_state, "fit_ensemble (opt_state)", members)
    if hyperparams:
        opt_state = _member_hyperparams(opt_state, hyperparams, members)
    opt_state = owned_copy(cfg, opt_state)
    seeds = key_seed(keys)
    if cfg.mesh is not None:
        keys = parallel.replicate(keys, cfg.mesh)
    histories = [History() for _ in range(members)]
    diverged: list[int | None] = [None] * members
    chunk = epochs_per_program(prep.n_batches, epochs, has_callbacks=False,
                               order_entries=members * rows_of(prep.x) if cfg.shuffle else 0)
    bar = ProgressBar(epochs, enabled=progress)
    done = 0
    try:
        while done < epochs and None in diverged:
            ids = np.arange(initial_epoch + done, initial_epoch + done + chunk, dtype=np.int32)
            active = np.arange(done, done + chunk) < epochs
            params, state, opt_state, logs = _run_ensemble_jit(
                cfg, params, state, opt_state, prep.x, prep.y, prep.x_val, prep.y_val, keys,
                *epoch_inputs(cfg, ids, active, seeds, rows_of(prep.x)))
            _record(jax.device_get(logs), ids, histories, diverged, bar)
            done += chunk
    finally:
        bar.close()
    return EnsembleResult(params, state, opt_state, histories, diverged)


def _record(logs: Mapping[str, NumpyArray], ids: NumpyArray, histories: Sequence[History],
            diverged: list[int | None], bar: ProgressBar) -> None:
    """Append one program call's figures (arrays `(K, epochs)`) to the members' histories;
    the progress bar shows the mean over the members still training."""
    names = [name for name in logs if name not in ("finite", "ran")]
    for i, epoch in enumerate(ids.tolist()):
        healthy = []
        for k, history in enumerate(histories):
            if not logs["ran"][k, i]:
                continue
            if not logs["finite"][k, i]:
                diverged[k] = epoch
                continue
            history.append(epoch, {name: float(logs[name][k, i]) for name in names})
            healthy.append(k)
        if healthy:
            bar.update(epoch, {name: float(np.mean(logs[name][healthy, i])) for name in names})


def predict_ensemble(net: Layer, params: Params, state: State, x: ArrayLike, *,
                     batch_size: int | None = None, reduce: str = "mean") -> Array:
    """Outputs of every member on `x` (inference mode): their mean `(N, ...)` with
    `reduce="mean"` (for softmax outputs, the averaged class probabilities), or all of
    them `(K, N, ...)` with `reduce="none"`."""
    if reduce not in ("mean", "none"):
        raise ValueError(f"predict_ensemble: reduce must be 'mean' or 'none', got {reduce!r}")
    refuse_traced("predict_ensemble", (params, state, x))
    members = leading_size(params, "predict_ensemble (params)")
    leading_size(state, "predict_ensemble (state)", members)
    one_params, one_state = member_template((params, state))
    x_arr = checked_inputs("predict_ensemble", net, one_params, one_state, x)
    size = check_batch_size("predict_ensemble", batch_size, rows_of(x_arr))
    outputs: Array = _predict_members(net, params, state, x_arr, size)
    return jnp.mean(outputs, axis=0) if reduce == "mean" else outputs


@partial(jax.jit, static_argnums=(0, 4))
def _predict_members(net: Layer, params: Params, state: State, x: Array,
                     batch_size: int) -> Array:
    outputs: Array = jax.vmap(predict_arrays, in_axes=(None, 0, 0, None, None))(
        net, params, state, x, batch_size)
    return outputs


def evaluate_ensemble(net: Layer, params: Params, state: State, loss: LossFn, x: ArrayLike,
                      y: ArrayLike, *, batch_size: int | None = None,
                      metric: MetricFn | None = None) -> Evaluation:
    """Each member's data loss and metric on `(x, y)`: an `Evaluation` of arrays `(K,)`."""
    refuse_traced("evaluate_ensemble", (params, state, x, y))
    members = leading_size(params, "evaluate_ensemble (params)")
    leading_size(state, "evaluate_ensemble (state)", members)
    one_params, one_state = member_template((params, state))
    x_arr, y_arr = checked_pair("evaluate_ensemble", net, one_params, one_state, x, y)
    size = check_batch_size("evaluate_ensemble", batch_size, rows_of(x_arr))
    result: Evaluation = _evaluate_members(net, params, state, loss, metric, x_arr, y_arr, size)
    return result


@partial(jax.jit, static_argnums=(0, 3, 4, 7))
def _evaluate_members(net: Layer, params: Params, state: State, loss: LossFn,
                      metric: MetricFn | None, x: Array, y: Array,
                      batch_size: int) -> Evaluation:
    def one(p: Params, s: State) -> Evaluation:
        return evaluate_arrays(net, p, s, loss, metric, x, y, batch_size)

    result: Evaluation = jax.vmap(one)(params, state)
    return result
