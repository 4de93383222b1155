"""The layer registry: `layer_spec` and `layer_from_spec` round-trip networks built from
every layer family (through JSON), user layers join it, and bad layers and specs are
errors naming where they are."""

from __future__ import annotations

import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn.nn as nn
from funcnn.initializers import glorot_uniform
from funcnn.nn.registry import (
    LayerSpecError,
    config_builder,
    layer_from_spec,
    layer_spec,
    register_layer,
    registered_kinds,
)
from funcnn.typing import Array


def image_net() -> nn.Layer:
    """Every family that works on float images, the combinators and `named`."""
    return nn.serial(
        nn.Conv2D(4, 3, padding=((1, 1), (0, 2)), w_init=glorot_uniform(), w_l2=1e-3),
        nn.BatchNorm(0.9),
        nn.ReLU(),
        nn.residual(nn.serial(nn.Conv2D(4, (3, 1), padding="same"), nn.GroupNorm(2))),
        nn.ConvTranspose2D(3, 2, strides=2, padding="VALID"),
        nn.MaxPool2D(2),
        nn.AvgPool2D(3, strides=1, padding="SAME"),
        nn.fan_out(nn.GlobalMaxPool(), nn.named("mean", nn.GlobalAvgPool())),
        nn.named("hidden", nn.Dense(5, b_l1=0.1)),
        nn.LeakyReLU(0.2),
        nn.Dropout(0.25),
        nn.RMSNorm(),
        nn.LayerNorm(use_bias=False),
        nn.fan_out(nn.Sigmoid(), nn.Tanh(), nn.Linear(), nn.Step(), merge="sum"),
        nn.Softmax(),
        nn.LogSoftmax(axis=-1),
    )


def sequence_net() -> nn.Layer:
    """Integer ids through the embedding and the 1-D families."""
    return nn.serial(
        nn.Embedding(6, vocab=11),
        nn.Conv1D(4, 3, dilation=2, groups=2),
        nn.MaxPool1D(2, padding="SAME"),
        nn.AvgPool1D(),
        nn.Flatten(2),
        nn.Dense(3, use_bias=False),
    )


def token_sequence_net() -> nn.Layer:
    """Attention, recurrence and their combinators on token ids."""
    return nn.serial(
        nn.Embedding(6, vocab=11),
        nn.residual(nn.serial(nn.LayerNorm(), nn.MultiHeadAttention(6, heads=2, causal=True))),
        nn.LSTM(5, forget_bias=0.5, w_l2=1e-3),
        nn.Bidirectional(nn.GRU(3, return_sequences=False), merge="sum"),
        nn.Dense(2),
    )


def padded_net() -> nn.Layer:
    """The pair (x, mask) through keep_mask, attention, residual and drop_mask."""
    return nn.serial(
        nn.residual(nn.serial(nn.keep_mask(nn.LayerNorm()), nn.MultiHeadAttention(4, heads=2))),
        nn.drop_mask(), nn.Flatten(), nn.Dense(2))


def rebuilt(net: nn.Layer) -> nn.Layer:
    """`net` rebuilt from its spec after a trip through JSON text."""
    return layer_from_spec(json.loads(json.dumps(layer_spec(net))))


def random_params(net: nn.Layer, input_shape: tuple[int, ...]) -> Any:
    """`(params, state)` of `net`'s shapes and dtypes, drawn on the host in [0.5, 1.5)
    (positive, so running variances are valid): no compiled `init` needed."""
    rng = np.random.default_rng(0)
    return jax.tree.map(lambda a: rng.uniform(0.5, 1.5, a.shape).astype(a.dtype),
                        nn.init_shapes(net, input_shape))


