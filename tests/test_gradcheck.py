"""The gradient checker (book chapter 7): it passes correct gradients, finds wrong ones
(and names the leaf), and validates its input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn import losses
from funcnn.typing import Array, Params

RNG = np.random.default_rng(0)
W = jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)
B = jnp.asarray(RNG.normal(size=(3,)), jnp.float32) + 1.0


def wrong_gradient(bias_factor: float) -> jax.custom_vjp[Array]:
    """`sum(sin(w)) + sum(b^2)` whose backward pass scales b's gradient by `bias_factor`."""

    @jax.custom_vjp
    def f(w: Array, b: Array) -> Array:
        return jnp.sum(jnp.sin(w)) + jnp.sum(b**2)

    def fwd(w: Array, b: Array) -> tuple[Array, tuple[Array, Array]]:
        return f(w, b), (w, b)

    def bwd(res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
        w, b = res
        return g * jnp.cos(w), g * 2 * b * bias_factor

    f.defvjp(fwd, bwd)
    return f


def as_loss(inner: jax.custom_vjp[Array]) -> object:
    def loss(params: Params) -> Array:
        return inner(params["layer"]["w"], params["layer"]["b"])

    return loss


PARAMS = {"layer": {"w": W, "b": B}}


def test_passes_on_a_correct_custom_vjp() -> None:
    result = fn.check_gradients(as_loss(wrong_gradient(1.0)), PARAMS)  # type: ignore[arg-type]
    assert set(result.errors) == {"layer/w", "layer/b"}
    assert result.max_error < 5e-3
    result.assert_close(5e-3)


def test_detects_a_wrong_custom_vjp_and_names_the_leaf() -> None:
    result = fn.check_gradients(as_loss(wrong_gradient(1.5)), PARAMS)  # type: ignore[arg-type]
    # |1.5 g - g| / max(|1.5 g|, |g|) = 1/3 on every coordinate of b
    np.testing.assert_allclose(result.errors["layer/b"], 1 / 3, rtol=1e-2)
    assert result.errors["layer/w"] < 5e-3
    assert result.worst_leaf == "layer/b"
    assert result.max_error == result.errors["layer/b"]
    with pytest.raises(AssertionError, match=r"gradient check failed: layer/b has relative "
                                             r"error 0.33\d* > 0.01"):
        result.assert_close(1e-2)


NET = fn.serial(fn.Dense(5), fn.Tanh(), fn.Dense(3), fn.Softmax())


def mlp_loss(params: Params, x: Array, y: Array) -> Array:
    probs, _ = NET.apply(params, {}, x)
    return losses.mean(losses.categorical_crossentropy(probs, y))


def test_passes_on_a_network_with_extra_arguments_in_float64() -> None:
    with jax.enable_x64(True):
        shapes = {"0_dense": {"w": (4, 5), "b": (5,)}, "2_dense": {"w": (5, 3), "b": (3,)}}
        params = jax.tree.map(lambda shape: jnp.asarray(RNG.normal(scale=0.5, size=shape)),
                              shapes, is_leaf=lambda s: isinstance(s, tuple))
        x = jnp.asarray(RNG.normal(size=(8, 4)))
        y = jnp.array([0, 1, 2, 0, 1, 2, 0, 1])
        result = fn.check_gradients(mlp_loss, params, x, y)
        assert set(result.errors) == {"0_dense/w", "0_dense/b", "2_dense/w", "2_dense/b"}
        result.assert_close(1e-4)  # float64 central differences: errors ~1e-6 at worst


def test_float64_is_precise_enough_to_see_a_tiny_error() -> None:
    """A gradient 1e-5 too large is below float32 noise but plain in float64."""
    slightly_wrong = as_loss(wrong_gradient(1.0 + 1e-5))
    in_float32 = fn.check_gradients(slightly_wrong, PARAMS)  # type: ignore[arg-type]
    in_float32.assert_close(5e-3)
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), PARAMS)
        correct = fn.check_gradients(as_loss(wrong_gradient(1.0)),  # type: ignore[arg-type]
                                     params64)
        assert correct.max_error < 1e-8
        wrong = fn.check_gradients(slightly_wrong, params64)  # type: ignore[arg-type]
        assert wrong.worst_leaf == "layer/b"
        np.testing.assert_allclose(wrong.errors["layer/b"], 1e-5, rtol=1e-3)
        with pytest.raises(AssertionError, match=r"layer/b has relative error 1e-05"):
            wrong.assert_close(1e-7)


