"""The compiled training program: `lax.scan` over epochs, each a `lax.scan` over shuffled
minibatches (or one full-batch step), with the book's per-epoch figures."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import parallel
from funcnn.optim.hyperparams import learning_rate
from funcnn.optim.loss_scale import loss_scale, skipped_steps
from funcnn.training.batching import batch_plan, figure_dtype, rows_of, take_rows
from funcnn.training.config import TrainConfig, constrain_model, replicated, split_rows
from funcnn.training.inference import evaluate_arrays
from funcnn.training.step import batch_update
from funcnn.typing import Array, ArrayLike, Params, PRNGKey, PyTree, State

__all__ = ["current_learning_rate", "epoch_figures", "run_epochs", "run_epochs_jit"]


def current_learning_rate(opt_state: PyTree) -> Array:
    """The rate the next update uses (`funcnn.optim.learning_rate`: funcnn's optimizers, or
    optax's made with `optax.inject_hyperparams`); nan for any other."""
    try:
        rate: ArrayLike = learning_rate(opt_state)
    except ValueError:
        rate = jnp.nan
    return jnp.asarray(rate, jnp.float32)


def _loss_scale_logs(previous: Array | None, after: PyTree) -> dict[str, Array]:
    """With loss scaling: the epoch's skipped steps (`previous`: the count at its start)
    and the next step's scale; else none."""
    scale, skipped = loss_scale(after), skipped_steps(after)
    if scale is None or skipped is None or previous is None:
        return {}
    return {"skipped_steps": (skipped - previous).astype(jnp.float32), "loss_scale": scale}


Inner = tuple[Params, State, PyTree, Array, Array, Array]
"""A scan's carry over minibatches: params, state, opt_state and the three sums."""


def _train_epoch(cfg: TrainConfig, carry: tuple[Params, State, PyTree], x: Array, y: Array,
                 epoch_key: PRNGKey, order: Array | None,
                 ) -> tuple[tuple[Params, State, PyTree], Array, Array, Array]:
    """One epoch over all N samples in `order` (N,) (None: as given); returns the carry, the
    summed data loss and metric, and the mean over the epoch's steps of the penalty at each
    step's params (before its update): the regularization that was optimized."""
    params, state, opt_state = carry
    n = rows_of(x)
    if cfg.batch_size is None:
        xb, yb = split_rows(cfg, (x, y))
        params, state, opt_state, fig = batch_update(
            cfg.net, cfg.loss, cfg.optimizer, cfg.metric, params, state, opt_state, xb, yb, None,
            jax.random.fold_in(epoch_key, 0))
        return (constrain_model(cfg, (params, state, opt_state)), fig.data_sum, fig.metric_sum,
                fig.reg_loss)
    dropout_key = jax.random.split(epoch_key)[1]
    full, tail = divmod(n, cfg.batch_size)
    separate_tail = cfg.exact_tail and tail > 0 and full > 0
    if separate_tail:  # whole batches in the scan, the remainder as one smaller step
        ordered = jnp.arange(n, dtype=jnp.int32) if order is None else order.astype(jnp.int32)
        idx, tail_rows = ordered[:full * cfg.batch_size].reshape(full, -1), ordered[-tail:]
        weights = jnp.ones(idx.shape, jnp.float32)
    else:
        idx, weights = batch_plan(n, cfg.batch_size, order)
    weights_or_none: Array | None = None
    if not separate_tail and cfg.batch_size * idx.shape[0] != n:
        weights_or_none = weights
    # real rows per batch, known when tracing: no reduction over split weights per step
    counts = np.full(idx.shape[0], cfg.batch_size, np.float32)
    counts[-1] = cfg.batch_size if separate_tail else n - cfg.batch_size * (idx.shape[0] - 1)
    batch_counts = jnp.asarray(counts)

    def train_on(inner: Inner, rows: Array, w: Array | None, i: Array,
                 count: Array | None) -> Inner:
        p, s, o, loss_acc, metric_acc, reg_acc = inner
        xb, yb, wb = split_rows(cfg, (take_rows(x, rows), y[rows], w))
        p, s, o, fig = batch_update(
            cfg.net, cfg.loss, cfg.optimizer, cfg.metric, p, s, o, xb, yb, wb,
            jax.random.fold_in(dropout_key, i), count)
        p, s, o = constrain_model(cfg, (p, s, o))
        return (p, s, o, loss_acc + fig.data_sum, metric_acc + fig.metric_sum,
                reg_acc + fig.reg_loss)

    def step(inner: Inner, batch: tuple[Array, Array, Array]) -> tuple[Inner, None]:
        rows, w, i = batch
        if weights_or_none is None:
            return train_on(inner, rows, None, i, None), None
        return train_on(inner, rows, w, i, batch_counts[i]), None

    zero = jnp.zeros((), figure_dtype(params))
    steps = jnp.arange(idx.shape[0], dtype=jnp.int32)
    totals, _ = jax.lax.scan(step, (params, state, opt_state, zero, zero, zero),
                             (idx, weights, steps), unroll=cfg.unroll)
    n_steps = idx.shape[0]
    if separate_tail:
        totals = train_on(totals, tail_rows, None, jnp.int32(full), None)
        n_steps += 1
    params, state, opt_state, data_sum, metric_sum, reg_sum = totals
    return (params, state, opt_state), data_sum, metric_sum, reg_sum / n_steps


def epoch_figures(cfg: TrainConfig, model: tuple[Params, State, PyTree],
                  skipped_before: Array | None,
                  data_loss: Array, reg_loss: Array, accuracy: Array, x_val: Array | None,
                  y_val: Array | None) -> dict[str, Array]:
    """An epoch's History figures from its data loss (mean over its samples), penalty
    (mean over its steps) and accuracy, the model after it (`model`: params, state,
    opt_state) and, with loss scaling, the skipped-step count before it (`skipped_steps`):
    rate, loss scaling, validation."""
    params, state, opt_state = model
    logs = {"data_loss": data_loss, "reg_loss": reg_loss, "loss": data_loss + reg_loss,
            "learning_rate": current_learning_rate(opt_state)}
    if cfg.metric is not None:
        logs["accuracy"] = accuracy
    logs.update(_loss_scale_logs(skipped_before, opt_state))
    if x_val is not None and y_val is not None:
        val_sharding = None
        if cfg.mesh is not None and cfg.val_batch_size % parallel.data_parallel_size(
                cfg.mesh) == 0:
            val_sharding = parallel.batch_sharding(cfg.mesh)
        val = evaluate_arrays(cfg.net, params, state, cfg.loss, cfg.metric, x_val, y_val,
                              cfg.val_batch_size, batch_sharding=val_sharding)
        logs["val_loss"] = val.loss
        if cfg.metric is not None:
            logs["val_accuracy"] = val.accuracy
    return logs


def run_epochs(cfg: TrainConfig, params: Params, state: State, opt_state: PyTree, x: Array,
               y: Array, x_val: Array | None, y_val: Array | None, key: PRNGKey,
               epoch_ids: Array, active: Array, orders: Array | None,
               ) -> tuple[Params, State, PyTree, dict[str, Array]]:
    """The pure training program: epochs `epoch_ids` (those with `active`), epoch `e` with
    key `fold_in(key, e)` (dropout) and sample order `orders[i]` (None: unshuffled; see
    `epoch_orders`). Every epoch after one whose loss is not finite is skipped; with
    `cfg.rollback` that epoch is also undone (else the caller restores it, see `fit`).
    Returns params, state, opt_state and per-epoch figures (arrays of shape
    `(len(epoch_ids),)`: `History` names plus `finite` and `ran` flags). `jax.vmap` over
    params, state, opt_state and key trains an ensemble (see `funcnn.training.ensemble`)."""
    acc = figure_dtype(params)
    n = jnp.asarray(rows_of(x), acc)

    def epoch(carry: tuple[Params, State, PyTree, Array],
              inputs: tuple[Array, Array, Array | None]) -> tuple[
            tuple[Params, State, PyTree, Array], dict[str, Array]]:
        params, state, opt_state, healthy = carry
        epoch_id, is_active, order = inputs
        run = healthy & is_active

        def train(c: tuple[Params, State, PyTree]) -> tuple[tuple[Params, State, PyTree], Array,
                                                            Array, Array]:
            return _train_epoch(cfg, c, x, y, jax.random.fold_in(key, epoch_id), order)

        def skip(c: tuple[Params, State, PyTree]) -> tuple[tuple[Params, State, PyTree], Array,
                                                           Array, Array]:
            nan = jnp.asarray(jnp.nan, acc)
            return c, nan, nan, nan

        new, data_sum, metric_sum, reg_loss = jax.lax.cond(run, train, skip,
                                                           (params, state, opt_state))
        data_loss = data_sum / n
        finite = run & jnp.isfinite(data_loss + reg_loss)
        kept = new
        if cfg.rollback:
            kept = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new,
                                (params, state, opt_state))
        logs = epoch_figures(cfg, kept, skipped_steps(opt_state), data_loss, reg_loss,
                             metric_sum / n, x_val, y_val)
        logs.update(finite=finite, ran=run)
        return (*kept, healthy & (finite | ~run)), logs

    (params, state, opt_state, _), logs = jax.lax.scan(
        epoch, (params, state, opt_state, jnp.bool_(True)), (epoch_ids, active, orders),
        unroll=cfg.unroll if cfg.batch_size is None else 1)  # full batch: a step per epoch
    return (*constrain_model(cfg, (params, state, opt_state)), replicated(cfg, logs))


run_epochs_jit = jax.jit(run_epochs, static_argnums=(0,), donate_argnums=(1, 2, 3))
