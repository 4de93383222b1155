"""Networks and optimizers with the same structure share one compiled `fit` program, and
nothing else does: closures, layers of one's own, custom initializers and optax
transforms are told apart by identity. Every shared result is checked against a program
compiled for that object alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn as fn
from funcnn.optim.base import GradientTransformation
from funcnn.training.loop import run_epochs_jit

X = np.random.default_rng(0).normal(size=(96, 5)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int32)


def programs() -> int:
    """How many programs `fit`'s compiled epoch loop holds (jax's own cache count)."""
    return int(run_epochs_jit._cache_size())  # type: ignore[attr-defined]


def mlp(act: Callable[[], fn.Layer] = fn.Tanh) -> fn.Layer:
    return fn.serial(fn.Dense(8), act(), fn.Dense(2), fn.Softmax())


def train(net: fn.Layer, optimizer: Any) -> tuple[Any, int]:
    """Final params of a short fit from fixed params, and how many programs were added."""
    params, state = mlp().init(jax.random.key(0), (5,))
    before = programs()
    result = fn.fit(net, params, state, optimizer, fn.losses.categorical_crossentropy, X, Y,
                    key=jax.random.key(1), epochs=2, batch_size=32, progress=False)
    return result.params, programs() - before


def alone(optimizer: GradientTransformation) -> GradientTransformation:
    """The same optimizer behind a new update function, without a structure: a program of
    its own (what an optimizer written by hand is)."""

    def update(updates: Any, state: Any, params: Any = None) -> Any:
        return optimizer.update(updates, state, params)

    anonymous = GradientTransformation(optimizer.init, update)
    assert anonymous.structure is None
    return anonymous


def assert_same(a: Any, b: Any) -> None:
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_a_learning_rate_sweep_compiles_once_and_equals_separate_programs() -> None:
    rates = (1e-3, 1e-1)
    shared = [train(mlp(), fn.optim.adam(lr)) for lr in rates]
    assert shared[1][1] == 0  # the second rate reuses the first one's program
    for lr, (params, _) in zip(rates, shared, strict=True):
        own, added = train(mlp(), alone(fn.optim.adam(lr)))
        assert added == 1
        assert_same(params, own)  # the shared program is the right one for every rate
    assert not np.allclose(shared[0][0]["0_dense"]["w"], shared[1][0]["0_dense"]["w"])


@pytest.mark.parametrize(("first", "second"), [
    (fn.optim.sgd(0.1, momentum=0.5), fn.optim.sgd(0.9, momentum=0.9, decay=1e-3)),
    (fn.optim.adagrad(0.1), fn.optim.adagrad(0.5, eps=1e-3)),
    (fn.optim.chain(fn.optim.clip_by_global_norm(1.0), fn.optim.rmsprop(1e-3)),
     fn.optim.chain(fn.optim.clip_by_global_norm(5.0), fn.optim.rmsprop(1e-2, rho=0.5))),
    (fn.optim.static_loss_scale(fn.optim.adamw(1e-3), 8.0),
     fn.optim.static_loss_scale(fn.optim.adamw(1e-2), 64.0)),
], ids=["sgd", "adagrad", "clip_rmsprop", "loss_scale_adamw"])
def test_optimizers_differing_only_in_values_share_a_training_config(
        first: GradientTransformation, second: GradientTransformation) -> None:
    from funcnn.training.config import TrainConfig

    def config(optimizer: GradientTransformation) -> TrainConfig:
        return TrainConfig(mlp(), fn.losses.categorical_crossentropy, optimizer, None, 32,
                           True, 32, 1)

    assert first != second  # the objects differ (their init puts other values in the state)
    assert config(first) == config(second) and hash(config(first)) == hash(config(second))
    assert config(first) != config(alone(first))


def test_optax_transforms_never_share_a_program() -> None:
    first, added_first = train(mlp(), optax.adam(1e-3))
    second, added_second = train(mlp(), optax.adam(1e-1))
    assert (added_first, added_second) == (1, 1)
    assert not np.allclose(first["0_dense"]["w"], second["0_dense"]["w"])


def test_activations_of_other_functions_never_share_a_program() -> None:
    tanh_params, added_tanh = train(mlp(lambda: fn.Activation(jnp.tanh, "act")),
                                    fn.optim.adam(0.05))
    sin_params, added_sin = train(mlp(lambda: fn.Activation(jnp.sin, "act")),
                                  fn.optim.adam(0.05))
    assert (added_tanh, added_sin) == (1, 1)
    assert not np.allclose(tanh_params["0_dense"]["w"], sin_params["0_dense"]["w"])


def test_rebuilt_networks_share_and_custom_pieces_do_not() -> None:
    def conv_net(**dense: Any) -> fn.Layer:
        return fn.serial(fn.Conv1D(3, 2), fn.ReLU(), fn.MaxPool1D(), fn.Flatten(),
                         fn.BatchNorm(), fn.Dropout(0.1), fn.Dense(2, **dense), fn.Softmax())

    assert conv_net() == conv_net() and hash(conv_net()) == hash(conv_net())
    assert fn.LSTM(4) == fn.LSTM(4) and fn.LSTM(4) != fn.LSTM(4, reverse=True)
    assert fn.residual(fn.MultiHeadAttention(4, heads=2)) == fn.residual(
        fn.MultiHeadAttention(4, heads=2))
    assert fn.mixed_precision(mlp(), "mixed_bfloat16") == fn.mixed_precision(
        mlp(), "mixed_bfloat16") != fn.mixed_precision(mlp(), "mixed_float16")
    # settings, initializers, keys and functions that nothing can compare: all differ
    assert conv_net() != conv_net(w_l2=1e-3)
    assert conv_net() != conv_net(w_init=fn.initializers.he_normal())
    assert fn.Dense(2, b_init=fn.initializers.zeros) == fn.Dense(2)  # the default, by name
    assert fn.named("a", fn.Dense(2)) != fn.named("b", fn.Dense(2))
    assert fn.named("a", fn.Dense(2)) == fn.named("a", fn.Dense(2))
    assert fn.LSTM(4, w_init=fn.initializers.he_normal()) != fn.LSTM(4)
    assert fn.Embedding(3, vocab=5) != fn.Embedding(3, vocab=6)
    own = fn.Layer(fn.Dense(2).init, fn.Dense(2).apply, name="Dense")
    assert own != fn.Dense(2) and own.structure is None
    assert fn.serial(own).structure is None  # a serial over it is compared by identity
    assert fn.serial(own) != fn.serial(own)


def test_masked_and_user_optimizers_are_compared_by_identity() -> None:
    decay_all = fn.optim.adamw(1e-2)
    assert decay_all.structure is not None
    masked = fn.optim.adamw(1e-2, mask=lambda p: jax.tree.map(lambda a: a.ndim > 1, p))
    assert masked.structure is None
    assert fn.optim.masked(fn.optim.adam(), {"w": True}).structure is None
    assert fn.optim.chain(fn.optim.adam(), optax.scale(1.0)).structure is None
    scaled = fn.optim.dynamic_loss_scale(fn.optim.adam(1e-3))
    assert scaled.structure == fn.optim.dynamic_loss_scale(fn.optim.adam(1e-1)).structure
    assert scaled.structure != fn.optim.dynamic_loss_scale(fn.optim.adam(), period=10).structure
    assert fn.optim.scale(2.0).structure != fn.optim.scale(3.0).structure
