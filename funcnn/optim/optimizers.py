"""The book's optimizers (chapter 10), with the book's defaults and formulas.

For parameter p with gradient g, at update t (t = updates already made) with rate
`lr_t = lr / (1 + decay * t)` (or `schedule(t)` when `learning_rate` is a schedule):

- SGD:      `p -= lr_t * g`; with momentum `u = m * u - lr_t * g; p += u`
            (nesterov: `p += m * u - lr_t * g` with the new u)
- AdaGrad:  `c += g**2; p -= lr_t * g / (sqrt(c) + eps)`
- RMSProp:  `c = rho * c + (1 - rho) * g**2; p -= lr_t * g / (sqrt(c) + eps)`
- Adam:     `m = b1 * m + (1 - b1) * g; v = b2 * v + (1 - b2) * g**2;`
            `p -= lr_t * m_hat / (sqrt(v_hat) + eps)`, `x_hat = x / (1 - b**(t + 1))`
- AdamW:    Adam plus decoupled weight decay `p -= lr_t * weight_decay * p`

Each returns a `GradientTransformation`; `update` returns the additive step (the `-=`
above as a `+=`) in the gradients' dtype. The moments (u, c, m, v) are stored in
`moment_dtype(param dtype) = promote(dtype, float32)` (float32 for bfloat16 or float16
parameters, float64 for float64 ones) and computed from the gradients cast to it.

Every numeric setting lives in `state.hyperparams`, each decay rate b (rho, b1, b2) as its
complement `one_minus_b`, from which the averages `x + (1 - b) * (new - x)` and the
corrections `1 - b**t` are computed, so that b's float32 rounding (float32(0.999) =
0.99900001) does not shrink `1 - b`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim.base import (
    GradientTransformation,
    Mask,
    OptState,
    Updates,
    cast_like,
    check_same_shapes,
    full_mask,
    increment_count,
    with_structure,
    zero_count,
    zeros_buffer,
)
from funcnn.optim.hyperparams import (
    Schedule,
    advance_rate,
    as_hyperparam,
    check_hyperparam,
    complement_name,
    decay_rate_hyperparams,
    hyperparam_state,
    is_concrete_zero,
    rate_for_update,
    rate_hyperparams,
)
from funcnn.typing import Array, PyTree

LearningRate = float | Array | Schedule
"""A number (with the book's `decay`) or a schedule `count -> rate`."""


def _schedule_of(learning_rate: LearningRate) -> Schedule | None:
    return learning_rate if callable(learning_rate) else None


def moving_average(average: Array, new: Array, one_minus_b: Array) -> Array:
    """`b * average + (1 - b) * new`, as `average + (1 - b) * (new - average)`: from the
    complement alone, which float32 holds to full precision for b near 1."""
    return average + one_minus_b * (new - average)


def bias_correction(one_minus_b: Array, steps: Array) -> Array:
    """`1 - b**steps` as `-expm1(steps * log1p(-(1 - b)))`, accurate for b near 1 (and
    for b so near 1 that float32(b) is 1)."""
    return -jnp.expm1(steps * jnp.log1p(-one_minus_b))


@hyperparam_state
class SGDState(NamedTuple):
    """`hyperparams`: learning_rate, decay (or scheduled_learning_rate) and, when the
    optimizer has momentum, momentum. `velocity`: the book's `u` per parameter, or None."""

    count: Array  # type: ignore[assignment]  # int32; shadows tuple.count, as in optax
    hyperparams: dict[str, Array]
    velocity: PyTree


def sgd(
    learning_rate: LearningRate = 1.0,
    decay: float | Array = 0.0,
    momentum: float | Array = 0.0,
    nesterov: bool = False,
) -> GradientTransformation:
    """Stochastic gradient descent, the book's form. A momentum of exactly 0 keeps no
    velocity (nor a `momentum` hyper-parameter); any other value, traced ones included,
    keeps one velocity per parameter."""
    schedule = _schedule_of(learning_rate)
    settings = rate_hyperparams(learning_rate, decay)
    check_hyperparam("momentum", momentum)
    with_momentum = not is_concrete_zero(momentum)
    if not isinstance(nesterov, bool):
        raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
    if nesterov and not with_momentum:
        raise ValueError("nesterov=True needs a momentum in (0, 1), got momentum=0")
    if with_momentum:
        settings["momentum"] = as_hyperparam("momentum", momentum)

    def init(params: PyTree) -> OptState:
        velocity = zeros_buffer(params) if with_momentum else None
        return SGDState(zero_count(), dict(settings), velocity)

    def update(
        updates: Updates, state: OptState, params: PyTree | None = None
    ) -> tuple[Updates, OptState]:
        hyperparams = state.hyperparams
        rate = rate_for_update(hyperparams, state.count, schedule)
        velocity = state.velocity
        if velocity is None:
            steps = jax.tree.map(lambda g: -rate * g, updates)
        else:
            check_same_shapes(updates, velocity, "momentum buffer")
            m, grads = hyperparams["momentum"], cast_like(updates, velocity)
            velocity = cast_like(
                jax.tree.map(lambda u, g: m * u - rate * g, velocity, grads), velocity)
            steps = (
                jax.tree.map(lambda u, g: m * u - rate * g, velocity, grads)
                if nesterov
                else velocity
            )
        count = increment_count(state.count)
        new_state = SGDState(count, advance_rate(hyperparams, count, schedule), velocity)
        return cast_like(steps, updates), new_state

    return with_structure(GradientTransformation(init, update),
                          ("sgd", schedule, with_momentum, nesterov))


@hyperparam_state
class AdaGradState(NamedTuple):
    """`hyperparams`: learning_rate, decay (or scheduled_learning_rate), eps.
    `cache`: the running sum of squared gradients `c`."""

    count: Array  # type: ignore[assignment]  # int32; shadows tuple.count, as in optax
    hyperparams: dict[str, Array]
    cache: PyTree


def adagrad(
    learning_rate: LearningRate = 1.0, decay: float | Array = 0.0, eps: float | Array = 1e-7
) -> GradientTransformation:
    """AdaGrad, the book's form: eps is added *outside* the square root."""
    schedule = _schedule_of(learning_rate)
    settings = {**rate_hyperparams(learning_rate, decay), "eps": as_hyperparam("eps", eps)}

    def init(params: PyTree) -> OptState:
        return AdaGradState(zero_count(), dict(settings), zeros_buffer(params))

    def update(
        updates: Updates, state: OptState, params: PyTree | None = None
    ) -> tuple[Updates, OptState]:
        check_same_shapes(updates, state.cache, "AdaGrad cache")
        hyperparams = state.hyperparams
        rate, eps = rate_for_update(hyperparams, state.count, schedule), hyperparams["eps"]
        grads = cast_like(updates, state.cache)
        cache = cast_like(jax.tree.map(lambda c, g: c + g * g, state.cache, grads), state.cache)
        steps = jax.tree.map(lambda c, g: -rate * g / (jnp.sqrt(c) + eps), cache, grads)
        count = increment_count(state.count)
        new_state = AdaGradState(count, advance_rate(hyperparams, count, schedule), cache)
        return cast_like(steps, updates), new_state

    return with_structure(GradientTransformation(init, update), ("adagrad", schedule))


@hyperparam_state
class RMSPropState(NamedTuple):
    """`hyperparams`: learning_rate, decay (or scheduled_learning_rate), eps and
    one_minus_rho (`1 - rho`).
    `cache`: the moving average of squared gradients `c`."""

    count: Array  # type: ignore[assignment]  # int32; shadows tuple.count, as in optax
    hyperparams: dict[str, Array]
    cache: PyTree


def rmsprop(
    learning_rate: LearningRate = 1e-3,
    decay: float | Array = 0.0,
    eps: float | Array = 1e-7,
    rho: float | Array = 0.9,
) -> GradientTransformation:
    """RMSProp, the book's form: the cache starts at 0 and eps is added outside the root."""
    schedule = _schedule_of(learning_rate)
    settings = {
        **rate_hyperparams(learning_rate, decay),
        "eps": as_hyperparam("eps", eps),
        **decay_rate_hyperparams("rho", rho),
    }

    def init(params: PyTree) -> OptState:
        return RMSPropState(zero_count(), dict(settings), zeros_buffer(params))

    def update(
        updates: Updates, state: OptState, params: PyTree | None = None
    ) -> tuple[Updates, OptState]:
        check_same_shapes(updates, state.cache, "RMSProp cache")
        hyperparams = state.hyperparams
        rate, eps = rate_for_update(hyperparams, state.count, schedule), hyperparams["eps"]
        one_minus_rho = hyperparams[complement_name("rho")]
        grads = cast_like(updates, state.cache)
        cache = cast_like(jax.tree.map(
            lambda c, g: moving_average(c, g * g, one_minus_rho), state.cache, grads
        ), state.cache)
        steps = jax.tree.map(lambda c, g: -rate * g / (jnp.sqrt(c) + eps), cache, grads)
        count = increment_count(state.count)
        new_state = RMSPropState(count, advance_rate(hyperparams, count, schedule), cache)
        return cast_like(steps, updates), new_state

    return with_structure(GradientTransformation(init, update), ("rmsprop", schedule))


@hyperparam_state
class AdamState(NamedTuple):
    """`hyperparams`: learning_rate, decay (or scheduled_learning_rate), eps,
    one_minus_b1, one_minus_b2 (`1 - b1`, `1 - b2`) and, for AdamW, weight_decay.
    `mu`, `nu`: the first and second moment estimates."""

    count: Array  # type: ignore[assignment]  # int32; shadows tuple.count, as in optax
    hyperparams: dict[str, Array]
    mu: PyTree
    nu: PyTree


def _adam(
    learning_rate: LearningRate,
    decay: float | Array,
    eps: float | Array,
    b1: float | Array,
    b2: float | Array,
    weight_decay: float | Array | None,
    mask: Mask | None,
) -> GradientTransformation:
    schedule = _schedule_of(learning_rate)
    settings = {
        **rate_hyperparams(learning_rate, decay),
        "eps": as_hyperparam("eps", eps),
        **decay_rate_hyperparams("b1", b1),
        **decay_rate_hyperparams("b2", b2),
    }
    decoupled = weight_decay is not None
    if weight_decay is not None:
        settings["weight_decay"] = as_hyperparam("weight_decay", weight_decay)

    def init(params: PyTree) -> OptState:
        if mask is not None:
            full_mask(mask, params, "params")  # a bad mask fails here, not mid-training
        return AdamState(zero_count(), dict(settings), zeros_buffer(params), zeros_buffer(params))

    def update(
        updates: Updates, state: OptState, params: PyTree | None = None
    ) -> tuple[Updates, OptState]:
        check_same_shapes(updates, state.mu, "Adam first moment")
        hyperparams = state.hyperparams
        rate = rate_for_update(hyperparams, state.count, schedule)
        eps = hyperparams["eps"]
        c1, c2 = hyperparams[complement_name("b1")], hyperparams[complement_name("b2")]
        count = increment_count(state.count)
        grads = cast_like(updates, state.mu)
        mu = cast_like(jax.tree.map(lambda m, g: moving_average(m, g, c1), state.mu, grads),
                       state.mu)
        nu = cast_like(jax.tree.map(lambda v, g: moving_average(v, g * g, c2), state.nu, grads),
                       state.nu)
        steps_done = count.astype(rate.dtype)
        correction1, correction2 = bias_correction(c1, steps_done), bias_correction(c2, steps_done)
        steps = jax.tree.map(
            lambda m, v: -rate * (m / correction1) / (jnp.sqrt(v / correction2) + eps), mu, nu
        )
        if decoupled:
            steps = _with_weight_decay(steps, params, mask, rate * hyperparams["weight_decay"])
        new_state = AdamState(count, advance_rate(hyperparams, count, schedule), mu, nu)
        return cast_like(steps, updates), new_state

    # a mask (a pytree or a function of params) is not described: compared by identity
    structure = ("adam", schedule, decoupled) if mask is None else None
    return with_structure(GradientTransformation(init, update), structure)


def _with_weight_decay(
    steps: Updates, params: PyTree | None, mask: Mask | None, strength: Array
) -> Updates:
    """`steps - strength * p` wherever `mask` selects p (everywhere without a mask)."""
    if params is None:
        raise ValueError(
            "adamw needs the parameters for its weight decay: call update(grads, state, params)"
        )
    check_same_shapes(steps, params, "params")
    selected = full_mask(mask if mask is not None else True, params, "params")
    return jax.tree.map(lambda s, p, on: s - strength * p if on else s, steps, params, selected)


def adam(
    learning_rate: LearningRate = 1e-3,
    decay: float | Array = 0.0,
    eps: float | Array = 1e-7,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
) -> GradientTransformation:
    """Adam, the book's form (eps outside the root, bias correction `1 - b**(t + 1)`)."""
    return _adam(learning_rate, decay, eps, b1, b2, weight_decay=None, mask=None)


def adamw(
    learning_rate: LearningRate = 1e-3,
    decay: float | Array = 0.0,
    eps: float | Array = 1e-7,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    weight_decay: float | Array = 1e-4,
    mask: Mask | None = None,
) -> GradientTransformation:
    """Adam with decoupled weight decay: each step also subtracts `lr_t * weight_decay * p`
    (optax's and PyTorch's form). `mask` (pytree of bools, or `params -> pytree of bools`)
    picks the parameters that decay, e.g. `lambda p: jax.tree.map(lambda x: x.ndim > 1, p)`
    to skip biases; without it every parameter decays."""
    return _adam(learning_rate, decay, eps, b1, b2, weight_decay=weight_decay, mask=mask)
