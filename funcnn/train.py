"""Training (book chapters 10-19): a pure train step, and `fit`, whose epochs run as one
compiled program (`lax.scan` over shuffled minibatches inside `lax.scan` over epochs).

Per step: `loss = mean_w(loss(net(x), y)) + net.penalty(params)`, gradients by `jax.grad`,
then the optimizer's additive update. The epoch's data loss and accuracy are
sample-weighted means over all N samples (the book's accumulated figures).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from funcnn import activations, parallel
from funcnn.combinators import serial
from funcnn.epochs import (
    SMALL_STEP,
    STEPS_PER_PROGRAM,
    auto_unroll,
    epoch_inputs,
    epoch_orders,
    epochs_per_program,
    key_seed,
)
from funcnn.history import Callback, History
from funcnn.inference import (
    batch_plan,
    check_batch_size,
    check_data,
    checked_per_example,
    evaluate,
    evaluate_arrays,
    predict,
    predict_classes,
)
from funcnn.layers import Layer, is_last_axis_softmax
from funcnn.losses import categorical_crossentropy, softmax_categorical_crossentropy
from funcnn.optim.base import GradientTransformation, apply_updates
from funcnn.optim.hyperparams import learning_rate
from funcnn.progress import ProgressBar
from funcnn.tree import count_params
from funcnn.typing import (
    Array,
    ArrayLike,
    LossFn,
    MetricFn,
    Params,
    PRNGKey,
    PyTree,
    State,
)

__all__ = ["SMALL_STEP", "STEPS_PER_PROGRAM", "FitResult", "NonFiniteLossError", "PreparedFit",
           "StepMetrics", "TrainConfig", "auto_unroll", "epoch_inputs", "epoch_orders",
           "epochs_per_program", "evaluate", "fit", "key_seed", "make_train_step", "predict",
           "predict_classes", "prepare_fit", "run_epochs"]


class StepMetrics(NamedTuple):
    """Figures of one step: `loss = data_loss + reg_loss`; accuracy is nan without a metric."""

    loss: Array
    data_loss: Array
    reg_loss: Array
    accuracy: Array


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


def current_learning_rate(opt_state: PyTree) -> Array:
    """The rate the next update uses, or nan for optimizers that do not expose one."""
    try:
        rate: ArrayLike = learning_rate(opt_state)
    except ValueError:
        rate = jnp.nan
    return jnp.asarray(rate, jnp.float32)


def softmax_output_body(net: Layer, loss: LossFn) -> Layer | None:
    """For `serial(..., Softmax())` trained with `categorical_crossentropy`, the network
    without its final softmax, so that the step can use the book's combined softmax +
    cross-entropy backward (chapter 9; the book's `Model` picks it the same way): the same
    loss values, a gradient `p - y` of one fusion. None for any other network or loss."""
    if (loss is not categorical_crossentropy or net.name != "serial" or not net.children
            or not is_last_axis_softmax(net.children[-1])):
        return None
    return serial(*net.children[:-1])


def _book_softmax_cce(logits: Array, labels: Array) -> Array:
    """`categorical_crossentropy(softmax(logits), labels)`, errors naming that loss."""
    return softmax_categorical_crossentropy(logits, labels, name="categorical_crossentropy")


def _batch_update(net: Layer, loss: LossFn, optimizer: GradientTransformation,
                  metric: MetricFn | None, params: Params, state: State, opt_state: PyTree,
                  x: Array, y: Array, weights: Array | None, key: PRNGKey | None,
                  count: Array | None = None) -> tuple[Params, State, PyTree, Array, Array]:
    """One optimizer step; returns new params/state/opt_state and the batch's weighted
    sums of per-example data loss and metric (not yet divided by the sample count).
    `count`, when given, is `sum(weights)` known beforehand (under a mesh this saves a
    cross-device reduction per step)."""

    body = softmax_output_body(net, loss)

    def objective(p: Params) -> tuple[Array, tuple[Array, Array, State]]:
        if body is None:
            pred, new_state = net.apply(p, state, x, key=key, train=True)
            per_example = checked_per_example("loss", loss, pred, y)
        else:  # the book's combined softmax + cross-entropy: same value, fused gradient
            logits, new_state = body.apply(p, state, x, key=key, train=True)
            per_example = checked_per_example("loss", _book_softmax_cce, logits, y)
            pred = activations.softmax(logits)
        w = jnp.ones_like(per_example) if weights is None else weights.astype(per_example.dtype)
        total_weight = jnp.sum(w) if count is None else count.astype(per_example.dtype)
        count_or_one = jnp.maximum(total_weight, 1.0)
        data_sum = jnp.sum(w * per_example)
        metric_sum = jnp.zeros((), jnp.float32)
        if metric is not None:
            per_metric = checked_per_example("metric", metric, jax.lax.stop_gradient(pred), y)
            metric_sum = jnp.sum(w * per_metric)
        total = data_sum / count_or_one + net.penalty(p)
        return total, (data_sum, metric_sum, new_state)

    grads, (data_sum, metric_sum, new_state) = jax.grad(objective, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return apply_updates(params, updates), new_state, opt_state, data_sum, metric_sum


def make_train_step(net: Layer, loss: LossFn, optimizer: GradientTransformation,
                    metric: MetricFn | None = None) -> Callable[..., tuple[Params, State, PyTree,
                                                                           StepMetrics]]:
    """A pure, jittable step `(params, state, opt_state, x, y, *, key=None, weights=None)
    -> (params, state, opt_state, StepMetrics)` for writing one's own loop."""

    def step(params: Params, state: State, opt_state: PyTree, x: Array, y: Array, *,
             key: PRNGKey | None = None, weights: Array | None = None,
             ) -> tuple[Params, State, PyTree, StepMetrics]:
        count = jnp.float32(x.shape[0]) if weights is None else jnp.sum(weights)
        new_params, new_state, new_opt, data_sum, metric_sum = _batch_update(
            net, loss, optimizer, metric, params, state, opt_state, x, y, weights, key)
        data_loss = data_sum / jnp.maximum(count, 1.0)
        reg_loss = net.penalty(params)
        accuracy = metric_sum / jnp.maximum(count, 1.0) if metric is not None else jnp.nan
        return new_params, new_state, new_opt, StepMetrics(
            data_loss + reg_loss, data_loss, reg_loss, jnp.asarray(accuracy, jnp.float32))

    return step


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


def _split_rows(cfg: TrainConfig, arrays: PyTree) -> PyTree:
    """Under a mesh, annotate each array's rows as split over the `"data"` axis."""
    return arrays if cfg.mesh is None else parallel.constrain_batch(arrays, cfg.mesh)


def _replicated(cfg: TrainConfig, tree: PyTree) -> PyTree:
    """Under a mesh, annotate `tree` as replicated (params, states, figures)."""
    return tree if cfg.mesh is None else parallel.constrain_replicated(tree, cfg.mesh)


def _train_epoch(cfg: TrainConfig, carry: tuple[Params, State, PyTree], x: Array, y: Array,
                 epoch_key: PRNGKey, order: Array | None,
                 ) -> tuple[tuple[Params, State, PyTree], Array, Array]:
    """One epoch over all N samples in `order` (N,) (None: as given); returns the carry and
    the summed data loss and metric."""
    params, state, opt_state = carry
    n = x.shape[0]
    if cfg.batch_size is None:
        xb, yb = _split_rows(cfg, (x, y))
        params, state, opt_state, data_sum, metric_sum = _batch_update(
            cfg.net, cfg.loss, cfg.optimizer, cfg.metric, params, state, opt_state, xb, yb, None,
            jax.random.fold_in(epoch_key, 0))
        return _replicated(cfg, (params, state, opt_state)), data_sum, metric_sum
    dropout_key = jax.random.split(epoch_key)[1]
    idx, weights = batch_plan(n, cfg.batch_size, order)
    if cfg.batch_size * idx.shape[0] == n:
        weights_or_none: Array | None = None
    else:
        weights_or_none = weights
    # real rows per batch, known when tracing: no reduction over split weights per step
    counts = np.full(idx.shape[0], cfg.batch_size, np.float32)
    counts[-1] = n - cfg.batch_size * (idx.shape[0] - 1)
    batch_counts = jnp.asarray(counts)

    def step(inner: tuple[Params, State, PyTree, Array, Array],
             batch: tuple[Array, Array, Array]) -> tuple[tuple[Params, State, PyTree, Array,
                                                               Array], None]:
        p, s, o, loss_acc, metric_acc = inner
        rows, w, i = batch
        xb, yb, wb = _split_rows(cfg, (x[rows], y[rows], None if weights_or_none is None else w))
        p, s, o, data_sum, metric_sum = _batch_update(
            cfg.net, cfg.loss, cfg.optimizer, cfg.metric, p, s, o, xb, yb, wb,
            jax.random.fold_in(dropout_key, i), None if wb is None else batch_counts[i])
        p, s, o = _replicated(cfg, (p, s, o))
        return (p, s, o, loss_acc + data_sum, metric_acc + metric_sum), None

    zero = jnp.zeros((), jnp.float32)
    steps = jnp.arange(idx.shape[0], dtype=jnp.int32)
    (params, state, opt_state, data_sum, metric_sum), _ = jax.lax.scan(
        step, (params, state, opt_state, zero, zero), (idx, weights, steps), unroll=cfg.unroll)
    return (params, state, opt_state), data_sum, metric_sum


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
    params, state, opt_state and key trains an ensemble (see `funcnn.ensemble`)."""
    n = jnp.float32(x.shape[0])
    val_sharding = None
    if cfg.mesh is not None and cfg.val_batch_size % parallel.data_parallel_size(cfg.mesh) == 0:
        val_sharding = parallel.batch_sharding(cfg.mesh)

    def epoch(carry: tuple[Params, State, PyTree, Array],
              inputs: tuple[Array, Array, Array | None]) -> tuple[
            tuple[Params, State, PyTree, Array], dict[str, Array]]:
        params, state, opt_state, healthy = carry
        epoch_id, is_active, order = inputs
        run = healthy & is_active

        def train(c: tuple[Params, State, PyTree]) -> tuple[tuple[Params, State, PyTree], Array,
                                                            Array]:
            return _train_epoch(cfg, c, x, y, jax.random.fold_in(key, epoch_id), order)

        def skip(c: tuple[Params, State, PyTree]) -> tuple[tuple[Params, State, PyTree], Array,
                                                           Array]:
            return c, jnp.float32(jnp.nan), jnp.float32(jnp.nan)

        new, data_sum, metric_sum = jax.lax.cond(run, train, skip, (params, state, opt_state))
        reg_loss = cfg.net.penalty(new[0])
        data_loss = data_sum / n
        finite = run & jnp.isfinite(data_loss + reg_loss)
        kept = new
        if cfg.rollback:
            kept = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new,
                                (params, state, opt_state))
        logs = {"data_loss": data_loss, "reg_loss": reg_loss, "loss": data_loss + reg_loss,
                "learning_rate": current_learning_rate(kept[2]), "finite": finite,
                "ran": run}
        if cfg.metric is not None:
            logs["accuracy"] = metric_sum / n
        if x_val is not None and y_val is not None:
            val = evaluate_arrays(cfg.net, kept[0], kept[1], cfg.loss, cfg.metric, x_val, y_val,
                                  cfg.val_batch_size, batch_sharding=val_sharding)
            logs["val_loss"] = val.loss
            if cfg.metric is not None:
                logs["val_accuracy"] = val.accuracy
        return (*kept, healthy & (finite | ~run)), logs

    (params, state, opt_state, _), logs = jax.lax.scan(
        epoch, (params, state, opt_state, jnp.bool_(True)), (epoch_ids, active, orders),
        unroll=cfg.unroll if cfg.batch_size is None else 1)  # full batch: a step per epoch
    return _replicated(cfg, (params, state, opt_state, logs))  # type: ignore[no-any-return]


_run_epochs_jit = jax.jit(run_epochs, static_argnums=(0,), donate_argnums=(1, 2, 3))


class PreparedFit(NamedTuple):
    """The checked inputs of a training run: its compiled program's configuration, the data
    (replicated on the mesh when there is one) and the number of minibatches per epoch."""

    cfg: TrainConfig
    x: Array
    y: Array
    x_val: Array | None
    y_val: Array | None
    n_batches: int


def prepare_fit(where: str, net: Layer, loss: LossFn, optimizer: GradientTransformation,
                metric: MetricFn | None, x: ArrayLike, y: ArrayLike, *, epochs: int,
                initial_epoch: int, batch_size: int | None,
                validation_data: tuple[ArrayLike, ArrayLike] | None,
                validation_batch_size: int | None, shuffle: bool, unroll: int | None,
                mesh: Mesh | None, n_params: int = 0) -> PreparedFit:
    """Check `fit`'s arguments (errors start with `where`) and place the data. `n_params`
    (of one model) picks the unroll factor when `unroll` is None (see `auto_unroll`)."""
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"{where}: epochs must be an int >= 0, got {epochs!r}")
    if not isinstance(initial_epoch, int) or initial_epoch < 0:
        raise ValueError(f"{where}: initial_epoch must be an int >= 0, got {initial_epoch!r}")
    if mesh is not None:
        mesh = parallel.check_data_mesh(where, mesh)
    x_arr, y_arr = check_data(where, x, y)
    assert y_arr is not None
    n = x_arr.shape[0]
    size = check_batch_size(where, batch_size, n)
    if mesh is not None:
        parallel.check_divisible(where, batch_size, size, mesh)
    x_val = y_val = None
    val_size = 1
    if validation_data is not None:
        if not (isinstance(validation_data, tuple | list) and len(validation_data) == 2):
            raise ValueError(f"{where}: validation_data must be a pair (x_val, y_val)")
        x_val, y_val = check_data(f"{where} (validation_data)", *validation_data)
        val_size = check_batch_size(f"{where} (validation_data)",
                                    validation_batch_size or min(batch_size or n,
                                                                 x_val.shape[0]),
                                    x_val.shape[0])
    if unroll is None:
        unroll = auto_unroll(size, n_params)
    elif not isinstance(unroll, int) or isinstance(unroll, bool) or unroll < 1:
        raise ValueError(f"{where}: unroll must be a positive int or None, got {unroll!r}")
    cfg = TrainConfig(net, loss, optimizer, metric, None if batch_size is None else size,
                      shuffle, val_size, unroll, mesh)
    if mesh is not None:
        x_arr, y_arr, x_val, y_val = parallel.replicate((x_arr, y_arr, x_val, y_val), mesh)
    return PreparedFit(cfg, x_arr, y_arr, x_val, y_val, math.ceil(n / size))


def owned_copy(cfg: TrainConfig, tree: PyTree) -> PyTree:
    """A private copy of `tree` that a compiled program may donate: on the default device,
    or replicated over the mesh."""
    if cfg.mesh is None:
        return _copy_tree(tree)
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
        unroll: int | None = None, mesh: Mesh | None = None) -> FitResult:
    """Train `net` for `epochs` epochs of minibatches of `batch_size` (None: full batch).

    Epoch `e` shuffles by `epoch_orders` and draws dropout masks from `fold_in(key, e)`,
    both functions of (key, e) alone, so a run resumed
    with `initial_epoch=e` and the saved `opt_state` continues exactly. Data moves to the
    device once; the caller's arrays are never donated or modified.

    With a `mesh` (one with a `"data"` axis, e.g. `funcnn.parallel.data_mesh()`), each
    minibatch is split over that axis, whose size must divide `batch_size` (or N for full
    batch); data, params and states are replicated and the result lives on the mesh.
    Across processes, every process calls `fit` with the same arguments.

    `unroll` unrolls the scan over minibatches that many times; None picks 4 for small
    steps (batch size x params <= 2e6), where the loop's own cost dominates, else 1.
    """
    prep = prepare_fit("fit", net, loss, optimizer, metric, x, y, epochs=epochs,
                       initial_epoch=initial_epoch, batch_size=batch_size,
                       validation_data=validation_data,
                       validation_batch_size=validation_batch_size, shuffle=shuffle,
                       unroll=unroll, mesh=mesh, n_params=count_params(params))
    # No rollback inside the program: keeping each epoch's starting values alive beside
    # the loop cost 5-7% of a small step (measured); a failed call is replayed instead.
    cfg = prep.cfg._replace(rollback=False)
    # Private copies: the compiled program donates (reuses) these buffers.
    params, state, opt_state = owned_copy(
        cfg, (params, state, optimizer.init(params) if opt_state is None else opt_state))
    seed = key_seed(key)
    key = key if cfg.mesh is None else parallel.replicate(key, cfg.mesh)
    history = History()
    chunk = epochs_per_program(prep.n_batches, epochs, bool(callbacks),
                               order_entries=prep.x.shape[0] if cfg.shuffle else 0)
    bar = ProgressBar(epochs, enabled=progress)
    done = 0
    try:
        while done < epochs:
            ids = np.arange(initial_epoch + done, initial_epoch + done + chunk, dtype=np.int32)
            active = np.arange(done, done + chunk) < epochs
            inputs = epoch_inputs(cfg, ids, active, seed, prep.x.shape[0])
            start = owned_copy(cfg, (params, state, opt_state))
            params, state, opt_state, logs = _run_epochs_jit(
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
                    params, state, opt_state, _ = _run_epochs_jit(
                        cfg, *start, prep.x, prep.y, prep.x_val, prep.y_val, key,
                        *epoch_inputs(cfg, ids, before, seed, prep.x.shape[0]))
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
