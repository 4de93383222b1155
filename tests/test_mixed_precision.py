"""Mixed precision: `Policy`, the `mixed_precision` wrapper and float16 loss scaling."""

from __future__ import annotations

import math
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn import optim
from funcnn.precision import Policy, cast_floating
from funcnn.training.step import softmax_output_body

BF16, F32 = jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)


def test_policy_names_and_jmp_strings() -> None:
    assert Policy.parse("mixed_bfloat16") == (F32, BF16, F32)
    assert Policy.parse("mixed_float16") == (F32, jnp.dtype(jnp.float16), F32)
    assert Policy.parse("float32") == (F32, F32, F32)
    spec = "params=float32,compute=bfloat16,output=float32"
    assert Policy.parse(spec) == Policy.parse("p=float32, c=bfloat16, o=float32")
    assert Policy.parse(Policy.parse(spec).describe()) == Policy.parse(spec)
    assert Policy.parse("p=float32,c=bfloat16").output_dtype == F32  # output = params


@pytest.mark.parametrize(("spec", "message"), [
    ("p=float32,c=int32", "compute_dtype must be a floating dtype, got int32"),
    ("p=float32,c=bogus", "compute_dtype 'bogus' is not a dtype"),
    ("p=float32", "names no compute_dtype"),
    ("params=float32;compute=bfloat16", "cannot read"),
    ("half", "cannot read 'half'"),
])
def test_bad_policies_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Policy.parse(spec)


def test_cast_floating_leaves_integers_alone() -> None:
    tree = {"w": jnp.ones((2,)), "ids": jnp.arange(3), "flag": jnp.bool_(True)}
    cast = cast_floating(tree, jnp.bfloat16)
    assert (cast["w"].dtype, cast["ids"].dtype, cast["flag"].dtype) == (
        BF16, tree["ids"].dtype, jnp.dtype(bool))


def _book_net() -> fn.Layer:
    return fn.serial(fn.Dense(8, w_l2=1e-3, b_init=fn.initializers.constant(0.1)), fn.ReLU(),
                     fn.Dense(3), fn.Softmax())


def _by_hand(params: Any, x: jax.Array) -> jax.Array:
    """The mixed_bfloat16 forward pass written out: bf16 layers, float32 softmax."""
    p = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    h = jnp.maximum(x.astype(jnp.bfloat16) @ p["0_dense"]["w"] + p["0_dense"]["b"][None], 0)
    logits = h @ p["2_dense"]["w"] + p["2_dense"]["b"][None]
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


def test_mixed_bfloat16_computes_in_bfloat16_and_keeps_float32_weights() -> None:
    net = fn.mixed_precision(_book_net(), "mixed_bfloat16")
    params, state = net.init(jax.random.key(0), (4,))
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {F32}
    x = jax.random.normal(jax.random.key(1), (6, 4))
    y, _ = net.apply(params, state, x)
    assert y.dtype == F32
    np.testing.assert_array_equal(y, _by_hand(params, x))
    labels = jnp.array([0, 1, 2, 0, 1, 2])

    def objective(p: Any, forward: Any) -> jax.Array:
        return jnp.mean(fn.losses.categorical_crossentropy(forward(p), labels))

    grads = jax.grad(objective)(params, lambda p: net.apply(p, state, x)[0])
    expected = jax.grad(objective)(params, lambda p: _by_hand(p, x))
    chex.assert_trees_all_equal_dtypes(grads, params)  # float32 gradients of masters
    chex.assert_trees_all_close(grads, expected, rtol=1e-6, atol=1e-7)
    # the wrapper changes no param key, penalty or summary row
    inner_params, _ = _book_net().init(jax.random.key(0), (4,))
    chex.assert_trees_all_equal_structs(params, inner_params)
    assert float(net.penalty(params)) == pytest.approx(1e-3 * float(
        jnp.sum(params["0_dense"]["w"] ** 2)))
    rows, _ = fn.summary_rows(net, (4,))
    assert [r.path for r in rows] == ["0_dense", "1_relu", "2_dense", "3_softmax"]


