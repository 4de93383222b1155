"""Convolution layers, channels-last: `Conv1D` on `(B, W, C)`, `Conv2D` on NHWC
`(B, H, W, C)`, `ConvTranspose2D`; each also on one example (no batch axis).

`Conv2D`: `y[b, i, j, o] = b[o] + sum_{p, q, c} x_pad[b, i*sh + p*dh, j*sw + q*dw,
g*C/G + c] * w[p, q, c, o]` with `g = o // (O/G)` the group of output channel `o`;
params `{"w": (kh, kw, C/G, O), "b": (O,)}` (`Conv1D`: `w: (k, C/G, O)`). Padding "SAME"
is TF/JAX's (output `ceil(n / s)`, `lo = total // 2`, the extra row at the end), "VALID"
none, or explicit `(lo, hi)` per axis, zeros.

`ConvTranspose2D(features, k, strides=s)`: `w: (kh, kw, C, O)`, output length `n * s`
(SAME) or `(n - 1) * s + k` (VALID); it is exactly the input gradient (vjp) of the
stride-`s` `Conv2D` with the same padding mode from that output size back to `n`, whose
kernel is `w` with its channel axes swapped, `swapaxes(w, 2, 3): (kh, kw, O, C)`.

The default weights are He-normal, `N(0, 2 / fan_in)` with `fan_in = kh * kw * C / G`
(`ConvTranspose2D`: `kh * kw * C`), for the ReLU that usually follows; biases are zero.
Computation is in the promoted dtype of input and params (float32, float64, bfloat16).
`lowering` picks the implementation (funcnn/nn/conv_lowering.py, where the measurements
are): `"auto"` is shifted slices + one matmul on CPU, `lax.conv` elsewhere; results agree
within float rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp

from funcnn.initializers import he_normal, zeros
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
from funcnn.nn.conv_lowering import (
    LOWERINGS,
    Lowering,
    conv,
    conv_transpose,
    transpose_padding,
)
from funcnn.nn.errors import LayerError
from funcnn.nn.layer import Layer, check_float_input, check_input_shape, described, positive_int
from funcnn.nn.penalties import coefficients, weight_penalty
from funcnn.typing import Array, DTypeLike, Initializer, Params, PRNGKey, Shape, State


class _Spec:
    """A convolution layer's checked settings (immutable after construction)."""

    def __init__(self, name: str, n: int, features: int, kernel_size: object, strides: object,
                 padding: object, dilation: object, groups: int, transpose: bool) -> None:
        self.name, self.n, self.transpose = name, n, transpose
        self.features = positive_int(name, "features", features)
        self.kernel = int_tuple(name, "kernel_size", kernel_size, n)
        self.strides = int_tuple(name, "strides", strides, n)
        self.dilation = int_tuple(name, "dilation", dilation, n)
        self.groups = positive_int(name, "groups", groups)
        self.padding = padding_arg(name, padding, n, explicit=not transpose)
        if self.features % self.groups:
            raise ValueError(f"{name}: features={self.features} is not divisible by "
                             f"groups={self.groups}")

    def w_shape(self, cin: int) -> Shape:
        return (*self.kernel, cin if self.transpose else cin // self.groups, self.features)

    def out_spatial(self, spatial: Shape) -> Shape:
        """Output spatial sizes for input sizes `spatial` (a LayerError if empty)."""
        if self.transpose:
            return tuple(transpose_padding(size, k, s, str(self.padding))[0]
                         for size, k, s in zip(spatial, self.kernel, self.strides, strict=True))
        pads = resolve_pads(self.padding, spatial, self.kernel, self.strides, self.dilation)
        return spatial_output(self.name, spatial, self.kernel, self.strides, self.dilation,
                              pads)

    def check_channels(self, cin: int) -> None:
        if not self.transpose and cin % self.groups:
            raise LayerError(self.name, f"{cin} input channels are not divisible by "
                             f"groups={self.groups}")

    def check_weight(self, weight: Any) -> Array:
        w = jnp.asarray(weight)
        if w.ndim != self.n + 2 or w.shape[:self.n] != self.kernel or (
                w.shape[-1] != self.features):
            raise LayerError(self.name, f"params['w'] has shape {w.shape}, expected "
                             f"({', '.join(map(str, self.kernel))}, C_in, {self.features})")
        return w

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"features": self.features, "kernel_size": list(self.kernel),
                               "strides": list(self.strides),
                               "padding": config_padding(self.padding)}
        if not self.transpose:
            out.update(dilation=list(self.dilation), groups=self.groups)
        return out


