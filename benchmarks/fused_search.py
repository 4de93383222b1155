"""Which hand-written fused JAX loop is fastest? Times `FusedConfig` variants, each one knob
away from the baseline, interleaved, on the chosen workloads; prints a table per workload.

    .venv/bin/python benchmarks/fused_search.py --workloads W2,W3 --repeats 5
    XLA_FLAGS=--xla_cpu_use_thunk_runtime=false .venv/bin/python benchmarks/fused_search.py

XLA flags are process-wide, so compare them by running this script once per setting.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from harness import Runner, fmt, measure, table
from run_jax import BEST_FUSED, FusedConfig, JaxFusedRunner, JaxLoopRunner
from workloads import MODES, WORKLOADS, make_problem, scaled


def variants(base: FusedConfig) -> list[FusedConfig]:
    """The baseline, then each knob changed alone."""
    out = [base]
    for change in ({"unroll": 2}, {"unroll": 4}, {"unroll": 8}, {"donate": not base.donate},
                   {"gather": "outside" if base.gather == "inside" else "inside"},
                   {"shuffle": "device" if base.shuffle == "host" else "host"},
                   {"loss": "book"}, {"loss": "logits"}, {"loss": "fused"},
                   {"tail": "split" if base.tail == "mask" else "mask"},
                   {"per_epoch_call": not base.per_epoch_call}):
        cfg = replace(base, **change)
        if cfg not in out:
            out.append(cfg)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="W1,W2,W3,W4")
    parser.add_argument("--mode", choices=MODES, default="full")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; baseline {BEST_FUSED.label()}")
    for name in args.workloads.split(","):
        try:
            problem = make_problem(scaled(WORKLOADS[name], args.mode), args.seed)
        except ImportError as err:
            print(f"\n## {name}: skipped ({err.name} not installed)")
            continue
        configs = variants(BEST_FUSED)
        if problem.workload.batch_size is None:  # no shuffle, gather or tail: fewer knobs
            configs = [c for c in configs if c.gather == BEST_FUSED.gather
                       and c.shuffle == BEST_FUSED.shuffle and c.tail == BEST_FUSED.tail
                       and c.per_epoch_call == BEST_FUSED.per_epoch_call]
        factories: list[tuple[str, Callable[[], Runner]]] = [
            (c.label(), partial(JaxFusedRunner, c, c.label())) for c in configs]
        factories.append(("jax step loop (reference)", JaxLoopRunner))
        print(f"\n## {name}: {problem.workload.title}, {problem.steps} steps per run")
        results = measure(problem, factories, args.repeats, log=lambda _: None)
        base = results[0].median_s
        best = min(results[0].times_s)
        rows = [[m.name, fmt(m.median_s / problem.steps * 1e6), fmt(m.median_s / base, 3),
                 fmt(min(m.times_s) / best, 3), fmt(m.first_s), f"{m.accuracy:.4f}"]
                for m in results]
        print(table(rows, ["variant", "median us/step", "x baseline", "best x best",
                           "first run s", "accuracy"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
