"""Pair inputs `(x, mask)`: a bool mask `(..., T)` (True: a real position) travelling with a
sequence `x (..., T, F)` through a network, for attention over padded sequences.

`MultiHeadAttention` takes the pair and returns values; `residual` keeps the pair's mask;
`keep_mask(layer)` runs any layer on the values and keeps the mask; `drop_mask()` ends the
pair. A padded transformer block:
`residual(serial(keep_mask(LayerNorm()), MultiHeadAttention(64, heads=4)))`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import jax.numpy as jnp

from funcnn.nn.combinators import child_keys, children_penalty, error_within
from funcnn.nn.errors import LayerError
from funcnn.nn.layer import Layer, check_input_shapes, described, is_pair_shape
from funcnn.typing import Array, Params, PRNGKey, Shape, State

__all__ = ["drop_mask", "keep_mask"]


def _split_pair(name: str, x: Any) -> tuple[Array, tuple[Array, ...]]:
    if not (isinstance(x, tuple | list) and len(x) >= 2):
        raise LayerError(name, f"expects the pair (x, mask), got {type(x).__name__}")
    return x[0], tuple(x[1:])


def _pair_shape(name: str, input_shape: Any) -> tuple[Shape, ...]:
    shapes = check_input_shapes(name, input_shape)
    if not is_pair_shape(shapes):
        raise LayerError(name, f"expects the shapes of a pair (x, mask), got {shapes}")
    return tuple(shapes)


def keep_mask(layer: Layer) -> Layer:
    """`(x, mask) -> (layer(x), mask)`: any layer on a pair's values, the mask passed on.
    Params and state sit under the layer's key, as in `serial`."""
    if not isinstance(layer, Layer):
        raise TypeError(f"keep_mask: expected a Layer, got {type(layer).__name__}")
    (key_name,) = child_keys([layer])

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        shapes = _pair_shape("keep_mask", input_shape)
        try:
            p, s = layer.init(key, shapes[0])
        except Exception as err:
            raise error_within(err, "keep_mask[0]") from None
        return ({key_name: p} if p else {}), ({key_name: s} if s else {})

    def apply(params: Params, state: State, x: Any, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Any, State]:
        values, rest = _split_pair("keep_mask", x)
        try:
            y, s = layer.apply(params.get(key_name, {}), state.get(key_name, {}), values,
                               key=key, train=train)
        except Exception as err:
            raise error_within(err, "keep_mask[0]") from None
        return (y, *rest), ({key_name: s} if s else {})

    def penalty(params: Params) -> Array:
        return children_penalty([key_name], [layer], params)

    def child_inputs(input_shape: Shape) -> tuple[tuple[str, Layer, Shape], ...]:
        return ((key_name, layer, _pair_shape("keep_mask", input_shape)[0]),)

    return described(Layer(init, apply, penalty, "keep_mask", MappingProxyType({}), (layer,),
                           child_inputs=child_inputs))


def drop_mask() -> Layer:
    """`(x, mask) -> x`: the end of a pair, e.g. before the output layers."""

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        del key
        _pair_shape("drop_mask", input_shape)
        return {}, {}

    def apply(params: Params, state: State, x: Any, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        del params, key, train
        return jnp.asarray(_split_pair("drop_mask", x)[0]), state

    return described(Layer(init, apply, name="drop_mask"))
