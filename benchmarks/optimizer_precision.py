"""How close RMSProp and Adam with decay rates near 1 stay to the book's float64 formula,
funcnn against optax, on the same problems (the figures of docs/04 and docs/performance.md).

Each problem: 12 N(0, 1) weights, 100 steps of N(0, 1) gradients, rate lr / (1 + 0.01 t).
The table gives the max-abs distance of the final float32 params from float64, per problem
and summed over the problems, and funcnn's ratio to optax.

    python benchmarks/optimizer_precision.py [--problems 8]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import optim

STEPS, DECAY, EPS, WEIGHTS = 100, 1e-2, 1e-7, 12
SEEDS = 8


def problems(count: int = SEEDS) -> tuple[np.ndarray, np.ndarray]:
    """`count` problems of WEIGHTS N(0, 1) weights and STEPS N(0, 1) gradients each:
    params `(count, WEIGHTS)`, gradients `(count, STEPS, WEIGHTS)`, float32."""
    rng = np.random.default_rng(0)
    params = rng.standard_normal((count, WEIGHTS)).astype(np.float32)
    return params, rng.standard_normal((count, STEPS, WEIGHTS)).astype(np.float32)


def book_float64(kind: str, lr: float, beta: float, params: np.ndarray, grads: np.ndarray,
                 b1: float = 0.9) -> np.ndarray:
    """The book's RMSProp (`beta` = rho) or Adam (`beta` = b2) in float64, rate
    `lr / (1 + DECAY * t)`."""
    p = params.astype(np.float64)
    m, c = np.zeros_like(p), np.zeros_like(p)
    for t in range(grads.shape[1]):
        g, rate = grads[:, t].astype(np.float64), lr / (1.0 + DECAY * t)
        c = beta * c + (1 - beta) * g**2
        if kind == "rmsprop":
            p = p - rate * g / (np.sqrt(c) + EPS)
        else:
            m = b1 * m + (1 - b1) * g
            m_hat, c_hat = m / (1 - b1 ** (t + 1)), c / (1 - beta ** (t + 1))
            p = p - rate * m_hat / (np.sqrt(c_hat) + EPS)
    return p


def run_all(opt: Any, params: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Final float32 params of `opt` on every problem (one program, vmapped over them)."""

    def one(p: Any, gs: Any) -> Any:
        def step(carry: Any, g: Any) -> tuple[Any, None]:
            q, s = carry
            u, s = opt.update(g, s, q)
            return (optax.apply_updates(q, u), s), None

        return jax.lax.scan(step, (p, opt.init(p)), gs)[0][0]

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(params), jnp.asarray(grads)))


def optimizers(kind: str, lr: float, beta: float) -> tuple[Any, Any]:
    """funcnn's optimizer and optax's with the same settings and inverse-time decay."""

    def schedule(count: Any) -> Any:
        return lr / (1.0 + DECAY * count)

    if kind == "rmsprop":
        ours = optim.rmsprop(lr, decay=DECAY, eps=EPS, rho=beta)
        reference = optax.rmsprop(schedule, decay=beta, eps=EPS, eps_in_sqrt=False,
                                  initial_scale=0.0)
        return ours, reference
    return optim.adam(lr, decay=DECAY, eps=EPS, b2=beta), optax.adam(schedule, b2=beta, eps=EPS)


CASES = [("rmsprop", 0.02, 0.999), ("rmsprop", 0.1, 0.999), ("rmsprop", 0.02, 0.9999),
         ("adam", 0.02, 0.999), ("adam", 0.1, 0.999), ("adam", 0.02, 0.9999)]


def distances(kind: str, lr: float, beta: float, params: np.ndarray, grads: np.ndarray,
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per problem, the max-abs distance from float64 of funcnn's and of optax's run."""
    exact = book_float64(kind, lr, beta, params, grads)
    ours, reference = optimizers(kind, lr, beta)
    return (np.max(np.abs(run_all(ours, params, grads) - exact), axis=-1),
            np.max(np.abs(run_all(reference, params, grads) - exact), axis=-1))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=SEEDS)
    args = parser.parse_args(argv)
    params, grads = problems(args.problems)
    print("| optimizer | lr | beta | funcnn (sum) | optax (sum) | ratio | per-problem ratios |")
    print("|---|---|---|---|---|---|---|")
    for kind, lr, beta in CASES:
        ours, theirs = distances(kind, lr, beta, params, grads)
        ratios = " ".join(f"{r:.2f}" for r in ours / theirs)
        print(f"| {kind} | {lr} | {beta} | {ours.sum():.3g} | {theirs.sum():.3g} | "
              f"{ours.sum() / theirs.sum():.2f} | {ratios} |")


if __name__ == "__main__":
    main()
