"""Recurrent cells: `LSTMCell` and `GRUCell`, with PyTorch's equations and gate order.

A cell is a `Cell`, a small NamedTuple of pure functions, not a `Layer`: it maps one time
step `(carry, x_t) -> (carry, h_t)` and is run over a sequence by `funcnn.nn.recurrent`
(`RNN`, `scan_cell`). The step is split in two so that the input part can be computed
for all time steps at once, before the scan, where that is faster (see `recurrent`'s
lowerings): `project(params, x)` is the input part of every gate, `x @ w_x + b` of shape
`(..., G * hidden)`; `step(params, carry, p_t)` adds the recurrent part `h @ w_h` (one
matmul for all G gates) and applies the gates. `cell(params, carry, x_t)` does both for
one step.

Params are float arrays of the cell's `dtype` with the `(in, out)` layout of `Dense`:
LSTM `{"w_x": (F, 4h), "w_h": (h, 4h), "b": (4h,)}` (gates i, f, g, o), GRU `{"w_x":
(F, 3h), "w_h": (h, 3h), "b_x": (3h,), "b_h": (3h,)}` (gates r, z, n). The computation
runs in the dtype of the params and inputs together (`jnp.result_type`, as `Dense`), and
the carry has that dtype too, which is the output's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp

from funcnn.initializers import glorot_uniform, orthogonal, zeros
from funcnn.nn.errors import LayerError
from funcnn.nn.layer import check_param_dtype, output_width
from funcnn.nn.penalties import coefficients, weight_penalty
from funcnn.tree import hashable
from funcnn.typing import Array, DTypeLike, Initializer, Params, PRNGKey, PyTree, Shape

__all__ = ["Carry", "Cell", "GRUCell", "LSTMCell"]

Carry: TypeAlias = PyTree
"""A cell's recurrent state: `(h, c)` for an LSTM, `h` for a GRU, each `(..., hidden)`."""


class Cell(NamedTuple):
    """A recurrent cell as pure functions (see the module docstring).

    `init(key, n_in) -> params`; `project(params, x (..., F)) -> (..., gates * hidden)`;
    `step(params, carry, p_t) -> (carry, h_t)` on a projected step; `zero_carry(batch_shape,
    dtype)` the initial carry; `penalty(params)` its L1/L2; `param_keys` the leaf names,
    `bias_keys` those of shape `(gates * hidden,)`. Compared by identity; `structure`
    (built-in cells: kind, config and initializers) is what describes it fully, for the
    `structure` of an `RNN` over it (None: an RNN over it is compared by identity).
    """

    name: str
    hidden: int
    gates: int
    init: Callable[[PRNGKey, int], Params]
    project: Callable[[Params, Array], Array]
    step: Callable[[Params, Carry, Array], tuple[Carry, Array]]
    zero_carry: Callable[[Shape, DTypeLike], Carry]
    penalty: Callable[[Params], Array]
    param_keys: tuple[str, ...]
    bias_keys: tuple[str, ...]
    config: Mapping[str, Any]
    structure: Hashable | None = None

    def __call__(self, params: Params, carry: Carry, x_t: Array) -> tuple[Carry, Array]:
        """One time step on raw input `x_t (..., F)`: `step(params, carry, project(x_t))`."""
        return self.step(params, carry, self.project(params, x_t))

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other


# --- argument checks ------------------------------------------------------------------


def _check_number(name: str, label: str, value: float, *, nonnegative: bool) -> float:
    ok = (isinstance(value, int | float) and not isinstance(value, bool)
          and math.isfinite(value) and (value >= 0 or not nonnegative))
    if not ok:
        bound = " >= 0" if nonnegative else ""
        raise ValueError(f"{name}: {label} must be a finite number{bound}, got {value!r}")
    return float(value)




def _check_init(name: str, label: str, init: Initializer | None) -> None:
    if init is not None and not callable(init):
        raise TypeError(f"{name}: {label} must be an initializer (key, shape, dtype) -> "
                        f"array, got {type(init).__name__}")


