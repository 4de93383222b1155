"""The host side of streamed training: which batches make each epoch, their checks as they
arrive, and chunks of K stacked batches (rows padded to the batch size with weight 0,
steps padded to K as inactive) for one compiled call each.

What an epoch is, by the kind of stream (`stream_kind`):
- `"source"`: an object with `batches(epoch, start)` (`funcnn.data.ArraySource`): epoch e
  is `batches(e)`; resuming at batch s reads `batches(e, s)`.
- `"factory"`: a callable `epoch -> iterable`: epoch e is `data(e)`.
- `"iterable"`: re-iterable (a list, a Dataset): every epoch is a fresh `iter(data)`.
- `"stream"`: one iterator for the whole run (a generator, or an iterable whose iterator
  has `get_state`/`set_state`, like Grain's): every epoch is its next `steps_per_epoch`
  batches.
With `steps_per_epoch`, an epoch of the first three kinds ends after that many batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn.typing import NumpyArray, PyTree

__all__ = ["Batch", "BatchSpec", "Chunk", "EpochEnd", "StreamReader", "check_batch",
           "stream_kind"]


def stream_kind(where: str, data: object, steps_per_epoch: int | None) -> str:
    """`"source"`, `"factory"`, `"iterable"` or `"stream"` (see the module docstring); a
    stream without `steps_per_epoch` is an error."""
    if callable(getattr(data, "batches", None)):
        return "source"
    if callable(data):
        return "factory"
    if not isinstance(data, Iterable):
        raise TypeError(f"{where}: data must be an iterable of (x, y) batches, a callable "
                        f"epoch -> iterable, or a source with batches(epoch, start); got "
                        f"{type(data).__name__}")
    if isinstance(data, Iterator) or _has_state(data):
        if steps_per_epoch is None:
            raise ValueError(f"{where}: data is a one-shot stream ({type(data).__name__}), "
                             "so an epoch cannot be one pass over it; pass steps_per_epoch "
                             "(the batches per epoch), or pass a callable epoch -> iterable")
        return "stream"
    return "iterable"


def _has_state(data: object) -> bool:
    """An iterable that saves its position (Grain's DataLoader and datasets do)."""
    return callable(getattr(data, "get_state", None)) or (
        "grain" in type(data).__module__
        and any(base.__name__ in ("DataLoader", "IterDataset") for base in type(data).__mro__))


class Batch(NamedTuple):
    """One checked host batch: x (one array or a tuple), y, real rows, and the stream's
    saved position after it (None for streams without `get_state`); or, for a direct
    read, only the source rows that `_stack` reads into the chunk."""

    x: PyTree
    y: NumpyArray | None
    rows: int
    state: Any
    source_rows: NumpyArray | None = None  # a direct read: the source's rows, read when stacked


class BatchSpec(NamedTuple):
    """What every batch must look like: the first batch's x structure, per-array example
    shapes and dtypes, and its row count (the batch size of this process)."""

    x_tree: Any
    x_examples: tuple[tuple[tuple[int, ...], np.dtype[Any]], ...]
    y_example: tuple[tuple[int, ...], np.dtype[Any]]
    rows: int

    def describe(self) -> str:
        shapes = ", ".join(f"{shape} ({dtype})" for shape, dtype in self.x_examples)
        return f"x examples {shapes}, y examples {self.y_example[0]} ({self.y_example[1]})"


def _as_host(value: Any) -> NumpyArray:
    return np.asarray(value)


def _split_batch(where: str, label: str, batch: object) -> tuple[PyTree, NumpyArray]:
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ValueError(f"{where}: {label} is not a pair (x, y); got "
                         f"{type(batch).__name__}"
                         + (f" of {len(batch)} items" if isinstance(batch, tuple | list)
                            else ""))
    x, y = batch
    x_tree = tuple(_as_host(a) for a in x) if isinstance(x, tuple | list) else _as_host(x)
    return x_tree, _as_host(y)


def check_batch(where: str, label: str, batch: object, spec: BatchSpec | None,
                ) -> tuple[PyTree, NumpyArray, BatchSpec]:
    """A batch (`label` names it in errors: "batch 3 of epoch 0") as host arrays, checked
    against `spec` (the first batch's; None: this
    is the first): a pair (x, y), x and y of equal length, 1..spec.rows rows, the same
    example shapes and dtypes as the first batch."""
    x, y = _split_batch(where, label, batch)
    leaves = jax.tree.leaves(x)
    if any(a.ndim < 1 for a in [*leaves, y]):
        raise ValueError(f"{where}: {label} has a scalar x or y; batches need a "
                         "leading sample axis")
    rows = int(leaves[0].shape[0])
    lengths = [int(a.shape[0]) for a in leaves]
    if any(n != rows for n in lengths) or int(y.shape[0]) != rows:
        raise ValueError(f"{where}: {label} has x of {rows} rows but y of "
                         f"{y.shape[0]} rows" if len(set(lengths)) == 1 else
                         f"{where}: {label}: the arrays of its x have different "
                         f"lengths {lengths}")
    found = BatchSpec(jax.tree.structure(x),
                      tuple((tuple(a.shape[1:]), a.dtype) for a in leaves),
                      (tuple(y.shape[1:]), y.dtype), rows)
    if spec is None:
        if rows == 0:
            raise ValueError(f"{where}: {label}, the first, holds no rows")
        return x, y, found
    if found[:3] != spec[:3]:
        raise ValueError(f"{where}: {label} has {found.describe()}, but the first "
                         f"batch had {spec.describe()}; every batch must have the same "
                         "example shapes and dtypes")
    if rows > spec.rows:
        raise ValueError(f"{where}: {label} has {rows} rows, more than the first "
                         f"batch's {spec.rows} (the batch size); only a smaller last batch "
                         "is allowed")
    return x, y, spec


class Chunk(NamedTuple):
    """Up to K batches of one epoch for one compiled call: stacked host arrays `xs`
    `(K, B, ...)`, `ys`, weights `ws` `(K, B)` (0 for padding rows), `active` `(K,)`
    (False for padding steps), the epoch, the in-epoch index of its first step, the
    real rows of each real step and the stream's position after each. Once placed on the
    devices, the host arrays are dropped (None)."""

    epoch: int
    first_step: int
    xs: PyTree
    ys: NumpyArray | None
    ws: NumpyArray | None
    active: NumpyArray
    rows: tuple[int, ...]
    states: tuple[Any, ...]


class EpochEnd(NamedTuple):
    """Epoch `epoch` ended after `steps` steps in all (a resumed epoch's earlier ones
    included); `exhausted`: the stream ran out before the run's end."""

    epoch: int
    steps: int
    exhausted: bool


ALIGNMENT = 64
"""Bytes a chunk's host arrays are aligned to: on the CPU, `jax.device_put` then uses
the buffer in place instead of copying it."""


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> NumpyArray:
    """An uninitialised array whose data starts on an `ALIGNMENT`-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    offset = -raw.ctypes.data % ALIGNMENT
    out: NumpyArray = raw[offset:offset + nbytes].view(dtype).reshape(shape)
    return out


def _stack(batches: list[Batch], spec: BatchSpec, k: int, exact: bool, source: Any,
           ) -> tuple[PyTree, NumpyArray, NumpyArray, NumpyArray]:
    """K stacked batches: rows padded with zeros to `spec.rows` (or kept as they are when
    `exact`), steps padded to `k` with zero batches. Direct reads (`Batch.source_rows`) are
    read from `source` straight into the chunk."""
    rows = batches[0].rows if exact else spec.rows
    outs = [aligned_empty((k, rows, *shape), dtype)  # no zero fill of the real rows
            for shape, dtype in (*spec.x_examples, spec.y_example)]
    for i, b in enumerate(batches):
        if b.source_rows is not None:
            source.read_into(b.source_rows, [out[i, :b.rows] for out in outs[:-1]],
                             outs[-1][i, :b.rows])
        else:
            for out, array in zip(outs, [*jax.tree.leaves(b.x), b.y], strict=True):
                out[i, :b.rows] = array
    for out in outs:
        for i, b in enumerate(batches):
            out[i, b.rows:] = 0
        out[len(batches):] = 0
    stacked, ys = outs[:-1], outs[-1]
    ws = np.zeros((k, rows), np.float32)
    for i, b in enumerate(batches):
        ws[i, :b.rows] = 1.0
    active = np.arange(k) < len(batches)
    return jax.tree.unflatten(spec.x_tree, stacked), ys, ws, active


def _reads_directly(source: Any, cast: Callable[[NumpyArray], NumpyArray]) -> bool:
    """Whether the stacking can read `source`'s rows straight into a chunk: a source with
    `batch_rows` and `read_into` (`ArraySource`) over NumPy arrays (memmaps too) that
    `cast` leaves as they are."""
    if not (callable(getattr(source, "batch_rows", None))
            and callable(getattr(source, "read_into", None))):
        return False
    arrays = [*jax.tree.leaves(getattr(source, "x", None)), getattr(source, "y", None)]
    return all(isinstance(a, np.ndarray) and cast(a[:0]).dtype == a.dtype for a in arrays)


class StreamReader:
    """Host iteration of a run: `items(first_epoch, first_step, epochs, max_steps)` yields
    `Chunk`s and `EpochEnd`s. `exact_ragged`: a batch smaller than the batch size runs as
    its own chunk of its exact rows (networks with state, whose statistics padding would
    change)."""

    def __init__(self, where: str, data: Any, kind: str, steps_per_epoch: int | None,
                 chunk_steps: int, exact_ragged: bool,
                 cast: Callable[[NumpyArray], NumpyArray]) -> None:
        self.where, self.data, self.kind = where, data, kind
        self.steps_per_epoch, self.k, self.exact = steps_per_epoch, chunk_steps, exact_ragged
        self.cast = cast
        self.spec: BatchSpec | None = None
        self.seen = 0  # batches read so far in this run (for error messages)
        self._stream: Iterator[Any] | None = None
        self._peeked: tuple[int, Iterator[Any], object] | None = None
        self.direct = kind == "source" and _reads_directly(data, cast)

    def start(self, source_state: Any) -> None:
        """Open a one-shot stream once, at the saved position `source_state` if given."""
        if self.kind != "stream":
            return
        stream: Any = self.data if isinstance(self.data, Iterator) else iter(self.data)
        if source_state is not None:
            if not callable(getattr(stream, "set_state", None)):
                raise ValueError(f"{self.where}: the position holds a saved stream state, "
                                 f"but this {type(stream).__name__} has no set_state")
            stream.set_state(source_state)
        self._stream = stream

    def _epoch_iterator(self, epoch: int, start: int) -> Iterator[Any]:
        if self.kind == "stream":
            assert self._stream is not None and self.steps_per_epoch is not None
            return islice(self._stream, self.steps_per_epoch - start)
        if self.direct:
            batches: Iterator[Any] = iter(self.data.batch_rows(epoch, start))
        elif self.kind == "source":
            batches = iter(self.data.batches(epoch, start))
        else:
            source = self.data(epoch) if self.kind == "factory" else self.data
            batches = islice(iter(source), start, None)  # resumed: skip what was trained on
        if self.steps_per_epoch is not None:
            batches = islice(batches, self.steps_per_epoch - start)
        return batches

    def first(self, epoch: int, start: int) -> Batch:
        """The run's first batch, checked (it sets the spec every later batch must match);
        `items` yields it again as the first of its chunks."""
        iterator = self._epoch_iterator(epoch, start)
        try:
            raw = next(iterator)
        except StopIteration:
            raise ValueError(f"{self.where}: the stream ended before its first batch (epoch "
                             f"{epoch}{f', batch {start}' if start else ''}); it yielded "
                             "nothing") from None
        self._peeked = (epoch, iterator, raw)
        return self._checked(self.data.read(raw) if self.direct else raw, epoch, start)

    def _state(self) -> Any:
        getter = getattr(self._stream, "get_state", None)
        return getter() if callable(getter) else None

    def _checked(self, raw: object, epoch: int, step: int) -> Batch:
        x, y, self.spec = check_batch(self.where, f"batch {step} of epoch {epoch}", raw,
                                      self.spec)
        self.seen += 1
        x = jax.tree.map(self.cast, x)
        return Batch(x, self.cast(y), int(jax.tree.leaves(x)[0].shape[0]), self._state())

    def items(self, first_epoch: int, first_step: int, epochs: int,
              max_steps: int | None) -> Iterator[Chunk | EpochEnd]:
        """Chunks and epoch ends for epochs `first_epoch ...` (`epochs` of them, the first
        from its step `first_step`), stopping after `max_steps` steps (None: no limit)."""
        budget = max_steps
        for epoch in range(first_epoch, first_epoch + epochs):
            start = first_step if epoch == first_epoch else 0
            step, chunk_start = start, start
            pending: list[Batch] = []
            exhausted = False
            iterator: Iterator[Any]
            if self._peeked is not None and self._peeked[0] == epoch:
                iterator = chain([self._peeked[2]], self._peeked[1])
                self._peeked = None
            else:
                iterator = self._epoch_iterator(epoch, start)
            while budget is None or budget > 0:
                try:
                    raw = next(iterator)
                except StopIteration:
                    exhausted = self.kind == "stream" and step < (self.steps_per_epoch or 0)
                    break
                batch = (Batch(None, None, len(raw), None, raw)
                         if self.direct else self._checked(raw, epoch, step))
                assert self.spec is not None
                ragged = batch.rows < self.spec.rows
                if ragged and self.exact:
                    if pending:
                        yield self._chunk(epoch, chunk_start, pending, False)
                    yield self._chunk(epoch, step, [batch], True)
                    pending, chunk_start = [], step + 1
                else:
                    pending.append(batch)
                    if len(pending) == self.k:
                        yield self._chunk(epoch, chunk_start, pending, False)
                        pending, chunk_start = [], step + 1
                step += 1
                budget = None if budget is None else budget - 1
            if pending:
                yield self._chunk(epoch, chunk_start, pending, False)
            if self.spec is None:
                raise ValueError(f"{self.where}: the stream ended before its first batch "
                                 f"(epoch {epoch}{f', batch {start}' if start else ''}); "
                                 "it yielded nothing")
            if step == 0 and self.kind != "stream":
                raise ValueError(f"{self.where}: epoch {epoch} yielded no batches (batch "
                                 f"{self.seen} of the run was expected)")
            if step == start and exhausted:
                return  # the stream ran out at an epoch boundary
            if budget == 0 and not self._epoch_done(step):
                return  # max_steps reached inside the epoch: no epoch end
            yield EpochEnd(epoch, step, exhausted)
            if exhausted or budget == 0:
                return

    def _epoch_done(self, step: int) -> bool:
        """Whether an epoch stopped by max_steps at `step` is complete anyway: only known
        when the epoch has a fixed length."""
        length = self.steps_per_epoch
        if length is None and self.kind == "source":
            length = getattr(self.data, "batches_per_epoch", None)
        return length is not None and step >= length

    def _chunk(self, epoch: int, first_step: int, batches: list[Batch], exact: bool) -> Chunk:
        assert self.spec is not None
        xs, ys, ws, active = _stack(batches, self.spec, 1 if exact else self.k, exact,
                                    self.data)
        return Chunk(epoch, first_step, xs, ys, ws, active,
                     tuple(b.rows for b in batches), tuple(b.state for b in batches))