@pytest.mark.parametrize(("make", "x"), [
    (image_net, jax.random.normal(jax.random.key(1), (2, 6, 5, 2))),
    (lambda: nn.mixed_precision(nn.serial(nn.Conv2D(2, 2), nn.Flatten(3), nn.Dense(3),
                                          nn.Softmax()), "mixed_bfloat16"),
     jax.random.normal(jax.random.key(1), (2, 4, 4, 1))),
    (sequence_net, jax.random.randint(jax.random.key(1), (2, 9), 0, 11)),
    (token_sequence_net, jax.random.randint(jax.random.key(1), (2, 5), 0, 11)),
    (lambda: nn.serial(nn.RNN(nn.GRUCell(3), reverse=True), nn.Flatten()),
     jax.random.normal(jax.random.key(1), (2, 4, 3))),
], ids=["image", "mixed_precision", "sequence", "attention_recurrence", "rnn"])
def test_round_trip_gives_identical_outputs(make: Any, x: Array) -> None:
    net = make()
    again = rebuilt(net)
    x_shape: Any = x.shape[1:]
    assert again is not net and layer_spec(again) == layer_spec(net)
    assert again.input_dtype == net.input_dtype and again.input_bounds == net.input_bounds
    # The same params tree (keys, shapes, dtypes) as the original's init gives.
    shapes = jax.tree.map(lambda a: (a.shape, a.dtype), nn.init_shapes(net, x_shape))
    assert jax.tree.map(lambda a: (a.shape, a.dtype), nn.init_shapes(again, x_shape)
                        ) == shapes
    params, state = random_params(net, x_shape)
    for train in (False, True):  # eager: the rebuilt net reuses the compiled operations
        (y, s), (y2, s2) = (n.apply(params, state, x, key=jax.random.key(3), train=train)
                            for n in (net, again))
        np.testing.assert_array_equal(np.asarray(y), np.asarray(y2))
        jax.tree.map(np.testing.assert_array_equal, s, s2)
    np.testing.assert_array_equal(net.penalty(params), again.penalty(params))


def test_every_public_family_is_registered() -> None:
    families = {"Dense", "Dropout", "Flatten", "Embedding", "ReLU", "LeakyReLU", "Sigmoid",
                "Tanh", "Linear", "Step", "Softmax", "LogSoftmax", "Conv1D", "Conv2D",
                "ConvTranspose2D", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D",
                "GlobalMaxPool", "GlobalAvgPool", "BatchNorm", "LayerNorm", "GroupNorm",
                "RMSNorm", "serial", "residual", "fan_out", "MixedPrecision",
                "MultiHeadAttention", "keep_mask", "drop_mask", "LSTM", "GRU", "RNN",
                "Bidirectional"}
    assert families <= set(registered_kinds())


def test_spec_is_plain_json_with_kind_config_children_and_key() -> None:
    spec = layer_spec(nn.serial(nn.named("out", nn.Dense(2)), nn.Conv2D(3, (1, 2))))
    assert spec["kind"] == "serial" and spec["config"] == {} and spec["key"] is None
    dense, conv = spec["children"]
    assert dense == {"kind": "Dense", "config": {"features": 2, "use_bias": True, "w_l1": 0.0,
                                                 "w_l2": 0.0, "b_l1": 0.0, "b_l2": 0.0,
                                                 "dtype": "float32"},
                     "children": [], "key": "out"}
    assert conv["config"]["kernel_size"] == [1, 2]
    assert (conv["config"]["dtype"], conv["config"]["lowering"]) == ("float32", "auto")
    assert json.loads(json.dumps(spec)) == spec
    assert rebuilt(nn.serial(nn.named("out", nn.Dense(2)))).children[0].key == "out"


def test_softmax_rebuilt_is_the_fusable_softmax() -> None:
    again = rebuilt(nn.serial(nn.Dense(2), nn.Softmax()))
    assert nn.is_last_axis_softmax(again.children[-1])
    assert nn.without_output_softmax(again) is not None


def test_config_may_name_constructor_arguments_it_does_not_store() -> None:
    net = layer_from_spec({"kind": "Dense", "config": {"features": 2, "dtype": "float16"}})
    params, _ = nn.init_shapes(net, (3,))
    assert params["w"].dtype == jnp.float16


