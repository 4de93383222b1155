"""Pooling layers: `MaxPool1D/2D`, `AvgPool1D/2D` over windows, and `GlobalMaxPool`,
`GlobalAvgPool` over all spatial axes. Channels-last, parameter-free.

Window pools work on `(B, *S, C)` or one example `(*S, C)` with `S` one (1D) or two (2D)
spatial axes; `y[b, o, c] = reduce_{j in window} x[b, o*s + j - lo, c]` over the real
(unpadded) elements. Padding is "VALID" (none), "SAME" (TF/JAX: output `ceil(n / s)`,
`lo = total // 2`, the extra element at the end) or explicit `(lo, hi)` per axis.
Max pooling pads with `-inf`; average pooling divides by the number of real elements in
each window (padding is not counted, TF's "SAME" and `count_include_pad=False`).

Lowering: `lax.reduce_window`, or the `prod(window)` shifted strided slices combined by
`maximum` / `+` ("slices"). On XLA:CPU the gradient of a max `reduce_window`
(select-and-scatter) is 6-10x slower than the slices' (benchmarks/conv_lowering.py;
gradient w.r.t. the input, 2x2 window, stride 2, ms per step, plain jit / in `lax.scan`):

| pool | reduce_window | slices |
|---|---|---|
| max 64x28x28x16 | 3.81 / 3.53 | 0.47 / 0.50 |
| avg 64x28x28x16 | 0.49 / 0.42 | 0.38 / 0.22 |
| max 64x14x14x32 | 1.81 / 1.60 | 0.29 / 0.15 |
| avg 64x14x14x32 | 0.24 / 0.17 | 0.17 / 0.10 |

A third lowering, "reshape", serves non-overlapping windows without padding (strides
equal to the window, "VALID"): crop the rows no window covers, reshape each window onto
its own axes and reduce them, `(B, H/kh, kh, W/kw, kw, C).max((2, 4))`; inside `fit`'s
scan it was the fastest of the three for W5's 2x2 pools (docs/performance.md). So
`"auto"` on CPU is "reshape" where it applies and "slices" elsewhere; `reduce_window` on
other backends. The lowerings differ only in how a max's gradient is split between tied
maxima (one element, shared equally, or halved at each `maximum`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Literal, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn.nn.conv_args import (
    PaddingArg,
    check_example_shape,
    check_input_rank,
    config_padding,
    int_tuple,
    padding_arg,
    resolve_pads,
    spatial_output,
)
from funcnn.nn.conv_lowering import Pads, output_size
from funcnn.nn.errors import LayerError
from funcnn.nn.layer import Layer, check_float_input, parameter_free, positive_int
from funcnn.typing import Array, Shape

PoolLowering: TypeAlias = Literal["auto", "reduce_window", "slices", "reshape"]


def _window_count(size: int, k: int, stride: int, pad: tuple[int, int]) -> np.ndarray:
    """Real (unpadded) elements of each output window along one axis."""
    starts = np.arange(output_size(size, k, stride, 1, pad)) * stride - pad[0]
    return np.minimum(starts + k, size) - np.maximum(starts, 0)


def _counts(spatial: Sequence[int], window: Sequence[int], strides: Sequence[int],
            pads: Pads) -> np.ndarray:
    """`(1, *S', 1)`: real elements per window, the outer product of the per-axis counts."""
    counts = functools.reduce(np.multiply.outer, [
        _window_count(n, k, s, p) for n, k, s, p in zip(spatial, window, strides, pads,
                                                        strict=True)])
    return np.asarray(counts).reshape((1, *np.shape(counts), 1))


def _pool_reduce_window(x: Array, kind: str, window: Sequence[int], strides: Sequence[int],
                        pads: Pads) -> Array:
    # a concrete NumPy init, so that JAX sees the max/add monoid and can differentiate it
    init = np.array(-np.inf if kind == "max" else 0.0, x.dtype)
    op = lax.max if kind == "max" else lax.add
    y: Array = lax.reduce_window(x, init, op, (1, *window, 1), (1, *strides, 1),
                                 ((0, 0), *pads, (0, 0)))
    return y


def _pool_slices(x: Array, kind: str, window: Sequence[int], strides: Sequence[int],
                 pads: Pads) -> Array:
    fill = jnp.asarray(-jnp.inf if kind == "max" else 0.0, x.dtype)
    x = lax.pad(x, fill, ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)))
    batch, *spatial, channels = x.shape
    out = [(n - k) // s + 1 for n, k, s in zip(spatial, window, strides, strict=True)]
    views = [lax.slice(x, (0, *start, 0),
                       (batch, *(b + (o - 1) * s + 1 for b, o, s in
                                 zip(start, out, strides, strict=True)), channels),
                       (1, *strides, 1))
             for start in itertools.product(*(range(k) for k in window))]
    op = jnp.maximum if kind == "max" else jnp.add
    return functools.reduce(op, views)


def _pool_reshape(x: Array, kind: str, window: Sequence[int], strides: Sequence[int],
                  pads: Pads) -> Array:
    """Non-overlapping windows without padding: each window's elements on their own axes."""
    del strides, pads  # equal to window, and zero (see `reshape_applies`)
    batch, *spatial, channels = x.shape
    out = [n // k for n, k in zip(spatial, window, strict=True)]
    x = x[(slice(None), *(slice(0, o * k) for o, k in zip(out, window, strict=True)))]
    split = [d for o, k in zip(out, window, strict=True) for d in (o, k)]
    windows = x.reshape(batch, *split, channels)
    axes = tuple(2 + 2 * i for i in range(len(window)))
    return jnp.max(windows, axis=axes) if kind == "max" else jnp.sum(windows, axis=axes)


def reshape_applies(window: Sequence[int], strides: Sequence[int], pads: Pads) -> bool:
    """Whether the "reshape" lowering computes this pool: strides equal to the window and
    no padding."""
    return tuple(strides) == tuple(window) and all(lo == hi == 0 for lo, hi in pads)


_BODIES = {"slices": _pool_slices, "reduce_window": _pool_reduce_window,
           "reshape": _pool_reshape}


def _pool(x: Array, kind: str, window: tuple[int, ...], strides: tuple[int, ...], pads: Pads,
          lowering: str) -> Array:
    body = _BODIES[lowering]
    y = body(x, kind, window, strides, pads)
    if kind == "max":
        return y
    counts = _counts(x.shape[1:-1], window, strides, pads)
    return y * jnp.asarray(1.0 / counts, x.dtype)


# one compiled program per configuration (an eager call would compile each slice alone)
_pool_jit = jax.jit(_pool, static_argnums=(1, 2, 3, 4, 5))


def pool(x: Array, kind: str, window: Sequence[int], strides: Sequence[int], pads: Pads,
         lowering: PoolLowering = "auto") -> Array:
    """Max or average pooling of a batched `x: (B, *S, C)` with explicit pads; the average
    divides by the real elements per window."""
    if lowering == "auto":
        if jax.default_backend() != "cpu":
            lowering = "reduce_window"
        else:
            lowering = "reshape" if reshape_applies(window, strides, pads) else "slices"
    elif lowering == "reshape" and not reshape_applies(window, strides, pads):
        raise ValueError(f"lowering 'reshape' needs strides equal to the window and no "
                         f"padding; got window {tuple(window)}, strides {tuple(strides)}, "
                         f"pads {tuple(map(tuple, pads))}")
    y: Array = _pool_jit(x, kind, tuple(window), tuple(strides),
                         tuple(map(tuple, pads)), lowering)
    return y


def _window_pool(name: str, kind: str, n: int, window: object, strides: object,
                 padding: object, lowering: PoolLowering) -> Layer:
    """A max/avg pool over `n` spatial axes of `(B, *S, C)` or one example `(*S, C)`."""
    size = int_tuple(name, "window", window, n)
    step = size if strides is None else int_tuple(name, "strides", strides, n)
    pad_mode = padding_arg(name, padding, n)
    if lowering not in ("auto", "reduce_window", "slices", "reshape"):
        raise ValueError(f"{name}: lowering must be 'auto', 'reduce_window', 'slices' or "
                         f"'reshape', got {lowering!r}")
    if lowering == "reshape" and (step != size or pad_mode != "VALID"):
        raise ValueError(f"{name}: lowering 'reshape' needs strides equal to the window and "
                         f"padding 'VALID'; got window {size}, strides {step}, padding "
                         f"{padding!r}")
    ones = (1,) * n

    def pads_for(spatial: Shape) -> Pads:
        pads = resolve_pads(pad_mode, spatial, size, step, ones)
        spatial_output(name, spatial, size, step, ones, pads)
        return pads

    def check_shape(shape: Shape) -> None:
        check_example_shape(name, shape, n)
        pads_for(shape[:-1])

    def fn(x: Array) -> Array:
        check_float_input(name, x)
        single = check_input_rank(name, x, n)
        batch = x[None] if single else x
        y = pool(batch, kind, size, step, pads_for(batch.shape[1:-1]), lowering)
        return y[0] if single else y

    config = {"window": list(size), "strides": list(step), "padding": config_padding(pad_mode),
              "lowering": lowering}
    return parameter_free(name, fn, config, check_shape, determined_by=())


def MaxPool1D(window: int | tuple[int] = 2, strides: int | tuple[int] | None = None,
              padding: PaddingArg = "VALID", *, lowering: PoolLowering = "auto") -> Layer:
    """Max over windows of `window` steps `strides` apart (default: `window`, no overlap):
    `(B, W, C) -> (B, W', C)`, `W' = floor((W + lo + hi - k) / s) + 1`."""
    return _window_pool("MaxPool1D", "max", 1, window, strides, padding, lowering)


def AvgPool1D(window: int | tuple[int] = 2, strides: int | tuple[int] | None = None,
              padding: PaddingArg = "VALID", *, lowering: PoolLowering = "auto") -> Layer:
    """Mean over windows of the real elements (padding not counted): `(B, W, C) ->
    (B, W', C)`; strides default to `window`."""
    return _window_pool("AvgPool1D", "avg", 1, window, strides, padding, lowering)


def MaxPool2D(window: int | tuple[int, int] = 2,
              strides: int | tuple[int, int] | None = None, padding: PaddingArg = "VALID",
              *, lowering: PoolLowering = "auto") -> Layer:
    """Max over `window` patches, `strides` apart (default: `window`): `(B, H, W, C) ->
    (B, H', W', C)`; padding "VALID" | "SAME" (pads with -inf) | `((lo, hi), (lo, hi))`."""
    return _window_pool("MaxPool2D", "max", 2, window, strides, padding, lowering)


def AvgPool2D(window: int | tuple[int, int] = 2,
              strides: int | tuple[int, int] | None = None, padding: PaddingArg = "VALID",
              *, lowering: PoolLowering = "auto") -> Layer:
    """Mean over `window` patches of the real elements (padding is not counted):
    `(B, H, W, C) -> (B, H', W', C)`; strides default to `window`."""
    return _window_pool("AvgPool2D", "avg", 2, window, strides, padding, lowering)


def _global_pool(name: str, kind: str, ndim: int) -> Layer:
    """Max/mean over the `ndim` spatial axes before channels: `(..., *S, C) -> (..., C)`."""
    positive_int(name, "ndim", ndim)

    def check_shape(shape: Shape) -> None:
        if len(shape) != ndim + 1:
            raise LayerError(name, f"{name}(ndim={ndim}) expects examples with {ndim} spatial "
                             f"axes and channels, got input_shape {shape}; use "
                             f"{name}(ndim={max(len(shape) - 1, 1)})")

    def fn(x: Array) -> Array:
        check_float_input(name, x)
        if x.ndim not in (ndim + 1, ndim + 2):
            raise LayerError(name, f"expected {ndim} spatial axes and channels, with or "
                             f"without a batch axis, got shape {x.shape}")
        axes = tuple(range(x.ndim - 1 - ndim, x.ndim - 1))
        return jnp.max(x, axis=axes) if kind == "max" else jnp.mean(x, axis=axes)

    return parameter_free(name, fn, {"ndim": ndim}, check_shape, determined_by=())


def GlobalMaxPool(ndim: int = 2) -> Layer:
    """Max over all `ndim` spatial axes: `(B, *S, C) -> (B, C)`, one example `(*S, C) ->
    (C,)`; `ndim` (default 2, images) tells the spatial axes from a batch axis."""
    return _global_pool("GlobalMaxPool", "max", ndim)


def GlobalAvgPool(ndim: int = 2) -> Layer:
    """Mean over all `ndim` spatial axes: `(B, *S, C) -> (B, C)`, one example `(*S, C) ->
    (C,)`; `ndim` (default 2, images) tells the spatial axes from a batch axis."""
    return _global_pool("GlobalAvgPool", "avg", ndim)
