"""Learning-rate schedules: pure functions `count -> rate`, count = updates already made.

Pass one as an optimizer's `learning_rate`. Any function of the int32 count works,
optax's schedules included; these cover the common shapes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import jax.numpy as jnp

from funcnn.optim.base import float_dtype
from funcnn.optim.hyperparams import Bounds, Schedule, check_hyperparam, inverse_time_rate
from funcnn.typing import Array, ArrayLike

_POSITIVE = Bounds(0.0, math.inf)
_UNIT_INTERVAL = Bounds(0.0, 1.0)


def _steps(count: ArrayLike) -> Array:
    return jnp.asarray(count).astype(float_dtype())


def _check_steps(name: str, value: object, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def constant(value: float) -> Schedule:
    """`rate(t) = value`."""
    check_hyperparam("value", value, _POSITIVE)

    def schedule(count: ArrayLike) -> Array:
        return jnp.full(jnp.shape(count), value, float_dtype())

    return schedule


def inverse_time_decay(init_value: float, decay: float) -> Schedule:
    """The book's decay as a schedule: `rate(t) = init_value / (1 + decay * t)`."""
    check_hyperparam("init_value", init_value, _POSITIVE)
    check_hyperparam("decay", decay)

    def schedule(count: ArrayLike) -> Array:
        return inverse_time_rate(init_value, decay, count).astype(float_dtype())

    return schedule


def exponential_decay(
    init_value: float, transition_steps: int, decay_rate: float, *, staircase: bool = False
) -> Schedule:
    """`rate(t) = init_value * decay_rate ** (t / transition_steps)`; with `staircase` the
    exponent is floored, so the rate drops every `transition_steps` updates."""
    check_hyperparam("init_value", init_value, _POSITIVE)
    _check_steps("transition_steps", transition_steps)
    check_hyperparam("decay_rate", decay_rate, _POSITIVE)

    def schedule(count: ArrayLike) -> Array:
        exponent = _steps(count) / transition_steps
        if staircase:
            exponent = jnp.floor(exponent)
        return (init_value * jnp.power(decay_rate, exponent)).astype(float_dtype())

    return schedule


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """Half a cosine from `init_value` down to `alpha * init_value` over `decay_steps`
    updates, then flat: `rate(t) = init_value * ((1 - alpha) * (1 + cos(pi * min(t, T) / T))
    / 2 + alpha)`."""
    check_hyperparam("init_value", init_value, _POSITIVE)
    _check_steps("decay_steps", decay_steps)
    check_hyperparam("alpha", alpha, _UNIT_INTERVAL)

    def schedule(count: ArrayLike) -> Array:
        progress = jnp.minimum(_steps(count), decay_steps) / decay_steps
        cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        return (init_value * ((1.0 - alpha) * cosine + alpha)).astype(float_dtype())

    return schedule


def linear_warmup(
    peak_value: float,
    warmup_steps: int,
    then: Schedule | None = None,
    *,
    init_value: float = 0.0,
) -> Schedule:
    """A straight line from `init_value` (t = 0) to `peak_value` (t = warmup_steps), then
    `then(t - warmup_steps)`, or `peak_value` forever when `then` is None."""
    check_hyperparam("peak_value", peak_value, _POSITIVE)
    check_hyperparam("init_value", init_value, _POSITIVE)
    _check_steps("warmup_steps", warmup_steps, allow_zero=True)
    if then is not None and not callable(then):
        raise TypeError(f"then must be a schedule (a callable), got {type(then).__name__}")

    def schedule(count: ArrayLike) -> Array:
        steps = _steps(count)
        after = (
            jnp.full(jnp.shape(steps), peak_value, float_dtype())
            if then is None
            else jnp.asarray(then(jnp.maximum(jnp.asarray(count) - warmup_steps, 0))).astype(
                float_dtype()
            )
        )
        if warmup_steps == 0:
            return after
        ramp = init_value + (peak_value - init_value) * steps / warmup_steps
        return jnp.where(steps < warmup_steps, ramp, after)

    return schedule


def piecewise_constant(boundaries: Sequence[int], values: Sequence[float]) -> Schedule:
    """`values[i]` while `boundaries[i-1] <= t < boundaries[i]`: `values[0]` before the
    first boundary, `values[-1]` from the last one on (so one more value than boundaries)."""
    boundaries, values = list(boundaries), list(values)
    if len(values) != len(boundaries) + 1:
        raise ValueError(
            f"piecewise_constant needs one more value than boundaries, got "
            f"{len(boundaries)} boundaries and {len(values)} values"
        )
    for index, boundary in enumerate(boundaries):
        _check_steps(f"boundaries[{index}]", boundary, allow_zero=True)
    if any(b >= c for b, c in itertools.pairwise(boundaries)):
        raise ValueError(f"boundaries must be strictly increasing, got {boundaries}")
    for index, value in enumerate(values):
        check_hyperparam(f"values[{index}]", value, _POSITIVE)
    boundary_array = jnp.asarray(boundaries, jnp.int32)
    value_array = jnp.asarray(values, float_dtype())

    def schedule(count: ArrayLike) -> Array:
        count = jnp.asarray(count)
        edges = boundary_array.reshape((1,) * count.ndim + boundary_array.shape)
        passed = jnp.sum(count[..., None] >= edges, axis=-1)
        return value_array[passed]

    return schedule
