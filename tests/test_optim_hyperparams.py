"""Hyper-parameters as state leaves: read, replaced without recompiling, swept with vmap."""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim

PARAMS = {"w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.asarray([0.1, -0.2])}
GRADS = {"w": jnp.asarray([[0.3, -0.1], [0.2, 0.4]]), "b": jnp.asarray([1.0, -0.5])}


def test_learning_rate_reads_plain_chained_and_masked_states() -> None:
    opt = optim.adam(0.05, decay=0.5)
    state = opt.init(PARAMS)
    assert float(optim.learning_rate(state)) == pytest.approx(0.05)
    _, state = opt.update(GRADS, state)
    assert float(optim.learning_rate(state)) == pytest.approx(0.05 / 1.5)

    chained = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(0.2, decay=1.0))
    chain_state = chained.init(PARAMS)
    _, chain_state = chained.update(GRADS, chain_state)
    _, chain_state = chained.update(GRADS, chain_state)
    assert float(optim.learning_rate(chain_state)) == pytest.approx(0.2 / 3.0)

    masked = optim.masked(optim.rmsprop(0.01), {"w": True, "b": False})
    assert float(optim.learning_rate(masked.init(PARAMS))) == pytest.approx(0.01)


def test_learning_rate_reads_optax_inject_hyperparams_states() -> None:
    import optax

    injected = optax.inject_hyperparams(optax.adam)(learning_rate=0.25)
    assert float(optim.learning_rate(injected.init(PARAMS))) == 0.25
    chained = optax.chain(optax.clip(1.0), injected).init(PARAMS)
    assert float(optim.learning_rate(chained)) == 0.25
    with pytest.raises(ValueError, match="holds no optimizer with a learning rate"):
        optim.learning_rate(optax.adam(0.1).init(PARAMS))


def test_learning_rate_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"holds no optimizer with a learning rate \(a funcnn "
                                         r"optimizer, or optax's inject_hyperparams\)"):
        optim.learning_rate(optim.clip_by_global_norm(1.0).init(PARAMS))
    two = optim.chain(optim.adam(), optim.sgd()).init(PARAMS)
    with pytest.raises(ValueError, match=r"holds 2 learning rates \(at '0', '1'\)"):
        optim.learning_rate(two)
    assert float(optim.learning_rate(two[1])) == 1.0


def test_learning_rate_with_a_schedule_is_the_next_scheduled_value() -> None:
    schedule = optim.piecewise_constant([2], [0.5, 0.1])
    opt = optim.sgd(schedule)
    state = opt.init(PARAMS)
    seen = []
    for _ in range(4):
        seen.append(float(optim.learning_rate(state)))
        updates, state = opt.update(GRADS, state)
        np.testing.assert_allclose(updates["b"], -seen[-1] * GRADS["b"], rtol=1e-6)
    np.testing.assert_allclose(seen, [0.5, 0.5, 0.1, 0.1], rtol=1e-6)


def test_replace_hyperparams_takes_effect_and_leaves_the_old_state_alone() -> None:
    opt = optim.adam(0.1)
    state = opt.init(PARAMS)
    _, state = opt.update(GRADS, state)
    faster = optim.replace_hyperparams(state, learning_rate=0.3, b1=0.5)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1)
    assert float(faster.hyperparams["one_minus_b1"]) == 0.5  # b1 is held as 1 - b1
    assert faster.hyperparams["learning_rate"].dtype == jnp.float32
    chex.assert_trees_all_equal(faster.mu, state.mu)
    assert int(faster.count) == 1

    reference = optim.adam(0.3, b1=0.5)
    ref_state = reference.init(PARAMS)._replace(mu=state.mu, nu=state.nu, count=state.count)
    expected, _ = reference.update(GRADS, ref_state)
    actual, _ = opt.update(GRADS, faster)
    chex.assert_trees_all_close(actual, expected, rtol=1e-7)


def test_replace_hyperparams_in_a_chain_finds_the_holder() -> None:
    chained = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(0.2, momentum=0.9))
    state = optim.replace_hyperparams(chained.init(PARAMS), max_norm=3.0, momentum=0.5)
    assert float(state[0].hyperparams["max_norm"]) == 3.0
    assert float(state[1].hyperparams["momentum"]) == 0.5
    assert set(optim.get_hyperparams(state)) == {"max_norm", "learning_rate", "decay", "momentum"}


def test_replace_hyperparams_errors() -> None:
    state = optim.adam().init(PARAMS)
    with pytest.raises(ValueError, match=r"no hyper-parameter 'beta1'; it has \['b1', 'b2',"):
        optim.replace_hyperparams(state, beta1=0.5)
    with pytest.raises(ValueError, match=r"b2 must be in \[0, 1\), got 1.0"):
        optim.replace_hyperparams(state, b2=1.0)
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number >= 0, got -0.1"):
        optim.replace_hyperparams(state, learning_rate=-0.1)
    with pytest.raises(ValueError, match=r"learning_rate must have shape \(\) like the value it"):
        optim.replace_hyperparams(state, learning_rate=jnp.ones(3))
    with pytest.raises(TypeError, match="eps must be a real number or a scalar array, got str"):
        optim.replace_hyperparams(state, eps="tiny")
    with pytest.raises(ValueError, match="no hyper-parameter 'momentum'"):
        optim.replace_hyperparams(optim.sgd().init(PARAMS), momentum=0.9)
    two = optim.chain(optim.adam(), optim.sgd()).init(PARAMS)
    with pytest.raises(ValueError, match="'learning_rate' is held by 2 sub-states"):
        optim.replace_hyperparams(two, learning_rate=0.1)
    scheduled = optim.adam(optim.constant(0.1)).init(PARAMS)
    with pytest.raises(ValueError, match="learning_rate is set by a schedule in this state"):
        optim.replace_hyperparams(scheduled, learning_rate=0.1)
    with pytest.raises(ValueError, match="scheduled_learning_rate is computed by the schedule"):
        optim.replace_hyperparams(scheduled, scheduled_learning_rate=0.1)


