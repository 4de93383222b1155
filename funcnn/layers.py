"""Layers: `Layer(init, apply, penalty)` triples of pure functions (book chapters 2-4, 14, 15).

`init(key, input_shape) -> (params, state)` with `input_shape` excluding the batch axis;
`apply(params, state, x, *, key=None, train=False) -> (y, state)` on one example or a batch;
`penalty(params) -> scalar`, the book's L1/L2 regularization (0 for most layers).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn import activations
from funcnn.errors import LayerError, LayerTypeError
from funcnn.initializers import book_normal, zeros
from funcnn.typing import (
    ApplyFn,
    Array,
    DTypeLike,
    InitFn,
    Initializer,
    Params,
    PenaltyFn,
    PRNGKey,
    Shape,
    State,
)

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def no_penalty(params: Params) -> Array:
    """The penalty of a layer without regularization: 0."""
    del params
    return jnp.zeros((), jnp.float32)


class Layer(NamedTuple):
    """A layer as pure functions plus the description a summary or checkpoint needs.

    `name` is the layer kind (`"Dense"`), used in error paths and param keys; `config`
    holds its JSON-friendly settings; `children` the sub-layers of a combinator; `key`
    overrides the param key a combinator gives this layer (see `funcnn.named`).
    """

    init: InitFn
    apply: ApplyFn
    penalty: PenaltyFn = no_penalty
    name: str = "Layer"
    config: Mapping[str, Any] = _EMPTY
    children: tuple[Layer, ...] = ()
    key: str | None = None

    # Identity semantics: two layers are the same only if they are the same object (their
    # closures differ anyway). This makes a Layer hashable, so it can be a static argument
    # of `jax.jit` and compiled programs are reused for the same network.
    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other


def check_input_shape(name: str, input_shape: Shape, min_rank: int = 1) -> Shape:
    """Validate `input_shape` (a tuple of positive ints, batch axis excluded)."""
    if not isinstance(input_shape, tuple | list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in input_shape
    ):
        raise LayerError(name, f"input_shape must be a tuple of ints, got {input_shape!r}")
    shape = tuple(input_shape)
    if len(shape) < min_rank:
        raise LayerError(name, f"expected an input shape of rank >= {min_rank}, got {shape}")
    if any(d <= 0 for d in shape):
        raise LayerError(name, f"input_shape must be positive, got {shape}")
    return shape


def check_float_input(name: str, x: Array) -> None:
    """Raise `LayerTypeError` unless `x` is a floating-point array."""
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise LayerTypeError(
            name,
            f"expected floating-point input, got {jnp.result_type(x)}; "
            "convert it first, e.g. x.astype(jnp.float32)",
        )


def _check_coefficient(name: str, label: str, value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: {label} must be a finite number >= 0, got {value!r}")
    return float(value)


def _lift_to_rank(v: Array, ndim: int) -> Array:
    """Reshape a vector `(n,)` to `(1, ..., 1, n)` of rank `ndim`, no implicit promotion."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def Dense(
    n_out: int,
    *,
    w_init: Initializer | None = None,
    b_init: Initializer = zeros,
    w_l1: float = 0.0,
    w_l2: float = 0.0,
    b_l1: float = 0.0,
    b_l2: float = 0.0,
    use_bias: bool = True,
    dtype: DTypeLike = jnp.float32,
) -> Layer:
    """Fully connected layer `y = x @ w + b`, `w: (n_in, n_out)`, `b: (n_out,)`.

    Works on `x: (..., n_in)`. Defaults are the book's: `w = 0.01 * N(0, 1)`, `b = 0`.
    Penalty: `w_l1*sum|w| + w_l2*sum w^2 + b_l1*sum|b| + b_l2*sum b^2`.
    """
    if not isinstance(n_out, int) or isinstance(n_out, bool) or n_out <= 0:
        raise ValueError(f"Dense: n_out must be a positive int, got {n_out!r}")
    coefs = {
        label: _check_coefficient("Dense", label, value)
        for label, value in (("w_l1", w_l1), ("w_l2", w_l2), ("b_l1", b_l1), ("b_l2", b_l2))
    }
    if not use_bias and (coefs["b_l1"] or coefs["b_l2"]):
        raise ValueError("Dense: b_l1/b_l2 given but use_bias=False")
    weight_init = book_normal(0.01) if w_init is None else w_init

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        shape = check_input_shape("Dense", input_shape)
        w_key, b_key = jax.random.split(key)
        params = {"w": weight_init(w_key, (shape[-1], n_out), dtype)}
        if use_bias:
            params["b"] = b_init(b_key, (n_out,), dtype)
        return params, {}

    def apply(
        params: Params,
        state: State,
        x: Array,
        *,
        key: PRNGKey | None = None,
        train: bool = False,
    ) -> tuple[Array, State]:
        del key, train
        expected = {"w", "b"} if use_bias else {"w"}
        if not isinstance(params, Mapping) or set(params) != expected:
            found = sorted(params) if isinstance(params, Mapping) else type(params).__name__
            raise LayerError("Dense", f"expected params with keys {sorted(expected)}, got {found}")
        x = jnp.asarray(x)
        check_float_input("Dense", x)
        w = params["w"]
        if x.ndim < 1 or x.shape[-1] != w.shape[0]:
            got = x.shape[-1] if x.ndim else "a scalar"
            raise LayerError("Dense", f"expected last dimension {w.shape[0]}, got {got}")
        y = jnp.dot(x, w)
        if use_bias:
            y = y + _lift_to_rank(params["b"], y.ndim)
        return y, state

    def penalty(params: Params) -> Array:
        total = jnp.zeros((), jnp.float32)
        for label, leaf, power in (("w_l1", "w", 1), ("w_l2", "w", 2), ("b_l1", "b", 1),
                                   ("b_l2", "b", 2)):
            if coefs[label]:
                values = params[leaf]
                total = total + coefs[label] * jnp.sum(
                    jnp.abs(values) if power == 1 else jnp.square(values)
                )
        return total

    config = {"n_out": n_out, "use_bias": use_bias, **coefs}
    return Layer(init, apply, penalty, "Dense", MappingProxyType(config))