def one_wrong_coordinate(index: int) -> object:
    """`sum(sin(v))` over a 10-vector, with the gradient of coordinate `index` doubled."""

    @jax.custom_vjp
    def f(v: Array) -> Array:
        return jnp.sum(jnp.sin(v))

    def bwd(v: Array, g: Array) -> tuple[Array]:
        grad = g * jnp.cos(v)
        return (grad.at[index].multiply(2.0),)

    f.defvjp(lambda v: (f(v), v), bwd)
    return lambda params: f(params["v"]) + jnp.sum(jnp.sin(params["small"]))


def test_max_coords_per_leaf_checks_a_keyed_subset_of_large_leaves() -> None:
    params = {"v": jnp.linspace(-1.0, 1.0, 10), "small": jnp.array([0.1, 0.2, 0.3])}
    loss = one_wrong_coordinate(7)
    full = fn.check_gradients(loss, params)  # type: ignore[arg-type]
    np.testing.assert_allclose(full.errors["v"], 0.5, rtol=1e-2)
    everything = fn.check_gradients(loss, params, max_coords_per_leaf=10)  # type: ignore[arg-type]
    assert everything.errors == full.errors
    same_key = fn.check_gradients(loss, params,  # type: ignore[arg-type]
                                  max_coords_per_leaf=5, key=jax.random.key(0))
    found = []
    for seed in range(8):
        subset = fn.check_gradients(loss, params,  # type: ignore[arg-type]
                                    max_coords_per_leaf=5, key=jax.random.key(seed))
        if seed == 0:
            assert subset.errors == same_key.errors  # same key, same coordinates
        assert subset.errors["small"] < 5e-3  # leaves at or under the limit are fully checked
        found.append(subset.errors["v"] > 0.4)
    # 5 of 10 coordinates: the wrong one is in some subsets and not in others.
    assert 0 < sum(found) < len(found), found


def test_without_a_key_the_subset_is_the_same_every_time() -> None:
    params = {"v": jnp.linspace(-1.0, 1.0, 10), "small": jnp.array([0.1, 0.2, 0.3])}
    loss = one_wrong_coordinate(2)
    first = fn.check_gradients(loss, params, max_coords_per_leaf=3)  # type: ignore[arg-type]
    for _ in range(2):
        again = fn.check_gradients(loss, params, max_coords_per_leaf=3)  # type: ignore[arg-type]
        assert again.errors == first.errors


def test_nan_gradient_is_never_hidden_behind_a_finite_error() -> None:
    params = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([0.5, 1.0])}

    def loss(p: Params) -> Array:  # sqrt at 0: infinite gradient, NaN finite difference
        return jnp.sum(p["a"] ** 3) + jnp.sum(jnp.sqrt(p["b"] - 0.5))

    result = fn.check_gradients(loss, params)
    assert result.worst_leaf == "b"
    assert np.isnan(result.max_error)
    with pytest.raises(AssertionError, match=r"b has relative error nan"):
        result.assert_close(1.0)


def test_zero_gradients_compare_absolutely_through_the_floor() -> None:
    result = fn.check_gradients(lambda p: jnp.sum(p**2), jnp.zeros(4))
    assert result.errors == {"<root>": 0.0}
    assert result.worst_leaf == "<root>"