def test_get_hyperparams_rejects_a_name_held_twice() -> None:
    two = optim.chain(optim.adam(), optim.sgd()).init(PARAMS)
    with pytest.raises(ValueError, match="'learning_rate' is held at both '0' and '1'"):
        optim.get_hyperparams(two)


@pytest.mark.parametrize(
    ("opt", "changes"),
    [
        (optim.sgd(0.1, momentum=0.9), {"learning_rate": 0.3, "momentum": 0.5, "decay": 0.1}),
        (optim.adagrad(0.1), {"learning_rate": 0.3, "eps": 1e-3}),
        (optim.rmsprop(0.1), {"learning_rate": 0.3, "rho": 0.5}),
        (optim.adamw(0.1), {"learning_rate": 0.3, "b1": 0.5, "b2": 0.9, "weight_decay": 0.1}),
        (optim.chain(optim.clip_by_global_norm(0.5), optim.sgd(0.1)), {"max_norm": 2.0}),
    ],
    ids=["sgd", "adagrad", "rmsprop", "adamw", "clip+sgd"],
)
def test_new_values_take_effect_without_recompiling(opt: Any, changes: dict[str, float]) -> None:
    update = jax.jit(chex.assert_max_traces(opt.update, n=1))
    state = opt.init(PARAMS)
    before, _ = update(GRADS, state, PARAMS)
    again, _ = update(GRADS, state, PARAMS)
    changed, new_state = update(GRADS, optim.replace_hyperparams(state, **changes), PARAMS)
    chex.assert_trees_all_equal(before, again)
    assert not np.allclose(changed["w"], before["w"])
    for name, value in changes.items():
        assert float(optim.get_hyperparams(new_state)[name]) == pytest.approx(value)


def _train(opt: Any, state: Any, steps: int = 25) -> tuple[Any, Any]:
    """`steps` updates on a least-squares problem from PARAMS; returns (params, state)."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((16, 2)), jnp.float32)
    y = x @ jnp.asarray([[2.0, -1.0], [0.5, 1.5]]) + jnp.asarray([[0.3, -0.7]])

    def loss(params: Any) -> Any:
        return jnp.mean((x @ params["w"] + params["b"].reshape(1, -1) - y) ** 2)

    def step(carry: Any, _: Any) -> tuple[Any, None]:
        params, state = carry
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        return (optim.apply_updates(params, updates), state), None

    return jax.lax.scan(step, (PARAMS, state), None, length=steps)[0]


LEARNING_RATES = jnp.asarray([0.001, 0.01, 0.05, 0.2])


@pytest.mark.parametrize(
    ("make", "build"),
    [
        (lambda lr: optim.adam(lr, decay=0.01), "construct"),
        (lambda lr: optim.sgd(lr, momentum=0.9), "construct"),
        (lambda lr: optim.rmsprop(lr), "replace"),
    ],
    ids=["adam-built-under-vmap", "sgd-momentum-built-under-vmap", "rmsprop-replaced-under-vmap"],
)
def test_vmap_sweep_over_learning_rates_equals_separate_runs(make: Any, build: str) -> None:
    template = make(1.0)

    def sweep_one(lr: Any) -> tuple[Any, Any]:
        if build == "construct":
            state = make(lr).init(PARAMS)
        else:
            state = optim.replace_hyperparams(template.init(PARAMS), learning_rate=lr)
        return _train(template, state)

    swept_params, swept_state = jax.jit(jax.vmap(sweep_one))(LEARNING_RATES)
    assert swept_state.hyperparams["learning_rate"].shape == (4,)
    np.testing.assert_allclose(
        jax.vmap(optim.learning_rate)(swept_state),
        [optim.learning_rate(jax.tree.map(lambda x, i=i: x[i], swept_state)) for i in range(4)],
    )
    for index, lr in enumerate(LEARNING_RATES.tolist()):
        opt = make(lr)
        separate_params, _ = jax.jit(lambda s, opt=opt: _train(opt, s))(opt.init(PARAMS))
        for swept, separate in zip(
            jax.tree.leaves(swept_params), jax.tree.leaves(separate_params), strict=True
        ):
            np.testing.assert_allclose(swept[index], separate, rtol=1e-5, atol=1e-6)
    final_w = np.asarray(swept_params["w"])
    assert not np.allclose(final_w[0], final_w[3], atol=1e-2)  # the rates made a difference


def test_replace_on_a_batched_state_checks_every_value() -> None:
    batched = jax.vmap(lambda lr: optim.adam(lr).init(PARAMS))(LEARNING_RATES)
    changed = optim.replace_hyperparams(batched, learning_rate=jnp.asarray([0.1, 0.2, 0.3, 0.4]))
    np.testing.assert_allclose(changed.hyperparams["learning_rate"], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number >= 0, got -0.2"):
        optim.replace_hyperparams(batched, learning_rate=jnp.asarray([0.1, -0.2, 0.3, 0.4]))
