"""The compiled programs of streamed training: a scan over the K stacked batches of one
chunk (the same step as `fit`'s, with the same dropout keys), each batch's values checked
on the device as it arrives, and an epoch's figures from the sums carried across chunks."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnn.training.batching import figure_dtype
from funcnn.training.checks import first_bad_rows
from funcnn.training.config import TrainConfig, constrain_model, replicated, split_rows
from funcnn.training.loop import epoch_figures
from funcnn.training.step import batch_update
from funcnn.typing import Array, Params, PRNGKey, PyTree, State

__all__ = ["EpochSums", "finish_epoch_jit", "run_chunk_jit", "zero_sums"]

NO_BAD_BATCH = -1


class EpochSums(NamedTuple):
    """Carried across an epoch's chunks: the weighted sums of data loss and metric, the
    sum of each step's penalty, the samples trained on (the sum of the row weights over
    every process's rows), and `bad` `(5,)` int32: the in-epoch index of the first
    batch whose values failed a check (-1: none) and its `first_bad_rows` (after a bad
    batch, every later step of the epoch is skipped)."""

    data_sum: Array
    metric_sum: Array
    reg_sum: Array
    rows: Array
    bad: Array


def zero_sums(params: Params) -> EpochSums:
    """The sums at an epoch's start, in the params' figure dtype (`figure_dtype`)."""
    dtype = figure_dtype(params)
    data, metric, reg, rows = (jnp.zeros((), dtype) for _ in range(4))
    return EpochSums(data, metric, reg, rows, jnp.full((5,), NO_BAD_BATCH, jnp.int32))


Carry = tuple[Params, State, PyTree, EpochSums]


def run_chunk(cfg: TrainConfig, checks: tuple[tuple[float, float] | None, int | None],
              params: Params, state: State, opt_state: PyTree, sums: EpochSums,
              key: PRNGKey, epoch: Array, first_step: Array, xs: PyTree, ys: Array,
              ws: Array, active: Array) -> Carry:
    """Steps `first_step + k` of epoch `epoch` on batches `xs[k]`, `ys[k]` with row weights
    `ws[k]` `(B,)`, for the `active` k. Step i's dropout key is `fold_in(split(fold_in(key,
    epoch))[1], i)`, as in `fit`. `checks`: the input bounds and label classes each batch's
    real rows are checked against before it trains."""
    bounds, classes = checks
    dropout_key = jax.random.split(jax.random.fold_in(key, epoch))[1]
    acc = figure_dtype(params)

    def step(carry: Carry, batch: tuple[PyTree, Array, Array, Array, Array],
             ) -> tuple[Carry, None]:
        p, s, o, totals = carry
        xb, yb, wb, on, k = batch
        xb, yb, wb = split_rows(cfg, (xb, yb, wb))
        values = jax.tree.leaves(xb)[0]
        index = first_step + k
        found = first_bad_rows(jnp, values, yb, bounds, classes, valid=wb > 0)
        healthy = totals.bad[0] == NO_BAD_BATCH
        clean = jnp.all(found < 0)
        bad = jnp.where(on & healthy & ~clean, jnp.concatenate([index[None], found]),
                        totals.bad)

        count = jnp.sum(wb)

        def train(model: tuple[Params, State, PyTree]) -> tuple[
                tuple[Params, State, PyTree], tuple[Array, Array, Array, Array]]:
            new_p, new_s, new_o, fig = batch_update(
                cfg.net, cfg.loss, cfg.optimizer, cfg.metric, *model, xb, yb, wb,
                jax.random.fold_in(dropout_key, index), count)
            return constrain_model(cfg, (new_p, new_s, new_o)), (
                fig.data_sum, fig.metric_sum, fig.reg_loss, count.astype(acc))

        def skip(model: tuple[Params, State, PyTree]) -> tuple[
                tuple[Params, State, PyTree], tuple[Array, Array, Array, Array]]:
            zero = jnp.zeros((), acc)
            return model, (zero, zero, zero, zero)

        (p, s, o), (data, metric, reg, rows) = jax.lax.cond(on & healthy & clean, train, skip,
                                                            (p, s, o))
        totals = EpochSums(totals.data_sum + data, totals.metric_sum + metric,
                           totals.reg_sum + reg, totals.rows + rows, bad)
        return (p, s, o, totals), None

    steps = jnp.arange(active.shape[0], dtype=jnp.int32)
    (params, state, opt_state, sums), _ = jax.lax.scan(
        step, (params, state, opt_state, sums), (xs, ys, ws, active, steps), unroll=cfg.unroll)
    params, state, opt_state = constrain_model(cfg, (params, state, opt_state))
    return params, state, opt_state, replicated(cfg, sums)


run_chunk_jit = jax.jit(run_chunk, static_argnums=(0, 1), donate_argnums=(2, 3, 4, 5))


def finish_epoch(cfg: TrainConfig, params: Params, state: State,
                 skipped_before: Array | None, opt_state: PyTree, sums: EpochSums,
                 n_steps: Array, x_val: Array | None, y_val: Array | None,
                 ) -> dict[str, Array]:
    """The History figures of an epoch of `n_steps` steps (see `epoch_figures`), plus
    `finite` and the `bad` batch record."""
    n_rows = sums.rows
    data_loss = sums.data_sum / n_rows
    reg_loss = sums.reg_sum / n_steps
    logs = epoch_figures(cfg, (params, state, opt_state), skipped_before, data_loss, reg_loss,
                         sums.metric_sum / n_rows, x_val, y_val)
    logs["finite"] = jnp.isfinite(data_loss + reg_loss)
    logs["bad"] = sums.bad
    return replicated(cfg, logs)  # type: ignore[no-any-return]


finish_epoch_jit = jax.jit(finish_epoch, static_argnums=(0,))