def _conv_layer(spec: _Spec, *, use_bias: bool, w_init: Initializer | None,
                b_init: Initializer, coefs: dict[str, float], dtype: DTypeLike,
                lowering: Lowering) -> Layer:
    """The Layer of `spec`: init, apply (one example or a batch) and the L1/L2 penalty."""
    name = spec.name
    if not isinstance(use_bias, bool):
        raise ValueError(f"{name}: use_bias must be a bool, got {use_bias!r}")
    if not use_bias and (coefs["b_l1"] or coefs["b_l2"]):
        raise ValueError(f"{name}: b_l1/b_l2 given but use_bias=False")
    if lowering not in LOWERINGS:
        raise ValueError(f"{name}: lowering must be one of {LOWERINGS}, got {lowering!r}")
    weight_init = he_normal() if w_init is None else w_init
    expected = {"w", "b"} if use_bias else {"w"}

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        shape = check_input_shape(name, input_shape)
        check_example_shape(name, shape, spec.n)
        spec.check_channels(shape[-1])
        spec.out_spatial(shape[:-1])
        w_key, b_key = jax.random.split(key)
        params = {"w": weight_init(w_key, spec.w_shape(shape[-1]), dtype)}
        if use_bias:
            params["b"] = b_init(b_key, (spec.features,), dtype)
        return params, {}

    def forward(params: Params, x: Array) -> Array:
        if not isinstance(params, Mapping) or set(params) != expected:
            found = sorted(params) if isinstance(params, Mapping) else type(params).__name__
            raise LayerError(name, f"expected params with keys {sorted(expected)}, got {found}")
        x = jnp.asarray(x)
        check_float_input(name, x)
        w = spec.check_weight(params["w"])
        single = check_input_rank(name, x, spec.n)
        cin = w.shape[-2] * (1 if spec.transpose else spec.groups)
        if x.shape[-1] != cin:
            raise LayerError(name, f"expected {cin} input channels (last axis), got "
                             f"{x.shape[-1]} in input of shape {x.shape}")
        batch = x[None] if single else x
        spec.out_spatial(batch.shape[1:-1])
        dt = jnp.promote_types(x.dtype, w.dtype)
        batch, w = batch.astype(dt), w.astype(dt)
        if spec.transpose:
            y = conv_transpose(batch, w, spec.strides, str(spec.padding), lowering)
        else:
            pads = resolve_pads(spec.padding, batch.shape[1:-1], spec.kernel, spec.strides,
                                spec.dilation)
            y = conv(batch, w, spec.strides, pads, spec.dilation, spec.groups, lowering)
        if use_bias:
            b = jnp.asarray(params["b"])
            if b.shape != (spec.features,):
                raise LayerError(name, f"params['b'] has shape {b.shape}, expected "
                                 f"({spec.features},)")
            y = y + b.astype(dt).reshape((1,) * (y.ndim - 1) + (spec.features,))
        return y[0] if single else y

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        del key, train
        return forward(params, x), state

    def penalty(params: Params) -> Array:
        return weight_penalty((params[leaf], coefs[f"{leaf}_l1"], coefs[f"{leaf}_l2"])
                              for leaf in ("w", "b") if leaf in params)

    config = {**spec.config(), "use_bias": use_bias, **coefs,
              "dtype": jnp.dtype(dtype).name, "lowering": lowering}
    return described(Layer(init, apply, penalty, name, MappingProxyType(config)), w_init,
                     b_init)


