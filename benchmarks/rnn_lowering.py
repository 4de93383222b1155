"""Which lowering should an RNN use? One SGD step on `mean(rnn(x)**2)` over every output
(as a sequence model's per-step loss; gradient w.r.t. all params), inside `lax.scan`
over `--steps` steps (how `fit` runs them) and in a
plain jitted step, for `lowering="per_step"`, `"precomputed"` and (LSTM only) `"bptt"`,
the hand-written backward pass, of `funcnn.nn.RNN`.
Figures: process CPU ms per step, best of `--repeats` (the table in funcnn/nn/recurrent.py).

    python benchmarks/rnn_lowering.py [--quick] [--steps 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

import funcnn as fn

CASES = (("LSTM", (32, 20, 8, 64)), ("LSTM", (64, 50, 32, 128)), ("LSTM", (128, 28, 28, 128)),
         ("LSTM", (256, 20, 128, 256)), ("LSTM", (32, 64, 64, 256)),
         ("GRU", (64, 50, 32, 128)), ("GRU", (256, 20, 128, 256)))
QUICK = (("LSTM", (32, 20, 8, 64)), ("GRU", (32, 20, 8, 64)))


def sgd_step(layer: fn.Layer) -> Callable[[Any, jax.Array], Any]:
    def loss(params: Any, x: jax.Array) -> jax.Array:
        return jnp.mean(layer.apply(params, {}, x)[0] ** 2)

    def step(params: Any, x: jax.Array) -> Any:
        grads = jax.grad(loss)(params, x)
        return jax.tree.map(lambda p, g: p - 0.01 * g, params, grads)

    return step


def best_cpu_ms(run: Callable[[], Any], repeats: int, steps: int) -> float:
    jax.block_until_ready(run())  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        jax.block_until_ready(run())
        best = min(best, time.process_time() - start)
    return 1e3 * best / steps


def measure(kind: str, size: Sequence[int], lowering: str, steps: int,
            repeats: int) -> tuple[float, float]:
    batch, t, features, hidden = size
    make = fn.LSTM if kind == "LSTM" else fn.GRU
    layer = make(hidden, lowering=lowering)
    params, _ = layer.init(jax.random.key(0), (t, features))
    x = jax.random.normal(jax.random.key(1), (batch, t, features))
    step = sgd_step(layer)
    one = jax.jit(step)

    @jax.jit
    def scanned(p: Any) -> Any:
        return jax.lax.scan(lambda c, _: (step(c, x), None), p, None, length=steps)[0]

    in_scan = best_cpu_ms(lambda: scanned(params), repeats, steps)
    plain = best_cpu_ms(lambda: one(params, x), repeats, 1)
    return in_scan, plain


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small cases, 2 repeats")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    cases, repeats = (QUICK, 2) if args.quick else (CASES, args.repeats)
    print("| cell | B x T x F x hidden | per_step (scan / plain) | precomputed (scan / plain) "
          "| bptt (scan / plain) |")
    print("|---|---|---|---|---|")
    for kind, size in cases:
        lowerings = ("per_step", "precomputed", "bptt") if kind == "LSTM" else (
            "per_step", "precomputed")
        cells = [measure(kind, size, lowering, args.steps, repeats) for lowering in lowerings]
        row = " | ".join(f"{a:.3g} / {b:.3g}" for a, b in cells) + (
            "" if kind == "LSTM" else " | -")
        print(f"| {kind} | {'x'.join(map(str, size))} | {row} |")


if __name__ == "__main__":
    main()
