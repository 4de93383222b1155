"""Timing harness: every implementation is a `Runner`; repetitions are interleaved so that
machine noise (other processes on the same cores) hits all implementations alike.

Protocol per runner: `setup(problem)` once, then any number of `reset()` (untimed: the
initial weights and a fresh optimizer state) followed by `run()` (timed: one whole training
run of the workload, blocking until the result exists) and `weights()` (untimed).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from workloads import accuracy

OWN_SHUFFLES = "own shuffles"
"""The `note` of a runner that cannot use the shared minibatch orders (Keras over several
epochs): it sees other minibatches, so `peers.py` allows it three times the accuracy
tolerance."""


class Runner(Protocol):
    """One implementation of the training run."""

    name: str

    def setup(self, problem: Any) -> None: ...

    def reset(self) -> None: ...

    def run(self) -> None: ...

    def weights(self) -> Any: ...  # Weights (W1-W4) or CanonicalWeights (W5-W7)


@dataclass
class Measurement:
    """Timings of one implementation on one problem; `times_s` are steady-state runs."""

    name: str
    first_s: float = float("nan")  # the first run: tracing, compilation and one run
    times_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # process CPU time of the same runs
    accuracy: float = float("nan")
    note: str = ""

    @property
    def skipped(self) -> bool:
        return not self.times_s

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s) if self.times_s else float("nan")

    @property
    def best_s(self) -> float:
        """The fastest run: least disturbed by other processes on the cores."""
        return min(self.times_s) if self.times_s else float("nan")

    @property
    def median_cpu_s(self) -> float:
        return statistics.median(self.cpu_s) if self.cpu_s else float("nan")

    @property
    def compile_s(self) -> float:
        """First run minus a steady run: the one-off cost (tracing, compiling, warm-up)."""
        return self.first_s - self.median_s


def _timed(runner: Runner) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one `run()` after an untimed `reset()`."""
    runner.reset()
    gc.collect()
    cpu, start = time.process_time(), time.perf_counter()
    runner.run()
    return time.perf_counter() - start, time.process_time() - cpu


def measure(problem: Any, factories: Sequence[tuple[str, Callable[[], Runner]]],
            repeats: int, log: Callable[[str], None] = print,
            evaluate: Callable[[Any], float] | None = None) -> list[Measurement]:
    """Set up each runner (skipping those whose package is missing), time its first run,
    then `repeats` rounds of one run of every runner, in a rotating order. The figure
    kept in `Measurement.accuracy` is `evaluate(runner.weights())`, by default the MLP
    accuracy of W1-W4's `Problem`."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    results: list[Measurement] = []
    runners: list[tuple[Runner, Measurement]] = []
    for name, factory in factories:
        m = Measurement(name)
        results.append(m)
        try:
            runner = factory()
            runner.setup(problem)
        except ImportError as err:
            m.note = f"skipped: {err.name or err} not installed"
            log(f"  {name}: {m.note}")
            continue
        m.note = getattr(runner, "note", "")
        m.first_s = _timed(runner)[0]
        log(f"  {name}: first run {m.first_s:.3f} s")
        runners.append((runner, m))
    for r in range(repeats):
        shift = r % max(1, len(runners))
        for runner, m in runners[shift:] + runners[:shift]:
            wall, cpu = _timed(runner)
            m.times_s.append(wall)
            m.cpu_s.append(cpu)
    if evaluate is None:
        def evaluate(weights: Any) -> float:
            return accuracy(weights, problem.workload.hidden, problem.x_eval, problem.y_eval)
    for runner, m in runners:
        m.accuracy = evaluate(runner.weights())
    return results


def fmt(value: float, digits: int = 3) -> str:
    """A number for the table with `digits` significant digits, or '-' when missing."""
    if value != value:  # nan
        return "-"
    if abs(value) >= 10 ** digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def table(rows: list[list[str]], header: list[str]) -> str:
    """A GitHub-flavoured markdown table with right-aligned numeric columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2)
                          for i, w in enumerate(widths)) + "|"
    body = ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                              for i, (c, w) in enumerate(zip(row, widths, strict=True))) + " |"
            for row in rows]
    return "\n".join([line, rule, *body])
