"""Hyper-parameters as array leaves of the optimizer state.

Every funcnn optimizer keeps its numeric settings in `state.hyperparams`, a dict of scalar
arrays. Because they are data, not constants baked into the compiled program, they can be
read (`learning_rate(state)`, `get_hyperparams(state)`), changed without recompiling
(`replace_hyperparams(state, learning_rate=0.01)`), and batched with `jax.vmap` so that a
sweep over settings is one program. With a constant rate the state holds `learning_rate`
and the book's `decay`, and the rate of update t (t = updates already made) is
`learning_rate / (1 + decay * t)`; with a schedule the state holds
`scheduled_learning_rate`, the schedule's value for the next update.

A decay rate b (`rho`, `b1`, `b2`) is held as its complement `one_minus_b = 1 - b`,
computed in float64 from the value given: float32(0.999) is 0.99900001, so `1 - b` taken
from a float32 b would be 13 ppm small, while float32(1 - 0.999) is right to float32's
precision. `replace_hyperparams` takes either name (`b2=0.9999` or `one_minus_b2=1e-4`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeAlias, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.optim.base import OptState, float_dtype
from funcnn.tree import path_to_str
from funcnn.typing import Array, ArrayLike

Schedule: TypeAlias = Callable[[Array], ArrayLike]
"""`count -> learning rate`, count being the int32 number of updates already made."""

SCHEDULED_LEARNING_RATE = "scheduled_learning_rate"


class Bounds(NamedTuple):
    """The allowed range of a hyper-parameter: `[low, high]`, either end possibly open."""

    low: float
    high: float
    open_high: bool = False
    open_low: bool = False


COMPLEMENTED = ("rho", "b1", "b2")
"""The decay rates b that the states hold as `one_minus_b`."""


def complement_name(name: str) -> str:
    """The state name of `1 - name`: `one_minus_rho` for `rho`."""
    return f"one_minus_{name}"


_RANGES: dict[str, Bounds] = {
    **{name: Bounds(0.0, math.inf) for name in
       ("learning_rate", "decay", "eps", "weight_decay", "max_norm")},
    **{name: Bounds(0.0, 1.0, open_high=True) for name in ("momentum", *COMPLEMENTED)},
    **{complement_name(name): Bounds(0.0, 1.0, open_low=True) for name in COMPLEMENTED},
}

_REAL_TYPES = (int, float, np.ndarray, np.number, jax.Array)

_HYPERPARAM_STATES: set[type] = set()

StateType = TypeVar("StateType", bound=type)


def hyperparam_state(cls: StateType) -> StateType:
    """Class decorator: mark a NamedTuple state class whose `hyperparams` field these
    functions read and replace."""
    _HYPERPARAM_STATES.add(cls)
    return cls


def is_traced(value: object) -> bool:
    """Whether `value` is an abstract value inside `jit`/`vmap`/`grad` (no number to check)."""
    return isinstance(value, jax.core.Tracer)


def _check_real_dtype(name: str, value: Any) -> None:
    dtype = jnp.result_type(value)
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise TypeError(f"{name} must be a real number, got dtype {dtype}")


def check_hyperparam(name: str, value: Any, bounds: Bounds | None = None) -> None:
    """Raise a TypeError/ValueError naming `name` unless `value` is a real scalar in its
    allowed range (`bounds`, or the standard range for `name`). Traced values are only
    checked for shape, having no concrete number."""
    if isinstance(value, bool) or not isinstance(value, _REAL_TYPES):
        raise TypeError(
            f"{name} must be a real number or a scalar array, got {type(value).__name__}"
        )
    if jnp.shape(value) != ():
        raise ValueError(f"{name} must be a scalar, got an array of shape {jnp.shape(value)}")
    _check_real_dtype(name, value)
    if is_traced(value):
        return
    low, high, open_high, open_low = (
        bounds if bounds is not None else _RANGES.get(name, Bounds(-math.inf, math.inf))
    )
    number = float(value)
    above = number >= high if open_high else number > high
    below = number <= low if open_low else number < low
    if not math.isfinite(number) or below or above:
        if math.isinf(high) and not open_low:
            raise ValueError(f"{name} must be a finite number >= {low:g}, got {number!r}")
        opening, closing = "(" if open_low else "[", ")" if open_high else "]"
        raise ValueError(
            f"{name} must be in {opening}{low:g}, {high:g}{closing}, got {number!r}"
        )


def as_hyperparam(name: str, value: object) -> Array:
    """`value`, checked, as a scalar array of the default float dtype (a state leaf)."""
    check_hyperparam(name, value)
    return jnp.asarray(value, dtype=float_dtype())


def one_minus(value: Any) -> Any:
    """`1 - value`, in float64 on the host for known values (Python or NumPy numbers,
    concrete arrays), in the value's own precision for traced ones."""
    if is_traced(value):
        return 1 - value
    return 1.0 - np.asarray(value, np.float64)


