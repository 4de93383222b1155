"""The book's optimizers against a NumPy transcription of the book in float32, float64
(x64 on) and bfloat16, and the dtypes of their moments and updates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_optim_optimizers import STEPS, gradient_sequence, make_params, run

from funcnn import optim

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
