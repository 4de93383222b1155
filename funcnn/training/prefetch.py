"""Moving chunks of batches to the devices ahead of the training that needs them: a
background thread reads, checks, stacks and places the next chunks while the current
one trains, so input is hidden behind compute when reading is faster than training."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from funcnn import parallel
from funcnn.training.stream_batches import Chunk, EpochEnd
from funcnn.typing import Array, PyTree

__all__ = ["InputTimes", "PlacedChunk", "Prefetcher", "place_chunk"]


class PlacedChunk(NamedTuple):
    """A `Chunk` on the devices: `xs`, `ys`, `ws`, `active` as global arrays (rows split
    over the mesh's `"data"` axis when there is a mesh), plus the host-side bookkeeping."""

    chunk: Chunk
    xs: PyTree
    ys: Array
    ws: Array
    active: Array


def _rows_sharding(mesh: Mesh) -> NamedSharding:
    """`(K, B, ...)` with B split over `"data"`."""
    return NamedSharding(mesh, PartitionSpec(None, parallel.DATA_AXIS))  # type: ignore[no-untyped-call]


def place_chunk(where: str, chunk: Chunk, mesh: Mesh | None) -> PlacedChunk:
    """Put a chunk on the default device, or assemble it over the mesh from every process's
    local rows (`jax.make_array_from_process_local_data`: process p's rows are the p-th
    part of each global batch). The placed chunk keeps the bookkeeping, not the host
    arrays."""
    kept = chunk._replace(xs=None, ys=None, ws=None)
    if mesh is None:
        xs, ys, ws, active = jax.device_put((chunk.xs, chunk.ys, chunk.ws, chunk.active))
        return PlacedChunk(kept, xs, ys, ws, active)
    ways = parallel.data_parallel_size(mesh)
    processes = jax.process_count()
    assert chunk.ws is not None, "place_chunk: the chunk was placed already"
    rows = chunk.ws.shape[1] * processes
    if rows % ways:
        raise ValueError(f"{where}: batch {chunk.first_step} of epoch {chunk.epoch} has "
                         f"{rows} rows, which do not split evenly over the mesh's {ways} "
                         f"{parallel.DATA_AXIS!r} devices (a smaller last batch of a network "
                         "with state runs as its own step); pick a batch size whose "
                         f"remainder is a multiple of {ways}")
    sharding = _rows_sharding(mesh)

    def assemble(local: np.ndarray) -> Array:
        shape = (local.shape[0], local.shape[1] * processes, *local.shape[2:])
        placed: Array = jax.make_array_from_process_local_data(  # type: ignore[no-untyped-call]
            sharding, local, shape)
        return placed

    xs, ys, ws = jax.tree.map(assemble, (chunk.xs, chunk.ys, chunk.ws))
    active = parallel.replicate(chunk.active, mesh)
    return PlacedChunk(kept, xs, ys, ws, active)


class InputTimes(NamedTuple):
    """Seconds the input pipeline spent reading, checking, stacking and placing chunks
    (in its thread), and seconds training waited for it (the input not hidden)."""

    produce_s: float
    wait_s: float


class _Failure(NamedTuple):
    error: BaseException


_DONE = object()


class Prefetcher:
    """Iterate `items` in a background thread, `place` applied to each `Chunk`, keeping up
    to `depth` placed chunks ready; errors raised there are raised here, in order."""

    def __init__(self, items: Iterator[Chunk | EpochEnd],
                 place: Callable[[Chunk], PlacedChunk], depth: int = 2) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._produce_s = 0.0
        self._wait_s = 0.0
        self._thread = threading.Thread(target=self._run, args=(items, place), daemon=True,
                                        name="funcnn-prefetch")
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: Iterator[Chunk | EpochEnd],
             place: Callable[[Chunk], PlacedChunk]) -> None:
        try:
            while not self._stop.is_set():
                began = time.perf_counter()
                try:
                    item = next(items)
                except StopIteration:
                    break
                placed = place(item) if isinstance(item, Chunk) else item
                self._produce_s += time.perf_counter() - began
                if not self._put(placed):
                    return
        except BaseException as error:  # handed to the training thread
            self._put(_Failure(error))
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator[PlacedChunk | EpochEnd]:
        while True:
            began = time.perf_counter()
            item = self._queue.get()
            self._wait_s += time.perf_counter() - began
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def times(self) -> InputTimes:
        return InputTimes(self._produce_s, self._wait_s)

    def close(self) -> None:
        """Stop the thread (it may be blocked on a full queue) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)
