"""An LSTM over a whole sequence with a hand-written backward pass through time (the
scheme of cuDNN): the reverse loop computes only the gate derivatives `dz_t` and
`dh_{t-1} = dz_t @ w_h.T`; the weight gradients are then whole-sequence matmuls,
`dw_h = sum_t h_{t-1}.T @ dz_t`, `dw_x = sum_t x_t.T @ dz_t`, `db = sum_t dz_t`, and the
input gradient `dx_t = dz_t @ w_x.T`. Autodiff of the scan instead accumulates a rank-B
update of `dw_h` and `dw_x` in every step of the reverse loop.

Same equations and gate order as `recurrent_cells.LSTMCell` (i, f, g, o):
`z = x_t @ w_x + b + h @ w_h`, `c' = s(f) c + s(i) tanh(g)`, `h' = s(o) tanh(c')`.
Time-major: `xs (T, B, F)`; returns all hidden states `(T, B, h)` and the final `(h, c)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from funcnn.typing import Array

__all__ = ["lstm_sequence", "run_lstm"]

Residuals = tuple[Array, Array, Array, Array, Array, Array, Array, Array]


def _gates(z: Array) -> tuple[Array, Array, Array, Array]:
    i, f, g, o = jnp.split(z, 4, axis=-1)
    return jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)


def _forward(w_x: Array, w_h: Array, b: Array, xs: Array, h0: Array, c0: Array,
             ) -> tuple[tuple[Array, Array, Array], Residuals]:
    def step(carry: tuple[Array, Array], x_t: Array) -> tuple[tuple[Array, Array], Any]:
        h, c = carry
        i, f, g, o = _gates(jnp.dot(x_t, w_x) + b[None, :] + jnp.dot(h, w_h))
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        return (h_new, c_new), (h_new, c_new, jnp.concatenate([i, f, g, o], axis=-1))

    (h_last, c_last), (hs, cs, acts) = jax.lax.scan(step, (h0, c0), xs)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
    c_prev = jnp.concatenate([c0[None], cs[:-1]], axis=0)
    return (hs, h_last, c_last), (w_x, w_h, xs, h_prev, c_prev, cs, acts, b)


@jax.custom_vjp
def lstm_sequence(w_x: Array, w_h: Array, b: Array, xs: Array, h0: Array, c0: Array,
                  ) -> tuple[Array, Array, Array]:
    """`(hs (T, B, h), h_T, c_T)` of the LSTM over `xs (T, B, F)` from `(h0, c0)`, each
    `(B, h)`; all arrays of one dtype."""
    return _forward(w_x, w_h, b, xs, h0, c0)[0]


def _lstm_fwd(w_x: Array, w_h: Array, b: Array, xs: Array, h0: Array, c0: Array,
              ) -> tuple[tuple[Array, Array, Array], Residuals]:
    return _forward(w_x, w_h, b, xs, h0, c0)


def _lstm_bwd(res: Residuals, cotangents: tuple[Array, Array, Array],
              ) -> tuple[Array, Array, Array, Array, Array, Array]:
    w_x, w_h, xs, h_prev, c_prev, cs, acts, b = res
    d_hs, d_h_last, d_c_last = cotangents

    def step(carry: tuple[Array, Array], t: tuple[Array, ...]) -> tuple[tuple[Array, Array],
                                                                          Array]:
        dh_next, dc_next = carry
        d_h_t, c_t, c_before, act = t
        i, f, g, o = jnp.split(act, 4, axis=-1)
        dh = d_h_t + dh_next
        tanh_c = jnp.tanh(c_t)
        dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
        dz = jnp.concatenate([dc * g * i * (1 - i), dc * c_before * f * (1 - f),
                              dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)], axis=-1)
        return (jnp.dot(dz, w_h.T), dc * f), dz

    (dh0, dc0), dzs = jax.lax.scan(step, (d_h_last, d_c_last), (d_hs, cs, c_prev, acts),
                                   reverse=True)
    d_w_h = jnp.einsum("tbh,tbg->hg", h_prev, dzs).astype(w_h.dtype)
    d_w_x = jnp.einsum("tbf,tbg->fg", xs, dzs).astype(w_x.dtype)
    d_b = jnp.sum(dzs, axis=(0, 1)).astype(b.dtype)
    d_xs = jnp.dot(dzs, w_x.T).astype(xs.dtype)
    return d_w_x, d_w_h, d_b, d_xs, dh0, dc0


lstm_sequence.defvjp(_lstm_fwd, _lstm_bwd)


def run_lstm(params: Mapping[str, Array], xs: Array, carry: tuple[Array, Array],
             reverse: bool, keep_sequence: bool) -> tuple[tuple[Array, Array], Array]:
    """An LSTM layer's `(final carry, outputs)` through `lstm_sequence`: `xs (T, F)` or
    `(B, T, F)` with the batch made explicit, time-major, `reverse` by flipping time
    before and after; outputs `(..., T, h)` (`keep_sequence`) or the last `(..., h)`."""
    single = xs.ndim == 2
    batch = xs[None] if single else xs
    h0, c0 = (a[None] if single else a for a in carry)
    time_major = jnp.moveaxis(batch, -2, 0)
    if reverse:
        time_major = time_major[::-1]
    hs, h, c = lstm_sequence(params["w_x"], params["w_h"], params["b"], time_major, h0, c0)
    if reverse:
        hs = hs[::-1]
    out = jnp.moveaxis(hs, 0, -2) if keep_sequence else h
    if single:
        return (h[0], c[0]), out[0]
    return (h, c), out
