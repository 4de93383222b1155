"""Time per epoch of funcnn's `fit` next to a hand-written JAX step loop (a jitted step):
784-128-ReLU-128-ReLU-10 on 60,000 samples at batch 128 (synthetic random data of MNIST
shape), and the book's 2-64-ReLU-3 spiral net, full batch (one step per epoch).

    .venv/bin/python benchmarks/train_mlp.py [--tiny] [--repeats N]

Needs only funcnn's own environment (`make bench`); see peers.py for the peer libraries.
"""

from __future__ import annotations

import argparse
import sys

from harness import fmt, measure, table
from run_funcnn import FuncnnRunner
from run_jax import JaxLoopRunner
from workloads import WORKLOADS, make_problem, scaled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds; used by the tests")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "full"
    repeats = (2 if args.tiny else 5) if args.repeats is None else args.repeats
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")
    rows = []
    for name in ("W2", "W1"):
        problem = make_problem(scaled(WORKLOADS[name], mode))
        wl = problem.workload
        results = measure(problem, [("funcnn fit", FuncnnRunner),
                                    ("jax step loop", JaxLoopRunner)], repeats,
                          log=lambda _: None)
        loop = results[1].median_s
        for m in results:
            rows.append([f"{name} {'x'.join(map(str, wl.sizes))} n={problem.n} "
                         f"batch={problem.batch_size}", m.name,
                         fmt(m.median_s / wl.epochs), fmt(m.median_s / problem.steps * 1e3),
                         fmt(m.median_s / loop, 2), fmt(m.first_s), f"{m.accuracy:.4f}"])
    print(f"medians of {repeats} interleaved runs; 'x loop' = time / hand-written step loop's")
    print(table(rows, ["workload", "implementation", "s/epoch", "ms/step", "x loop",
                       "first run s", "accuracy"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