def test_the_step_fuses_softmax_and_loss_through_the_wrapper_in_float32() -> None:
    net = fn.mixed_precision(_book_net(), "mixed_bfloat16")
    body = softmax_output_body(net, fn.losses.categorical_crossentropy)
    assert body is not None and fn.policy_of(body) is not None
    params, state = net.init(jax.random.key(0), (4,))
    logits, _ = body.apply(params, state, jnp.ones((2, 4)))
    assert logits.dtype == F32
    assert softmax_output_body(net, fn.losses.mean_squared_error) is None


def test_state_keeps_its_own_dtype_under_the_policy() -> None:
    """A layer's running statistic made in float32 stays float32 under bfloat16 compute."""
    def init(key: Any, shape: tuple[int, ...]) -> tuple[Any, Any]:
        return {}, {"mean": jnp.zeros(shape[-1:], jnp.float32)}

    def apply(params: Any, state: Any, x: jax.Array, *, key: Any = None,
              train: bool = False) -> tuple[jax.Array, Any]:
        if not train:
            return x, state
        batch_mean = jnp.mean(x.astype(jnp.float32), axis=0)
        return x, {"mean": (0.9 * state["mean"] + 0.1 * batch_mean).astype(state["mean"].dtype)}

    net = fn.mixed_precision(fn.serial(fn.Layer(init, apply, name="Running"), fn.Dense(2)),
                             "mixed_bfloat16")
    params, state = net.init(jax.random.key(0), (3,))
    _, new_state = net.apply(params, state, jnp.ones((4, 3)), train=True)
    assert new_state["0_running"]["mean"].dtype == F32
    np.testing.assert_allclose(new_state["0_running"]["mean"], 0.1)


def test_fit_keeps_float32_masters_and_optimizer_moments_and_learns() -> None:
    x, y = fn.datasets.vertical(jax.random.key(0), samples=20, classes=3)  # 60 examples
    net = fn.mixed_precision(fn.serial(fn.Dense(32), fn.Tanh(), fn.Dense(3), fn.Softmax()),
                             "mixed_bfloat16")
    params, state = net.init(jax.random.key(1), (2,))
    result = fn.fit(net, params, state, optim.adam(0.02), fn.losses.categorical_crossentropy,
                    x, y, key=jax.random.key(0), epochs=60, batch_size=60,
                    metric=fn.metrics.categorical_accuracy, progress=False)
    assert {a.dtype for a in jax.tree.leaves(result.params)} == {F32}
    assert {a.dtype for a in jax.tree.leaves((result.opt_state.mu, result.opt_state.nu))} == {F32}
    assert result.history.loss[-1] < 0.5 * result.history.loss[0]
    assert result.history.skipped_steps == [] and result.history.loss_scale == []
    assert fn.predict(net, result.params, result.state, x).dtype == F32


# --- loss scaling -----------------------------------------------------------------------

PARAMS = {"w": jnp.array([1.0, -2.0, 3.0])}


def test_scaled_gradients_give_the_inner_optimizers_updates() -> None:
    grads = {"w": jnp.array([1e-3, -2e-4, 5e-2])}
    plain = optim.adam(0.1)
    scaled = optim.static_loss_scale(optim.adam(0.1), 1024.0)
    p_state, s_state = plain.init(PARAMS), scaled.init(PARAMS)
    for _ in range(3):
        p_upd, p_state = plain.update(grads, p_state, PARAMS)
        s_upd, s_state = scaled.update(jax.tree.map(lambda g: g * 1024.0, grads), s_state,
                                       PARAMS)
        np.testing.assert_array_equal(s_upd["w"], p_upd["w"])
    assert float(optim.loss_scale(s_state)) == 1024.0
    assert int(optim.skipped_steps(s_state)) == 0
    assert optim.loss_scale(p_state) is None and optim.skipped_steps(p_state) is None
    assert float(optim.learning_rate(s_state)) == pytest.approx(0.1)


