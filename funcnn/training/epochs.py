"""How a training run is cut into compiled calls and how its epochs order the samples.

A call runs up to `STEPS_PER_PROGRAM` steps (several epochs); epoch `e`'s order is a
NumPy permutation seeded by the key's words and `e`, drawn on the host
(`funcnn.data.orders`, shared with streamed training); small steps are
unrolled (`auto_unroll`).
"""

from __future__ import annotations

import math

import jax

from funcnn import parallel
from funcnn.data.orders import epoch_orders, key_seed
from funcnn.training.config import TrainConfig
from funcnn.typing import Array, NumpyArray

__all__ = ["MAX_ORDER_ENTRIES", "SMALL_STEP", "STEPS_PER_PROGRAM", "auto_unroll",
           "epoch_inputs", "epoch_orders", "epochs_per_program", "key_seed"]


SMALL_STEP = 2_000_000
"""Steps of at most this many multiply-adds (batch size x params) are unrolled 4 times."""


def auto_unroll(batch_size: int, n_params: int) -> int:
    """The unroll factor of the scan over steps (minibatches, or full-batch epochs): 4 for
    small steps, whose time is mostly the loop's own per-step cost (measured: 29% faster
    for the 784-16-16-10 digit net at batch 32, 8-10% for the book's spiral net on 3,000
    points full batch; about 0.4 s more compilation), 1 otherwise (unrolling larger steps
    made them slower: 9-21% at batch 1024 with 118k params)."""
    return 4 if batch_size * n_params <= SMALL_STEP else 1


STEPS_PER_PROGRAM = 4000
"""About how many steps one compiled call runs when no callback needs every epoch."""


MAX_ORDER_ENTRIES = 16 * 1024 * 1024
"""At most this many sample indices (64 MiB of int32) of epoch orders go into one call."""


def epochs_per_program(n_batches: int, epochs: int, has_callbacks: bool,
                       order_entries: int = 0) -> int:
    """How many epochs one compiled call runs: one when callbacks must see every epoch;
    else up to `STEPS_PER_PROGRAM` steps' worth, spread evenly over the calls so that the
    last call runs few skipped (padding) epochs. Each call costs a synchronisation and
    host work (measured: about 3 ms per call for the book's digit net). `order_entries`,
    the sample indices of one epoch's orders (N, or K x N for an ensemble of K), caps a
    call's orders at `MAX_ORDER_ENTRIES`."""
    if has_callbacks or epochs <= 1:
        return 1
    most = max(1, STEPS_PER_PROGRAM // n_batches)
    if order_entries:  # the orders of one epoch (all members): keep a call's under 64 MiB
        most = max(1, min(most, MAX_ORDER_ENTRIES // order_entries))
    calls = math.ceil(epochs / most)
    return math.ceil(epochs / calls)


def epoch_inputs(cfg: TrainConfig, ids: NumpyArray, active: NumpyArray, seed: NumpyArray,
                 n: int) -> tuple[Array, Array, Array | None]:
    """The epoch ids, active flags and sample orders (None without shuffling) of one program
    call, as device arrays."""
    orders = (epoch_orders(seed, ids, n) if cfg.shuffle and cfg.batch_size is not None
              else None)
    if cfg.mesh is None:
        return jax.device_put((ids, active, orders))  # type: ignore[no-any-return]
    return parallel.replicate((ids, active, orders), cfg.mesh)  # type: ignore[no-any-return]
