"""Batch sources: minibatches read from arrays one batch at a time, in the orders `fit`
uses, without copying the data set; memory-mapped arrays and a directory of `.npy` files
stay on disk until a batch needs their rows.

A source is anything with `batches(epoch, start)`: the `(x, y)` minibatches of epoch
`epoch` from its batch `start` on. Streamed training (`funcnn.fit_stream`) resumes such a
source exactly from `(epoch, start)`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

from funcnn.data.orders import epoch_orders, key_seed
from funcnn.typing import NumpyArray, PRNGKey, PyTree

__all__ = ["ArraySource", "EpochSource", "load_npy_directory"]


@runtime_checkable
class EpochSource(Protocol):
    """Minibatches by epoch: `batches(epoch, start)` yields the `(x, y)` batches of epoch
    `epoch` from batch index `start` on (the same batches on every call)."""

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Any, Any]]: ...


def _rows(tree: PyTree) -> int:
    return int(jax.tree.leaves(tree)[0].shape[0])


class ArraySource:
    """The minibatches of `x` (one array, or the pair `(x, mask)`) and `y` that
    `fit(..., batch_size=batch_size, key=key)` trains on: epoch `e` visits the rows in
    `epoch_orders(key_seed(key), [e], N)` (or in order without `shuffle`), `ceil(N / B)`
    batches of `batch_size` rows, the last one smaller when B does not divide N.

    Arrays are read a batch at a time (`x[rows]`), so NumPy memmaps (`np.load(path,
    mmap_mode="r")`) stay on disk. Across processes each process yields only its part of
    every global batch: rows `[p * B / P, (p + 1) * B / P)` of it for process `p` of `P`
    (default: `jax.process_index()` of `jax.process_count()`); `batch_size` is the global
    batch and must be a multiple of P. A process's part of a ragged last batch may be
    smaller (or empty)."""

    def __init__(self, x: Any, y: Any, batch_size: int, *, key: PRNGKey | None = None,
                 shuffle: bool = True, process_index: int | None = None,
                 process_count: int | None = None) -> None:
        where = "ArraySource"
        x_tree = tuple(x) if isinstance(x, tuple | list) else x
        leaves = [*jax.tree.leaves(x_tree), y]
        for name, leaf in zip([*(["x"] * (len(leaves) - 1)), "y"], leaves, strict=True):
            if not hasattr(leaf, "shape") or not hasattr(leaf, "__getitem__"):
                raise TypeError(f"{where}: {name} must be an array (NumPy, memmap or JAX), "
                                f"got {type(leaf).__name__}")
            if len(leaf.shape) < 1:
                raise ValueError(f"{where}: {name} must have a leading sample axis, got a "
                                 "scalar")
        n = _rows(x_tree)
        lengths = [int(leaf.shape[0]) for leaf in leaves]
        if any(length != n for length in lengths):
            raise ValueError(f"{where}: x and y must hold the same number of samples, got "
                             f"lengths {lengths}")
        if n == 0:
            raise ValueError(f"{where}: x holds no samples")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) \
                or not 1 <= batch_size <= n:
            raise ValueError(f"{where}: batch_size must be an int in [1, {n}] (the number of "
                             f"samples), got {batch_size!r}")
        if shuffle and key is None:
            raise ValueError(f"{where}: shuffle=True needs the key whose orders to follow "
                             "(pass fit_stream's key to train as fit would), or shuffle=False")
        count = jax.process_count() if process_count is None else process_count
        index = jax.process_index() if process_index is None else process_index
        if not 0 <= index < count:
            raise ValueError(f"{where}: process_index must be in [0, {count}), got {index}")
        if batch_size % count:
            raise ValueError(f"{where}: batch_size {batch_size} must be a multiple of the "
                             f"{count} processes, which each read an equal part of a batch")
        self.x, self.y = x_tree, y
        self.n, self.batch_size, self.shuffle = n, int(batch_size), shuffle
        self.seed = None if key is None else key_seed(key)
        self.process_index, self.process_count = index, count
        self.batches_per_epoch = math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> NumpyArray:
        """The row order of epoch `epoch`: `(N,)` int32."""
        if not self.shuffle or self.seed is None:
            return np.arange(self.n, dtype=np.int32)
        order: NumpyArray = epoch_orders(self.seed, np.array([epoch]), self.n)[0]
        return order

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Any, NumpyArray]]:
        """This process's part of batches `start, start + 1, ...` of epoch `epoch`."""
        for rows in self.batch_rows(epoch, start):
            yield self.read(rows)

    def batch_rows(self, epoch: int, start: int = 0) -> Iterator[NumpyArray]:
        """The row indices `batches` reads, batch by batch: `(B / P,)` int32 each."""
        if not 0 <= start <= self.batches_per_epoch:
            raise ValueError(f"ArraySource.batches: start must be in [0, "
                             f"{self.batches_per_epoch}], got {start}")
        order = self.order(epoch)
        part = self.batch_size // self.process_count
        for b in range(start, self.batches_per_epoch):
            rows = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield rows[self.process_index * part:(self.process_index + 1) * part]

    def _index(self, rows: NumpyArray) -> Any:
        """Unshuffled: one slice, read in one go."""
        if not self.shuffle and len(rows):
            return slice(int(rows[0]), int(rows[0]) + len(rows))
        return rows

    def read(self, rows: NumpyArray) -> tuple[Any, NumpyArray]:
        """Rows `rows` of x and y as NumPy arrays."""
        index = self._index(rows)
        x = jax.tree.map(lambda a: np.asarray(a[index]), self.x)
        return x, np.asarray(self.y[index])

    def read_into(self, rows: NumpyArray, x_out: list[NumpyArray], y_out: NumpyArray,
                  ) -> None:
        """Rows `rows` of each x array and of y written into `x_out` (one per array of x)
        and `y_out`, `len(rows)` rows each: one copy, straight from the (memory-mapped)
        arrays."""
        index = self._index(rows)
        for array, out in zip([*jax.tree.leaves(self.x), self.y], [*x_out, y_out],
                              strict=True):
            if isinstance(index, slice):
                out[...] = array[index]
            else:
                np.take(array, index, axis=0, out=out)


def load_npy_directory(directory: str | os.PathLike[str], names: tuple[str, ...] = (
        "x_train", "y_train", "x_test", "y_test")) -> dict[str, NumpyArray]:
    """The arrays `NAME.npy` in `directory`, memory-mapped read-only (nothing is read until
    used), for each of `names` that exists; `x_train.npy` and `y_train.npy` are required."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"load_npy_directory: {root} is not a directory")
    found: dict[str, NumpyArray] = {}
    for name in names:
        path = root / f"{name}.npy"
        if path.is_file():
            try:
                found[name] = np.load(path, mmap_mode="r", allow_pickle=False)
            except ValueError as err:
                raise ValueError(f"load_npy_directory: {path} is not a plain .npy array "
                                 f"({err})") from None
    missing = [name for name in ("x_train", "y_train") if name not in found]
    if missing:
        raise FileNotFoundError(f"load_npy_directory: {root} has no "
                                f"{' or '.join(m + '.npy' for m in missing)}")
    return found
