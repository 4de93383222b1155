"""What `fit`'s up-front data checks cost (docs/09_checks.md): the shape trace of one
example and the value check (non-finite rows, labels against the output's classes), for
NumPy data (checked on the host) and for device arrays (one compiled reduction).

    python benchmarks/check_cost.py [--quick] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from functools import partial

import jax
import numpy as np

import funcnn as fn
from funcnn.training.checks import check_values, example_output


def best_ms(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(first call, best of the following `repeats`) in milliseconds."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        call()
        times.append(1e3 * (time.perf_counter() - start))
    return times[0], min(times[1:])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6,000 digit images, not 60,000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    cases = [("spiral 300x2, 3 classes", (2,), 3, 300),
             ("digits 60000x784, 10 classes", (784,), 10, 6_000 if args.quick else 60_000)]
    print("| data | where | shape trace, ms | value check, first call, ms | value check, "
          "best, ms |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, shape, classes, n in cases:
        net = fn.serial(fn.Dense(128), fn.ReLU(), fn.Dense(classes), fn.Softmax())
        params, state = net.init(jax.random.key(0), shape)
        x = rng.random((n, *shape), dtype=np.float32)
        y = rng.integers(0, classes, n).astype(np.int32)
        on_device = jax.device_put(x)
        out = example_output("fit", net, params, state, on_device)
        _, trace = best_ms(partial(example_output, "fit", net, params, state, on_device),
                           args.repeats)
        for where, (xs, ys) in (("host", (x, y)), ("device", jax.device_put((x, y)))):
            first, best = best_ms(partial(check_values, "fit", net, xs, ys, out), args.repeats)
            print(f"| {name} | {where} | {trace:.1f} | {first:.1f} | {best:.1f} |")


if __name__ == "__main__":
    main()
