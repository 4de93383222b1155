"""`Embedding`: integer ids to learned vectors, `y[..., :] = table[ids[...], :]`."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.initializers import book_normal
from funcnn.nn.errors import LayerError, LayerTypeError
from funcnn.nn.layer import (
    Layer,
    check_float_input,
    check_input_shape,
    described,
    no_penalty,
    output_width,
    positive_int,
)
from funcnn.nn.penalties import coefficients, weight_penalty
from funcnn.typing import Array, DTypeLike, Initializer, Params, PRNGKey, Shape, State

__all__ = ["Embedding", "PositionEmbedding"]


def _check_ids_in_range(ids: Array, vocab: int) -> None:
    """Concrete ids outside `[0, vocab)` are an error naming the first one; traced ids
    cannot be checked here (their rows come out NaN instead, see `Embedding`)."""
    if isinstance(ids, jax.core.Tracer):
        return
    values = np.asarray(ids)
    bad = (values < 0) | (values >= vocab)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise LayerError("Embedding", f"id {int(values[where])} at index {where} is outside "
                         f"0..{vocab - 1}, the embedding's vocabulary of {vocab}")


def Embedding(features: int, *, vocab: int, init: Initializer | None = None,
              w_l1: float = 0.0, w_l2: float = 0.0, dtype: DTypeLike = jnp.float32) -> Layer:
    """Integer ids `(...)` in `[0, vocab)` to vectors `(..., features)`; params `{"table":
    (vocab, features)}`, initialized `N(0, 1)` by default (as PyTorch and Flax do). Penalty:
    `w_l1 * sum|table| + w_l2 * sum table^2`.

    Ids outside `[0, vocab)` are never clamped: concrete ones (eager calls) raise a
    `LayerError`, `fit`, `evaluate` and `predict` check their data up front against
    `input_bounds = (0, vocab)`, and under `jit` an out-of-range id gives a row of NaN.
    """
    vocab = positive_int("Embedding", "vocab", vocab)
    features = output_width("Embedding", features)
    table_init = book_normal(1.0) if init is None else init
    coefs = coefficients("Embedding", {"w_l1": w_l1, "w_l2": w_l2})

    def penalty(params: Params) -> Array:
        return weight_penalty([(params["table"], coefs["w_l1"], coefs["w_l2"])])

    def layer_init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        check_input_shape("Embedding", input_shape, min_rank=0)
        return {"table": table_init(key, (vocab, features), dtype)}, {}

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        del key, train
        if not isinstance(params, Mapping) or set(params) != {"table"}:
            found = sorted(params) if isinstance(params, Mapping) else type(params).__name__
            raise LayerError("Embedding", f"expected params with key ['table'], got {found}")
        table = params["table"]
        if table.shape != (vocab, features):
            raise LayerError("Embedding", f"expected a table of shape {(vocab, features)}, "
                             f"got {table.shape}")
        ids = jnp.asarray(x)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise LayerTypeError("Embedding", f"expected integer ids, got {ids.dtype}")
        _check_ids_in_range(x, vocab)
        return jnp.take(table, ids, axis=0, mode="fill", fill_value=jnp.nan), state

    config = MappingProxyType({"vocab": vocab, "features": features, **coefs,
                               "dtype": jnp.dtype(dtype).name})
    return described(Layer(layer_init, apply, penalty, "Embedding", config,
                           input_bounds=(0, vocab), input_dtype=jnp.int32), init)


def PositionEmbedding(*, scale: float = 0.02, dtype: DTypeLike = jnp.float32) -> Layer:
    """A learned position embedding `x (..., T, F) -> x + table`, params `{"table": (T,
    F)}` drawn `scale * N(0, 1)` (GPT-2's 0.02 by default); `T` and `F` come from the
    input shape at init, so a longer sequence at apply is an error, not a broadcast."""
    if not isinstance(scale, int | float) or isinstance(scale, bool) or not (
            np.isfinite(scale) and scale >= 0):
        raise ValueError(f"PositionEmbedding: scale must be a finite number >= 0, got {scale!r}")
    table_init = book_normal(float(scale))

    def layer_init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        shape = check_input_shape("PositionEmbedding", input_shape, min_rank=2)
        if len(shape) != 2:
            raise LayerError("PositionEmbedding", f"expected an input shape (T, F), got {shape}")
        return {"table": table_init(key, shape, dtype)}, {}

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        del key, train
        if not isinstance(params, Mapping) or set(params) != {"table"}:
            found = sorted(params) if isinstance(params, Mapping) else type(params).__name__
            raise LayerError("PositionEmbedding", f"expected params with key ['table'], "
                             f"got {found}")
        x = jnp.asarray(x)
        check_float_input("PositionEmbedding", x)
        table = params["table"]
        if x.ndim < 2 or x.shape[-2:] != table.shape:
            raise LayerError("PositionEmbedding", f"expected input (..., {table.shape[0]}, "
                             f"{table.shape[1]}), got {x.shape}")
        return x + table.astype(x.dtype).reshape((1,) * (x.ndim - 2) + table.shape), state

    config = MappingProxyType({"scale": float(scale), "dtype": jnp.dtype(dtype).name})
    return described(Layer(layer_init, apply, no_penalty, "PositionEmbedding", config))
