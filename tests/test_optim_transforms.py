"""chain, clip_by_global_norm, masked, freeze, scale; interoperation with optax both ways."""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import optim

F32 = jnp.float32
PARAMS = {"w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.asarray([0.1, -0.2])}
GRADS = {"w": jnp.asarray([[0.3, -0.1], [0.2, 0.4]]), "b": jnp.asarray([1.0, -0.5])}


def biases(params: Any) -> Any:
    return jax.tree.map(lambda x: jnp.ndim(x) == 1, params)


def gradient_steps(steps: int = 20) -> Any:
    """`steps` random gradient pytrees shaped like PARAMS, stacked on a leading axis."""
    rng = np.random.default_rng(7)
    return jax.tree.map(
        lambda p: jnp.asarray(3.0 * rng.standard_normal((steps, *p.shape)), F32), PARAMS
    )


def run(opt: Any, grads: Any, **extra_args: Any) -> tuple[Any, Any]:
    """Apply `opt` to each stacked gradient in turn (one compiled scan)."""

    def step(carry: Any, g: Any) -> tuple[Any, None]:
        params, state = carry
        updates, state = opt.update(g, state, params, **extra_args)
        return (optim.apply_updates(params, updates), state), None

    scan = jax.jit(lambda grads: jax.lax.scan(step, (PARAMS, opt.init(PARAMS)), grads)[0])
    return scan(grads)  # type: ignore[no-any-return]


def test_global_norm() -> None:
    tree = {"a": jnp.asarray([3.0, 4.0]), "b": {"c": jnp.asarray(12.0)}}
    assert float(optim.global_norm(tree)) == pytest.approx(13.0)


def test_clip_by_global_norm_numbers() -> None:
    clip = optim.clip_by_global_norm(1.0)
    state = clip.init({"a": jnp.zeros(2), "b": jnp.zeros(())})
    big = {"a": jnp.asarray([3.0, 0.0]), "b": jnp.asarray(4.0)}  # norm 5
    clipped, _ = clip.update(big, state)
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0], rtol=1e-6)
    assert float(clipped["b"]) == pytest.approx(0.8)
    small = {"a": jnp.asarray([0.3, 0.0]), "b": jnp.asarray(0.4)}  # norm 0.5: untouched
    chex.assert_trees_all_equal(clip.update(small, state)[0], small)
    zeros = {"a": jnp.zeros(2), "b": jnp.zeros(())}
    chex.assert_trees_all_equal(clip.update(zeros, state)[0], zeros)
    roomy = optim.replace_hyperparams(state, max_norm=10.0)
    chex.assert_trees_all_equal(clip.update(big, roomy)[0], big)


def test_clip_by_global_norm_matches_optax() -> None:
    grads = jax.tree.map(lambda g: g[0], gradient_steps(1))
    ours, _ = optim.clip_by_global_norm(2.0).update(grads, optim.clip_by_global_norm(2.0).init({}))
    reference, _ = optax.clip_by_global_norm(2.0).update(grads, optax.EmptyState())
    assert float(optim.global_norm(grads)) > 2.0
    chex.assert_trees_all_close(ours, reference, rtol=1e-6)
    with pytest.raises(ValueError, match=r"max_norm must be a finite number >= 0, got -1.0"):
        optim.clip_by_global_norm(-1.0)


def test_chain_runs_in_order() -> None:
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(0.5))
    state = opt.init(PARAMS)
    assert isinstance(state, tuple) and len(state) == 2
    updates, new_state = opt.update(GRADS, state)
    norm = float(optim.global_norm(GRADS))
    expected = jax.tree.map(lambda g: -0.5 * g / norm, GRADS)
    chex.assert_trees_all_close(updates, expected, rtol=1e-6)
    assert int(new_state[1].count) == 1


def test_chain_errors() -> None:
    with pytest.raises(TypeError, match="chain argument 1 must be a GradientTransformation"):
        optim.chain(optim.adam(), "sgd")  # type: ignore[arg-type]
    opt = optim.chain(optim.adam(), optim.scale(2.0))
    with pytest.raises(ValueError, match="chain of 2 transforms needs a tuple of 2 states"):
        opt.update(GRADS, (opt.init(PARAMS)[0],))


def test_chain_forwards_extra_args_only_to_transforms_that_take_them() -> None:
    seen: list[dict[str, Any]] = []

    def update(updates: Any, state: Any, params: Any = None, **extra_args: Any) -> Any:
        seen.append(extra_args)
        return updates, state

    recorder = optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)
    opt = optim.chain(optim.sgd(0.1), recorder)
    updates, _ = opt.update(GRADS, opt.init(PARAMS), PARAMS, loss=1.5)
    assert seen == [{"loss": 1.5}]
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g: -0.1 * g, GRADS))