def test_non_finite_steps_are_skipped_and_the_dynamic_scale_adapts() -> None:
    opt = optim.dynamic_loss_scale(optim.sgd(0.5, momentum=0.9), 8.0, period=2, factor=2.0,
                                   min_scale=2.0)
    state = opt.init(PARAMS)
    good = {"w": jnp.full((3,), 8.0)}  # scaled gradient 8 = unscaled 1
    bad = {"w": jnp.array([1.0, jnp.inf, 0.0])}
    figures = []
    for grads in (bad, bad, bad, good, good, good, bad):
        before = state.inner
        updates, state = opt.update(grads, state, PARAMS)
        if grads is bad:
            np.testing.assert_array_equal(updates["w"], 0.0)
            chex.assert_trees_all_equal(state.inner, before)
        figures.append((float(state.scale), int(state.good_steps), int(state.skipped)))
    # halved at each skip (not below 2), doubled after 2 finite steps in a row
    assert figures == [(4.0, 0, 1), (2.0, 0, 2), (2.0, 0, 3), (2.0, 1, 3), (4.0, 0, 3),
                       (4.0, 1, 3), (2.0, 0, 4)]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: optim.static_loss_scale(optim.sgd(), 0.5), "scale must be a finite number >= 1"),
    (lambda: optim.dynamic_loss_scale(optim.sgd(), period=0), "period must be a positive int"),
    (lambda: optim.dynamic_loss_scale(optim.sgd(), factor=1.0), "factor must be > 1"),
    (lambda: optim.dynamic_loss_scale(optim.sgd(), 2.0, min_scale=4.0),
     "initial must be a finite number >= 4"),
])
def test_bad_loss_scales_are_clear_errors(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_two_loss_scales_in_one_state_are_an_error() -> None:
    opt = optim.chain(optim.static_loss_scale(optim.sgd()), optim.static_loss_scale(optim.sgd()))
    with pytest.raises(ValueError, match="holds 2 loss scales"):
        optim.loss_scale(opt.init(PARAMS))


def test_fit_skips_overflowing_float16_steps_and_reports_them() -> None:
    """A scale of 2**40 overflows float16's backward pass: those steps are skipped (no
    NonFiniteLossError), the scale halves until the gradients fit, and training goes on."""
    x, y = fn.datasets.vertical(jax.random.key(0), samples=20, classes=3)  # 60 examples
    net = fn.mixed_precision(fn.serial(fn.Dense(32), fn.Tanh(), fn.Dense(3), fn.Softmax()),
                             "mixed_float16")
    params, state = net.init(jax.random.key(1), (2,))
    opt = optim.dynamic_loss_scale(optim.adam(0.05), 2.0**40)
    result = fn.fit(net, params, state, opt, fn.losses.categorical_crossentropy, x, y,
                    key=jax.random.key(0), epochs=40, batch_size=30, progress=False)
    history = result.history
    # 2 steps per epoch: both skipped at first; the output's cotangent, about
    # scale * 0.3 / 30, fits float16 (max 65504) once the scale is below ~2**22
    assert history.skipped_steps[:3] == [2.0, 2.0, 2.0]
    assert 2.0**10 <= history.loss_scale[-1] <= 2.0**22
    assert 40 - math.log2(history.loss_scale[-1]) == sum(history.skipped_steps)  # halvings
    assert int(optim.skipped_steps(result.opt_state)) == sum(history.skipped_steps)
    assert np.all(np.isfinite(history.loss)) and history.loss[-1] < 0.5 * history.loss[0]


def test_make_train_step_scales_the_loss_too() -> None:
    net = fn.mixed_precision(fn.serial(fn.Dense(4), fn.Tanh(), fn.Dense(2), fn.Softmax()),
                             "mixed_float16")
    params, state = net.init(jax.random.key(0), (3,))
    x, y = jax.random.normal(jax.random.key(1), (8, 3)), jnp.arange(8) % 2
    plain = fn.make_train_step(net, optim.sgd(0.1), fn.losses.categorical_crossentropy)
    scaled_opt = optim.static_loss_scale(optim.sgd(0.1), 2.0**12)
    scaled = fn.make_train_step(net, scaled_opt, fn.losses.categorical_crossentropy)
    p1, _, _, m1 = jax.jit(plain)(params, state, optim.sgd(0.1).init(params), x, y)
    p2, _, o2, m2 = jax.jit(scaled)(params, state, scaled_opt.init(params), x, y)
    assert float(m1.loss) == float(m2.loss)  # the reported loss is never scaled
    assert int(o2.skipped) == 0
    chex.assert_trees_all_close(p2, p1, rtol=0, atol=2e-5)  # float16 backward rounding
