"""`fit_stream`: `fit`'s training over a stream of `(x, y)` batches instead of arrays in
memory. K batches are stacked into each compiled call, the next chunks are read and moved
to the devices in a background thread while the current one trains, and the run can stop
after any step and resume there exactly (`StreamPosition`)."""

from __future__ import annotations

import base64
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from funcnn import parallel, sharding
from funcnn.nn.layer import Layer
from funcnn.optim.base import GradientTransformation
from funcnn.optim.loss_scale import skipped_steps
from funcnn.training.batching import figure_dtype, param_dtype, rows_of
from funcnn.training.checks import (
    as_param_dtype,
    check_count,
    check_key,
    check_optimizer,
    checked_pair,
    example_output,
    label_classes,
    raise_bad_rows,
    refuse_traced,
)
from funcnn.training.config import TrainConfig
from funcnn.training.epochs import auto_unroll
from funcnn.training.fit import FitResult, NonFiniteLossError, check_same_examples, owned_copy
from funcnn.training.history import Callback, History
from funcnn.training.prefetch import InputTimes, PlacedChunk, Prefetcher, place_chunk
from funcnn.training.progress import ProgressBar
from funcnn.training.stream_batches import Batch, StreamReader, stream_kind
from funcnn.training.stream_program import EpochSums, finish_epoch_jit, run_chunk_jit, zero_sums
from funcnn.tree import count_params
from funcnn.typing import ArrayLike, LossFn, MetricFn, NumpyArray, Params, PRNGKey, PyTree, State

__all__ = ["CHUNK_BYTES", "BadBatchError", "StreamFitResult", "StreamPosition", "fit_stream"]

CHUNK_BYTES = 8 * 1024 * 1024
"""By default a compiled call takes as many batches as fit in about this many bytes (at
least 1, at most `MAX_CHUNK_STEPS`)."""

MAX_CHUNK_STEPS = 64


class StreamPosition(NamedTuple):
    """Where a streamed run stopped: epoch `epoch` has had its first `step` batches
    (`rows` samples), with the figure sums of those steps and, with loss scaling, the
    skipped-step count at the epoch's start; `source_state` is the stream's own saved
    position (`get_state()`, Grain's iterators) after its last trained batch, or None.
    `to_json()`/`from_json()` store it in a checkpoint's metadata."""

    epoch: int
    step: int = 0
    rows: int = 0
    sums: tuple[float, float, float] = (0.0, 0.0, 0.0)  # data loss, metric, penalty
    skipped_before: int | None = None
    source_state: Any = None

    def to_json(self) -> dict[str, Any]:
        state = self.source_state
        if isinstance(state, bytes):
            state = {"bytes_base64": base64.b64encode(state).decode("ascii")}
        return {"epoch": self.epoch, "step": self.step, "rows": self.rows,
                "sums": [float(v) for v in self.sums], "skipped_before": self.skipped_before,
                "source_state": state}

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> StreamPosition:
        state = stored.get("source_state")
        if isinstance(state, dict) and set(state) == {"bytes_base64"}:
            state = base64.b64decode(state["bytes_base64"])
        return cls(int(stored["epoch"]), int(stored["step"]), int(stored["rows"]),
                   tuple(float(v) for v in stored["sums"]),  # type: ignore[arg-type]
                   stored.get("skipped_before"), state)


class StreamFitResult(NamedTuple):
    """`fit_stream`'s result: `FitResult`'s four fields, the position to resume from, and
    how long the input pipeline took (`InputTimes`)."""

    params: Params
    state: State
    opt_state: PyTree
    history: History
    position: StreamPosition
    input_times: InputTimes


class BadBatchError(ValueError):
    """A batch's values failed a check on the device; `result` holds the model trained on
    every batch before it (the batch and the rest of its epoch did not train)."""

    def __init__(self, message: str, result: StreamFitResult) -> None:
        super().__init__(message)
        self.result = result