def test_masked_transforms_only_selected_leaves() -> None:
    for mask in ({"w": True, "b": False}, lambda params: {"w": True, "b": False}):
        opt = optim.masked(optim.sgd(0.1, momentum=0.9), mask)
        state = opt.init(PARAMS)
        assert isinstance(state.inner_state.velocity["b"], optim.MaskedNode)
        assert state.inner_state.velocity["w"].shape == (2, 2)
        updates, state = opt.update(GRADS, state, PARAMS)
        np.testing.assert_allclose(updates["w"], -0.1 * GRADS["w"], rtol=1e-6)
        chex.assert_trees_all_equal(updates["b"], GRADS["b"])  # passed through untouched


def test_masked_matches_optax_masked() -> None:
    grads = gradient_steps()
    ours, _ = run(optim.masked(optim.adam(0.05), biases), grads)
    optax_adam = optax.adam(0.05, b1=F32(0.9), b2=F32(0.999), eps=1e-7)
    reference, _ = run(optax.masked(optax_adam, biases), grads)
    chex.assert_trees_all_close(ours, reference, rtol=1e-6, atol=1e-6)


def test_freeze_keeps_masked_parameters_fixed() -> None:
    for mask in ({"w": False, "b": True}, biases):
        opt = optim.chain(optim.adam(0.1), optim.freeze(mask))
        params, _ = run(opt, gradient_steps(5))
        chex.assert_trees_all_equal(params["b"], PARAMS["b"])
        assert not np.allclose(params["w"], PARAMS["w"])


def test_mask_errors() -> None:
    with pytest.raises(ValueError, match="mask does not match the structure of the updates"):
        optim.freeze({"w": True}).update(GRADS, optim.EmptyState())
    with pytest.raises(TypeError, match=r"mask leaves must be Python bools .* got str at 'b'"):
        optim.masked(optim.sgd(), {"w": True, "b": "no"}).init(PARAMS)
    with pytest.raises(TypeError, match="masked's inner must be a GradientTransformation"):
        optim.masked(0.1, biases)  # type: ignore[arg-type]


def test_scale_and_identity() -> None:
    doubled, _ = optim.scale(-2.0).update(GRADS, optim.EmptyState())
    chex.assert_trees_all_close(doubled, jax.tree.map(lambda g: -2.0 * g, GRADS))
    same, _ = optim.identity().update(GRADS, optim.identity().init(PARAMS))
    chex.assert_trees_all_equal(same, GRADS)
    with pytest.raises(TypeError, match="factor must be a real number, got str"):
        optim.scale("2")  # type: ignore[arg-type]


def _optax_adam() -> Any:
    return optax.adam(0.02, b1=F32(0.9), b2=F32(0.999), eps=1e-7)


def test_funcnn_optimizer_runs_inside_optax_chain() -> None:
    grads = gradient_steps()
    mixed = optax.chain(optax.clip_by_global_norm(1.0), optim.adam(0.02))
    pure = optax.chain(optax.clip_by_global_norm(1.0), _optax_adam())
    # optax.chain passes extra keyword arguments on; funcnn's update must not see them
    ours, state = run(mixed, grads, value=jnp.asarray(1.0))
    reference, _ = run(pure, grads)
    chex.assert_trees_all_close(ours, reference, rtol=1e-6, atol=1e-6)
    assert float(optim.learning_rate(state)) == pytest.approx(0.02)
    masked, _ = run(optax.masked(optim.adam(0.02), biases), grads)
    masked_ref, _ = run(optax.masked(_optax_adam(), biases), grads)
    chex.assert_trees_all_close(masked, masked_ref, rtol=1e-6, atol=1e-6)


def test_optax_transformations_run_inside_funcnn() -> None:
    grads = gradient_steps()
    ours, _ = run(optim.chain(optax.clip_by_global_norm(1.0), optim.adam(0.02)), grads)
    reference, _ = run(optax.chain(optax.clip_by_global_norm(1.0), _optax_adam()), grads)
    chex.assert_trees_all_close(ours, reference, rtol=1e-6, atol=1e-6)
    # a bare optax optimizer is a funcnn GradientTransformation too, field for field
    optax_plain, _ = run(_optax_adam(), grads)
    funcnn_plain, _ = run(optim.adam(0.02), grads)
    chex.assert_trees_all_close(optax_plain, funcnn_plain, rtol=1e-6, atol=1e-6)
    assert optim.GradientTransformation._fields == optax.GradientTransformation._fields
    frozen, _ = run(optim.chain(_optax_adam(), optim.freeze(biases)), grads)
    chex.assert_trees_all_equal(frozen["b"], PARAMS["b"])
