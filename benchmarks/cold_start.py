"""Short runs are decided by start-up costs: the whole of W4 (20 epochs of the digit net)
from a fresh process, funcnn's `fit` against the book-style NumPy loop, with JAX's
persistent compilation cache empty (first process) and filled (second process).

    .venv-bench/bin/python benchmarks/cold_start.py [--workload W4] [--mode full]

Each measurement is a new Python process. "total" runs from before building the network
(funcnn: `serial(...)`, `net.init`, then `fit` with tracing, compiling or loading the
program; NumPy: the book's layer objects, then its loop) to the trained weights; imports
and data loading are reported apart ("import s"), as they do not depend on the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in peers.py

from harness import fmt, table
from workloads import MODES, WORKLOADS, make_problem, scaled

HERE = os.path.dirname(os.path.abspath(__file__))


def one_process(peer: str, workload: str, mode: str, cache: str | None) -> dict[str, float]:
    """Run in this process (a child): import, build data, then the timed whole run."""
    start = time.perf_counter()
    if peer == "funcnn":
        import jax
        from run_funcnn import FuncnnRunner as Runner

        import funcnn

        if cache is not None:
            funcnn.enable_compilation_cache(cache, min_compile_time_s=0.0)
        jax.numpy.zeros(1).block_until_ready()  # the backend is up before the clock starts
    else:
        from run_numpy import NumpyRunner as Runner
    problem = make_problem(scaled(WORKLOADS[workload], mode))
    imported = time.perf_counter() - start
    start = time.perf_counter()
    runner = Runner()
    runner.setup(problem)
    runner.reset()
    runner.run()
    total = time.perf_counter() - start
    return {"import_s": imported, "total_s": total}


def spawn(peer: str, workload: str, mode: str, cache: str | None) -> dict[str, float]:
    """`one_process` in a new interpreter; returns its figures."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", peer, "--workload", workload,
           "--mode", mode] + ([] if cache is None else ["--cache", cache])
    done = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{peer} child failed:\n{done.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="W4", choices=sorted(WORKLOADS))
    parser.add_argument("--mode", default="full", choices=MODES)
    parser.add_argument("--repeats", type=int, default=3, help="processes per setting")
    parser.add_argument("--child", choices=("funcnn", "numpy"), help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one_process(args.child, args.workload, args.mode, args.cache)))
        return 0
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        settings = [("numpy (book)", "numpy", None, False),
                    ("funcnn, no cache", "funcnn", None, False),
                    ("funcnn, first process (fills the cache)", "funcnn", cache, True),
                    ("funcnn, later processes (cache filled)", "funcnn", cache, False)]
        for label, peer, cache_dir, once in settings:
            runs = [spawn(peer, args.workload, args.mode, cache_dir)
                    for _ in range(1 if once else args.repeats)]
            totals = sorted(r["total_s"] for r in runs)
            rows.append([label, str(len(runs)), fmt(totals[len(totals) // 2]), fmt(totals[0]),
                         fmt(sorted(r["import_s"] for r in runs)[len(runs) // 2])])
    wl = scaled(WORKLOADS[args.workload], args.mode)
    print(f"{args.workload} ({wl.title}), {wl.epochs} epochs, whole run per fresh process")
    print(table(rows, ["setting", "processes", "total s (median)", "best s", "import s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
