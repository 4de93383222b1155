"""`fit_ensemble` with K members against K separate `fit` calls: the book's spiral net
(2-64-ReLU-3 softmax, Adam lr 0.05 decay 5e-7, 300 samples), the rows of the ensembles
table in docs/scaling.md.

    .venv/bin/python benchmarks/ensembles.py [--repeats 3] [--tiny]

Each figure is the best of the repeats after a first, compiling call; "first" is that
first call. Both sides reuse one optimizer object, so each compiles once.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
from harness import fmt, table

import funcnn as fn
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.training.ensemble import fit_ensemble, init_ensemble

CASES = [(4, 1000, None), (16, 1000, None), (16, 100, 32), (64, 1000, None)]
"""(members K, epochs, batch size; None = full batch)."""


def timed(run: Callable[[], Any]) -> tuple[float, float]:
    """Wall and process-CPU seconds of `run()`, waiting for its arrays."""
    cpu, start = time.process_time(), time.perf_counter()
    jax.block_until_ready(run())
    return time.perf_counter() - start, time.process_time() - cpu


def measure(members: int, epochs: int, batch_size: int | None, repeats: int,
            ) -> dict[str, float]:
    """Best and first timings of one `fit_ensemble` call and of K `fit` calls."""
    key = jax.random.key(0)
    x, y = fn.datasets.spiral(key, 100, 3)
    net = fn.serial(fn.Dense(64), fn.ReLU(), fn.Dense(3), fn.Softmax())
    keys = jax.random.split(jax.random.fold_in(key, 1), members)
    params, state = init_ensemble(net, keys, (2,))
    singles = [jax.tree.map(lambda a, k=k: a[k], params) for k in range(members)]
    opt = fn.optim.adam(0.05, decay=5e-7)
    common: dict[str, Any] = {"epochs": epochs, "batch_size": batch_size,
                              "metric": categorical_accuracy, "progress": False}

    def ensemble() -> Any:
        return fit_ensemble(net, params, state, opt, categorical_crossentropy, x, y,
                            keys=keys, **common).params

    def separate() -> Any:
        return [fn.fit(net, p, {}, opt, categorical_crossentropy, x, y, key=keys[k],
                       **common).params for k, p in enumerate(singles)]

    first_ensemble = timed(ensemble)[0]
    first_single = timed(lambda: fn.fit(net, singles[0], {}, opt, categorical_crossentropy,
                                        x, y, key=keys[0], **common).params)[0]
    runs: dict[str, list[tuple[float, float]]] = {"ensemble": [], "separate": []}
    for _ in range(repeats):
        runs["ensemble"].append(timed(ensemble))
        runs["separate"].append(timed(separate))
    best = {name: min(times) for name, times in runs.items()}
    return {"ensemble_s": best["ensemble"][0], "ensemble_cpu_s": best["ensemble"][1],
            "separate_s": best["separate"][0], "separate_cpu_s": best["separate"][1],
            "first_ensemble_s": first_ensemble, "first_single_s": first_single}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="seconds; used by the tests")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    cases = [(2, 20, None), (2, 4, 32)] if args.tiny else CASES
    rows = []
    for members, epochs, batch_size in cases:
        m = measure(members, epochs, batch_size, args.repeats)
        training = (f"{epochs} full-batch epochs" if batch_size is None
                    else f"{epochs} epochs of batches of {batch_size}")
        rows.append([str(members), training,
                     f"{fmt(m['ensemble_s'])} s (CPU {fmt(m['ensemble_cpu_s'])} s)",
                     f"{fmt(m['separate_s'])} s (CPU {fmt(m['separate_cpu_s'])} s)",
                     f"{fmt(m['first_ensemble_s'])} s / {fmt(m['first_single_s'])} s"])
    print(table(rows, ["members K", "training", "one fit_ensemble call", "K fit calls",
                       "first call, with compilation: ensemble / one fit"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
