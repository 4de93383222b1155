"""How fast could one training step be on this machine? The float32 matmul rate XLA attains
at exactly the shapes a step multiplies, and each implementation's fraction of that limit.

One step of an MLP on a batch of B does, per Dense layer (in -> out): the forward product
(B, in) @ (in, out), the weight gradient (in, B) @ (B, out) and, except for the first layer,
the input gradient (B, out) @ (out, in): about 6 x params x B FLOPs. Each product is timed
as a jitted `lax.scan` over distinct inputs (so nothing is hoisted or cached), and the
step's limit is the sum of those times; elementwise work and Adam are not counted.

Usage: python benchmarks/roofline.py [--workloads W1,W2] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from dataclasses import dataclass
from functools import cache

import jax
import jax.numpy as jnp
import numpy as np
from workloads import WORKLOADS, Workload

Matmul = tuple[int, int, int]  # (m, k, n): (m, k) @ (k, n)


def step_matmuls(sizes: tuple[int, ...], batch: int) -> list[Matmul]:
    """The matrix products of one forward + backward pass through Dense layers `sizes`."""
    out: list[Matmul] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        out.append((batch, a, b))  # forward x @ w
        out.append((a, batch, b))  # weight gradient x.T @ dy
        if i > 0:
            out.append((batch, b, a))  # input gradient dy @ w.T
    return out


def matmul_flops(shapes: list[Matmul]) -> int:
    """2 m k n per product."""
    return sum(2 * m * k * n for m, k, n in shapes)


@cache
def matmul_seconds(m: int, k: int, n: int, budget_s: float = 0.3) -> float:
    """Median seconds of one jitted float32 (m, k) @ (k, n) inside a lax.scan over distinct
    left operands (at most ~32 MiB of them); the scan's per-iteration cost is included."""
    count = int(max(2, min(256, (32 << 20) // (4 * m * k))))
    rng = np.random.default_rng(0)
    lhs = jnp.asarray(rng.standard_normal((count, m, k), np.float32))
    rhs = jnp.asarray(rng.standard_normal((k, n), np.float32))
    products = jax.jit(lambda a, b: jax.lax.scan(lambda c, x: (c, x @ b), None, a)[1])
    products(lhs, rhs).block_until_ready()
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < 3 or (time.perf_counter() < deadline and len(samples) < 50):
        start = time.perf_counter()
        products(lhs, rhs).block_until_ready()
        samples.append((time.perf_counter() - start) / count)
    return statistics.median(samples)


@dataclass(frozen=True)
class StepLimit:
    """The matmul-bound time of one training step."""

    flops: int  # exact matmul FLOPs of one step
    approx_flops: int  # 6 x params x batch
    seconds: float  # sum of the measured product times

    @property
    def rate(self) -> float:
        """Attainable FLOP/s at these shapes."""
        return self.flops / self.seconds


def step_limit(workload: Workload, batch: int, budget_s: float = 0.3) -> StepLimit:
    """Measure the matmul-bound time of one step of `workload` at batch size `batch`."""
    shapes = step_matmuls(workload.sizes, batch)
    seconds = sum(matmul_seconds(*s, budget_s=budget_s) for s in shapes)
    return StepLimit(matmul_flops(shapes), 6 * workload.n_params * batch, seconds)


def fraction_of_limit(limit: StepLimit, steps: int, measured_s: float,
                      last_batch: int | None = None, batch: int | None = None) -> float:
    """limit time of `steps` steps / measured time (the last step may be a smaller batch,
    counted pro rata)."""
    total = limit.seconds * steps
    if last_batch is not None and batch:
        total -= limit.seconds * (1 - last_batch / batch)
    return total / measured_s


def peak_rate(size: int = 1024, budget_s: float = 0.5) -> float:
    """FLOP/s of a large square float32 matmul, the machine's practical peak."""
    return 2 * size**3 / matmul_seconds(size, size, size, budget_s=budget_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="W1,W2,W3,W4")
    parser.add_argument("--quick", action="store_true", help="shorter timing budget")
    args = parser.parse_args(argv)
    budget = 0.1 if args.quick else 0.5
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} cores")
    print(f"square 1024 float32 matmul: {peak_rate(budget_s=budget) / 1e9:.1f} GFLOP/s")
    print()
    print("| workload | batch | params | 6*P*B MFLOP | matmul MFLOP/step | attainable GFLOP/s "
          "| limit per step (us) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.workloads.split(","):
        wl = WORKLOADS[name]
        batch = wl.batch_size or wl.samples * (wl.sizes[-1] if wl.data == "spiral" else 1)
        lim = step_limit(wl, batch, budget)
        print(f"| {name} | {batch} | {wl.n_params} | {lim.approx_flops / 1e6:.2f} | "
              f"{lim.flops / 1e6:.2f} | {lim.rate / 1e9:.1f} | {lim.seconds * 1e6:.1f} |")
        for shape in step_matmuls(wl.sizes, batch):
            secs = matmul_seconds(*shape, budget_s=budget)
            print(f"|   {shape[0]}x{shape[1]} @ {shape[1]}x{shape[2]} | | | | "
                  f"{2 * np.prod(shape) / 1e6:.2f} | {2 * np.prod(shape) / secs / 1e9:.1f} "
                  f"| {secs * 1e6:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
