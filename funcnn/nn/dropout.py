"""`Dropout` (book chapter 15): inverted dropout in training, identity at inference."""

from __future__ import annotations

from types import MappingProxyType

import jax
import jax.numpy as jnp

from funcnn.nn.errors import LayerError
from funcnn.nn.layer import Layer, check_float_input, described, no_penalty, parameter_free_init
from funcnn.typing import Array, Params, PRNGKey, State


def Dropout(rate: float) -> Layer:
    """Inverted dropout: in training, zero each unit with probability `rate` and scale the
    kept ones by `1 / (1 - rate)`; identity at inference (`train=False`)."""
    if not (isinstance(rate, int | float) and 0.0 <= rate < 1.0):
        raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
    keep = 1.0 - float(rate)

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

    return described(Layer(parameter_free_init("Dropout"), apply, no_penalty, "Dropout",
                           MappingProxyType({"rate": float(rate)})))