def decay_rate_hyperparams(name: str, value: object) -> dict[str, Array]:
    """`{one_minus_<name>: 1 - b}` for a decay rate b in [0, 1) (see `COMPLEMENTED`): the
    complement keeps the digits that float32 rounds off b."""
    check_hyperparam(name, value)
    return {complement_name(name): jnp.asarray(one_minus(value), dtype=float_dtype())}


def is_concrete_zero(value: object) -> bool:
    """True for a known 0 (not a traced value, which could be anything)."""
    return not is_traced(value) and float(value) == 0.0  # type: ignore[arg-type]


def inverse_time_rate(rate: ArrayLike, decay: ArrayLike, count: ArrayLike) -> Array:
    """The book's decayed learning rate `rate / (1 + decay * count)`."""
    steps = jnp.asarray(count).astype(jnp.result_type(rate, decay, float_dtype()))
    return jnp.asarray(rate) / (1.0 + jnp.asarray(decay) * steps)


def _schedule_value(schedule: Schedule, count: Array) -> Array:
    value = jnp.asarray(schedule(count))
    if value.shape != ():
        raise ValueError(f"a learning-rate schedule must return a scalar, got shape {value.shape}")
    return value.astype(float_dtype())


def rate_hyperparams(
    learning_rate: float | Array | Schedule, decay: float | Array
) -> dict[str, Array]:
    """The learning-rate entries of a fresh state's hyperparams: `learning_rate` and
    `decay` for a constant rate, `scheduled_learning_rate = schedule(0)` for a schedule."""
    check_hyperparam("decay", decay)
    if callable(learning_rate):
        if not is_concrete_zero(decay):
            raise ValueError(
                "decay must be 0 when learning_rate is a schedule; put the decay in the "
                "schedule instead (e.g. inverse_time_decay)"
            )
        return {SCHEDULED_LEARNING_RATE: _schedule_value(learning_rate, jnp.zeros((), jnp.int32))}
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, _REAL_TYPES):
        raise TypeError(
            "learning_rate must be a number, a scalar array or a schedule (a callable), "
            f"got {type(learning_rate).__name__}"
        )
    return {
        "learning_rate": as_hyperparam("learning_rate", learning_rate),
        "decay": as_hyperparam("decay", decay),
    }


def rate_for_update(
    hyperparams: dict[str, Array], count: Array, schedule: Schedule | None
) -> Array:
    """The learning rate of the update made when `count` updates are already done."""
    if schedule is not None:
        return _schedule_value(schedule, count)
    return inverse_time_rate(hyperparams["learning_rate"], hyperparams["decay"], count)


def advance_rate(
    hyperparams: dict[str, Array], new_count: Array, schedule: Schedule | None
) -> dict[str, Array]:
    """`hyperparams` after an update: a schedule's value is refreshed for the next update."""
    if schedule is None:
        return hyperparams
    return {**hyperparams, SCHEDULED_LEARNING_RATE: _schedule_value(schedule, new_count)}


def _hyperparam_states(state: OptState) -> list[tuple[str, Any]]:
    """(path, sub-state) for every funcnn state with hyperparams inside `state`."""
    found, _ = jax.tree_util.tree_flatten_with_path(
        state, is_leaf=lambda x: type(x) in _HYPERPARAM_STATES
    )
    return [
        (path_to_str(path) or "<root>", leaf)
        for path, leaf in found
        if type(leaf) in _HYPERPARAM_STATES
    ]


def _rate_of(sub_state: Any) -> Array | None:
    hyperparams = sub_state.hyperparams
    if SCHEDULED_LEARNING_RATE in hyperparams:
        return jnp.asarray(hyperparams[SCHEDULED_LEARNING_RATE])
    if "learning_rate" in hyperparams:
        return inverse_time_rate(
            hyperparams["learning_rate"], hyperparams["decay"], sub_state.count
        )
    return None


def _injected_rates(state: OptState) -> list[tuple[str, Array]]:
    """The `learning_rate`s of states holding a `hyperparams` mapping that are not funcnn's
    (optax's `inject_hyperparams` states), by path."""

    def injected(node: object) -> bool:
        return (type(node) not in _HYPERPARAM_STATES
                and isinstance(getattr(node, "hyperparams", None), Mapping)
                and "learning_rate" in node.hyperparams)  # type: ignore[attr-defined]

    found = jax.tree_util.tree_flatten_with_path(state, is_leaf=injected)[0]
    return [(path_to_str(path) or "<root>", jnp.asarray(node.hyperparams["learning_rate"]))
            for path, node in found if injected(node)]


