"""Hand-written pure JAX: a jitted step driven by a Python loop, and the fused variant (all
epochs of a run in one compiled program, `lax.scan` over minibatches), with its knobs.

Shared pieces: the MLP forward pass, three formulations of softmax + categorical
cross-entropy, and the book's Adam (eps outside the sqrt, inverse-time decay).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from workloads import Problem, Weights

Params = list[tuple[jax.Array, jax.Array]]
Carry = tuple[Params, Params, Params, jax.Array]  # params, m, v, count
B1, B2, EPS = 0.9, 0.999, 1e-7


def forward(params: Params, x: jax.Array, hidden: str) -> jax.Array:
    """Logits of the MLP: `h = act(h @ w + b)` between layers, none after the last."""
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w + b[None, :]
        if i < len(params) - 1:
            h = jax.nn.relu(h) if hidden == "relu" else jax.nn.sigmoid(h)
    return h


def cce_book(logits: jax.Array, y: jax.Array, weight: jax.Array) -> jax.Array:
    """The book's form: softmax, clip to [1e-7, 1-1e-7], -log p[y]; weighted mean."""
    probs = jax.nn.softmax(logits)
    picked = jnp.take_along_axis(probs, y[:, None], axis=1)[:, 0]
    losses = -jnp.log(jnp.clip(picked, 1e-7, 1 - 1e-7))
    return jnp.sum(losses * weight) / jnp.sum(weight)


def cce_logits(logits: jax.Array, y: jax.Array, weight: jax.Array) -> jax.Array:
    """From logits: -log_softmax(logits)[y]; weighted mean (no clip)."""
    picked = jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]
    return -jnp.sum(picked * weight) / jnp.sum(weight)


@jax.custom_vjp
def cce_fused(logits: jax.Array, y: jax.Array, weight: jax.Array) -> jax.Array:
    """The book's clipped loss with the combined backward `(softmax - onehot) * w / sum w`."""
    return _cce_fused_fwd(logits, y, weight)[0]


def _cce_fused_fwd(logits: jax.Array, y: jax.Array, weight: jax.Array) -> tuple[jax.Array, Any]:
    probs = jax.nn.softmax(logits)
    onehot = jax.nn.one_hot(y, logits.shape[1], dtype=logits.dtype)
    picked = jnp.sum(probs * onehot, axis=1)
    scale = weight / jnp.sum(weight)
    return jnp.sum(-jnp.log(jnp.clip(picked, 1e-7, 1 - 1e-7)) * scale), (probs, onehot, scale)


def _cce_fused_bwd(res: Any, g: jax.Array) -> tuple[jax.Array, None, None]:
    probs, onehot, scale = res
    return g * (probs - onehot) * scale[:, None], None, None


cce_fused.defvjp(_cce_fused_fwd, _cce_fused_bwd)

LOSSES: dict[str, Callable[[jax.Array, jax.Array, jax.Array], jax.Array]] = {
    "book": cce_book, "logits": cce_logits, "fused": cce_fused}


def adam_update(carry: Carry, grads: Params, lr: float, decay: float) -> Carry:
    """The book's Adam step at count t: lr_t = lr / (1 + decay t); bias correction 1 - b^(t+1)."""
    params, m, v, t = carry
    tf = t.astype(jnp.float32)
    rate = lr / (1.0 + decay * tf)
    c1, c2 = 1.0 - B1 ** (tf + 1.0), 1.0 - B2 ** (tf + 1.0)
    m = jax.tree.map(lambda m_, g: B1 * m_ + (1 - B1) * g, m, grads)
    v = jax.tree.map(lambda v_, g: B2 * v_ + (1 - B2) * g * g, v, grads)
    params = jax.tree.map(lambda p, m_, v_: p - rate * (m_ / c1) / (jnp.sqrt(v_ / c2) + EPS),
                          params, m, v)
    return params, m, v, t + 1


def fresh_carry(init: Weights) -> Carry:
    """Device copies of the initial weights and zero Adam moments."""
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in init]
    zeros = jax.tree.map(jnp.zeros_like, params)
    return params, zeros, jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.int32)


def block(tree: Any) -> Any:
    """Wait until every array in `tree` is computed; returns `tree`."""
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            leaf.block_until_ready()
    return tree