def test_input_errors() -> None:
    with pytest.raises(ValueError, match=r"check_gradients: f must return a scalar, got shape "
                                         r"\(3,\)"):
        fn.check_gradients(lambda p: p["w"] * 2.0, {"w": jnp.ones(3)})
    with pytest.raises(ValueError, match=r"check_gradients: params have no array leaves"):
        fn.check_gradients(lambda p: jnp.zeros(()), {})
    with pytest.raises(TypeError, match=r"check_gradients: params must be floating-point, "
                                        r"got int32"):
        fn.check_gradients(lambda p: jnp.sum(p["w"]), {"w": jnp.array([1, 2])})
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match=r"check_gradients: max_coords_per_leaf must be a "
                                             r"positive int or None, got"):
            fn.check_gradients(lambda p: jnp.sum(p), jnp.ones(3),
                               max_coords_per_leaf=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"check_gradients: eps must be a finite number > 0, "
                                         r"got 0.0"):
        fn.check_gradients(lambda p: jnp.sum(p), jnp.ones(3), eps=0.0)
    with pytest.raises(ValueError, match=r"check_gradients: floor must be a finite number > 0, "
                                         r"got -1.0"):
        fn.check_gradients(lambda p: jnp.sum(p), jnp.ones(3), floor=-1.0)


def training_objective_parts() -> tuple[fn.Layer, fn.Layer, Params, Array, Array]:
    """A 4-6-3 tanh net ending in Softmax with L2 penalties on both Dense layers, its body
    without the Softmax (same params), float64 params and a batch of 16."""
    glorot, tenth = fn.initializers.glorot_normal(), fn.initializers.constant(0.1)
    hidden = fn.Dense(6, w_l2=1e-2, b_l2=5e-3, w_init=glorot, b_init=tenth, dtype=jnp.float64)
    out = fn.Dense(3, w_l2=2e-2, b_l2=1e-3, w_init=glorot, b_init=tenth, dtype=jnp.float64)
    net = fn.serial(hidden, fn.Tanh(), out, fn.Softmax())
    body = fn.serial(hidden, fn.Tanh(), out)
    params, _ = net.init(jax.random.key(4), (4,))
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(16, 4)))
    y = jnp.asarray(rng.integers(0, 3, size=16))
    return net, body, params, x, y


@pytest.mark.parametrize("form", ["softmax_then_cce", "fused_softmax_cce"])
def test_whole_training_objective_matches_finite_differences_to_1e_8(form: str) -> None:
    """`mean(cce(net(x), y)) + net.penalty(params)` in float64, w.r.t. every param, at a
    smooth point: tanh has no kink and every probability is far from the clip (1e-7), so
    the book's clipped-log gradient is the true one. The fused form (the body's logits
    through `softmax_categorical_crossentropy`, as `fit` trains such a net) has the same
    value and, with its custom JVP, the same gradient."""
    with jax.enable_x64(True):
        net, body, params, x, y = training_objective_parts()
        assert {a.dtype for a in jax.tree.leaves(params)} == {jnp.dtype(jnp.float64)}

        def objective(p: Params) -> Array:
            if form == "softmax_then_cce":
                data = losses.categorical_crossentropy(net.apply(p, {}, x)[0], y)
            else:
                data = losses.softmax_categorical_crossentropy(body.apply(p, {}, x)[0], y)
            return data.mean() + net.penalty(p)

        probs, penalty, value, grads = jax.jit(lambda p: (
            net.apply(p, {}, x)[0], net.penalty(p), *jax.value_and_grad(objective)(p)))(params)
        probs = np.asarray(probs)
        assert probs.dtype == np.float64 and value.dtype == jnp.float64
        assert probs.min() > 1e-3 and probs.max() < 1 - 1e-3  # clip 1e-7: far away
        assert penalty > 1e-3  # the penalties are part of the objective
        expected = -np.mean(np.log(probs[np.arange(16), np.asarray(y)])) + float(penalty)
        np.testing.assert_allclose(float(value), expected, rtol=1e-14)
        # a central difference errs by about 2e-16 |f| / eps (rounding) plus eps^2 |f'''| / 6
        # (truncation): at eps = 2e-5 about 3e-11 here, against gradients of at least 2e-3
        result = fn.check_gradients(objective, params, eps=2e-5)
        assert set(result.errors) == {"0_dense/w", "0_dense/b", "2_dense/w", "2_dense/b"}
        assert min(float(jnp.min(jnp.abs(g))) for g in jax.tree.leaves(grads)) > 1e-3
        result.assert_close(1e-8)