def learning_rate(state: OptState) -> Array:
    """The learning rate the *next* update will use (decay or schedule applied), from a
    funcnn optimizer state or any state containing exactly one (a chain, a masked one),
    or else from an optax optimizer made with `optax.inject_hyperparams`."""
    rates = [
        (path, rate)
        for path, sub in _hyperparam_states(state)
        if (rate := _rate_of(sub)) is not None
    ] or _injected_rates(state)
    if not rates:
        raise ValueError("this state holds no optimizer with a learning rate (a funcnn "
                         "optimizer, or optax's inject_hyperparams)")
    if len(rates) > 1:
        paths = ", ".join(f"'{path}'" for path, _ in rates)
        raise ValueError(
            f"this state holds {len(rates)} learning rates (at {paths}); "
            "pass the sub-state of the one you mean"
        )
    return rates[0][1]


def get_hyperparams(state: OptState) -> dict[str, Array]:
    """All hyper-parameters in `state` (every funcnn sub-state's), by name, with each decay
    rate b read off its held complement as well (`b2 = 1 - one_minus_b2`). A name held by
    two sub-states is an error; read `sub_state.hyperparams` directly then."""
    merged: dict[str, Array] = {}
    where: dict[str, str] = {}
    for path, sub in _hyperparam_states(state):
        for name, value in sub.hyperparams.items():
            if name in merged:
                raise ValueError(
                    f"hyper-parameter {name!r} is held at both '{where[name]}' and '{path}'; "
                    "read the sub-states' hyperparams directly"
                )
            merged[name], where[name] = value, path
    for name in COMPLEMENTED:
        if complement_name(name) in merged:
            merged[name] = 1 - merged[complement_name(name)]
    return merged


def _check_each(name: str, value: Any) -> None:
    """Check a replacement value: its dtype when traced, else every entry (a batched
    state, outside vmap, takes a batch of values)."""
    if is_traced(value):
        _check_real_dtype(name, value)
    else:
        for item in np.ravel(np.asarray(value)):
            check_hyperparam(name, item.item())


def _replaced_leaf(name: str, old: Array, value: Any) -> Array:
    if np.shape(value) != jnp.shape(old):
        raise ValueError(
            f"{name} must have shape {jnp.shape(old)} like the value it replaces, "
            f"got shape {np.shape(value)}"
        )
    _check_each(name, value)
    return jnp.asarray(value, dtype=jnp.result_type(old))


def _as_complements(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with each decay rate b given as `one_minus_b = 1 - b` (in float64 when
    known), the name the states hold."""
    held = dict(values)
    for name in COMPLEMENTED:
        if name not in held:
            continue
        if complement_name(name) in held:
            raise ValueError(f"{name} and {complement_name(name)} were both given; give one, "
                             "the other is 1 minus it")
        value = held.pop(name)
        _check_each(name, value)
        held[complement_name(name)] = one_minus(value)
    return held


def replace_hyperparams(state: OptState, **values: ArrayLike) -> OptState:
    """A new state with the named hyper-parameters replaced; nothing else changes, so a
    jitted update takes the new values without recompiling. Works on chained states
    when exactly one sub-state holds each name. A decay rate b may be given as `b2=...` or
    as `one_minus_b2=...`: the state holds `1 - b`, from known values in float64, from
    traced ones (under `jit`/`vmap`) in their own precision, so to sweep b2 near 1 under
    `vmap` at full precision, sweep `one_minus_b2`."""
    holders = _hyperparam_states(state)
    values = _as_complements(values)
    targets: dict[str, str] = {}
    for name in values:
        if name == SCHEDULED_LEARNING_RATE:
            raise ValueError(
                f"{SCHEDULED_LEARNING_RATE} is computed by the schedule and cannot be replaced"
            )
        paths = [path for path, sub in holders if name in sub.hyperparams]
        if not paths:
            scheduled = any(SCHEDULED_LEARNING_RATE in sub.hyperparams for _, sub in holders)
            if name == "learning_rate" and scheduled:
                raise ValueError(
                    "learning_rate is set by a schedule in this state; build the optimizer "
                    "with a constant learning_rate to change it by hand"
                )
            held = {n for _, sub in holders for n in sub.hyperparams}
            known = sorted(held | {n for n in COMPLEMENTED if complement_name(n) in held})
            raise ValueError(f"this state has no hyper-parameter {name!r}; it has {known}")
        if len(paths) > 1:
            listed = ", ".join(f"'{path}'" for path in paths)
            raise ValueError(
                f"hyper-parameter {name!r} is held by {len(paths)} sub-states (at {listed}); "
                "replace it in the sub-state you mean"
            )
        targets[name] = paths[0]

    def replace(path: str, sub: Any) -> Any:
        changes = {name: value for name, value in values.items() if targets[name] == path}
        if not changes:
            return sub
        hyperparams = dict(sub.hyperparams)
        for name, value in changes.items():
            hyperparams[name] = _replaced_leaf(name, hyperparams[name], value)
        return sub._replace(hyperparams=hyperparams)

    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: (
            replace(path_to_str(path) or "<root>", leaf)
            if type(leaf) in _HYPERPARAM_STATES
            else leaf
        ),
        state,
        is_leaf=lambda x: type(x) in _HYPERPARAM_STATES,
    )