def Conv1D(features: int, kernel_size: int | tuple[int], *, strides: int | tuple[int] = 1,
           padding: PaddingArg = "SAME", dilation: int | tuple[int] = 1, groups: int = 1,
           use_bias: bool = True, w_init: Initializer | None = None,
           b_init: Initializer = zeros, w_l1: float = 0.0, w_l2: float = 0.0,
           b_l1: float = 0.0, b_l2: float = 0.0, dtype: DTypeLike = jnp.float32,
           lowering: Lowering = "auto") -> Layer:
    """1D convolution `(B, W, C) -> (B, W', features)` (or `(W, C) -> (W', features)`),
    `w: (k, C/groups, features)`, `b: (features,)`; `W' = ceil(W/s)` (SAME) or
    `floor((W + lo + hi - ((k-1)*d + 1)) / s) + 1`. Penalty as `Dense`'s."""
    spec = _Spec("Conv1D", 1, features, kernel_size, strides, padding, dilation, groups, False)
    coefs = coefficients("Conv1D", {"w_l1": w_l1, "w_l2": w_l2, "b_l1": b_l1, "b_l2": b_l2})
    return _conv_layer(spec, use_bias=use_bias, w_init=w_init, b_init=b_init, coefs=coefs,
                       dtype=dtype, lowering=lowering)


def Conv2D(features: int, kernel_size: int | tuple[int, int], *,
           strides: int | tuple[int, int] = 1, padding: PaddingArg = "SAME",
           dilation: int | tuple[int, int] = 1, groups: int = 1, use_bias: bool = True,
           w_init: Initializer | None = None, b_init: Initializer = zeros,
           w_l1: float = 0.0, w_l2: float = 0.0, b_l1: float = 0.0, b_l2: float = 0.0,
           dtype: DTypeLike = jnp.float32, lowering: Lowering = "auto") -> Layer:
    """2D convolution NHWC `(B, H, W, C) -> (B, H', W', features)` (or one `(H, W, C)`),
    `w: (kh, kw, C/groups, features)`, `b: (features,)`; padding "SAME" | "VALID" |
    `((lo, hi), (lo, hi))`. Penalty `w_l1*sum|w| + w_l2*sum w^2 + b_l1*sum|b| + b_l2*sum b^2`."""
    spec = _Spec("Conv2D", 2, features, kernel_size, strides, padding, dilation, groups, False)
    coefs = coefficients("Conv2D", {"w_l1": w_l1, "w_l2": w_l2, "b_l1": b_l1, "b_l2": b_l2})
    return _conv_layer(spec, use_bias=use_bias, w_init=w_init, b_init=b_init, coefs=coefs,
                       dtype=dtype, lowering=lowering)


def ConvTranspose2D(features: int, kernel_size: int | tuple[int, int], *,
                    strides: int | tuple[int, int] = 1, padding: str = "SAME",
                    use_bias: bool = True, w_init: Initializer | None = None,
                    b_init: Initializer = zeros, w_l1: float = 0.0, w_l2: float = 0.0,
                    b_l1: float = 0.0, b_l2: float = 0.0, dtype: DTypeLike = jnp.float32,
                    lowering: Lowering = "auto") -> Layer:
    """Transposed 2D convolution `(B, H, W, C) -> (B, H*s, W*s, features)` (SAME) or
    `(B, (H-1)*s + kh, (W-1)*s + kw, features)` (VALID), `w: (kh, kw, C, features)`: the
    input gradient of `Conv2D` with kernel `swapaxes(w, 2, 3)` and the same strides and
    padding mode (module docstring)."""
    spec = _Spec("ConvTranspose2D", 2, features, kernel_size, strides, padding, 1, 1, True)
    coefs = coefficients("ConvTranspose2D",
                         {"w_l1": w_l1, "w_l2": w_l2, "b_l1": b_l1, "b_l2": b_l2})
    return _conv_layer(spec, use_bias=use_bias, w_init=w_init, b_init=b_init, coefs=coefs,
                       dtype=dtype, lowering=lowering)
