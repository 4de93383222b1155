"""Learning-rate schedules: hand-computed values, optax's schedules, use in optimizers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import optim

COUNTS = jnp.arange(0, 130, dtype=jnp.int32)


def values(schedule: Callable[[Any], Any], counts: list[int]) -> list[float]:
    return [float(schedule(jnp.asarray(t, jnp.int32))) for t in counts]


def test_inverse_time_decay_is_the_books_decay() -> None:
    schedule = optim.inverse_time_decay(1.0, 0.1)
    np.testing.assert_allclose(values(schedule, [0, 1, 2, 10]), [1.0, 1 / 1.1, 1 / 1.2, 0.5])


def test_exponential_decay_values() -> None:
    smooth = optim.exponential_decay(0.1, 10, 0.5)
    stairs = optim.exponential_decay(0.1, 10, 0.5, staircase=True)
    np.testing.assert_allclose(values(smooth, [0, 10, 15, 20]), [0.1, 0.05, 0.1 * 0.5**1.5, 0.025])
    np.testing.assert_allclose(values(stairs, [0, 9, 10, 15, 20]), [0.1, 0.1, 0.05, 0.05, 0.025])


def test_cosine_decay_values() -> None:
    schedule = optim.cosine_decay(1.0, 100, alpha=0.1)
    expected = [1.0, 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2, 0.55, 0.1, 0.1]
    np.testing.assert_allclose(values(schedule, [0, 25, 50, 100, 150]), expected, rtol=1e-6)


def test_linear_warmup_values() -> None:
    flat = optim.linear_warmup(1.0, 10)
    np.testing.assert_allclose(values(flat, [0, 5, 9, 10, 50]), [0.0, 0.5, 0.9, 1.0, 1.0])
    from_low = optim.linear_warmup(1.0, 4, init_value=0.2)
    np.testing.assert_allclose(values(from_low, [0, 2, 4]), [0.2, 0.6, 1.0])
    then = optim.linear_warmup(1.0, 10, optim.piecewise_constant([5], [1.0, 0.1]))
    np.testing.assert_allclose(values(then, [5, 10, 14, 15, 40]), [0.5, 1.0, 1.0, 0.1, 0.1])
    none = optim.linear_warmup(0.3, 0, optim.inverse_time_decay(0.3, 1.0))
    np.testing.assert_allclose(values(none, [0, 1]), [0.3, 0.15])


def test_piecewise_constant_values_and_boundaries() -> None:
    schedule = optim.piecewise_constant([10, 20], [1.0, 0.5, 0.1])
    counts = [0, 9, 10, 19, 20, 1000]
    np.testing.assert_allclose(values(schedule, counts), [1.0, 1.0, 0.5, 0.5, 0.1, 0.1])
    np.testing.assert_allclose(schedule(jnp.asarray(counts)), [1.0, 1.0, 0.5, 0.5, 0.1, 0.1])
    assert float(optim.piecewise_constant([], [0.3])(7)) == pytest.approx(0.3)


def test_constant() -> None:
    np.testing.assert_allclose(values(optim.constant(0.25), [0, 100]), [0.25, 0.25])


@pytest.mark.parametrize(
    ("ours", "reference"),
    [
        (
            optim.exponential_decay(0.1, 7, 0.8),
            optax.exponential_decay(0.1, 7, 0.8),
        ),
        (
            optim.exponential_decay(0.1, 7, 0.8, staircase=True),
            optax.exponential_decay(0.1, 7, 0.8, staircase=True),
        ),
        (optim.cosine_decay(0.5, 100), optax.cosine_decay_schedule(0.5, 100)),
        (
            optim.cosine_decay(0.5, 100, alpha=0.2),
            optax.cosine_decay_schedule(0.5, 100, alpha=0.2),
        ),
        (
            optim.linear_warmup(1.0, 20, init_value=0.1),
            optax.warmup_constant_schedule(0.1, 1.0, 20),
        ),
        (
            optim.linear_warmup(1.0, 20, optim.cosine_decay(1.0, 80, alpha=0.05), init_value=0.1),
            optax.warmup_cosine_decay_schedule(0.1, 1.0, 20, 100, end_value=0.05),
        ),
        (
            optim.piecewise_constant([30, 60], [0.1, 0.05, 0.005]),
            optax.piecewise_constant_schedule(0.1, {30: 0.5, 60: 0.1}),
        ),
    ],
    ids=["exponential", "exponential-staircase", "cosine", "cosine-alpha", "warmup-constant",
         "warmup-cosine", "piecewise"],
)  # fmt: skip
def test_schedules_match_optax(ours: Any, reference: Any) -> None:
    ours_values = jax.jit(jax.vmap(ours))(COUNTS)
    ref_values = jax.vmap(reference)(COUNTS)
    assert ours_values.dtype == jnp.float32
    np.testing.assert_allclose(ours_values, ref_values, rtol=2e-6, atol=1e-7)


def test_schedule_drives_the_optimizer_step_by_step() -> None:
    schedule = optim.exponential_decay(0.2, 1, 0.5)
    opt = optim.sgd(schedule)
    params = {"w": jnp.ones(())}
    state = opt.init(params)
    update = jax.jit(opt.update)
    for t in range(4):
        assert float(optim.learning_rate(state)) == pytest.approx(0.2 * 0.5**t)
        updates, state = update({"w": jnp.ones(())}, state, params)
        assert float(updates["w"]) == pytest.approx(-0.2 * 0.5**t)


def test_an_optax_schedule_plugs_in() -> None:
    schedule = optax.linear_schedule(0.1, 0.0, 10)
    opt = optim.adam(schedule)
    state = opt.init({"w": jnp.zeros(())})
    for _ in range(3):
        _, state = opt.update({"w": jnp.ones(())}, state)
    assert float(optim.learning_rate(state)) == pytest.approx(0.07)


BAD_ARGUMENTS: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (lambda: optim.exponential_decay(0.1, 0, 0.5), ValueError, "transition_steps must be > 0"),
    (lambda: optim.exponential_decay(0.1, 2.5, 0.5), TypeError, "transition_steps must be an in"),
    (lambda: optim.exponential_decay(-0.1, 2, 0.5), ValueError, "init_value must be a finite"),
    (lambda: optim.cosine_decay(0.1, -3), ValueError, "decay_steps must be > 0, got -3"),
    (lambda: optim.cosine_decay(0.1, 10, alpha=1.5), ValueError, r"alpha must be in \[0, 1\]"),
    (lambda: optim.linear_warmup(1.0, -1), ValueError, "warmup_steps must be >= 0, got -1"),
    (lambda: optim.linear_warmup(1.0, 5, then=0.1), TypeError, "then must be a schedule"),
    (lambda: optim.inverse_time_decay(1.0, -0.1), ValueError, "decay must be a finite number"),
    (lambda: optim.piecewise_constant([10], [0.1]), ValueError, "one more value than boundar"),
    (lambda: optim.piecewise_constant([10, 5], [1, 0.5, 0.1]), ValueError, "strictly increasing"),
    (lambda: optim.piecewise_constant([10], [1.0, -0.5]), ValueError, r"values\[1\] must be"),
    (lambda: optim.constant(-1.0), ValueError, "value must be a finite number >= 0"),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD_ARGUMENTS)
def test_bad_schedule_arguments_are_named(
    make: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make()


def test_a_schedule_must_return_a_scalar() -> None:
    with pytest.raises(ValueError, match=r"schedule must return a scalar, got shape \(2,\)"):
        optim.sgd(lambda count: jnp.ones(2)).init({"w": jnp.ones(())})