def to_numpy(params: Params) -> Weights:
    return [(np.asarray(w), np.asarray(b)) for w, b in params]


def make_step(problem: Problem, loss: str) -> Callable[..., Carry]:
    """`step(carry, xb, yb, weight) -> carry`: one Adam step on a (masked) minibatch."""
    wl = problem.workload
    loss_fn = LOSSES[loss]

    def step(carry: Carry, xb: jax.Array, yb: jax.Array, weight: jax.Array) -> Carry:
        grads = jax.grad(lambda p: loss_fn(forward(p, xb, wl.hidden), yb, weight))(carry[0])
        return adam_update(carry, grads, wl.learning_rate, wl.decay)

    return step


class JaxLoopRunner:
    """A jitted train step called from a Python loop, the data on the device once; the
    batch rows are gathered inside the step (one retrace for a shorter last batch)."""

    name = "jax step loop"

    def __init__(self, loss: str = "fused") -> None:
        self.loss = loss

    def setup(self, problem: Problem) -> None:
        self.problem = problem
        step = make_step(problem, self.loss)
        self.x, self.y = jnp.asarray(problem.x), jnp.asarray(problem.y)

        def gathered(carry: Carry, x: jax.Array, y: jax.Array, rows: jax.Array) -> Carry:
            return step(carry, x[rows], y[rows], jnp.ones(rows.shape, jnp.float32))

        def full(carry: Carry, x: jax.Array, y: jax.Array) -> Carry:
            return step(carry, x, y, jnp.ones(y.shape, jnp.float32))

        self.step_rows = jax.jit(gathered, donate_argnums=0)
        self.step_full = jax.jit(full, donate_argnums=0)

    def reset(self) -> None:
        self.carry = fresh_carry(self.problem.init)

    def run(self) -> None:
        p = self.problem
        carry = self.carry
        for epoch in range(p.workload.epochs):
            if p.workload.batch_size is None:
                carry = self.step_full(carry, self.x, self.y)
                continue
            for rows in p.batches(epoch):
                carry = self.step_rows(carry, self.x, self.y, rows)
        self.carry = block(carry)

    def weights(self) -> Weights:
        return to_numpy(self.carry[0])


@dataclass(frozen=True)
class FusedConfig:
    """Knobs of the fused loop; `benchmarks/fused_search.py` times every combination."""

    unroll: int = 1  # lax.scan unroll factor over minibatches
    donate: bool = True  # donate params/optimizer buffers to the program
    gather: str = "inside"  # "inside": x[rows] in the scan body; "outside": x[order] first
    shuffle: str = "host"  # "host": NumPy orders passed in; "device": jax.random.permutation
    loss: str = "fused"  # see LOSSES
    tail: str = "mask"  # last partial batch: "mask" (padded, zero weights) or "split"
    per_epoch_call: bool = False  # one compiled call per epoch instead of one per run

    def label(self) -> str:
        return (f"unroll={self.unroll} donate={int(self.donate)} gather={self.gather} "
                f"shuffle={self.shuffle} loss={self.loss} tail={self.tail} "
                f"call={'epoch' if self.per_epoch_call else 'run'}")


BEST_FUSED = FusedConfig()
"""The baseline of fused_search.py: the fastest combination on W1-W3 (docs/performance.md)."""

BEST_BY_WORKLOAD = {"W1": FusedConfig(unroll=8), "W4": FusedConfig(unroll=4)}
"""Workloads whose fastest combination differs from BEST_FUSED (fused_search.py, 5 repeats):
W1's one-step epochs run 11% faster unrolled 8 times, W4's 80 us steps 30% faster
unrolled 4 times."""


