"""What a learning-rate sweep pays for compilation: `for lr in rates: fit(net(), ...,
adam(lr), ...)` with the network rebuilt and a new optimizer each round, once with
funcnn's structural program keys and once with every optimizer made anonymous (its
functions without a `structure`, as an optax transform or an optimizer of one's own is),
which compiles `fit` again every round.

    python benchmarks/sweep_compile.py [--rates 6] [--workload W2|W5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import funcnn as fn
from funcnn.optim.base import GradientTransformation
from funcnn.training.loop import run_epochs_jit


def programs() -> int:
    """How many programs `fit`'s compiled epoch loop holds (jax's own cache count)."""
    return int(run_epochs_jit._cache_size())  # type: ignore[attr-defined]


def networks() -> dict[str, tuple[Callable[[], fn.Layer], tuple[int, ...]]]:
    """A small MLP (W2's widths) and W5's CNN, each rebuilt by a call."""
    return {
        "W2": (lambda: fn.serial(fn.Dense(128), fn.ReLU(), fn.Dense(128), fn.ReLU(),
                                 fn.Dense(10), fn.Softmax()), (784,)),
        "W5": (lambda: fn.serial(fn.Conv2D(16, 3), fn.ReLU(), fn.MaxPool2D(2),
                                 fn.Conv2D(32, 3), fn.ReLU(), fn.MaxPool2D(2), fn.Flatten(3),
                                 fn.Dense(10), fn.Softmax()), (28, 28, 1)),
    }


def sweep(build: Callable[[], fn.Layer], shape: tuple[int, ...], rates: list[float],
          anonymous: bool, x: Any, y: Any) -> tuple[list[float], int, list[float]]:
    """Seconds per round, programs compiled, and final losses."""
    params, state = build().init(jax.random.key(0), shape)
    times, losses = [], []
    before = programs()
    for lr in rates:
        opt = fn.optim.adam(lr)
        if anonymous:
            opt = GradientTransformation(opt.init, lambda u, s, p=None, o=opt: o.update(u, s, p))
        start = time.perf_counter()
        result = fn.fit(build(), params, state, opt, fn.losses.categorical_crossentropy, x, y,
                        key=jax.random.key(1), epochs=1, batch_size=128, progress=False)
        jax.block_until_ready(result.params)  # type: ignore[no-untyped-call]
        times.append(time.perf_counter() - start)
        losses.append(result.history.loss[-1])
    return times, programs() - before, losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, default=6)
    parser.add_argument("--workload", default="W2", choices=sorted(networks()))
    parser.add_argument("--samples", type=int, default=2_048)
    args = parser.parse_args(argv)
    build, shape = networks()[args.workload]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (args.samples, *shape)).astype(np.float32)
    y = rng.integers(0, 10, args.samples).astype(np.int32)
    rates = list(np.geomspace(1e-4, 1e-1, args.rates))
    print(f"{args.workload}: {args.rates} rates, {args.samples} samples, one epoch each, "
          f"batch 128, network rebuilt and a new adam(lr) every round")
    print("| program keys | programs compiled | first round s | later rounds s (mean) | "
          "whole sweep s |")
    print("|---|---:|---:|---:|---:|")
    results = {}
    for anonymous in (True, False):  # identity first, so the structural sweep starts cold
        jax.clear_caches()  # type: ignore[no-untyped-call]
        times, compiled, losses = sweep(build, shape, rates, anonymous, x, y)
        results[anonymous] = losses
        label = "identity (anonymous optimizers)" if anonymous else "structure (funcnn)"
        print(f"| {label} | {compiled} | {times[0]:.2f} | {np.mean(times[1:]):.3f} | "
              f"{sum(times):.2f} |")
    same = np.array_equal(results[True], results[False])
    print(f"final losses identical under both keys: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
