"""The book's optimizers against optax and against a NumPy transcription of the book."""

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


# --- the book's formulas, transcribed to NumPy (float64), one class per optimizer ---


class BookOptimizer:
    def __init__(self, learning_rate: float, decay: float) -> None:
        self.learning_rate, self.decay, self.iterations = learning_rate, decay, 0
        self.slots: dict[str, dict[int, np.ndarray]] = {}

    def current_learning_rate(self) -> float:
        return self.learning_rate * (1.0 / (1.0 + self.decay * self.iterations))

    def slot(self, name: str, index: int, like: np.ndarray) -> np.ndarray:
        return self.slots.setdefault(name, {}).setdefault(index, np.zeros_like(like))

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> list[np.ndarray]:
        lr = self.current_learning_rate()
        pairs = enumerate(zip(params, grads, strict=True))
        new = [self.update_one(i, p, g, lr) for i, (p, g) in pairs]
        self.iterations += 1
        return new

    def update_one(self, i: int, p: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        raise NotImplementedError


class BookSGD(BookOptimizer):
    def __init__(self, learning_rate: float, decay: float, momentum: float) -> None:
        super().__init__(learning_rate, decay)
        self.momentum = momentum

    def update_one(self, i: int, p: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        if not self.momentum:
            return p - lr * g
        update = self.momentum * self.slot("momentum", i, p) - lr * g
        self.slots["momentum"][i] = update
        return p + update


class BookAdagrad(BookOptimizer):
    def __init__(self, learning_rate: float, decay: float, epsilon: float) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon = epsilon

    def update_one(self, i: int, p: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        cache = self.slot("cache", i, p) + g**2
        self.slots["cache"][i] = cache
        return p + -lr * g / (np.sqrt(cache) + self.epsilon)


class BookRMSprop(BookOptimizer):
    def __init__(self, learning_rate: float, decay: float, epsilon: float, rho: float) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon, self.rho = epsilon, rho

    def update_one(self, i: int, p: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        cache = self.rho * self.slot("cache", i, p) + (1 - self.rho) * g**2
        self.slots["cache"][i] = cache
        return p + -lr * g / (np.sqrt(cache) + self.epsilon)


class BookAdam(BookOptimizer):
    def __init__(
        self,
        learning_rate: float,
        decay: float,
        epsilon: float,
        beta_1: float,
        beta_2: float,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon, self.beta_1, self.beta_2 = epsilon, beta_1, beta_2
        self.weight_decay = weight_decay

    def update_one(self, i: int, p: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        m = self.beta_1 * self.slot("m", i, p) + (1 - self.beta_1) * g
        c = self.beta_2 * self.slot("c", i, p) + (1 - self.beta_2) * g**2
        self.slots["m"][i], self.slots["c"][i] = m, c
        m_hat = m / (1 - self.beta_1 ** (self.iterations + 1))
        c_hat = c / (1 - self.beta_2 ** (self.iterations + 1))
        step = -lr * m_hat / (np.sqrt(c_hat) + self.epsilon)
        return p + step - lr * self.weight_decay * p  # decoupled weight decay (AdamW)


BOOK_TRANSCRIPTIONS = {
    "sgd_decay": (lambda: optim.sgd(0.5, decay=0.01), lambda: BookSGD(0.5, 0.01, 0.0)),
    "sgd_momentum_decay": (
        lambda: optim.sgd(0.5, decay=0.01, momentum=0.9),
        lambda: BookSGD(0.5, 0.01, 0.9),
    ),
    "adagrad": (lambda: optim.adagrad(), lambda: BookAdagrad(1.0, 0.0, 1e-7)),
    "adagrad_decay": (
        lambda: optim.adagrad(0.5, decay=1e-2, eps=1e-5),
        lambda: BookAdagrad(0.5, 1e-2, 1e-5),
    ),
    "rmsprop_decay": (
        lambda: optim.rmsprop(0.02, decay=1e-2, eps=1e-7, rho=0.99),
        lambda: BookRMSprop(0.02, 1e-2, 1e-7, 0.99),
    ),
    "adam_decay": (
        lambda: optim.adam(0.05, decay=5e-2),
        lambda: BookAdam(0.05, 5e-2, 1e-7, 0.9, 0.999),
    ),
    "adamw_decay": (
        lambda: optim.adamw(0.05, decay=5e-2, weight_decay=0.1),
        lambda: BookAdam(0.05, 5e-2, 1e-7, 0.9, 0.999, weight_decay=0.1),
    ),
}


DTYPES = ("float32", "float64", "bfloat16")
# the dtype an optimizer keeps the moments of parameters of each dtype in
MOMENT_DTYPE = {"float32": jnp.float32, "float64": jnp.float64, "bfloat16": jnp.float32,
                "float16": jnp.float32}
# (rtol, atol) of funcnn against the book's NumPy after 100 steps: float64 agrees to its
# rounding; float32 moments drift by a few float32 ulps (2e-5 of momentum SGD's |p| ~ 90);
# bfloat16 runs agree exactly with the emulated rounding below, 1e-2 leaves room for a
# rounding of a sum flipped by the moments' float32 arithmetic.
BOOK_TOLERANCE = {"float64": (1e-12, 1e-12), "float32": (2e-5, 1e-5),
                  "bfloat16": (1e-2, 1e-2)}


def stored(values: np.ndarray, dtype: str) -> np.ndarray:
    """`values` rounded to `dtype` (how a parameter or an update of that dtype holds
    them), back in float64."""
    return np.asarray(np.asarray(values).astype(jnp.dtype(dtype)), np.float64)


def book_run(book: BookOptimizer, params: Any, grads: Any, dtype: str, steps: int
             ) -> list[np.ndarray]:
    """The book's NumPy steps in float64, each update rounded to the gradients' dtype and
    each sum `p + update` to the params' dtype, as `update` and `apply_updates` store them
    (no rounding at all in float64)."""
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    grad_leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(grads)]
    for t in range(steps):
        new = book.step(leaves, [g[t] for g in grad_leaves])
        leaves = [stored(p + stored(n - p, dtype), dtype)
                  for p, n in zip(leaves, new, strict=True)]
    return leaves


def moment_buffers(state: Any) -> list[jax.Array]:
    """The per-parameter buffers of a funcnn optimizer state (velocity, cache, mu, nu)."""
    return jax.tree.leaves(state[2:])


BOOK_CASES = [(name, dtype) for name in sorted(BOOK_TRANSCRIPTIONS) for dtype in DTYPES]


@pytest.mark.parametrize(("name", "dtype"), BOOK_CASES,
                         ids=[f"{name}-{dtype}" for name, dtype in BOOK_CASES])
def test_matches_numpy_transcription_of_the_book(name: str, dtype: str) -> None:
    """100 steps of funcnn against the book's NumPy code: in float64 (x64 on) to 1e-12; in
    float32 and bfloat16 to their tolerance, the NumPy run rounded as funcnn stores params
    and updates. Moments are kept in MOMENT_DTYPE, updates in the gradients' dtype."""
    make_ours, make_book = BOOK_TRANSCRIPTIONS[name]
    with jax.enable_x64(dtype == "float64"):
        params = make_params(2, dtype)
        grads = gradient_sequence(3, params)
        opt = make_ours()
        first, _ = jax.eval_shape(opt.update, jax.tree.map(lambda g: g[0], grads),
                                  opt.init(params), params)
        ours, state = run(opt, params, grads, optim.apply_updates)
        hyper_dtype = jnp.float64 if dtype == "float64" else jnp.float32
    assert {u.dtype for u in jax.tree.leaves(first)} == {jnp.dtype(dtype)}
    assert {p.dtype for p in jax.tree.leaves(ours)} == {jnp.dtype(dtype)}
    assert {b.dtype for b in moment_buffers(state)} <= {jnp.dtype(MOMENT_DTYPE[dtype])}
    assert moment_buffers(state) or name == "sgd_decay"
    assert {h.dtype for h in state.hyperparams.values()} == {jnp.dtype(hyper_dtype)}
    assert state.count.dtype == jnp.int32 and int(state.count) == STEPS
    book = book_run(make_book(), params, grads, dtype, STEPS)
    rtol, atol = BOOK_TOLERANCE[dtype]
    for ours_leaf, book_leaf in zip(jax.tree.leaves(ours), book, strict=True):
        np.testing.assert_allclose(np.asarray(ours_leaf, np.float64), book_leaf, rtol=rtol,
                                   atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_book_decay_numbers(dtype: str) -> None:
    """lr 1.0, decay 0.1: the rates of updates 0, 1, 2 are 1.0, 1/1.1, 1/1.2; the state
    holds them in float32 (float64 under x64), the updates have the gradients' dtype."""
    with jax.enable_x64(dtype == "float64"):
        opt = optim.sgd(1.0, decay=0.1)
        params = {"w": jnp.zeros((2,), dtype)}
        state = opt.init(params)
        update = jax.jit(opt.update)
        tol = {"float64": 1e-15, "float32": 1e-7, "bfloat16": 2.0**-9}[dtype]
        for t in range(4):
            rate = 1.0 / (1.0 + 0.1 * t)
            np.testing.assert_allclose(float(optim.learning_rate(state)), rate,
                                       rtol=1e-15 if dtype == "float64" else 1e-7)
            updates, state = update({"w": jnp.ones((2,), dtype)}, state, params)
            assert updates["w"].dtype == jnp.dtype(dtype)
            np.testing.assert_allclose(np.asarray(updates["w"], np.float64), [-rate, -rate],
                                       rtol=tol)


FIRST_UPDATE_CASES = [
    lambda: optim.sgd(0.5, decay=10.0),
    lambda: optim.adagrad(0.5, decay=10.0, eps=0.0),
    lambda: optim.rmsprop(0.5, decay=10.0, eps=0.0, rho=0.0),
    lambda: optim.adam(0.5, decay=10.0, eps=0.0),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", FIRST_UPDATE_CASES, ids=["sgd", "adagrad", "rmsprop", "adam"])
def test_first_update_uses_the_undecayed_rate(make: Callable[[], Any], dtype: str) -> None:
    # with a unit gradient every optimizer's first step is -lr (eps 0, rho 0); Adam's
    # bias correction 1 - b**1 is computed as -expm1(log1p(-(1 - b))), a rounding off
    rel = {"float32": 1e-6, "float64": 1e-12, "bfloat16": 2.0**-9}[dtype]
    with jax.enable_x64(dtype == "float64"):
        opt = make()
        state = opt.init({"w": jnp.zeros((), dtype)})
        updates, state = jax.jit(opt.update)({"w": jnp.ones((), dtype)}, state)
        assert updates["w"].dtype == jnp.dtype(dtype)
        assert float(updates["w"]) == pytest.approx(-0.5, rel=rel)
        assert float(optim.learning_rate(state)) == pytest.approx(0.5 / 11.0, rel=1e-7)


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


STATEFUL = {"sgd": lambda: optim.sgd(0.1, momentum=0.9), "adagrad": lambda: optim.adagrad(0.1),
            "rmsprop": lambda: optim.rmsprop(0.1), "adam": lambda: optim.adam(0.1),
            "adamw": lambda: optim.adamw(0.1)}


def two_updates_of_each(params: Any, grads: Any) -> dict[str, Any]:
    """Per optimizer of STATEFUL: two updates' states, the second's updates, the params
    after it, and a third update of float32 gradients with its state (one program)."""
    out = {}
    for name, make in STATEFUL.items():
        opt = make()
        _, state = opt.update(grads, opt.init(params), params)
        updates, state = opt.update(grads, state, params)
        grads32 = jax.tree.map(lambda g: g.astype(jnp.float32), grads)
        updates32, state32 = opt.update(grads32, state, params)
        out[name] = (state, updates, optim.apply_updates(params, updates), updates32, state32)
    return out


@pytest.mark.parametrize(("dtype", "x64"), [("bfloat16", False), ("bfloat16", True),
                                            ("float16", False), ("float32", False),
                                            ("float32", True), ("float64", True)])
def test_moments_are_at_least_float32_and_updates_keep_the_gradients_dtype(
        dtype: str, x64: bool) -> None:
    """Moments in promote(param dtype, float32), with x64 on or off, from init through
    updates; updates in the gradients' dtype (float32 ones for float32 gradients); params
    keep theirs through apply_updates."""
    moments = {jnp.dtype(MOMENT_DTYPE[dtype])}
    with jax.enable_x64(x64):
        params = {"w": jnp.ones((4,), dtype), "b": jnp.zeros((2,), dtype)}
        grads = {"w": jnp.full((4,), 0.5, dtype), "b": jnp.full((2,), -2.0, dtype)}
        for name, make in STATEFUL.items():
            assert {b.dtype for b in moment_buffers(make().init(params))} == moments, name
        results = jax.jit(two_updates_of_each)(params, grads)
    for name, (state, updates, new_params, updates32, state32) in results.items():
        assert {b.dtype for b in moment_buffers(state)} == moments, name
        assert {b.dtype for b in moment_buffers(state32)} == moments, name
        assert {u.dtype for u in jax.tree.leaves(updates)} == {jnp.dtype(dtype)}, name
        assert {u.dtype for u in jax.tree.leaves(updates32)} == {jnp.dtype(jnp.float32)}, name
        assert {p.dtype for p in jax.tree.leaves(new_params)} == {jnp.dtype(dtype)}, name
        assert float(new_params["w"][0]) < 1.0 and float(new_params["b"][0]) > 0.0, name


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
