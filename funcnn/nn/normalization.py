"""Normalization layers: `BatchNorm` (running statistics kept in the layer state),
`LayerNorm`, `GroupNorm` and `RMSNorm` (per-example statistics, no state).

Every layer works on float32, float64 and bfloat16 (or float16) inputs and params: means
and variances are computed in at least float32 (float64 for float64 inputs), and the
output has the input's dtype. Variances are biased (divide by n), two-pass:
`var = mean((x - mean)^2)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp

from funcnn.nn.errors import LayerError
from funcnn.nn.layer import (
    Layer,
    check_float_input,
    check_input_shape,
    check_param_dtype,
    described,
    no_penalty,
)
from funcnn.typing import Array, DTypeLike, Params, PRNGKey, Shape, State

__all__ = ["BatchNorm", "GroupNorm", "LayerNorm", "RMSNorm"]


# --- argument checks ------------------------------------------------------------------


def _check_eps(name: str, eps: float) -> float:
    if not (isinstance(eps, int | float) and not isinstance(eps, bool)
            and math.isfinite(eps) and eps > 0):
        raise ValueError(f"{name}: eps must be a finite number > 0, got {eps!r}")
    return float(eps)


def _check_flag(name: str, label: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: {label} must be True or False, got {value!r}")
    return value




def _check_positive_int(name: str, label: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name}: {label} must be a positive int, got {value!r}")
    return value


def _check_params(name: str, params: Params, expected: set[str]) -> None:
    if not isinstance(params, Mapping) or set(params) != expected:
        found = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        raise LayerError(name, f"expected params with keys {sorted(expected)}, got {found}")


def _affine_keys(use_scale: bool, use_bias: bool) -> set[str]:
    return {k for k, used in (("scale", use_scale), ("bias", use_bias)) if used}


# --- shared math ----------------------------------------------------------------------


def _stat_dtype(dtype: DTypeLike) -> jnp.dtype[Any]:
    """The dtype statistics are computed in: float32 for bfloat16/float16/float32 inputs,
    float64 for float64 inputs (`promote_types(dtype, float32)`)."""
    return jnp.promote_types(dtype, jnp.float32)


def _lift(v: Array, ndim: int, axis: int) -> Array:
    """A vector `(C,)` reshaped to broadcast along negative `axis` of a rank-`ndim` array."""
    shape = [1] * ndim
    shape[ndim + axis] = v.shape[0]
    return v.reshape(shape)


def _moments(x: Array, axes: tuple[int, ...]) -> tuple[Array, Array]:
    """Mean and biased variance of `x` over `axes` (kept as size 1), in `_stat_dtype`:
    `mean = sum(x) / n`, `var = sum((x - mean)^2) / n`."""
    xs = x.astype(_stat_dtype(x.dtype))
    mean = jnp.mean(xs, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(xs - mean), axis=axes, keepdims=True)
    return mean, var


def _scale_shift(xhat: Array, params: Params, axis: int) -> Array:
    """`xhat * scale + bias` with `(C,)` params along `axis`, each only when present."""
    if "scale" in params:
        xhat = xhat * _lift(params["scale"], xhat.ndim, axis).astype(xhat.dtype)
    if "bias" in params:
        xhat = xhat + _lift(params["bias"], xhat.ndim, axis).astype(xhat.dtype)
    return xhat


def _standardize(x: Array, mean: Array, var: Array, eps: float) -> Array:
    """`(x - mean) / sqrt(var + eps)` in the statistics' dtype."""
    return (x.astype(mean.dtype) - mean) * jax.lax.rsqrt(var + eps)


# The numerical cores are compiled functions: one program per shape and dtype when a layer
# is called eagerly (or differentiated eagerly), instead of one per operation; under an
# enclosing `jit` they are inlined.


@partial(jax.jit, static_argnames=("axis", "eps"))
def _batch_norm_inference(params: Params, state: State, x: Array, axis: int,
                          eps: float) -> Array:
    dt = _stat_dtype(x.dtype)
    mean = _lift(state["mean"], x.ndim, axis).astype(dt)
    var = _lift(state["var"], x.ndim, axis).astype(dt)
    return _scale_shift(_standardize(x, mean, var, eps), params, axis).astype(x.dtype)


