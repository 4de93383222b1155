"""How the convolution layers compute: padding arithmetic and the two lowerings.

Every function here takes a batched, channels-last input `x: (B, *spatial, C)` and an
HWIO kernel `w: (*kernel, C / groups, C_out)`; padding is always explicit `(lo, hi)`
pairs (the layers resolve "SAME" / "VALID" with `same_padding`).

- `"lax"`: `lax.conv_general_dilated`, one XLA convolution.
- `"slices"`: im2col by shifted strided slices: the `prod(kernel)` views
  `x[:, i*d : ... : s, ...]` concatenated on the channel axis, and one `dot_general`
  with `w` reshaped to `(prod(kernel) * C / groups, C_out)` (for `groups > 1`, one
  einsum batched over the groups). Its gradients are slices, pads and matmuls.

Measured on XLA:CPU, 2 shared cores (benchmarks/conv_lowering.py: one SGD step on
`sum(ct * conv(x, w)**2) / 2`, gradient w.r.t. `w`, `x` or both; 3x3 SAME, ms per step,
plain jitted loop / inside `lax.scan` over 20 steps; best of 3):

| conv | grad | lax.conv | slices |
|---|---|---|---|
| 64x28x28x1 -> 16 | w | 1.54 / 6.37 | 1.31 / 0.82 |
| 64x28x28x1 -> 16 | x | 2.04 / 2.61 | 0.84 / 0.60 |
| 64x28x28x1 -> 16 | both | 2.53 / 7.12 | 1.87 / 1.15 |
| 64x14x14x16 -> 32 | w | 1.84 / 54.1 | 1.70 / 0.92 |
| 64x14x14x16 -> 32 | x | 1.39 / 19.4 | 1.14 / 0.96 |
| 64x14x14x16 -> 32 | both | 2.61 / 63.3 | 2.06 / 1.69 |
| transpose 64x7x7x32 -> 16, stride 2 | both | 6.93 / 26.8 | 6.13 / 6.40 |

(An earlier run on the same machine, under more load: 83 / 37 / 118 ms in scan for the
16 -> 32 conv's w / x / both with lax.conv, 2.5 / 0.9 / 4.5 with slices.) `lax.conv`'s
gradients become 4-30x slower inside `lax.scan` (how `fit` runs its steps) on CPU; the
slices are as fast in scan as outside and no slower in a plain jit. So `"auto"` is
`"slices"` on the CPU backend and `"lax"` elsewhere (GPU/TPU convolutions are library
kernels; not measured here). Both lowerings give the same results within float rounding
and both support strides, dilation and groups; the transposed conv's slices run on the
`s`-dilated input (its zeros are multiplied too).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal, TypeAlias

import jax
import jax.numpy as jnp
from jax import lax

from funcnn.typing import Array

Lowering: TypeAlias = Literal["auto", "lax", "slices"]
Pads: TypeAlias = tuple[tuple[int, int], ...]
LOWERINGS: tuple[str, ...] = ("auto", "lax", "slices")

_DIMENSION_NUMBERS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


def resolve_lowering(lowering: Lowering) -> Literal["lax", "slices"]:
    """`"auto"` -> `"slices"` on the CPU backend, `"lax"` on any other; others unchanged."""
    if lowering == "auto":
        return "slices" if jax.default_backend() == "cpu" else "lax"
    return lowering


def effective_kernel(k: int, dilation: int) -> int:
    """Span of a dilated kernel: `(k - 1) * d + 1`."""
    return (k - 1) * dilation + 1


def same_padding(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF/JAX "SAME": output `ceil(size / s)`; total pad `max((out-1)*s + k_eff - size, 0)`,
    split `lo = total // 2`, `hi = total - lo` (the extra row goes at the end)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + effective_kernel(k, dilation) - size, 0)
    return total // 2, total - total // 2


def output_size(size: int, k: int, stride: int, dilation: int, pad: tuple[int, int]) -> int:
    """Convolution output length `floor((size + lo + hi - k_eff) / s) + 1` (<= 0: empty)."""
    return (size + pad[0] + pad[1] - effective_kernel(k, dilation)) // stride + 1


def transpose_padding(size: int, k: int, stride: int, mode: str) -> tuple[int, tuple[int, int]]:
    """For a transposed conv of an input of length `size`: `(n, (lo', hi'))` where `n` is
    the output length (SAME: `size * s`, VALID: `(size - 1) * s + k`) and `(lo', hi')` the
    padding of the `s`-dilated input that makes it the input gradient of the stride-`s`
    convolution from length `n` (padded `(lo, hi)`) down to `size`:
    `lo' = k - 1 - lo`, `hi' = k - 1 - hi + (n + lo + hi - k) mod s`."""
    n = size * stride if mode == "SAME" else (size - 1) * stride + k
    lo, hi = same_padding(n, k, stride) if mode == "SAME" else (0, 0)
    rest = (n + lo + hi - k) % stride
    return n, (k - 1 - lo, k - 1 - hi + rest)


def conv_lax(x: Array, w: Array, strides: Sequence[int], padding: Pads,
             dilation: Sequence[int], groups: int) -> Array:
    """`lax.conv_general_dilated` channels-last: `(B, *S, C) * (*K, C/g, O) -> (B, *S', O)`."""
    n = w.ndim - 2
    return lax.conv_general_dilated(
        x, w, tuple(strides), tuple(padding), rhs_dilation=tuple(dilation),
        dimension_numbers=_DIMENSION_NUMBERS[n], feature_group_count=groups)


def _patches(x: Array, kernel: Sequence[int], strides: Sequence[int],
             dilation: Sequence[int]) -> Array:
    """The im2col patches of an already padded `x: (B, *S, C)`: `(B, *S', prod(K) * C)`,
    offsets major, channels minor: `patches[..., j*C + c] = x[b, o*s + i_j*d, c]`."""
    batch, *spatial, channels = x.shape
    out = [(size - effective_kernel(k, d)) // s + 1
           for size, k, s, d in zip(spatial, kernel, strides, dilation, strict=True)]
    views = []
    for offsets in itertools.product(*(range(k) for k in kernel)):
        start = [i * d for i, d in zip(offsets, dilation, strict=True)]
        limit = [b + (o - 1) * s + 1 for b, o, s in zip(start, out, strides, strict=True)]
        views.append(lax.slice(x, (0, *start, 0), (batch, *limit, channels),
                               (1, *strides, 1)))
    return views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)


def conv_slices(x: Array, w: Array, strides: Sequence[int], padding: Pads,
                dilation: Sequence[int], groups: int) -> Array:
    """The same convolution as `conv_lax`, as shifted slices and one `dot_general`:
    `y[b, o, :] = patches[b, o, :] @ w.reshape(prod(K) * C, O)` (per group for `g > 1`)."""
    n = w.ndim - 2
    kernel, (cin_g, cout) = w.shape[:n], w.shape[n:]
    x = lax.pad(x, jnp.zeros((), x.dtype),
                ((0, 0, 0), *((lo, hi, 0) for lo, hi in padding), (0, 0, 0)))
    patches = _patches(x, kernel, strides, dilation)
    taps = math.prod(kernel)
    if groups == 1:
        return lax.dot_general(patches, w.reshape(taps * cin_g, cout),
                               (((patches.ndim - 1,), (0,)), ((), ())))
    lead = patches.shape[:-1]
    grouped = patches.reshape((*lead, taps, groups, cin_g))
    w_grouped = w.reshape((taps, cin_g, groups, cout // groups))
    y = jnp.einsum("...kgc,kcgo->...go", grouped, w_grouped)
    return y.reshape((*lead, cout))


def _conv(x: Array, w: Array, strides: tuple[int, ...], padding: Pads,
          dilation: tuple[int, ...], groups: int, lowering: str) -> Array:
    if lowering == "lax":
        return conv_lax(x, w, strides, padding, dilation, groups)
    return conv_slices(x, w, strides, padding, dilation, groups)


def _conv_transpose(x: Array, w: Array, strides: tuple[int, ...], mode: str,
                    lowering: str) -> Array:
    n = w.ndim - 2
    kernel = w.shape[:n]
    pads = tuple(transpose_padding(size, k, s, mode)[1]
                 for size, k, s in zip(x.shape[1:-1], kernel, strides, strict=True))
    flipped = jnp.flip(w, axis=tuple(range(n)))
    ones = (1,) * n
    if lowering == "lax":
        return lax.conv_general_dilated(x, flipped, ones, pads, lhs_dilation=strides,
                                        dimension_numbers=_DIMENSION_NUMBERS[n])
    dilated = lax.pad(x, jnp.zeros((), x.dtype),
                      ((0, 0, 0), *((lo, hi, s - 1) for (lo, hi), s in
                                    zip(pads, strides, strict=True)), (0, 0, 0)))
    return conv_slices(dilated, flipped, ones, ((0, 0),) * n, ones, 1)


# One compiled program per configuration, so that an eager call does not compile each of
# the slices on its own; inside an outer jit it is inlined.
_conv_jit = jax.jit(_conv, static_argnums=(2, 3, 4, 5, 6))
_conv_transpose_jit = jax.jit(_conv_transpose, static_argnums=(2, 3, 4))


def conv(x: Array, w: Array, strides: Sequence[int], padding: Pads, dilation: Sequence[int],
         groups: int, lowering: Lowering = "auto") -> Array:
    """Channels-last grouped, dilated, strided convolution by the chosen lowering."""
    y: Array = _conv_jit(x, w, tuple(strides), tuple(map(tuple, padding)), tuple(dilation),
                         groups, resolve_lowering(lowering))
    return y


def conv_transpose(x: Array, w: Array, strides: Sequence[int], mode: str,
                   lowering: Lowering = "auto") -> Array:
    """Transposed convolution `(B, *S, C) -> (B, *S'', O)` with `w: (*K, C, O)`: the
    input gradient of the stride-`s` conv with kernel `swapaxes(w, -1, -2)`, computed as
    the `s`-dilated input padded by `transpose_padding`, correlated with `flip(w)`."""
    y: Array = _conv_transpose_jit(x, w, tuple(strides), mode, resolve_lowering(lowering))
    return y
