"""`MultiHeadAttention`: self-attention over a sequence `(..., T, F)`, optionally causal and
with a padding mask given as the input pair `(x, mask)`.

For heads `n` of width `h = features / n`: `q, k, v = x @ w_{q,k,v} + b_{q,k,v}` split into
heads, `a = softmax(q k^T / sqrt(h) + masks)` over the keys, `y = concat_heads(a v) @ w_o +
b_o`. Softmax and its logits run in at least float32.

Two lowerings of the same formula. On the CPU backend, with dropout, and in float64
(which `jax.nn.dot_product_attention` computes in float32: 1e-7 off the formula,
measured), it is written out head-major: one einsum projects `x` with the three weights
stacked into `(3, B, heads, T, h)`, the logits and the weighted sum are batched matmuls
over `(B, heads)`, and the output projection contracts heads and width at once. On other
backends without dropout it calls `jax.nn.dot_product_attention` (the fused kernel where
a backend has one); on XLA:CPU the written-out form was the faster of the two in W6
(`benchmarks/peers.py --workloads W6`, docs/performance.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp

from funcnn.initializers import glorot_uniform, zeros
from funcnn.nn.errors import LayerError, LayerTypeError
from funcnn.nn.layer import (
    Layer,
    check_float_input,
    check_input_shapes,
    described,
    is_pair_shape,
    positive_int,
)
from funcnn.nn.penalties import coefficients, weight_penalty
from funcnn.typing import Array, DTypeLike, Params, PRNGKey, Shape, State

__all__ = ["MultiHeadAttention", "attention_weights"]

PROJECTIONS = ("q", "k", "v", "o")


def _check_settings(heads: object, features: object, dropout: object) -> None:
    features = positive_int("MultiHeadAttention", "features", features)
    heads = positive_int("MultiHeadAttention", "heads", heads)
    if features % heads:
        raise ValueError(f"MultiHeadAttention: features {features} must be a multiple of "
                         f"heads {heads}")
    if not (isinstance(dropout, int | float) and 0.0 <= dropout < 1.0):
        raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout!r}")


def _sequence_shape(input_shape: Any) -> tuple[int, int]:
    """(T, F) of one example, from `(T, F)` or the pair `((T, F), (T,))`."""
    shapes = check_input_shapes("MultiHeadAttention", input_shape)
    pair = is_pair_shape(shapes)
    x_shape = shapes[0] if pair else shapes
    if len(x_shape) != 2:
        raise LayerError("MultiHeadAttention", f"expects examples (T, F), got {x_shape}")
    if pair and (len(shapes) != 2 or shapes[1] != x_shape[:1]):
        raise LayerError("MultiHeadAttention", "a pair input is (x, mask) with mask of "
                         f"shape (T,) = {x_shape[:1]}, got shapes {shapes}")
    return x_shape[0], x_shape[1]


def _split_input(x: Any) -> tuple[Array, Array | None]:
    """`x` or the pair `(x, mask)`, checked: float x `(..., T, F)`, bool mask `(..., T)`."""
    mask = None
    if isinstance(x, tuple | list):
        if len(x) != 2:
            raise LayerError("MultiHeadAttention", f"a pair input is (x, mask), got {len(x)} "
                             "arrays")
        x, mask = jnp.asarray(x[0]), jnp.asarray(x[1])
    x = jnp.asarray(x)
    check_float_input("MultiHeadAttention", x)
    if x.ndim < 2:
        raise LayerError("MultiHeadAttention", f"expects (..., T, F) inputs, got shape "
                         f"{x.shape}")
    if mask is not None:
        if mask.dtype != jnp.bool_:
            raise LayerTypeError("MultiHeadAttention", f"the mask must be bool (True: a real "
                                 f"position), got {mask.dtype}")
        if mask.shape != x.shape[:-1]:
            raise LayerError("MultiHeadAttention", f"the mask has shape {mask.shape}; for x "
                             f"of shape {x.shape} it must be {x.shape[:-1]}")
    return x, mask


def _check_params(params: Params, in_features: int, features: int) -> None:
    if not isinstance(params, Mapping) or set(params) != set(PROJECTIONS):
        found = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        raise LayerError("MultiHeadAttention", f"expected params with keys "
                         f"{sorted(PROJECTIONS)}, got {found}")
    expected = params["q"]["w"].shape[0]
    if in_features != expected:
        raise LayerError("MultiHeadAttention", f"expected {expected} features, got "
                         f"{in_features}")
    for name in PROJECTIONS:
        rows = features if name == "o" else in_features
        w, b = params[name]["w"], params[name]["b"]
        if w.shape != (rows, features) or b.shape != (features,):
            raise LayerError("MultiHeadAttention", f"params '{name}' must be w {(rows, features)}"
                             f", b {(features,)}; got {w.shape}, {b.shape}")


def _allowed(t: int, mask: Array | None, causal: bool) -> Array | None:
    """Which keys each query may see, broadcastable to `(..., heads, T, T)`; None: all."""
    allowed = None
    if causal:
        allowed = jnp.tril(jnp.ones((t, t), jnp.bool_))
    if mask is not None:
        keys = mask[..., None, None, :]
        allowed = keys if allowed is None else (
            allowed.reshape((1,) * (keys.ndim - 2) + allowed.shape) & keys)
    return allowed


def _masked_softmax(logits: Array, width: int, allowed: Array | None) -> Array:
    """`softmax(logits / sqrt(width))` over the last axis; disallowed keys get the dtype's
    lowest logit (a row with none allowed is uniform, not NaN)."""
    logits = logits / jnp.asarray(math.sqrt(width), logits.dtype)
    if allowed is not None:
        lowest = jnp.finfo(logits.dtype).min  # type: ignore[no-untyped-call]
        logits = jnp.where(allowed, logits, lowest)
    return jax.nn.softmax(logits, axis=-1)


def attention_weights(q: Array, k: Array, allowed: Array | None) -> Array:
    """`softmax(q k^T / sqrt(h))` over the keys, `(..., heads, T, T)` in at least float32,
    for `q, k: (..., T, heads, h)`; disallowed keys get the dtype's lowest logit (a row
    with none allowed is uniform, not NaN)."""
    wide = jnp.promote_types(q.dtype, jnp.float32)
    logits = jnp.einsum("...tnh,...snh->...nts", q.astype(wide), k.astype(wide))
    return _masked_softmax(logits, q.shape[-1], allowed)




def _head_major(params: Params, x: Array, mask: Array | None, causal: bool, heads: int,
                drop: tuple[PRNGKey, float] | None) -> Array:
    """The written-out layer on `x (B, T, F)`: `(B, T, features)` (module docstring)."""
    features = params["o"]["w"].shape[1]
    width = features // heads
    w = jnp.stack([params[n]["w"] for n in "qkv"], axis=1).reshape(-1, 3, heads, width)
    b = jnp.stack([params[n]["b"] for n in "qkv"]).reshape(3, 1, heads, 1, width)
    q, k, v = jnp.einsum("btf,fxne->xbnte", x, w) + b
    wide = jnp.promote_types(q.dtype, jnp.float32)
    logits = jnp.einsum("bnte,bnse->bnts", q.astype(wide), k.astype(wide))
    weights = _masked_softmax(logits, width, _allowed(x.shape[-2], mask, causal))
    if drop is not None:
        key, rate = drop
        kept = jax.random.bernoulli(key, 1.0 - rate, weights.shape)
        weights = jnp.where(kept, weights / (1.0 - rate), 0.0)
    attended = jnp.einsum("bnts,bnse->bnte", weights.astype(v.dtype), v)
    w_o = params["o"]["w"].reshape(heads, width, features)
    y: Array = jnp.einsum("bnte,ned->btd", attended, w_o) + params["o"]["b"][None, None]
    return y


LOWERINGS = ("auto", "einsum", "dot_product_attention")


def resolve_lowering(lowering: str, dtype: Any, dropout: bool) -> str:
    """`"einsum"` (written out, head-major) or `"dot_product_attention"`: `"auto"` is the
    latter only off the CPU backend, and never with dropout or in float64 (which that
    function cannot do exactly)."""
    if dropout or jnp.dtype(dtype) == jnp.float64:
        return "einsum"
    if lowering == "auto":
        return "einsum" if jax.default_backend() == "cpu" else "dot_product_attention"
    return lowering


@partial(jax.jit, static_argnames=("heads", "causal", "rate", "lowering"))
def _forward(params: Params, values: Array, mask: Array | None, drop_key: PRNGKey | None, *,
             heads: int, causal: bool, rate: float, lowering: str) -> Array:
    """The layer's numbers, compiled once per shape and setting: `(..., T, F)` values (and
    `(..., T)` mask) to `(..., T, features)`."""
    lead, (t, f) = values.shape[:-2], values.shape[-2:]
    features = params["o"]["w"].shape[1]
    flat = values.reshape(-1, t, f)
    flat_mask = None if mask is None else mask.reshape(-1, t)
    drop = None if drop_key is None else (drop_key, rate)
    if resolve_lowering(lowering, values.dtype, drop is not None) == "einsum":
        return _head_major(params, flat, flat_mask, causal, heads, drop).reshape(
            *lead, t, features)

    def project(name: str, inputs: Array) -> Array:
        projected: Array = inputs @ params[name]["w"] + params[name]["b"][None, None]
        return projected

    q, k, v = (project(n, flat).reshape(-1, t, heads, features // heads) for n in "qkv")
    key_mask = None if flat_mask is None else flat_mask[:, None, None, :]
    attended = jax.nn.dot_product_attention(q, k, v, mask=key_mask, is_causal=causal)
    attended = attended.reshape(-1, t, features)
    return project("o", attended).reshape(*lead, t, features)


def MultiHeadAttention(features: int, *, heads: int, causal: bool = False,
                       dropout: float = 0.0, w_l1: float = 0.0, w_l2: float = 0.0,
                       dtype: DTypeLike = jnp.float32, lowering: str = "auto") -> Layer:
    """Self-attention `(..., T, F) -> (..., T, features)`, or on the pair `(x, mask)` with a
    bool `mask (..., T)` (True: a real position; padded keys are never attended to, padded
    queries get finite outputs of no meaning). `causal=True`: position t sees keys <= t.
    `dropout` drops attention weights in training. Params `{"q", "k", "v", "o"}`, each
    `{"w": (in, out), "b": (out,)}`; Glorot-uniform weights, zero biases. Penalty:
    `w_l1 * sum|w| + w_l2 * sum w^2` over the four weights (not the biases). `lowering`:
    `"einsum"`, `"dot_product_attention"` or `"auto"` (module docstring)."""
    _check_settings(heads, features, dropout)
    if lowering not in LOWERINGS:
        raise ValueError(f"MultiHeadAttention: lowering must be one of {LOWERINGS}, got "
                         f"{lowering!r}")
    coefs = coefficients("MultiHeadAttention", {"w_l1": w_l1, "w_l2": w_l2})

    def penalty(params: Params) -> Array:
        return weight_penalty((params[name]["w"], coefs["w_l1"], coefs["w_l2"])
                              for name in PROJECTIONS)

    init_w = glorot_uniform()

    @partial(jax.jit, static_argnums=1)
    def init_params(key: PRNGKey, in_features: int) -> Params:
        params = {}
        for i, name in enumerate(PROJECTIONS):
            rows = features if name == "o" else in_features
            params[name] = {"w": init_w(jax.random.fold_in(key, i), (rows, features), dtype),
                            "b": zeros(key, (features,), dtype)}
        return params

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        _, in_features = _sequence_shape(input_shape)
        return init_params(key, in_features), {}

    def apply(params: Params, state: State, x: Any, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        values, mask = _split_input(x)
        _check_params(params, values.shape[-1], features)
        drop_key = None
        if train and dropout > 0.0:
            if key is None:
                raise LayerError("MultiHeadAttention", "train=True with dropout needs a PRNG "
                                 "key: call apply(..., key=key, train=True)")
            drop_key = key
        rate = float(dropout) if drop_key is not None else 0.0
        return _forward(params, values, mask, drop_key, heads=heads, causal=causal,
                        rate=rate, lowering=lowering), state

    config = MappingProxyType({"heads": heads, "features": features, "causal": causal,
                               "dropout": float(dropout), **coefs,
                               "dtype": jnp.dtype(dtype).name, "lowering": lowering})
    return described(Layer(init, apply, penalty, "MultiHeadAttention", config))
