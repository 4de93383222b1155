"""`mixed_precision(net, policy)`: any network under a `funcnn.precision.Policy`, without
rewriting its layers.

`init` stores the params' floating leaves in `param_dtype`; `apply` casts params and a
floating input to `compute_dtype`, runs the network (so the backward pass runs in that
dtype too: the casts' gradients bring each param's gradient back to `param_dtype`), and
casts the output to `output_dtype`. A `serial` network's trailing `Softmax`, `LogSoftmax`
or `Sigmoid` runs after that cast, in `output_dtype`, and so does the loss. Layer state
(running statistics) is kept in the dtype its layer made it, float32 by default.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from funcnn.nn.activation import is_last_axis_softmax
from funcnn.nn.combinators import serial
from funcnn.nn.layer import Layer, described
from funcnn.precision import Policy
from funcnn.typing import Array, Params, PRNGKey, Shape, State

__all__ = ["mixed_precision", "policy_of", "without_output_softmax"]

OUTPUT_ACTIVATIONS = ("Softmax", "LogSoftmax", "Sigmoid")
"""Final layers of a serial network that run in the policy's output dtype."""

_POLICIES: weakref.WeakKeyDictionary[Callable[..., Any], tuple[Layer, Policy]] = (
    weakref.WeakKeyDictionary())
"""The wrapped network and policy of each layer made by `mixed_precision`, by its apply."""


def _split_output_activations(net: Layer) -> tuple[Layer, tuple[Layer, ...]]:
    """`net` as (body, trailing output activations): a serial net's final parameter-free
    Softmax/LogSoftmax/Sigmoid layers move out of the body; any other net is all body."""
    if net.name != "serial" or not net.children:
        return net, ()
    count = 0
    for child in reversed(net.children):
        if child.name not in OUTPUT_ACTIVATIONS or child.children:
            break
        count += 1
    if count == 0:
        return net, ()
    # serial keys children by position, so the body's param keys are the net's own
    return serial(*net.children[:-count]), net.children[-count:]


def mixed_precision(net: Layer, policy: Policy | str) -> Layer:
    """`net` under `policy` (a `Policy` or a string for `Policy.parse`, e.g.
    `"mixed_bfloat16"`). The params tree, penalty and summary rows are `net`'s own."""
    if not isinstance(net, Layer):
        raise TypeError(f"mixed_precision: expected a Layer, got {type(net).__name__}")
    chosen = Policy.parse(policy) if isinstance(policy, str) else policy
    if not isinstance(chosen, Policy):
        raise TypeError("mixed_precision: policy must be a funcnn.precision.Policy or a "
                        f"string, got {type(policy).__name__}")
    body, tail = _split_output_activations(net)

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        params, state = net.init(key, input_shape)
        return chosen.cast_to_param(params), state

    def apply(params: Params, state: State, x: Array, *, key: PRNGKey | None = None,
              train: bool = False) -> tuple[Array, State]:
        y, new_state = body.apply(chosen.cast_to_compute(params), state,
                                  chosen.cast_to_compute(x), key=key, train=train)
        y = chosen.cast_to_output(y)
        for layer in tail:
            y, _ = layer.apply({}, {}, y)
        return y, new_state

    def penalty(params: Params) -> Array:
        return net.penalty(params)

    config = MappingProxyType({"policy": chosen.describe()})
    layer = described(Layer(init, apply, penalty, "MixedPrecision", config, (net,),
                            child_inputs=net.child_inputs, input_bounds=net.input_bounds,
                            input_dtype=net.input_dtype))
    _POLICIES[layer.apply] = (net, chosen)
    return layer


def policy_of(layer: Layer) -> tuple[Layer, Policy] | None:
    """For a layer made by `mixed_precision`, the network it wraps and its policy."""
    return _POLICIES.get(layer.apply)


def without_output_softmax(net: Layer) -> Layer | None:
    """`net` without its final last-axis `Softmax`, for the fused softmax + cross-entropy:
    `serial(..., Softmax())` gives the serial of the other layers, and a `mixed_precision`
    wrapper of such a net the same wrapper of that body (its logits in the output dtype).
    None for any other network."""
    wrapped = policy_of(net)
    if wrapped is not None:
        inner, chosen = wrapped
        body = without_output_softmax(inner)
        return None if body is None else mixed_precision(body, chosen)
    if net.name != "serial" or not net.children or not is_last_axis_softmax(net.children[-1]):
        return None
    return serial(*net.children[:-1])