def _chunk_steps(steps_per_call: int | None, first: Batch, processes: int, data: Any,
                 steps_per_epoch: int | None) -> int:
    """K: as given; else as many batches as fit in `CHUNK_BYTES` (1 to `MAX_CHUNK_STEPS`),
    but no more than an epoch's batches when that is known (no padding steps)."""
    if steps_per_call is not None:
        return steps_per_call
    nbytes = sum(a.nbytes for a in jax.tree.leaves((first.x, first.y))) * processes
    k = int(np.clip(CHUNK_BYTES // max(nbytes, 1), 1, MAX_CHUNK_STEPS))
    known = steps_per_epoch or getattr(data, "batches_per_epoch", None)
    if known is None and hasattr(data, "__len__") and not callable(data):
        known = len(data)
    return max(1, min(k, known)) if isinstance(known, int) else k


def fit_stream(net: Layer, params: Params, state: State, optimizer: GradientTransformation,
               loss: LossFn, data: Any, *, key: PRNGKey, epochs: int,
               steps_per_epoch: int | None = None, max_steps: int | None = None,
               resume: StreamPosition | None = None, initial_epoch: int = 0,
               validation_data: tuple[ArrayLike, ArrayLike] | None = None,
               metric: MetricFn | None = None, progress: bool = True,
               callbacks: Sequence[Callback] = (), opt_state: PyTree | None = None,
               validation_batch_size: int | None = None, steps_per_call: int | None = None,
               prefetch: int = 2, unroll: int | None = None, mesh: Mesh | None = None,
               shard_params: str | None = None) -> StreamFitResult:
    """Train `net` on `data`, a stream of `(x, y)` minibatches, for `epochs` epochs; the
    same step, figures, History, callbacks and errors as `fit`.

    `data` is a source with `batches(epoch, start)` (`funcnn.data.ArraySource`: the
    batches `fit` would train on, read from arrays or memmaps without copying them), a
    callable `epoch -> iterable of batches`, a re-iterable (each epoch one pass), or a
    one-shot stream (an iterator, a Grain DataLoader), whose epochs are its next
    `steps_per_epoch` batches. `steps_per_epoch` also caps the other kinds' epochs.
    Every batch has the first one's rows (the batch size) except possibly the last of an
    epoch, whose missing rows are masked (weight 0; a network with state runs it as its
    own smaller step, like `fit`).

    Each compiled call trains `steps_per_call` batches (default: about `CHUNK_BYTES` of
    them, at most an epoch's when its length is known) stacked as `(K, B, ...)`; an
    epoch's last call masks its missing steps. Batches
    are read, checked and placed `prefetch` calls ahead in a background thread.

    `max_steps` stops after that many steps; `result.position` then says where, and
    `fit_stream(..., resume=result.position, opt_state=result.opt_state)` continues as if
    never stopped (its first epoch is the stopped one; `epochs` counts from there). With
    `ArraySource` the position is (epoch, batch); a stream with `get_state`/`set_state`
    (Grain) is restored to its saved state; other iterables are re-read up to the batch.

    With a `mesh`, every process passes its own part of each global batch (e.g.
    `ArraySource` reads only this process's rows); parts are joined by
    `jax.make_array_from_process_local_data` and split over the mesh's `"data"` axis.
    Every process must yield the same number of batches. `shard_params` splits params
    and optimizer state over that mesh axis, as in `fit` (FSDP)."""
    where = "fit_stream"
    refuse_traced(where, (params, state, opt_state))
    check_key(where, key)
    epochs = check_count(where, "epochs", epochs)
    for name, value in (("steps_per_epoch", steps_per_epoch), ("max_steps", max_steps),
                        ("steps_per_call", steps_per_call)):
        if value is not None:
            check_count(where, name, value, 1, "a positive int or None")
    prefetch = check_count(where, "prefetch", prefetch, 1, "a positive int")
    check_optimizer(where, optimizer)
    if mesh is not None:
        mesh = parallel.check_data_mesh(where, mesh)
    if shard_params is not None:
        sharding.check_param_axis(where, mesh, shard_params)
    position = (StreamPosition(check_count(where, "initial_epoch", initial_epoch))
                if resume is None else resume)
    if not isinstance(position, StreamPosition):
        raise TypeError(f"{where}: resume must be a StreamPosition (result.position), got "
                        f"{type(position).__name__}")
    kind = stream_kind(where, data, steps_per_epoch)
    dtype = param_dtype(params)
    has_state = bool(jax.tree.leaves(state))
    reader = StreamReader(where, data, kind, steps_per_epoch, 1, has_state,
                          lambda a: np.asarray(as_param_dtype(a, dtype)))
    reader.start(position.source_state)
    first = reader.first(position.epoch, position.step)
    cfg, checks, val = _configure(where, net, loss, optimizer, metric, params, state, first,
                                  validation_data, validation_batch_size, unroll, mesh)
    cfg = cfg._replace(param_axis=shard_params)
    reader.k = _chunk_steps(steps_per_call, first, jax.process_count(), data, steps_per_epoch)
    return _train(where, cfg, checks, reader, val, params, state, opt_state, key, epochs,
                  max_steps, position, callbacks, progress, prefetch)


def _configure(where: str, net: Layer, loss: LossFn, optimizer: GradientTransformation,
               metric: MetricFn | None, params: Params, state: State, first: Batch,
               validation_data: tuple[ArrayLike, ArrayLike] | None,
               validation_batch_size: int | None, unroll: int | None, mesh: Mesh | None,
               ) -> tuple[TrainConfig, tuple[Any, Any], tuple[Any, Any]]:
    """The program's configuration from the first batch (checked against the network like
    `fit`'s data), the on-device checks' bounds and classes, and the validation data."""
    x0, y0 = checked_pair(f"{where} (batch 0)", net, params, state, first.x, first.y)
    out = example_output(where, net, params, state, x0)
    batch = first.rows * jax.process_count()
    if mesh is not None:
        parallel.check_divisible(where, batch, batch, mesh)
    x_val = y_val = None
    val_size = batch
    if validation_data is not None:
        if not (isinstance(validation_data, tuple | list) and len(validation_data) == 2):
            raise ValueError(f"{where}: validation_data must be a pair (x_val, y_val)")
        x_val, y_val = checked_pair(f"{where} (validation_data)", net, params, state,
                                    *validation_data)
        check_same_examples(where, x0, y0, x_val, y_val)
        val_size = check_count(f"{where} (validation_data)", "validation_batch_size",
                               validation_batch_size or min(batch, rows_of(x_val)))
        if mesh is not None:
            x_val, y_val = parallel.replicate((x_val, y_val), mesh)
    if unroll is None:
        unroll = auto_unroll(batch, count_params(params))
    cfg = TrainConfig(net, loss, optimizer, metric, batch, True, val_size,
                      check_count(where, "unroll", unroll, 1), mesh, rollback=False,
                      exact_tail=bool(jax.tree.leaves(state)))
    return cfg, (net.input_bounds, label_classes(y0, out)), (x_val, y_val)


def _train(where: str, cfg: TrainConfig, checks: tuple[Any, Any], reader: StreamReader,
           val: tuple[Any, Any], params: Params, state: State, opt_state: PyTree | None,
           key: PRNGKey, epochs: int, max_steps: int | None, position: StreamPosition,
           callbacks: Sequence[Callback], progress: bool, prefetch: int) -> StreamFitResult:
    model = owned_copy(cfg, (params, state,
                             cfg.optimizer.init(params) if opt_state is None else opt_state))
    acc = figure_dtype(params)

    def placed(tree: PyTree) -> PyTree:
        return jax.device_put(tree) if cfg.mesh is None else parallel.replicate(tree, cfg.mesh)

    key = placed(key)
    resumed = position.step > 0
    data_sum, metric_sum, reg_sum = (jnp.asarray(v, acc) for v in position.sums)
    sums = placed(EpochSums(data_sum, metric_sum, reg_sum, jnp.asarray(position.rows, acc),
                            jnp.full((5,), -1, jnp.int32)) if resumed else zero_sums(params))
    epoch, step = position.epoch, position.step
    skipped = position.skipped_before
    source_state = position.source_state
    start_model = owned_copy(cfg, model)
    history = History()
    finished, exhausted = 0, False
    bar = ProgressBar(epochs, enabled=progress)
    feed = Prefetcher(reader.items(epoch, step, epochs, max_steps),
                      lambda chunk: place_chunk(where, chunk, cfg.mesh), depth=prefetch)

    def result() -> StreamFitResult:
        sums_host = jax.device_get(sums)
        stopped = StreamPosition(epoch, step, int(sums_host.rows),
                                 tuple(float(v) for v in sums_host[:3]),  # type: ignore[arg-type]
                                 skipped, source_state)
        return StreamFitResult(model[0], model[1], model[2], history, stopped, feed.times())

    def check_bad(bad: NumpyArray, at_epoch: int) -> None:
        if bad[0] < 0:
            return
        try:
            y_ndim = None if reader.spec is None else len(reader.spec.y_example[0]) + 1
            raise_bad_rows(f"{where}: batch {int(bad[0])} of epoch {at_epoch}", bad[1:],
                           *checks, y_ndim)
        except ValueError as err:
            raise BadBatchError(str(err), result()) from None

    try:
        for item in feed:
            if isinstance(item, PlacedChunk):
                if item.chunk.first_step == 0:  # an epoch starts: keep what to fall back to
                    start_model = owned_copy(cfg, model)
                    count = skipped_steps(model[2])
                    skipped = None if count is None else int(jax.device_get(count))
                # Back-pressure: dispatch a call only once the last one has run. Calls are
                # asynchronous, so otherwise every chunk the reader got ahead by (up to an
                # epoch, when reading is faster than training) would wait in memory.
                jax.block_until_ready((model, sums))  # type: ignore[no-untyped-call]
                p, s, o, sums = run_chunk_jit(
                    cfg, checks, *model, sums, key, placed(np.int32(item.chunk.epoch)),
                    placed(np.int32(item.chunk.first_step)), item.xs, item.ys, item.ws,
                    item.active)
                model = (p, s, o)
                step = item.chunk.first_step + len(item.chunk.rows)
                source_state = item.chunk.states[-1]
                continue
            logs = jax.device_get(finish_epoch_jit(
                cfg, *model[:2], None if skipped is None else placed(np.int32(skipped)),
                model[2], sums, placed(np.asarray(step, acc)), *val))
            check_bad(logs.pop("bad"), item.epoch)
            if not logs.pop("finite"):
                raise NonFiniteLossError(item.epoch, FitResult(start_model[0], start_model[1],
                                                                start_model[2], history))
            epoch_logs = {name: float(value) for name, value in logs.items()}
            history.append(item.epoch, epoch_logs)
            bar.update(item.epoch, epoch_logs)
            epoch, step, sums = item.epoch + 1, 0, placed(zero_sums(params))
            stop = False
            for callback in callbacks:
                stop = bool(callback(item.epoch, epoch_logs, model[0])) or stop
            exhausted = exhausted or item.exhausted
            if item.exhausted:
                warnings.warn(f"{where}: the stream ran out in epoch {item.epoch} after "
                              f"{item.steps} batches; training ended there", RuntimeWarning,
                              stacklevel=3)
            finished += 1
            if stop:
                break
        else:
            if max_steps is None and finished < epochs and not exhausted:
                warnings.warn(f"{where}: the stream ran out after epoch {epoch - 1}; "
                              f"{finished} of {epochs} epochs trained", RuntimeWarning,
                              stacklevel=3)
        check_bad(np.asarray(jax.device_get(sums.bad)), epoch)
    finally:
        feed.close()
        bar.close()
    return result()