def test_user_layers_register_themselves() -> None:
    def Scale(factor: float) -> nn.Layer:
        return nn.parameter_free("Scale", lambda x: factor * x, {"factor": factor})

    with pytest.raises(LayerSpecError, match=r"serial\[1\]/Scale: layer kind 'Scale' cannot "
                       r"be described: no builder is registered"):
        layer_spec(nn.serial(nn.Dense(2), Scale(3.0)))
    register_layer("Scale", config_builder(Scale), replace=True)
    again = rebuilt(nn.serial(nn.Dense(2), Scale(3.0)))
    assert again.children[1].config == {"factor": 3.0}
    np.testing.assert_array_equal(again.children[1].apply({}, {}, jnp.ones(2))[0], [3.0, 3.0])
    with pytest.raises(ValueError, match="'Scale' is already registered; pass replace=True"):
        register_layer("Scale", config_builder(Scale))


def test_layers_that_cannot_be_described_are_named() -> None:
    custom = nn.Activation(jnp.sin, "Sine")
    with pytest.raises(LayerSpecError, match=r"^serial\[0\]/residual\[0\]/Sine: layer kind "
                       r"'Sine' cannot be described.*known kinds: AvgPool1D, "):
        layer_spec(nn.serial(nn.residual(custom)))
    odd_config = nn.parameter_free("ReLU", jax.nn.relu, {"fn": jax.nn.relu})
    with pytest.raises(LayerSpecError, match=r"^ReLU: cannot be described: its config.fn is "
                       r"a custom_jvp, not JSON data"):
        layer_spec(odd_config)
    # A layer named like a registered kind whose config does not rebuild it.
    impostor = nn.parameter_free("Dense", lambda x: x, {"units": 3})
    with pytest.raises(LayerSpecError, match=r"^serial\[0\]/Dense: cannot build Dense from "
                       r"config \{'units': 3\}.*unexpected keyword argument 'units'"):
        layer_spec(nn.serial(impostor))


@pytest.mark.parametrize(("spec", "pattern"), [
    ({"kind": "Dense2"}, r"^Dense2: unknown layer kind 'Dense2'; known kinds: AvgPool1D, "
     r"AvgPool2D, .*serial \(a layer of your own joins with funcnn.nn.registry.register_layer"),
    ({"kind": "serial", "children": [{"kind": "Dense", "config": {"features": 0}}]},
     r"^serial\[0\]/Dense: cannot build Dense from config \{'features': 0\} and 0 children: "
     r"Dense: features must be a positive int, got 0"),
    ({"kind": "serial", "children": [{"kind": "ReLU"}, {"config": {}}]},
     r"^serial\[1\]/\?: spec entry 'kind' must be a string, got None"),
    ({"kind": "serial", "children": [{"kind": "ReLU", "child": []}]},
     r"^serial\[0\]/ReLU: unknown spec entries \['child'\]"),
    ({"kind": "Dense", "config": [2]}, r"^Dense: spec entry 'config' must be a mapping"),
    ({"kind": "residual", "children": []},
     r"^residual: cannot build residual .*residual wraps exactly one layer, got 0"),
    ({"kind": "ReLU", "children": [{"kind": "ReLU"}]},
     r"^ReLU: cannot build ReLU .*takes no child layers, got 1"),
    ({"kind": "Dense", "config": {"features": 2}, "key": "a/b"},
     r"^Dense: cannot build Dense .*name must be a non-empty string without '/'"),
    ("serial", r"^\?: a layer spec must be a mapping with keys kind, config, children, key"),
])
def test_bad_specs_are_errors_naming_the_place(spec: Any, pattern: str) -> None:
    with pytest.raises(LayerSpecError, match=pattern):
        layer_from_spec(spec)


def test_a_padded_pair_network_round_trips() -> None:
    net = padded_net()
    again = rebuilt(net)
    assert layer_spec(again) == layer_spec(net)
    params, state = net.init(jax.random.key(0), ((3, 4), (3,)))
    x = (jax.random.normal(jax.random.key(1), (2, 3, 4)), jnp.array([[1, 1, 0], [1, 1, 1]], bool))
    np.testing.assert_array_equal(net.apply(params, state, x)[0], again.apply(params, state, x)[0])
