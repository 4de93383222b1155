"""`Dense`, the fully connected layer (book chapters 3 and 14): `y = x @ w + b` with the
book's `(n_in, n_out)` weight layout (`n_out` is `features`) and per-layer L1/L2 penalties."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import jax
import jax.numpy as jnp

from funcnn.initializers import book_normal, zeros
from funcnn.nn.errors import LayerError
from funcnn.nn.layer import Layer, check_float_input, check_input_shape, described, output_width
from funcnn.nn.penalties import coefficients, weight_penalty
from funcnn.typing import Array, DTypeLike, Initializer, Params, PRNGKey, Shape, State


def _lift_to_rank(v: Array, ndim: int) -> Array:
    """Reshape a vector `(n,)` to `(1, ..., 1, n)` of rank `ndim`, no implicit promotion."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def Dense(
    features: int | None = None,
    *,
    w_init: Initializer | None = None,
    b_init: Initializer = zeros,
    w_l1: float = 0.0,
    w_l2: float = 0.0,
    b_l1: float = 0.0,
    b_l2: float = 0.0,
    use_bias: bool = True,
    dtype: DTypeLike = jnp.float32,
    n_out: int | None = None,
) -> Layer:
    """Fully connected layer `y = x @ w + b`, `w: (n_in, features)`, `b: (features,)`
    (`n_out=` is the deprecated name of `features`).

    Works on `x: (..., n_in)`. Defaults are the book's: `w = 0.01 * N(0, 1)`, `b = 0`.
    Penalty: `w_l1*sum|w| + w_l2*sum w^2 + b_l1*sum|b| + b_l2*sum b^2`.
    """
    width = output_width("Dense", features, n_out=n_out)
    coefs = coefficients("Dense", {"w_l1": w_l1, "w_l2": w_l2, "b_l1": b_l1, "b_l2": b_l2})
    if not use_bias and (coefs["b_l1"] or coefs["b_l2"]):
        raise ValueError("Dense: b_l1/b_l2 given but use_bias=False")
    weight_init = book_normal(0.01) if w_init is None else w_init

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        shape = check_input_shape("Dense", input_shape)
        w_key, b_key = jax.random.split(key)
        params = {"w": weight_init(w_key, (shape[-1], width), dtype)}
        if use_bias:
            params["b"] = b_init(b_key, (width,), dtype)
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
        return weight_penalty((params[leaf], coefs[f"{leaf}_l1"], coefs[f"{leaf}_l2"])
                              for leaf in ("w", "b") if leaf in params)

    config = {"features": width, "use_bias": use_bias, **coefs,
              "dtype": jnp.dtype(dtype).name}
    return described(Layer(init, apply, penalty, "Dense", MappingProxyType(config)), w_init,
                     b_init)
