"""Branching combinators: `residual(layer)` is `x + layer(x)`; `fan_out(*layers)` feeds one
input to every layer and concatenates their outputs on the last axis (or sums them)."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp

from funcnn.nn.combinators import child_keys, children_penalty, error_within, output_shape
from funcnn.nn.errors import LayerError
from funcnn.nn.layer import Layer, check_input_shapes, described, is_pair_shape
from funcnn.typing import Array, Params, PRNGKey, Shape, State

__all__ = ["fan_out", "residual"]

MERGES = ("concat", "sum")


def _check_layers(name: str, layers: Sequence[Layer]) -> list[str]:
    """The children's param keys, after checking that each is a Layer and keys differ."""
    if not layers:
        raise ValueError(f"{name}: needs at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"{name}: argument {i} is a {type(layer).__name__}, not a Layer")
    keys = child_keys(layers)
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"{name}: duplicate layer keys {dupes}; give each a distinct name")
    return keys


def _merged_shape(name: str, merge: str, shapes: Sequence[Shape]) -> Shape:
    """The output shape of merging children's outputs of `shapes`, or a LayerError."""
    first = shapes[0]
    if merge == "sum":
        if any(s != first for s in shapes):
            raise LayerError(name, f"merge='sum' needs equal output shapes, got {list(shapes)}")
        return first
    if any(len(s) == 0 or s[:-1] != first[:-1] for s in shapes):
        raise LayerError(name, "merge='concat' needs outputs that agree on every axis but "
                         f"the last, got {list(shapes)}")
    return (*first[:-1], sum(s[-1] for s in shapes))


def _branches(name: str, layers: Sequence[Layer], merge: str, config: dict[str, object],
              ) -> Layer:
    """Every layer on the same input, outputs merged by `merge` ("concat" or "sum")."""
    keys = _check_layers(name, layers)

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        shape = check_input_shapes(name, input_shape)
        params: Params = {}
        state: State = {}
        shapes = []
        for i, (child_key, layer) in enumerate(zip(keys, layers, strict=True)):
            try:
                p, s = layer.init(jax.random.fold_in(key, i), shape)
                shapes.append(output_shape(layer, p, s, shape))
            except Exception as err:
                raise error_within(err, f"{name}[{i}]") from None
            if p:
                params[child_key] = p
            if s:
                state[child_key] = s
        _merged_shape(name, merge, shapes)
        return params, state

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        unknown = sorted(set(params) - set(keys)) + sorted(set(state) - set(keys))
        if unknown:
            raise LayerError(name, f"unexpected keys {unknown} in params/state; its layers "
                             f"are {keys}")
        outputs, new_state = [], {}
        for i, (child_key, layer) in enumerate(zip(keys, layers, strict=True)):
            child_rng = None if key is None else jax.random.fold_in(key, i)
            try:
                y, s = layer.apply(params.get(child_key, {}), state.get(child_key, {}), x,
                                   key=child_rng, train=train)
            except Exception as err:
                raise error_within(err, f"{name}[{i}]") from None
            outputs.append(y)
            if s:
                new_state[child_key] = s
        _merged_shape(name, merge, [tuple(y.shape) for y in outputs])
        if merge == "sum":
            total = outputs[0]
            for y in outputs[1:]:
                total = total + y
            return total, new_state
        return jnp.concatenate(outputs, axis=-1), new_state

    def penalty(params: Params) -> Array:
        return children_penalty(keys, layers, params)

    def child_inputs(input_shape: Shape) -> tuple[tuple[str, Layer, Shape], ...]:
        return tuple((k, layer, tuple(input_shape)) for k, layer in zip(keys, layers,
                                                                          strict=True))

    return described(Layer(init, apply, penalty, name, MappingProxyType(config), tuple(layers),
                           child_inputs=child_inputs, input_bounds=layers[0].input_bounds,
                           input_dtype=layers[0].input_dtype))


def fan_out(*layers: Layer, merge: str = "concat") -> Layer:
    """Fan-out: every layer gets the same input; outputs concatenated on the last axis
    (`merge="concat"`, shapes equal but for it) or summed (`merge="sum"`, equal shapes).
    Params and state are keyed like `serial`'s; layer `i` gets `fold_in(key, i)`. (Named
    `fan_out` because `funcnn.parallel` is the module for devices.)"""
    if merge not in MERGES:
        raise ValueError(f"fan_out: merge must be one of {MERGES}, got {merge!r}")
    return _branches("fan_out", layers, merge, {"merge": merge})


def _values(x: Any) -> Any:
    """The values of a pair `(x, mask)`; one array as it is."""
    return x[0] if isinstance(x, tuple | list) else x


def _values_shape(shape: Any) -> Any:
    """The values' shape of a pair's shapes `((T, F), (T,))`; one shape as it is."""
    return shape[0] if is_pair_shape(shape) else shape


def residual(layer: Layer) -> Layer:
    """`x + layer(x)`, for a layer whose output has its input's shape (checked at init and
    apply); its params and state sit under the layer's key, as in `serial`. On a pair
    `(x, mask)`: `(x + values of layer((x, mask)), mask)`, so the mask flows on."""
    if not isinstance(layer, Layer):
        raise TypeError(f"residual: expected a Layer, got {type(layer).__name__}")
    (key_name,) = child_keys([layer])

    def same_shape(shape_in: Shape, shape_out: Shape) -> None:
        if tuple(shape_in) != tuple(shape_out):
            raise LayerError("residual", f"the layer maps {tuple(shape_in)} to "
                             f"{tuple(shape_out)}; x + layer(x) needs equal shapes")

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        shape = check_input_shapes("residual", input_shape)
        try:
            p, s = layer.init(jax.random.fold_in(key, 0), shape)
            out = output_shape(layer, p, s, shape)
        except Exception as err:
            raise error_within(err, "residual[0]") from None
        same_shape(_values_shape(shape), _values_shape(out))
        return ({key_name: p} if p else {}), ({key_name: s} if s else {})

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        child_rng = None if key is None else jax.random.fold_in(key, 0)
        try:
            y, s = layer.apply(params.get(key_name, {}), state.get(key_name, {}), x,
                               key=child_rng, train=train)
        except Exception as err:
            raise error_within(err, "residual[0]") from None
        new_state = {key_name: s} if s else {}
        values, y_values = jnp.asarray(_values(x)), jnp.asarray(_values(y))
        same_shape(values.shape, y_values.shape)
        if isinstance(x, tuple | list):
            return (values + y_values, *x[1:]), new_state
        return values + y_values, new_state

    def penalty(params: Params) -> Array:
        return children_penalty([key_name], [layer], params)

    def child_inputs(input_shape: Shape) -> tuple[tuple[str, Layer, Shape], ...]:
        return ((key_name, layer, tuple(input_shape)),)

    return described(Layer(init, apply, penalty, "residual", MappingProxyType({}), (layer,),
                           child_inputs=child_inputs, input_bounds=layer.input_bounds,
                           input_dtype=layer.input_dtype))