def check_cell_params(cell: Cell, params: Params) -> int:
    """Raise `LayerError` unless `params` has exactly the cell's leaves with consistent
    shapes; returns the number of input features F (`w_x.shape[0]`)."""
    if not isinstance(params, Mapping) or set(params) != set(cell.param_keys):
        found = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        raise LayerError(cell.name, f"expected params with keys {sorted(cell.param_keys)}, "
                         f"got {found}")
    width = cell.gates * cell.hidden
    w_x = jnp.shape(params["w_x"])
    if len(w_x) != 2 or w_x[1] != width:
        raise LayerError(cell.name, f"params['w_x'] must have shape (F, {width}), got {w_x}")
    expected = {"w_h": (cell.hidden, width), **{k: (width,) for k in cell.bias_keys}}
    for leaf, shape in expected.items():
        if jnp.shape(params[leaf]) != shape:
            raise LayerError(cell.name, f"params[{leaf!r}] must have shape {shape}, got "
                             f"{jnp.shape(params[leaf])}")
    for leaf in cell.param_keys:
        if not jnp.issubdtype(jnp.result_type(params[leaf]), jnp.floating):
            raise LayerError(cell.name, f"params[{leaf!r}] must be floating-point, got "
                             f"{jnp.result_type(params[leaf])}")
    return int(w_x[0])


# --- shared pieces --------------------------------------------------------------------


def _add_bias(y: Array, b: Array) -> Array:
    """`y (..., n) + b (n,)` with `b` reshaped to `y`'s rank (no implicit rank promotion)."""
    return y + b.reshape((1,) * (y.ndim - 1) + b.shape)


def _lstm_project(params: Params, x: Array) -> Array:
    """`x @ w_x + b`, `(..., F) -> (..., 4h)`."""
    return _add_bias(jnp.dot(x, params["w_x"]), params["b"])


def _gru_project(params: Params, x: Array) -> Array:
    """`x @ w_x + b_x`, `(..., F) -> (..., 3h)`."""
    return _add_bias(jnp.dot(x, params["w_x"]), params["b_x"])


def _penalty(coefs: Mapping[str, tuple[float, float]]) -> Callable[[Params], Array]:
    """`sum over leaves of l1 * sum|p| + l2 * sum p^2`, `coefs[leaf] = (l1, l2)`."""

    def penalty(params: Params) -> Array:
        return weight_penalty((params[leaf], l1, l2) for leaf, (l1, l2) in coefs.items())

    return penalty


_GLOROT_UNIFORM = glorot_uniform()


class _Draw(NamedTuple):
    """How a cell draws its params (hashable: the static argument of `_draw`, so that
    cells made alike share one compiled init)."""

    hidden: int
    gates: int
    bias_keys: tuple[str, ...]
    w_init: Initializer
    recurrent_init: Initializer
    b_init: Initializer
    dtype: jnp.dtype[Any]
    forget_bias: float


@partial(jax.jit, static_argnames=("n_in", "how"))
def _draw(key: PRNGKey, n_in: int, how: _Draw) -> Params:
    """`w_x (n_in, G h)`, `w_h (h, G h)`, each of `bias_keys` `(G h,)`; `forget_bias` is
    added to the first bias's slice `[h:2h]` (an LSTM's forget gate)."""
    width, dt = how.gates * how.hidden, how.dtype
    kx, kh, *kb = jax.random.split(key, 2 + len(how.bias_keys))
    params = {"w_x": how.w_init(kx, (n_in, width), dt),
              "w_h": how.recurrent_init(kh, (how.hidden, width), dt)}
    for leaf, k in zip(how.bias_keys, kb, strict=True):
        params[leaf] = how.b_init(k, (width,), dt)
    if how.forget_bias:
        first = how.bias_keys[0]
        h = how.hidden
        params[first] = params[first].at[h:2 * h].add(how.forget_bias).astype(dt)
    return params


