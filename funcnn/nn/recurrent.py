"""Recurrent layers: `RNN` runs a cell (`LSTMCell`, `GRUCell`, see `recurrent_cells`) over
the time axis with `lax.scan`; `LSTM` and `GRU` are `RNN` over those cells;
`Bidirectional` runs one forward and one backward RNN and merges their outputs.

Inputs are `(B, T, F)` batches or `(T, F)` single examples (time on axis -2); the initial
carry is zeros. The computation runs in the dtype of params and input together (float32,
float64 or bfloat16), and the output and carry have that dtype.

Three lowerings, the same results within float rounding; every matmul covers all gates:
- `"precomputed"`: the input projection `x @ w_x + b` of all T steps is one matmul before
  the scan, and each step does `h @ w_h` and the gate arithmetic.
- `"per_step"`: each step does `x_t @ w_x` and `h @ w_h`.
- `"bptt"` (LSTM only, `funcnn.nn.lstm_bptt`): per-step forward and a hand-written
  backward pass whose reverse loop computes only the gate derivatives and `dz_t @ w_h.T`;
  the weight and input gradients are whole-sequence matmuls after it (cuDNN's scheme).

Measured on XLA:CPU, 2 cores, a loaded machine (`python benchmarks/rnn_lowering.py`: one
SGD step on `mean(rnn(x)**2)` over every output, gradient w.r.t. all params; process CPU
ms per step inside `lax.scan` over 10 steps, as `fit` runs them / in a plain jitted step;
best of 3), B x T x F x hidden:

| cell | size | per_step | precomputed | bptt |
|---|---|---|---|---|
| LSTM | 32x20x8x64 | 0.85 / 0.96 | 1.18 / 1.43 | 1.00 / 1.38 |
| LSTM | 64x50x32x128 | 17.7 / 15.3 | 20.7 / 33.0 | 14.1 / 16.4 |
| LSTM | 128x28x28x128 | 19.8 / 18.3 | 25.2 / 35.8 | 18.3 / 17.8 |
| LSTM | 256x20x128x256 | 75.2 / 107 | 113 / 177 | 80.7 / 124 |
| LSTM | 32x64x64x256 | 42.9 / 40.8 | 49.6 / 63.5 | 34.8 / 36.0 |
| GRU | 64x50x32x128 | 11.2 / 11.7 | 14.7 / 15.4 | - |
| GRU | 256x20x128x256 | 65.8 / 91.5 | 83.3 / 129 | - |

On CPU the precomputed projection is slower: the scan then reads and (in the gradient)
writes a `(T, B, G h)` buffer one `(B, G h)` slice per step, which XLA:CPU does far less
efficiently than the small matmul it saves. The hand-written backward pays off on longer
sequences (20-25% at T = 50 and 64) and not on short ones (T = 20). So `"auto"` on the
CPU backend is `"bptt"` for an LSTM over at least `BPTT_MIN_STEPS` = 32 steps and
`"per_step"` otherwise, and `"precomputed"` on other backends (not measured here; on GPUs
small matmuls are latency-bound, which the precomputed projection avoids).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp

from funcnn.nn.errors import LayerError
from funcnn.nn.layer import Layer, check_float_input, check_input_shape, described
from funcnn.nn.lstm_bptt import run_lstm
from funcnn.nn.recurrent_cells import (
    Carry,
    Cell,
    GRUCell,
    LSTMCell,
    check_cell_params,
    is_lstm_cell,
)
from funcnn.typing import Array, Params, PRNGKey, Shape, State

__all__ = ["GRU", "LSTM", "RNN", "Bidirectional", "resolve_lowering", "scan_cell"]

Lowering: TypeAlias = Literal["auto", "per_step", "precomputed", "bptt"]
LOWERINGS: tuple[str, ...] = ("auto", "per_step", "precomputed", "bptt")

MERGES: Mapping[str, Callable[[Array, Array], Array]] = MappingProxyType({
    "concat": lambda f, b: jnp.concatenate([f, b], axis=-1),
    "sum": lambda f, b: f + b,
    "mul": lambda f, b: f * b,
    "ave": lambda f, b: (f + b) / 2,
})
"""`Bidirectional`'s ways to merge the forward and backward outputs (as Keras's `merge_mode`)."""


# --- the numerical core ---------------------------------------------------------------


BPTT_MIN_STEPS = 32
"""From this many time steps on, `"auto"` runs an LSTM on CPU with `"bptt"`."""


def resolve_lowering(lowering: Lowering, cell: Cell | None = None, steps: int = 0,
                     ) -> Literal["per_step", "precomputed", "bptt"]:
    """`"auto"` on the CPU backend: `"bptt"` for an `LSTMCell` over at least
    `BPTT_MIN_STEPS` steps, else `"per_step"`; `"precomputed"` on any other backend."""
    if lowering == "auto":
        if jax.default_backend() != "cpu":
            return "precomputed"
        lstm = cell is not None and is_lstm_cell(cell)
        return "bptt" if lstm and steps >= BPTT_MIN_STEPS else "per_step"
    return lowering


@partial(jax.jit, static_argnames=("project", "step", "reverse", "unroll", "keep_sequence",
                                   "precompute"))
def _scan(project: Callable[[Params, Array], Array],
          step: Callable[[Params, Carry, Array], tuple[Carry, Array]], params: Params,
          xs: Array, carry: Carry, reverse: bool, unroll: int, keep_sequence: bool,
          precompute: bool) -> tuple[Carry, Array]:
    """`(final carry, outputs)`: outputs `(..., T, h)` aligned with the input's time steps
    (`keep_sequence`), else the last step's `(..., h)`. `precompute`: every step's input
    projection in one matmul before the scan, else `x_t @ w_x` inside each step. Keyed on
    the cell's functions, not the cell, so layers made alike share one compiled program
    per shape and dtype when called eagerly; inlined under an enclosing `jit`."""
    time_major = jnp.moveaxis(xs, -2, 0)  # (T, ..., F)

    def cell_step(c: Carry, x_t: Array) -> tuple[Carry, Array]:
        return step(params, c, x_t if precompute else project(params, x_t))

    inputs = project(params, time_major) if precompute else time_major
    if keep_sequence:
        carry, hs = jax.lax.scan(cell_step, carry, inputs, reverse=reverse, unroll=unroll)
        return carry, jnp.moveaxis(hs, 0, -2)

    def body(state: tuple[Carry, Array], x_t: Array) -> tuple[tuple[Carry, Array], None]:
        return cell_step(state[0], x_t), None

    last = jnp.zeros((*xs.shape[:-2], params["w_h"].shape[0]), xs.dtype)
    (carry, last), _ = jax.lax.scan(body, (carry, last), inputs, reverse=reverse,
                                    unroll=unroll)
    return carry, last


def _run(cell: Cell, params: Params, xs: Array, carry: Carry | None, reverse: bool,
         unroll: int, keep_sequence: bool, lowering: Lowering) -> tuple[Carry, Array]:
    """`_scan` in the dtype of params and input together (`jnp.result_type`), from `carry`
    or zeros, cast to that dtype too."""
    dt = jnp.result_type(xs, *params.values())
    params = {k: jnp.asarray(v).astype(dt) for k, v in params.items()}
    carry = cell.zero_carry(xs.shape[:-2], dt) if carry is None else jax.tree.map(
        lambda a: jnp.asarray(a).astype(dt), carry)
    chosen = resolve_lowering(lowering, cell, xs.shape[-2])
    if chosen == "bptt":
        return run_lstm(params, xs.astype(dt), carry, reverse, keep_sequence)
    result: tuple[Carry, Array] = _scan(
        cell.project, cell.step, params, xs.astype(dt), carry, reverse, unroll, keep_sequence,
        chosen == "precomputed")
    return result


# --- checks ---------------------------------------------------------------------------


def _checked_sequence(name: str, cell: Cell, params: Params, x: Array) -> Array:
    """`x` as a float array `(T, F)` or `(B, T, F)`, T >= 1, with the params' F."""
    try:
        n_in = check_cell_params(cell, params)
    except LayerError as err:
        raise LayerError(name, err.reason) from None
    x = jnp.asarray(x)
    check_float_input(name, x)
    if x.ndim not in (2, 3):
        raise LayerError(name, "expected a sequence (T, F) or a batch of sequences (B, T, F), "
                         f"got shape {x.shape}")
    if x.shape[-1] != n_in:
        raise LayerError(name, f"expected {n_in} features on the last axis, got shape {x.shape}")
    if x.shape[-2] == 0:
        raise LayerError(name, f"expected at least one time step, got shape {x.shape}")
    return x