@partial(jax.jit, static_argnames=("axis", "eps", "momentum"))
def _batch_norm_training(params: Params, state: State, x: Array, axis: int, eps: float,
                         momentum: float) -> tuple[Array, State]:
    axes = tuple(i for i in range(x.ndim) if i != x.ndim + axis)
    mean, var = _moments(x, axes)
    y = _scale_shift(_standardize(x, mean, var, eps), params, axis).astype(x.dtype)
    return y, _running(state, mean.reshape(-1), var.reshape(-1), momentum)


@partial(jax.jit, static_argnames=("groups", "ndim", "eps"))
def _group_norm(params: Params, x: Array, groups: int, ndim: int, eps: float) -> Array:
    """Each group of `C // groups` channels of each `ndim`-axes example standardized over
    its positions and channels (`groups=1, ndim=1`: a layer norm over the last axis)."""
    grouped = x.reshape((*x.shape[:-1], groups, x.shape[-1] // groups))
    spatial = tuple(range(grouped.ndim - ndim - 1, grouped.ndim - 2))
    mean, var = _moments(grouped, (*spatial, grouped.ndim - 1))
    xhat = _standardize(grouped, mean, var, eps).reshape(x.shape)
    return _scale_shift(xhat, params, -1).astype(x.dtype)


@partial(jax.jit, static_argnames=("eps",))
def _rms_norm(params: Params, x: Array, eps: float) -> Array:
    xs = x.astype(_stat_dtype(x.dtype))
    mean_square = jnp.mean(jnp.square(xs), axis=-1, keepdims=True)
    return _scale_shift(xs * jax.lax.rsqrt(mean_square + eps), params, -1).astype(x.dtype)


def _affine_params(size: int, use_scale: bool, use_bias: bool, dtype: DTypeLike) -> Params:
    params: Params = {}
    if use_scale:
        params["scale"] = jnp.ones((size,), dtype)
    if use_bias:
        params["bias"] = jnp.zeros((size,), dtype)
    return params


def _size(params: Params, x: Array) -> int:
    """C from the params, or from `x` itself when the layer has no params."""
    for leaf in ("scale", "bias"):
        if leaf in params:
            return int(params[leaf].shape[0])
    return int(jnp.shape(x)[-1]) if jnp.ndim(x) else 0


def _checked_input(name: str, x: Array, axis: int, params: Params,
                   size: int | None = None) -> Array:
    """`x` as an array, floating, with `size` entries along negative `axis`, as has every
    leaf of `params` (`(size,)` each); `size` defaults to that of the params (or of `x`
    for a layer without params)."""
    size = _size(params, x) if size is None else size
    for leaf, value in sorted(params.items()):
        if jnp.shape(value) != (size,):
            raise LayerError(name, f"params[{leaf!r}] must have shape ({size},), got "
                             f"{jnp.shape(value)}")
    x = jnp.asarray(x)
    check_float_input(name, x)
    if x.ndim < -axis:
        raise LayerError(name, f"expected an input with at least {-axis} axes (features on "
                         f"axis {axis}), got shape {x.shape}")
    if x.shape[axis] != size:
        raise LayerError(name, f"expected {size} features on axis {axis}, got shape {x.shape}")
    return x


def _feature_size(name: str, input_shape: Shape, axis: int) -> tuple[Shape, int]:
    """The checked per-example shape and its size along negative `axis`."""
    shape = check_input_shape(name, input_shape)
    if len(shape) < -axis:
        raise LayerError(name, f"axis={axis} needs examples with at least {-axis} axes, got "
                         f"shape {shape}")
    return shape, shape[axis]


# --- BatchNorm ------------------------------------------------------------------------


def BatchNorm(momentum: float = 0.99, eps: float = 1e-5, *, axis: int = -1,
              use_scale: bool = True, use_bias: bool = True,
              dtype: DTypeLike = jnp.float32) -> Layer:
    """Batch normalization: `y = (x - mean) / sqrt(var + eps) * scale + bias` per feature.

    Features lie on `axis` (negative, counted from the end, so one example and a batch
    agree; `axis=-3` for channels-first `(C, H, W)` examples); statistics are taken over
    every other axis, the batch included. Params `{"scale": (C,), "bias": (C,)}` (ones,
    zeros; of `dtype`), state `{"mean": (C,), "var": (C,)}` (zeros, ones; float32, or
    float64 when `dtype` is float64, whatever the input dtype).

    `train=True` normalizes with the batch's mean and biased variance (divide by n) and
    returns the state `new = momentum * old + (1 - momentum) * batch` (the running
    variance is the biased one too, as in Flax and Keras; PyTorch's `running_var` keeps
    the unbiased `n / (n - 1)` variance). `momentum` weighs the old value, as in Flax and
    Keras: PyTorch's `momentum` weighs the new one, so torch's 0.1 is our 0.9.
    `train=False` normalizes with the running statistics and returns the state unchanged.

    Training needs at least 2 values per feature: an input with nothing but the feature
    axis (one example `(C,)`, or a batch of one) is a `LayerError`. The layer cannot tell
    one `(H, W, C)` example from a batch of `(W, C)` examples; it normalizes over all
    axes but `axis` of whatever it is given. Under data parallelism (a batch sharded over
    devices with `jax.sharding`) the means are over the global batch, with no code of its
    own; under `vmap` (an ensemble of members) each member has its own statistics, and
    `vmap` over single examples cannot train (each one alone has no batch statistics).
    `fit` runs the last batch of an epoch that is not full as its own smaller step for a
    network with state, so its statistics are those of its real samples (a batch of
    one sample per feature is an error, as above).
    """
    name = "BatchNorm"
    if not (isinstance(momentum, int | float) and not isinstance(momentum, bool)
            and 0.0 <= momentum <= 1.0):
        raise ValueError(f"{name}: momentum must be a number in [0, 1] (the weight of the "
                         f"running value; torch's momentum=0.1 is 0.9 here), got {momentum!r}")
    if not isinstance(axis, int) or isinstance(axis, bool) or axis >= 0:
        raise ValueError(f"{name}: axis must be a negative int (counted from the last axis, "
                         f"e.g. -1 for channels-last, -3 for (C, H, W) examples), got {axis!r}")
    eps = _check_eps(name, eps)
    use_scale = _check_flag(name, "use_scale", use_scale)
    use_bias = _check_flag(name, "use_bias", use_bias)
    param_dtype = check_param_dtype(name, dtype)
    state_dtype = jnp.float64 if param_dtype == jnp.float64 else jnp.float32
    keys = _affine_keys(use_scale, use_bias)
    mom = float(momentum)

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        del key
        _, size = _feature_size(name, input_shape, axis)
        state = {"mean": jnp.zeros((size,), state_dtype), "var": jnp.ones((size,), state_dtype)}
        return _affine_params(size, use_scale, use_bias, param_dtype), state

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        del key
        _check_params(name, params, keys)
        if not isinstance(state, Mapping) or set(state) != {"mean", "var"}:
            found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise LayerError(name, f"expected state with keys ['mean', 'var'], got {found}")
        x = _checked_input(name, x, axis, params, state["mean"].shape[0])
        if not train:
            return _batch_norm_inference(params, state, x, axis, eps), state
        count = x.size // x.shape[axis]
        if count < 2:
            raise LayerError(name, f"train=True needs a batch: got shape {x.shape}, {count} "
                             "value per feature; batch statistics need at least 2 (pass "
                             "examples with a leading batch axis of size >= 2)")
        y, new_state = _batch_norm_training(params, state, x, axis, eps, mom)
        return y, new_state

    config = {"momentum": mom, "eps": eps, "axis": axis, "use_scale": use_scale,
              "use_bias": use_bias, "dtype": param_dtype.name}
    return described(Layer(init, apply, no_penalty, name, MappingProxyType(config)))


def _running(state: State, mean: Array, var: Array, momentum: float) -> State:
    """`momentum * old + (1 - momentum) * batch` for mean and var, in the state's dtypes
    (no gradient flows into the state)."""
    mean, var = jax.lax.stop_gradient(mean), jax.lax.stop_gradient(var)

    def update(old: Array, batch: Array) -> Array:
        return (momentum * old + (1.0 - momentum) * batch.astype(old.dtype)).astype(old.dtype)

    return {"mean": update(state["mean"], mean), "var": update(state["var"], var)}


# --- per-example normalizations ---------------------------------------------------------


def _stateless(name: str, size_of: Callable[[Shape], int], keys: set[str],
               normalize: Callable[[Params, Array], Array],
               make_params: Callable[[int], Params], config: Mapping[str, Any]) -> Layer:
    """A normalization without state: `size_of(shape)` checks an example shape and gives
    C, `make_params(C)` the params, `normalize(params, x)` the output."""

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        del key
        return make_params(size_of(check_input_shape(name, input_shape))), {}

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        del key, train
        _check_params(name, params, keys)
        return normalize(params, x), state

    return described(Layer(init, apply, no_penalty, name, MappingProxyType(dict(config))))


def LayerNorm(eps: float = 1e-5, *, use_scale: bool = True, use_bias: bool = True,
              dtype: DTypeLike = jnp.float32) -> Layer:
    """Layer normalization over the last axis of each example `(..., C)`:
    `y = (x - mean) / sqrt(var + eps) * scale + bias`, mean and biased variance over C.
    Params `{"scale": (C,), "bias": (C,)}` (ones, zeros; of `dtype`); no state."""
    name = "LayerNorm"
    eps = _check_eps(name, eps)
    use_scale = _check_flag(name, "use_scale", use_scale)
    use_bias = _check_flag(name, "use_bias", use_bias)
    param_dtype = check_param_dtype(name, dtype)

    def normalize(params: Params, x: Array) -> Array:
        y: Array = _group_norm(params, _checked_input(name, x, -1, params), 1, 1, eps)
        return y

    return _stateless(name, lambda shape: shape[-1], _affine_keys(use_scale, use_bias),
                      normalize, lambda c: _affine_params(c, use_scale, use_bias, param_dtype),
                      {"eps": eps, "use_scale": use_scale, "use_bias": use_bias,
                       "dtype": param_dtype.name})


def GroupNorm(groups: int, eps: float = 1e-5, *, ndim: int = 3, use_scale: bool = True,
              use_bias: bool = True, dtype: DTypeLike = jnp.float32) -> Layer:
    """Group normalization of channels-last examples `(..., C)` of `ndim` axes (3 for
    `(H, W, C)` images, 1 for feature vectors `(C,)`); inputs `(B, ..., C)` or one example.

    The C channels split into `groups` groups of `C // groups` consecutive channels; each
    example's group is normalized over its spatial positions and channels:
    `y = (x - mean_g) / sqrt(var_g + eps) * scale + bias` (biased variance). `groups=1` is
    a layer norm over the whole example, `groups=C` an instance norm. Params
    `{"scale": (C,), "bias": (C,)}`; no state. C must be divisible by `groups`.
    """
    name = "GroupNorm"
    groups = _check_positive_int(name, "groups", groups)
    ndim = _check_positive_int(name, "ndim", ndim)
    eps = _check_eps(name, eps)
    use_scale = _check_flag(name, "use_scale", use_scale)
    use_bias = _check_flag(name, "use_bias", use_bias)
    param_dtype = check_param_dtype(name, dtype)

    def check_divisible(channels: int) -> None:
        if channels % groups:
            raise LayerError(name, f"{channels} channels are not divisible by groups={groups}")

    def size_of(shape: Shape) -> int:
        if len(shape) != ndim:
            raise LayerError(name, f"GroupNorm(ndim={ndim}) expects examples with {ndim} axes "
                             f"(channels last), got shape {shape}; use ndim={len(shape)}")
        check_divisible(shape[-1])
        return shape[-1]

    def normalize(params: Params, x: Array) -> Array:
        x = _checked_input(name, x, -1, params)
        if x.ndim < ndim:
            raise LayerError(name, f"expected examples of {ndim} axes (ndim={ndim}), got "
                             f"shape {x.shape}")
        check_divisible(x.shape[-1])
        y: Array = _group_norm(params, x, groups, ndim, eps)
        return y

    return _stateless(name, size_of, _affine_keys(use_scale, use_bias), normalize,
                      lambda c: _affine_params(c, use_scale, use_bias, param_dtype),
                      {"groups": groups, "eps": eps, "ndim": ndim, "use_scale": use_scale,
                       "use_bias": use_bias, "dtype": param_dtype.name})


def RMSNorm(eps: float = 1e-6, *, use_scale: bool = True,
            dtype: DTypeLike = jnp.float32) -> Layer:
    """Root-mean-square normalization over the last axis `(..., C)`:
    `y = x / sqrt(mean(x^2) + eps) * scale` (no centering, no bias). Params
    `{"scale": (C,)}` (ones, of `dtype`; `{}` without `use_scale`); no state."""
    name = "RMSNorm"
    eps = _check_eps(name, eps)
    use_scale = _check_flag(name, "use_scale", use_scale)
    param_dtype = check_param_dtype(name, dtype)

    def normalize(params: Params, x: Array) -> Array:
        y: Array = _rms_norm(params, _checked_input(name, x, -1, params), eps)
        return y

    return _stateless(name, lambda shape: shape[-1], _affine_keys(use_scale, False), normalize,
                      lambda c: _affine_params(c, use_scale, False, param_dtype),
                      {"eps": eps, "use_scale": use_scale, "dtype": param_dtype.name})