def _gate_weights(name: str, hidden: int, gates: int, bias_keys: tuple[str, ...],
                  w_init: Initializer | None, recurrent_init: Initializer | None,
                  b_init: Initializer, dtype: DTypeLike, forget_bias: float = 0.0,
                  ) -> tuple[Callable[[PRNGKey, int], Params], jnp.dtype[Any]]:
    """The cells' `init(key, n_in)` (see `_draw`) after checking the initializers and
    dtype; returns the checked dtype too. Defaults: Glorot-uniform `w_x`, orthogonal `w_h`."""
    for label, fn in (("w_init", w_init), ("recurrent_init", recurrent_init),
                      ("b_init", b_init)):
        _check_init(name, label, fn)
    param_dtype = check_param_dtype(name, dtype)
    how = _Draw(hidden, gates, bias_keys, _GLOROT_UNIFORM if w_init is None else w_init,
                orthogonal() if recurrent_init is None else recurrent_init, b_init, param_dtype,
                forget_bias)

    def init(key: PRNGKey, n_in: int) -> Params:
        params: Params = _draw(key, n_in, how)
        return params

    return init, param_dtype


# --- LSTM -----------------------------------------------------------------------------


def _lstm_step(params: Params, carry: Carry, p_t: Array) -> tuple[Carry, Array]:
    """`i, f, g, o = split(p_t + h @ w_h)`, `c' = σ(f) c + σ(i) tanh(g)`, `h' = σ(o) tanh(c')`."""
    h, c = carry
    i, f, g, o = jnp.split(p_t + jnp.dot(h, params["w_h"]), 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def LSTMCell(features: int, *, w_init: Initializer | None = None,
             recurrent_init: Initializer | None = None, b_init: Initializer = zeros,
             forget_bias: float = 1.0, w_l1: float = 0.0, w_l2: float = 0.0,
             recurrent_l1: float = 0.0, recurrent_l2: float = 0.0, b_l1: float = 0.0,
             b_l2: float = 0.0, dtype: DTypeLike = jnp.float32) -> Cell:
    """Long short-term memory cell, PyTorch's `nn.LSTMCell` equations and gate order:
    `i, f, g, o = split(x @ w_x + h @ w_h + b)`, `c' = σ(f) * c + σ(i) * tanh(g)`,
    `h' = σ(o) * tanh(c')`; carry `(h, c)`, each `(..., hidden)`, output `h'`.

    Params `{"w_x": (F, 4h), "w_h": (h, 4h), "b": (4h,)}` of `dtype`. Defaults as Keras:
    `w_x` Glorot-uniform, `w_h` orthogonal, `b` zeros plus `forget_bias` on the forget
    gate's slice `b[h:2h]` at init (1.0, Keras's `unit_forget_bias`, Jozefowicz et al.
    2015; 0.0 gives plain `b_init`). Penalty: `w_l1, w_l2` on `w_x`, `recurrent_l1,
    recurrent_l2` on `w_h`, `b_l1, b_l2` on `b` (L1 `sum|p|`, L2 `sum p^2`).
    """
    name = "LSTMCell"
    hidden = output_width(name, features)
    forget = _check_number(name, "forget_bias", forget_bias, nonnegative=False)
    coefs = coefficients(name, {"w_l1": w_l1, "w_l2": w_l2, "recurrent_l1": recurrent_l1,
                                 "recurrent_l2": recurrent_l2, "b_l1": b_l1, "b_l2": b_l2})
    init, param_dtype = _gate_weights(name, hidden, 4, ("b",), w_init, recurrent_init, b_init,
                                      dtype, forget)

    def zero_carry(batch_shape: Shape, dt: DTypeLike) -> Carry:
        return (jnp.zeros((*batch_shape, hidden), dt), jnp.zeros((*batch_shape, hidden), dt))

    penalty = _penalty({"w_x": (coefs["w_l1"], coefs["w_l2"]),
                        "w_h": (coefs["recurrent_l1"], coefs["recurrent_l2"]),
                        "b": (coefs["b_l1"], coefs["b_l2"])})
    config = {"features": hidden, "forget_bias": forget, **coefs, "dtype": str(param_dtype)}
    return Cell(name, hidden, 4, init, _lstm_project, _lstm_step, zero_carry, penalty,
                ("w_x", "w_h", "b"), ("b",), MappingProxyType(config),
                (name, hashable(config), w_init, recurrent_init, b_init))


def is_lstm_cell(cell: Cell) -> bool:
    """A cell made by `LSTMCell` (its step is the built-in LSTM step)."""
    return cell.step is _lstm_step


# --- GRU ------------------------------------------------------------------------------


def _gru_step(params: Params, carry: Carry, p_t: Array) -> tuple[Carry, Array]:
    """`r = σ(x_r + h_r)`, `z = σ(x_z + h_z)`, `n = tanh(x_n + r * h_n)`, `h' = (1 - z) n + z h`,
    with `x_* = split(p_t)` (`x @ w_x + b_x`) and `h_* = split(h @ w_h + b_h)`."""
    h = carry
    xr, xz, xn = jnp.split(p_t, 3, axis=-1)
    hr, hz, hn = jnp.split(_add_bias(jnp.dot(h, params["w_h"]), params["b_h"]), 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    h = (1 - z) * n + z * h
    return h, h


def GRUCell(features: int, *, w_init: Initializer | None = None,
            recurrent_init: Initializer | None = None, b_init: Initializer = zeros,
            w_l1: float = 0.0, w_l2: float = 0.0, recurrent_l1: float = 0.0,
            recurrent_l2: float = 0.0, b_l1: float = 0.0, b_l2: float = 0.0,
            dtype: DTypeLike = jnp.float32) -> Cell:
    """Gated recurrent unit, PyTorch's `nn.GRUCell` equations and gate order r, z, n:
    `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + b_iz + W_hz h + b_hz)`,
    `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`, `h' = (1 - z) * n + z * h`; carry `h`.

    Params `{"w_x": (F, 3h), "w_h": (h, 3h), "b_x": (3h,), "b_h": (3h,)}` of `dtype`
    (`W_i* = w_x` columns `[0:h], [h:2h], [2h:3h]`, likewise `w_h`). Defaults: `w_x`
    Glorot-uniform, `w_h` orthogonal, biases zeros. Penalty: `w_l1, w_l2` on `w_x`,
    `recurrent_l1, recurrent_l2` on `w_h`, `b_l1, b_l2` on both biases.
    """
    name = "GRUCell"
    hidden = output_width(name, features)
    coefs = coefficients(name, {"w_l1": w_l1, "w_l2": w_l2, "recurrent_l1": recurrent_l1,
                                 "recurrent_l2": recurrent_l2, "b_l1": b_l1, "b_l2": b_l2})
    init, param_dtype = _gate_weights(name, hidden, 3, ("b_x", "b_h"), w_init, recurrent_init,
                                      b_init, dtype)

    def zero_carry(batch_shape: Shape, dt: DTypeLike) -> Carry:
        return jnp.zeros((*batch_shape, hidden), dt)

    bias = (coefs["b_l1"], coefs["b_l2"])
    penalty = _penalty({"w_x": (coefs["w_l1"], coefs["w_l2"]),
                        "w_h": (coefs["recurrent_l1"], coefs["recurrent_l2"]),
                        "b_x": bias, "b_h": bias})
    config = {"features": hidden, **coefs, "dtype": str(param_dtype)}
    return Cell(name, hidden, 3, init, _gru_project, _gru_step, zero_carry, penalty,
                ("w_x", "w_h", "b_x", "b_h"), ("b_x", "b_h"), MappingProxyType(config),
                (name, hashable(config), w_init, recurrent_init, b_init))