def _checked_carry(name: str, cell: Cell, carry: Carry, batch_shape: Shape) -> None:
    expected = jax.eval_shape(lambda: cell.zero_carry(batch_shape, jnp.float32))
    want = jax.tree.map(jnp.shape, expected)
    try:
        same = bool(jax.tree.map(jnp.shape, carry) == want)
    except (TypeError, ValueError):
        same = False
    if not same:
        raise LayerError(name, f"expected an initial carry of shapes {want}, got "
                         f"{jax.tree.map(jnp.shape, carry)}")


def _check_flag(name: str, label: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: {label} must be True or False, got {value!r}")
    return value


def _check_unroll(name: str, unroll: int) -> int:
    if not isinstance(unroll, int) or isinstance(unroll, bool) or unroll <= 0:
        raise ValueError(f"{name}: unroll must be a positive int, got {unroll!r}")
    return unroll


def _check_lowering(name: str, lowering: Lowering, cell: Cell) -> Lowering:
    if lowering not in LOWERINGS:
        raise ValueError(f"{name}: lowering must be one of {LOWERINGS}, got {lowering!r}")
    if lowering == "bptt" and not is_lstm_cell(cell):
        raise ValueError(f"{name}: lowering 'bptt' (the hand-written backward pass) is for "
                         f"LSTMCell; this cell is a {cell.name}")
    return lowering


def scan_cell(cell: Cell, params: Params, xs: Array, carry: Carry | None = None, *,
              reverse: bool = False, unroll: int = 1,
              lowering: Lowering = "auto") -> tuple[Carry, Array]:
    """Run `cell` over the time axis of `xs (T, F)` or `(B, T, F)` from `carry` (zeros when
    None): `carry_t, h_t = cell(params, carry_{t-1}, x_t)`. Returns the final carry (LSTM
    `(h, c)`, GRU `h`) and all outputs `(..., T, hidden)`. `reverse=True` reads the steps
    from T-1 down to 0 and keeps each output at its input's position (PyTorch's backward
    direction): the final carry is then the one after step 0. `unroll` and `lowering` as
    for `RNN`."""
    if not isinstance(cell, Cell):
        raise TypeError(f"scan_cell: expected a Cell (LSTMCell, GRUCell), got "
                        f"{type(cell).__name__}")
    x = _checked_sequence(cell.name, cell, params, xs)
    if carry is not None:
        _checked_carry(cell.name, cell, carry, x.shape[:-2])
    name = cell.name
    return _run(cell, params, x, carry, _check_flag(name, "reverse", reverse),
                _check_unroll(name, unroll), True, _check_lowering(name, lowering, cell))


# --- RNN, LSTM, GRU -------------------------------------------------------------------


class _Spec(NamedTuple):
    """What `Bidirectional` needs to know of an RNN layer to build its backward twin."""

    name: str
    cell: Cell
    return_sequences: bool
    reverse: bool
    unroll: int
    lowering: Lowering


# An RNN layer's settings, keyed by its `apply` (a `Layer` is a tuple and cannot be a weak
# key; its `apply` can, and survives `named`, which replaces only the layer's key).
_SPECS: weakref.WeakKeyDictionary[Callable[..., Any], _Spec] = weakref.WeakKeyDictionary()


def _rnn(spec: _Spec) -> Layer:
    name, cell = spec.name, spec.cell

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        shape = check_input_shape(name, input_shape)
        if len(shape) != 2:
            hint = ("; a univariate series (T,) needs a feature axis: (T, 1)"
                    if len(shape) == 1 else "")
            raise LayerError(name, "expected examples of shape (T, F) (time steps, features), "
                             f"got {shape}{hint}")
        return cell.init(key, shape[-1]), {}

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        del key, train
        x = _checked_sequence(name, cell, params, x)
        _, y = _run(cell, params, x, None, spec.reverse, spec.unroll, spec.return_sequences,
                    spec.lowering)
        return y, state

    config = {"cell": cell.name, **cell.config, "return_sequences": spec.return_sequences,
              "reverse": spec.reverse, "unroll": spec.unroll, "lowering": spec.lowering}
    _SPECS[apply] = spec
    return described(Layer(init, apply, cell.penalty, name, MappingProxyType(config)),
                     parts=(cell.structure,))


def RNN(cell: Cell, *, return_sequences: bool = True, reverse: bool = False,
        unroll: int = 1, lowering: Lowering = "auto", name: str = "RNN") -> Layer:
    """A `Layer` running `cell` over `(B, T, F)` (or one `(T, F)`) from a zero carry:
    outputs `(B, T, hidden)` (`return_sequences`) or the last one `(B, hidden)`.

    Params are the cell's (`{"w_x", "w_h", "b"}` for an LSTM); no state. `reverse=True`
    reads the sequence from its end and keeps each output at its input's time position
    (output `t` has seen `x[t:]`); its last output is then the state after `x[0]`.
    `lowering` (see the module docstring): `"precomputed"` makes the input projection of all
    steps one matmul `(T B, F) @ (F, G h)` before the `lax.scan` and each step `h @ w_h`
    only; `"per_step"` does `x_t @ w_x` and `h @ w_h` in each step; `"auto"` is per-step
    on CPU, precomputed elsewhere. Either way every matmul covers all G gates at once.
    `unroll` unrolls the scan that many steps. `name` is the kind in errors and param keys.
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"{name}: expected a Cell such as LSTMCell(8) or GRUCell(8), got "
                        f"{type(cell).__name__}")
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"RNN: name must be a non-empty string without '/', got {name!r}")
    return _rnn(_Spec(name, cell, _check_flag(name, "return_sequences", return_sequences),
                      _check_flag(name, "reverse", reverse), _check_unroll(name, unroll),
                      _check_lowering(name, lowering, cell)))


def LSTM(features: int, *, return_sequences: bool = True, reverse: bool = False,
         unroll: int = 1, lowering: Lowering = "auto",
         **cell_kwargs: Any) -> Layer:
    """`RNN(LSTMCell(features, **cell_kwargs), ...)` named `"LSTM"`: `(B, T, F) -> (B,
    T, h)` or `(B, h)` with `h = features`;
    params `{"w_x": (F, 4h), "w_h": (h, 4h), "b": (4h,)}`."""
    return RNN(LSTMCell(features, **cell_kwargs), return_sequences=return_sequences,
               reverse=reverse, unroll=unroll, lowering=lowering, name="LSTM")


def GRU(features: int, *, return_sequences: bool = True, reverse: bool = False,
        unroll: int = 1, lowering: Lowering = "auto",
        **cell_kwargs: Any) -> Layer:
    """`RNN(GRUCell(features, **cell_kwargs), ...)` named `"GRU"`: `(B, T, F) -> (B,
    T, h)` or `(B, h)` with `h = features`;
    params `{"w_x", "w_h": (., 3h), "b_x", "b_h": (3h,)}`."""
    return RNN(GRUCell(features, **cell_kwargs), return_sequences=return_sequences,
               reverse=reverse, unroll=unroll, lowering=lowering, name="GRU")


# --- Bidirectional --------------------------------------------------------------------


def _spec_of(label: str, layer: Layer) -> _Spec:
    spec = _SPECS.get(layer.apply) if isinstance(layer, Layer) else None
    if spec is None:
        kind = layer.name if isinstance(layer, Layer) else type(layer).__name__
        raise TypeError(f"Bidirectional: {label} must be an RNN layer (RNN, LSTM, GRU), got "
                        f"{kind}")
    return spec


def Bidirectional(forward_rnn: Layer, backward_rnn: Layer | None = None, *,
                  merge: str = "concat") -> Layer:
    """Run `forward_rnn` over the sequence and `backward_rnn` (default: a twin of the
    forward one, with its own params) over it reversed, then merge: `concat` (on the last
    axis, forward first, as PyTorch's `bidirectional=True`), `sum`, `mul` or `ave`.

    The backward outputs are re-aligned to the forward time order: output `t` is
    `[h_fwd(x[:t+1]), h_bwd(x[t:])]`. With `return_sequences=False` (both must agree) it
    is the forward state after `x[T-1]` and the backward one after `x[0]` (PyTorch's
    `h_n`). Params `{"forward": ..., "backward": ...}`, each the RNN's own; no state.
    `backward_rnn` is always run reversed, whatever its `reverse` flag.
    """
    name = "Bidirectional"
    fspec = _spec_of("forward_rnn", forward_rnn)
    if fspec.reverse:
        raise ValueError(f"{name}: forward_rnn has reverse=True; pass it with reverse=False "
                         "(the backward direction is run reversed by Bidirectional)")
    bspec = fspec if backward_rnn is None else _spec_of("backward_rnn", backward_rnn)
    if bspec.return_sequences != fspec.return_sequences:
        raise ValueError(f"{name}: forward_rnn has return_sequences={fspec.return_sequences} "
                         f"but backward_rnn has {bspec.return_sequences}; make them agree")
    if not isinstance(merge, str) or merge not in MERGES:
        raise ValueError(f"{name}: merge must be one of {sorted(MERGES)}, got {merge!r}")
    merge_fn = MERGES[merge]
    backward = (backward_rnn if backward_rnn is not None and bspec.reverse
                else _rnn(bspec._replace(reverse=True)))
    children = (("forward", forward_rnn), ("backward", backward))

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        shape = check_input_shape(name, input_shape)
        params: Params = {}
        for i, (direction, layer) in enumerate(children):
            try:
                params[direction], _ = layer.init(jax.random.fold_in(key, i), shape)
            except LayerError as err:
                raise err.within(f"{name}[{direction}]") from None
        return params, {}

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        del key, train
        if not isinstance(params, Mapping) or set(params) != {"forward", "backward"}:
            found = sorted(params) if isinstance(params, Mapping) else type(params).__name__
            raise LayerError(name, f"expected params with keys ['backward', 'forward'], got "
                             f"{found}")
        outputs = []
        for direction, layer in children:
            try:
                outputs.append(layer.apply(params[direction], {}, x)[0])
            except LayerError as err:
                raise err.within(f"{name}[{direction}]") from None
        return merge_fn(*outputs), state

    def penalty(params: Params) -> Array:
        return forward_rnn.penalty(params["forward"]) + backward.penalty(params["backward"])

    def child_inputs(input_shape: Shape) -> tuple[tuple[str, Layer, Shape], ...]:
        return tuple((direction, layer, tuple(input_shape)) for direction, layer in children)

    config = {"merge": merge}  # the two directions are its children
    return described(Layer(init, apply, penalty, name, MappingProxyType(config),
                           (forward_rnn, backward), child_inputs=child_inputs))