def Dropout(rate: float) -> Layer:
    """Inverted dropout: in training, zero each unit with probability `rate` and scale the
    kept ones by `1 / (1 - rate)`; identity at inference (`train=False`)."""
    if not (isinstance(rate, int | float) and 0.0 <= rate < 1.0):
        raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
    keep = 1.0 - float(rate)

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        del key
        check_input_shape("Dropout", input_shape, min_rank=0)
        return {}, {}

    def apply(
        params: Params,
        state: State,
        x: Array,
        *,
        key: PRNGKey | None = None,
        train: bool = False,
    ) -> tuple[Array, State]:
        del params
        x = jnp.asarray(x)
        if not train or rate == 0.0:
            return x, state
        if key is None:
            raise LayerError(
                "Dropout", "train=True needs a PRNG key: call apply(..., key=key, train=True)"
            )
        check_float_input("Dropout", x)
        mask = jax.random.bernoulli(key, keep, x.shape)
        return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros_like(x)), state

    return Layer(init, apply, no_penalty, "Dropout", MappingProxyType({"rate": float(rate)}))


def _parameter_free(name: str, fn: Callable[[Array], Array], config: Mapping[str, Any],
                    check_shape: Callable[[Shape], None] | None = None) -> Layer:
    """A layer without params or state computing `y = fn(x)`; `check_shape` may reject
    an `input_shape` at init."""

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        del key
        shape = check_input_shape(name, input_shape, min_rank=0)
        if check_shape is not None:
            check_shape(shape)
        return {}, {}

    def apply(
        params: Params,
        state: State,
        x: Array,
        *,
        key: PRNGKey | None = None,
        train: bool = False,
    ) -> tuple[Array, State]:
        del params, key, train
        return fn(jnp.asarray(x)), state

    return Layer(init, apply, no_penalty, name, MappingProxyType(dict(config)))


def Flatten(ndim: int = 2) -> Layer:
    """Merge the trailing `ndim` axes into one: `(..., d1, ..., d_ndim) -> (..., d1*...*d_ndim)`.

    Example axes are the trailing ones, so the same layer flattens one image `(28, 28)`
    or a batch `(B, 28, 28)`; `init` checks that examples have exactly `ndim` axes.
    """
    if not isinstance(ndim, int) or isinstance(ndim, bool) or ndim < 1:
        raise ValueError(f"Flatten: ndim must be a positive int, got {ndim!r}")

    def check_shape(shape: Shape) -> None:
        if len(shape) != ndim:
            hint = f"; use Flatten(ndim={len(shape)})" if shape else ""
            raise LayerError(
                "Flatten",
                f"Flatten(ndim={ndim}) expects examples with {ndim} axes, got shape {shape}"
                f"{hint}",
            )

    def flatten(x: Array) -> Array:
        if x.ndim < ndim:
            raise LayerError("Flatten", f"expected at least {ndim} axes, got shape {x.shape}")
        return x.reshape((*x.shape[: x.ndim - ndim], -1))

    return _parameter_free("Flatten", flatten, {"ndim": ndim}, check_shape)


def Activation(fn: Callable[[Array], Array], name: str, **config: Any) -> Layer:
    """A parameter-free layer `y = fn(x)` of any shape."""
    return _parameter_free(name, fn, config)


def ReLU() -> Layer:
    """`max(x, 0)`."""
    return Activation(activations.relu, "ReLU")


def LeakyReLU(negative_slope: float = 0.01) -> Layer:
    """`x if x > 0 else negative_slope * x`."""
    return Activation(
        lambda x: activations.leaky_relu(x, negative_slope),
        "LeakyReLU",
        negative_slope=negative_slope,
    )


def Sigmoid() -> Layer:
    """`1 / (1 + exp(-x))`."""
    return Activation(activations.sigmoid, "Sigmoid")


def Tanh() -> Layer:
    """`tanh(x)`."""
    return Activation(activations.tanh, "Tanh")


def Linear() -> Layer:
    """Identity, the regression output of the book's chapter 17."""
    return Activation(activations.linear, "Linear")


def Step() -> Layer:
    """Heaviside step `x > 0` (chapter 4; its gradient is zero everywhere)."""
    return Activation(activations.step, "Step")


_LAST_AXIS_SOFTMAX: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
"""The `apply` functions of layers made by `Softmax()` over the last axis."""


def Softmax(axis: int = -1) -> Layer:
    """Stable softmax over `axis` (the last by default)."""
    layer = Activation(lambda x: activations.softmax(x, axis), "Softmax", axis=axis)
    if axis == -1:
        _LAST_AXIS_SOFTMAX.add(layer.apply)
    return layer


def is_last_axis_softmax(layer: Layer) -> bool:
    """True for a layer made by `Softmax()` (over the last axis); not for other layers that
    happen to be named "Softmax"."""
    return layer.apply in _LAST_AXIS_SOFTMAX


def LogSoftmax(axis: int = -1) -> Layer:
    """Stable log-softmax over `axis` (the last by default)."""
    return Activation(lambda x: activations.log_softmax(x, axis), "LogSoftmax", axis=axis)
