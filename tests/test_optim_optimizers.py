"""The book's optimizers against optax, their states, hyper-parameters and errors
(tests/test_optim_book.py: against a NumPy transcription of the book, per dtype)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import optim

F32 = jnp.float32
STEPS = 100


SHAPES = {"dense": {"w": (3, 4), "b": (4,)}, "conv": (2, 3, 2), "scale": ()}


def make_params(seed: int, dtype: Any = np.float32) -> Any:
    """A pytree of a few shapes (a matrix, a vector, a 3-d array, a scalar), N(0, 1)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda shape: jnp.asarray(rng.standard_normal(shape), dtype),
        SHAPES,
        is_leaf=lambda x: isinstance(x, tuple),
    )


def gradient_sequence(seed: int, params: Any, steps: int = STEPS) -> Any:
    """`steps` random gradient pytrees shaped like `params`, stacked on a leading axis."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.standard_normal((steps, *p.shape)), p.dtype), params
    )


def run(opt: Any, params: Any, grads: Any, apply: Callable[[Any, Any], Any]) -> tuple[Any, Any]:
    """Apply `opt` to each gradient in turn (one compiled scan); final params and state."""

    def step(carry: Any, g: Any) -> tuple[Any, None]:
        p, s = carry
        u, s = opt.update(g, s, p)
        return (apply(p, u), s), None

    @jax.jit
    def all_steps(params: Any, grads: Any) -> Any:
        return jax.lax.scan(step, (params, opt.init(params)), grads)[0]

    return all_steps(params, grads)  # type: ignore[no-any-return]


def assert_trees_close(actual: Any, expected: Any, atol: float, rtol: float = 0.0) -> None:
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=atol, rtol=rtol)


@pytest.fixture(scope="module")
def problem() -> tuple[Any, Any]:
    params = make_params(0)
    return params, gradient_sequence(1, params)


def no_bias(params: Any) -> Any:
    return jax.tree.map(lambda x: jnp.ndim(x) > 1, params)


# optax's Adam gets its betas as float32 arrays: it then takes `1 - b` of that float32 b in
# its averages and in its bias correction alike, an exact Adam for that b. Given Python
# floats, it averages with float32(1 - b) but corrects with float32(b), which at b2 = 0.999
# are 13 ppm apart (tests/test_trust_numerics.py measures both forms against float64).
OPTAX_EQUIVALENTS = {
    "sgd": (optim.sgd(0.05), optax.sgd(0.05)),
    "sgd_momentum": (optim.sgd(0.01, momentum=0.9), optax.sgd(0.01, momentum=0.9)),
    "sgd_nesterov": (
        optim.sgd(0.01, momentum=0.9, nesterov=True),
        optax.sgd(0.01, momentum=0.9, nesterov=True),
    ),
    "rmsprop": (
        optim.rmsprop(0.01, rho=0.95),
        optax.rmsprop(0.01, decay=0.95, eps=1e-7, eps_in_sqrt=False, initial_scale=0.0),
    ),
    "adam": (
        optim.adam(0.01, b1=0.8, b2=0.99),
        optax.adam(0.01, b1=F32(0.8), b2=F32(0.99), eps=1e-7, eps_root=0.0),
    ),
    "adam_defaults": (optim.adam(), optax.adam(1e-3, b1=F32(0.9), b2=F32(0.999), eps=1e-7)),
    "adamw": (
        optim.adamw(0.01, weight_decay=0.05),
        optax.adamw(0.01, b1=F32(0.9), b2=F32(0.999), eps=1e-7, weight_decay=0.05),
    ),
    "adamw_masked": (
        optim.adamw(0.01, weight_decay=0.05, mask=no_bias),
        optax.adamw(0.01, b1=F32(0.9), b2=F32(0.999), eps=1e-7, weight_decay=0.05, mask=no_bias),
    ),
    "adam_optax_schedule": (
        optim.adam(optax.cosine_decay_schedule(0.02, 80, alpha=0.1)),
        optax.adam(
            optax.cosine_decay_schedule(0.02, 80, alpha=0.1), b1=F32(0.9), b2=F32(0.999), eps=1e-7
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(OPTAX_EQUIVALENTS))
def test_matches_optax_over_100_steps(name: str, problem: tuple[Any, Any]) -> None:
    ours, reference = OPTAX_EQUIVALENTS[name]
    params, grads = problem
    ours_params, ours_state = run(ours, params, grads, optim.apply_updates)
    ref_params, _ = run(reference, params, grads, optax.apply_updates)
    assert int(ours_state.count) == STEPS
    moved = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(ours_params), jax.tree.leaves(params), strict=True)
    )
    assert moved > 0.01  # the runs really went somewhere
    assert_trees_close(ours_params, ref_params, atol=1e-6)


# held as the complements; get_hyperparams reads b1 and b2 off them
ADAM_BETAS = {"b1": 0.9, "b2": 0.999, "one_minus_b1": 0.1, "one_minus_b2": 1e-3}


@pytest.mark.parametrize(
    ("opt", "expected"),
    [
        (optim.sgd(), {"learning_rate": 1.0, "decay": 0.0}),
        (optim.sgd(momentum=0.5), {"learning_rate": 1.0, "decay": 0.0, "momentum": 0.5}),
        (optim.adagrad(), {"learning_rate": 1.0, "decay": 0.0, "eps": 1e-7}),
        (
            optim.rmsprop(),
            {"learning_rate": 1e-3, "decay": 0.0, "eps": 1e-7, "rho": 0.9, "one_minus_rho": 0.1},
        ),
        (optim.adam(), {"learning_rate": 1e-3, "decay": 0.0, "eps": 1e-7, **ADAM_BETAS}),
        (
            optim.adamw(),
            {"learning_rate": 1e-3, "decay": 0.0, "eps": 1e-7, **ADAM_BETAS, "weight_decay": 1e-4},
        ),
    ],
)
def test_book_defaults_live_in_the_state(opt: Any, expected: dict[str, float]) -> None:
    hyperparams = optim.get_hyperparams(opt.init({"w": jnp.zeros((2,))}))
    assert set(hyperparams) == set(expected)
    for name, value in expected.items():
        assert hyperparams[name].dtype == jnp.float32
        assert float(hyperparams[name]) == pytest.approx(value, rel=1e-7)


def test_plain_sgd_keeps_no_velocity_and_momentum_sgd_does() -> None:
    params = {"w": jnp.zeros((2, 3))}
    assert optim.sgd(0.1).init(params).velocity is None
    velocity = optim.sgd(0.1, momentum=0.9).init(params).velocity
    assert velocity["w"].shape == (2, 3)


@pytest.mark.parametrize(
    "opt",
    [optim.sgd(0.1, momentum=0.9), optim.adagrad(), optim.rmsprop(), optim.adam(), optim.adamw()],
    ids=["sgd", "adagrad", "rmsprop", "adam", "adamw"],
)
def test_count_is_int32_and_counts_updates(opt: Any) -> None:
    params = {"w": jnp.ones((3,))}
    state = opt.init(params)
    assert state.count.dtype == jnp.int32
    assert state.count.shape == ()
    update = jax.jit(opt.update)
    for expected in (1, 2, 3):
        _, state = update({"w": jnp.ones((3,))}, state, params)
        assert state.count.dtype == jnp.int32
        assert int(state.count) == expected


def test_count_saturates_instead_of_wrapping() -> None:
    opt = optim.sgd(0.1)
    top = np.iinfo(np.int32).max
    state = opt.init({"w": jnp.ones(())})._replace(count=jnp.asarray(top, jnp.int32))
    _, state = opt.update({"w": jnp.ones(())}, state)
    assert int(state.count) == top


def test_apply_updates_adds_and_keeps_none_leaves() -> None:
    params = {"w": jnp.asarray([1.0, 2.0]), "frozen": None}
    updates = {"w": jnp.asarray([0.5, -1.0]), "frozen": None}
    result = optim.apply_updates(params, updates)
    np.testing.assert_array_equal(result["w"], [1.5, 1.0])
    assert result["frozen"] is None


def test_apply_updates_rejects_mismatches() -> None:
    params = {"w": jnp.ones((3,))}
    with pytest.raises(ValueError, match="update at 'w' has shape \\(1,\\), but the parameter"):
        optim.apply_updates(params, {"w": jnp.ones((1,))})
    with pytest.raises(ValueError, match="do not match the structure of params"):
        optim.apply_updates(params, {"v": jnp.ones((3,))})


def test_update_rejects_gradients_of_the_wrong_shape() -> None:
    opt = optim.adam()
    state = opt.init({"dense": {"w": jnp.ones((3, 4))}})
    with pytest.raises(ValueError, match="updates at 'dense/w' have shape \\(4, 3\\)"):
        opt.update({"dense": {"w": jnp.ones((4, 3))}}, state)
    with pytest.raises(ValueError, match="do not match the structure of the Adam first moment"):
        opt.update({"dense": {"v": jnp.ones((3, 4))}}, state)


def test_adamw_decays_only_selected_weights() -> None:
    params = {"w": jnp.full((2, 2), 2.0), "b": jnp.full((2,), 2.0)}
    grads = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    plain, _ = jax.jit(optim.adam(0.1).update)(grads, optim.adam(0.1).init(params), params)
    for mask in (no_bias, {"w": True, "b": False}):
        opt = optim.adamw(0.1, weight_decay=0.5, mask=mask)
        updates, _ = jax.jit(opt.update)(grads, opt.init(params), params)
        np.testing.assert_allclose(updates["b"], plain["b"], rtol=1e-7)
        np.testing.assert_allclose(updates["w"], plain["w"] - 0.1 * 0.5 * 2.0, rtol=1e-6)


def test_adamw_errors() -> None:
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    opt = optim.adamw()
    with pytest.raises(ValueError, match="adamw needs the parameters"):
        opt.update(params, opt.init(params))
    with pytest.raises(ValueError, match="mask does not match the structure of the params"):
        optim.adamw(mask={"w": True}).init(params)
    with pytest.raises(TypeError, match=r"mask leaves must be Python bools .* at 'b'"):
        optim.adamw(mask={"w": True, "b": jnp.asarray(True)}).init(params)


BAD_HYPERPARAMETERS: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (lambda: optim.sgd(-1.0), ValueError, r"learning_rate must be a finite number >= 0, got -1.0"),
    (lambda: optim.adam(float("nan")), ValueError, r"learning_rate must be a finite number"),
    (lambda: optim.sgd("0.1"), TypeError, r"learning_rate must be a number, a scalar array or a"),
    (lambda: optim.sgd(jnp.ones(2)), ValueError, r"learning_rate must be a scalar, got .* \(2,\)"),
    (lambda: optim.sgd(True), TypeError, r"learning_rate must be a number"),
    (lambda: optim.sgd(decay=-0.1), ValueError, r"decay must be a finite number >= 0, got -0.1"),
    (lambda: optim.adam(decay=-1.0), ValueError, r"decay must be a finite number >= 0"),
    (lambda: optim.sgd(momentum=1.0), ValueError, r"momentum must be in \[0, 1\), got 1.0"),
    (lambda: optim.sgd(momentum=-0.1), ValueError, r"momentum must be in \[0, 1\), got -0.1"),
    (lambda: optim.sgd(nesterov=True), ValueError, r"nesterov=True needs a momentum"),
    (lambda: optim.sgd(momentum=0.9, nesterov=1), TypeError, r"nesterov must be a bool"),
    (lambda: optim.rmsprop(rho=1.0), ValueError, r"rho must be in \[0, 1\), got 1.0"),
    (lambda: optim.rmsprop(rho=-0.5), ValueError, r"rho must be in \[0, 1\), got -0.5"),
    (lambda: optim.adam(b1=1.0), ValueError, r"b1 must be in \[0, 1\), got 1.0"),
    (lambda: optim.adam(b2=1.5), ValueError, r"b2 must be in \[0, 1\), got 1.5"),
    (lambda: optim.adamw(b2=-0.1), ValueError, r"b2 must be in \[0, 1\)"),
    (lambda: optim.adagrad(eps=-1e-7), ValueError, r"eps must be a finite number >= 0"),
    (lambda: optim.adamw(weight_decay=-1e-4), ValueError, r"weight_decay must be a finite num"),
    (lambda: optim.adam(eps="small"), TypeError, r"eps must be a real number or a scalar array"),
    (lambda: optim.adam(b1=jnp.asarray(0.5j)), TypeError, r"b1 must be a real number, got dtype"),
    (
        lambda: optim.adam(optim.constant(0.1), decay=1e-3),
        ValueError,
        r"decay must be 0 when learning_rate is a schedule",
    ),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_are_named(
    make: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make()