def _epoch_body(problem: Problem, cfg: FusedConfig, step: Callable[..., Carry]) -> Callable[
        [Carry, jax.Array, jax.Array, jax.Array], Carry]:
    """`epoch(carry, x, y, order) -> carry`: one epoch of minibatches in a lax.scan."""
    n, b = problem.n, problem.batch_size
    full = n // b
    padded = -(-n // b) * b

    def run_batches(carry: Carry, x: jax.Array, y: jax.Array, order: jax.Array,
                    count: int, size: int) -> Carry:
        rows = order.reshape(count, size)
        weight = jnp.ones((count, size), jnp.float32)
        return _scan_batches(carry, x, y, rows, weight)

    def _scan_batches(carry: Carry, x: jax.Array, y: jax.Array, rows: jax.Array,
                      weight: jax.Array) -> Carry:
        if cfg.gather == "outside":
            seq: tuple[jax.Array, ...] = (x[rows], y[rows], weight)
        else:
            seq = (rows, weight)

        def body(c: Carry, s: tuple[jax.Array, ...]) -> tuple[Carry, None]:
            if cfg.gather == "outside":
                xb, yb, wb = s
            else:
                xb, yb, wb = x[s[0]], y[s[0]], s[1]
            return step(c, xb, yb, wb), None

        return jax.lax.scan(body, carry, seq, unroll=cfg.unroll)[0]

    def epoch(carry: Carry, x: jax.Array, y: jax.Array, order: jax.Array) -> Carry:
        if padded == n:
            return run_batches(carry, x, y, order, n // b, b)
        if cfg.tail == "split":
            carry = run_batches(carry, x, y, order[:full * b], full, b)
            rows = order[full * b:]
            return step(carry, x[rows], y[rows], jnp.ones(rows.shape, jnp.float32))
        rows = jnp.concatenate([order, jnp.zeros(padded - n, order.dtype)])
        weight = (jnp.arange(padded) < n).astype(jnp.float32)
        return _scan_batches(carry, x, y, rows.reshape(-1, b), weight.reshape(-1, b))

    return epoch


class JaxFusedRunner:
    """All epochs of a run in one jitted program: scan over epochs, scan over minibatches."""

    def __init__(self, config: FusedConfig | None = None, name: str = "jax fused scan",
                 ) -> None:
        self.config = config  # None: the workload's best (BEST_BY_WORKLOAD or BEST_FUSED)
        self.name = name

    def setup(self, problem: Problem) -> None:
        self.problem = problem
        cfg = self.config or BEST_BY_WORKLOAD.get(problem.workload.name, BEST_FUSED)
        self.cfg = cfg
        wl = problem.workload
        step = make_step(problem, cfg.loss)
        self.x, self.y = jnp.asarray(problem.x), jnp.asarray(problem.y)
        donate = (0,) if cfg.donate else ()
        if wl.batch_size is None:
            def full_run(carry: Carry, x: jax.Array, y: jax.Array) -> Carry:
                ones = jnp.ones(y.shape, jnp.float32)
                return jax.lax.scan(lambda c, _: (step(c, x, y, ones), None), carry, None,
                                    length=wl.epochs, unroll=cfg.unroll)[0]
            self.full_run = jax.jit(full_run, donate_argnums=donate)
            return
        epoch = _epoch_body(problem, cfg, step)
        n = problem.n

        def orders_of(orders_or_key: jax.Array, count: int) -> jax.Array:
            if cfg.shuffle == "host":
                return orders_or_key
            keys = jax.random.split(orders_or_key, count)
            return jax.vmap(lambda k: jax.random.permutation(k, n).astype(jnp.int32))(keys)

        def many(carry: Carry, x: jax.Array, y: jax.Array, src: jax.Array) -> Carry:
            orders = orders_of(src, 1 if cfg.per_epoch_call else wl.epochs)
            return jax.lax.scan(lambda c, o: (epoch(c, x, y, o), None), carry, orders)[0]

        self.many = jax.jit(many, donate_argnums=donate)
        self.key = jax.random.key(0)

    def reset(self) -> None:
        self.carry = fresh_carry(self.problem.init)

    def run(self) -> None:
        p, cfg = self.problem, self.cfg
        carry = self.carry
        if p.workload.batch_size is None:
            carry = self.full_run(carry, self.x, self.y)
        elif cfg.per_epoch_call:
            for e in range(p.workload.epochs):
                src = (jnp.asarray(p.orders[e:e + 1]) if cfg.shuffle == "host"
                       else jax.random.fold_in(self.key, e))
                carry = self.many(carry, self.x, self.y, src)
        else:
            src = jnp.asarray(p.orders) if cfg.shuffle == "host" else self.key
            carry = self.many(carry, self.x, self.y, src)
        self.carry = block(carry)

    def weights(self) -> Weights:
        return to_numpy(self.carry[0])
