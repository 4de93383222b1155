"""funcnn against its peers: the same network, data, initial weights and hyper-parameters,
trained by funcnn's `fit` and by every peer, in one process, repetitions interleaved.

    .venv-bench/bin/python benchmarks/peers.py            # W1-W4, 5 repeats (~15 min)
    .venv-bench/bin/python benchmarks/peers.py --quick    # smaller, under 3 minutes
    .venv/bin/python benchmarks/peers.py --tiny --peers funcnn,numpy,jax-loop,jax-fused

A timed run is one whole workload (W1: 1000 full-batch steps; W2, W3: one epoch; W4: 20
epochs) from the shared initial weights; the first run (tracing, compiling) is reported
apart. Accuracy is computed in NumPy from each implementation's final weights (W1 on the
training set, the others on held-out data) and must agree with funcnn's within --tolerance.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

# Thread pools that spin-wait for each other collapse when other processes share the two
# cores (measured: PyTorch's OpenMP steps 10-40x slower, NumPy's two-thread OpenBLAS 5-10x
# slower than one thread). Sleeping OpenMP waits and single-threaded BLAS are the fair
# settings on a busy machine; export OMP_WAIT_POLICY=ACTIVE / OPENBLAS_NUM_THREADS=2 to
# measure the defaults on a quiet one. Must precede the first import of numpy or torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from harness import OWN_SHUFFLES, Measurement, Runner, fmt, measure, table
from workloads import WORKLOADS, Problem, make_problem, scaled

PEERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "funcnn": ("run_funcnn", "FuncnnRunner", {}),
    "funcnn-bf16": ("run_funcnn", "FuncnnRunner", {"policy": "mixed_bfloat16"}),
    "jax-fused": ("run_jax", "JaxFusedRunner", {}),
    "jax-loop": ("run_jax", "JaxLoopRunner", {}),
    "numpy": ("run_numpy", "NumpyRunner", {}),
    "torch": ("run_peers", "TorchRunner", {}),
    "flax": ("run_peers", "FlaxRunner", {}),
    "equinox": ("run_peers", "EquinoxRunner", {}),
    "keras": ("run_peers", "KerasRunner", {}),
}
TOLERANCE = {"W1": 0.05, "W2": 0.02, "W3": 0.02, "W4": 0.03}
"""Largest accepted |accuracy - funcnn's accuracy|: shuffles differ (funcnn and Keras draw
their own) and float32 rounding differs between libraries. W1 is chaotic: implementations
that agree to 2e-7 after one step differ by 1e-2 in the weights after ten (Adam at lr 0.05
amplifies rounding in near-zero gradients), and end between 0.80 and 0.84 (measured)."""


def factory(peer: str) -> Callable[[], Runner]:
    """A zero-argument constructor; importing the runner module may raise ImportError."""
    module_name, cls_name, kwargs = PEERS[peer]

    def make() -> Runner:
        import importlib

        cls = getattr(importlib.import_module(module_name), cls_name)
        runner: Runner = cls(**kwargs)
        return runner

    return make


NET_WORKLOADS = {"W5": "w5_cnn", "W6": "w6_transformer", "W7": "w7_lstm"}
"""The workloads beyond the MLPs; each module follows net_workloads.py's contract."""


def compiled_flops(fn: Any, args: tuple[Any, ...]) -> float:
    """XLA's own FLOP count (`cost_analysis()`) of the jitted `fn` at `args`."""
    cost = fn.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost["flops"])


def step_flops(module: Any, problem: Any) -> float:
    """FLOPs of one training step in the workload's plain formulation, from one jitted step
    (not from a scan, whose body XLA may count once); a module whose step has a scan
    inside (W7's time loop) gives its own count, `step_flops(problem)`."""
    if hasattr(module, "step_flops"):
        return float(module.step_flops(problem))
    return compiled_flops(*module.plain_step(problem))


def mlp_step_flops(problem: Problem) -> float:
    """FLOPs of one W1-W4 step (forward, backward, Adam) of the hand-written JAX step at
    the full batch size, from XLA's `cost_analysis()`."""
    import jax
    import jax.numpy as jnp
    from run_jax import fresh_carry, make_step

    b = problem.batch_size
    args = (fresh_carry(problem.init), jnp.asarray(problem.x[:b]), jnp.asarray(problem.y[:b]),
            jnp.ones((b,), jnp.float32))
    return compiled_flops(jax.jit(make_step(problem, "fused")), args)


def run_net_workload(name: str, mode: str, peers: list[str], repeats: int, seed: int,
                     peak: float | None) -> bool:
    """Time W5-W7 for `peers` (those the workload module has), print the table; True when
    every implementation's metric agrees with funcnn's within the module's TOLERANCE."""
    import importlib

    module = importlib.import_module(NET_WORKLOADS[name])
    problem = module.make_problem(mode, seed)
    print(f"\n## {name}: {module.TITLE}")
    print(f"{problem.n} training samples, {problem.steps_per_epoch} steps/epoch x "
          f"{problem.epochs} epochs = {problem.steps} steps per timed run; "
          f"{module.METRIC} on {problem.y_eval.shape[0]} held-out samples")
    chosen = [p for p in peers if p in module.RUNNERS]
    results = measure(problem, [(_display_name(p), module.RUNNERS[p]) for p in chosen],
                      repeats, evaluate=lambda w: module.evaluate(problem, w))
    flops = step_flops(module, problem) if peak is not None else float("nan")
    if peak is not None:
        print(f"one step of the plain formulation: {flops / 1e6:.1f} MFLOP (cost_analysis); "
              f"peak {peak / 1e9:.1f} GFLOP/s (square 1024 matmul, this run)")
    ref = next((m for m in results if m.name == "funcnn fit" and not m.skipped), None)
    rows, agree = [], True
    for m in results:
        if m.skipped:
            rows.append([m.name, *["-"] * 8, m.note or "skipped"])
            continue
        ratio = m.median_s / ref.median_s if ref else float("nan")
        tol = module.TOLERANCE * (3 if m.note == OWN_SHUFFLES else 1)
        ok = ref is None or abs(m.accuracy - ref.accuracy) <= tol
        agree &= ok
        of_peak = flops * problem.steps / m.median_s / peak if peak else float("nan")
        rows.append([m.name, fmt(m.median_s / problem.steps * 1e3),
                     fmt(m.best_s / problem.steps * 1e3), fmt(ratio, 2),
                     fmt(m.median_cpu_s / problem.steps * 1e3), fmt(m.first_s),
                     fmt(max(0.0, m.compile_s)), f"{m.accuracy:.4f}" + ("" if ok else " (!)"),
                     "-" if of_peak != of_peak else f"{100 * of_peak:.1f}%", m.note])
    header = ["implementation", "ms/step", "best ms/step", "x funcnn", "cpu ms/step",
              "first run s", "compile s", module.METRIC, "of peak", "notes"]
    print(table(rows, header))
    print(f"{module.METRIC} {'agree' if agree else 'DISAGREE'} within {module.TOLERANCE}")
    return agree


def machine() -> str:
    """CPU model, core count and library versions, for the report."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, python {platform.python_version()}, "
            f"jax {jax.__version__}")


def report(problem: Problem, results: list[Measurement], limit: Any,
           tolerance: float, flops: float = float("nan"),
           peak: float | None = None) -> tuple[str, bool]:
    """The markdown table for one workload, and whether all accuracies agree."""
    from roofline import fraction_of_limit

    wl = problem.workload
    steps, epochs = problem.steps, wl.epochs
    ref = next((m for m in results if m.name == "funcnn fit" and not m.skipped),
               next((m for m in results if not m.skipped), None))
    last = problem.n - (problem.steps_per_epoch - 1) * problem.batch_size
    rows, agree = [], True
    for m in results:
        if m.skipped:
            rows.append([m.name, *["-"] * 10, m.note or "skipped"])
            continue
        ratio = m.median_s / ref.median_s if ref else float("nan")
        frac = float("nan")
        if limit is not None:
            frac = fraction_of_limit(limit, steps, m.median_s,
                                     None if last == problem.batch_size else last,
                                     problem.batch_size)
        # an implementation that shuffles with its own generator sees other minibatches:
        # over five full runs Keras' W4 accuracy lay between 0.731 and 0.827 around the
        # shared-order 0.793, so it gets three times the tolerance
        ok = ref is None or abs(m.accuracy - ref.accuracy) <= tolerance * (
            3 if m.note == OWN_SHUFFLES else 1)
        agree &= ok
        rows.append([m.name, fmt(m.median_s / steps * 1e3), fmt(m.best_s / steps * 1e3),
                     fmt(m.median_s / epochs), fmt(ratio, 2),
                     fmt(m.median_cpu_s / steps * 1e3), fmt(m.first_s),
                     fmt(max(0.0, m.compile_s)), f"{m.accuracy:.4f}" + ("" if ok else " (!)"),
                     "-" if frac != frac else f"{100 * frac:.0f}%",
                     "-" if not peak else f"{100 * flops * steps / m.median_s / peak:.1f}%",
                     m.note])
    header = ["implementation", "ms/step", "best ms/step", "s/epoch", "x funcnn",
              "cpu ms/step", "first run s", "compile s", f"{problem.eval_on} acc",
              "of matmul limit", "of peak", "notes"]
    return table(rows, header), agree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller data, 2 repeats (<3 min)")
    size.add_argument("--tiny", action="store_true", help="seconds; used by the tests")
    parser.add_argument("--workloads", default="W1,W2,W3,W4")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"of {','.join(PEERS)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per peer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-roofline", action="store_true", help="skip the matmul limit")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    repeats = {"full": 5, "quick": 2, "tiny": 2}[mode] if args.repeats is None else args.repeats
    names = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    known = [*WORKLOADS, *NET_WORKLOADS]
    for bad in [w for w in names if w not in known] + [p for p in peers if p not in PEERS]:
        parser.error(f"unknown workload or peer {bad!r}; workloads {','.join(known)}, "
                     f"peers {','.join(PEERS)}")
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")

    print(f"machine: {machine()}")
    print(f"mode: {mode}, repeats: {repeats}, seed: {args.seed}. ms/step, s/epoch: medians of "
          f"the interleaved repeats; best: the fastest repeat; x funcnn: median time / funcnn's "
          f"(>1: slower than funcnn); cpu: process CPU time (both cores count); compile: first "
          f"run - median; of matmul limit: roofline.py's limit / median time")
    all_agree = True
    peak = None
    if not args.no_roofline:
        from roofline import peak_rate

        peak = peak_rate(budget_s=0.05 if mode == "tiny" else 0.5)
    for name in names:
        if name in NET_WORKLOADS:
            all_agree &= run_net_workload(name, mode, peers, repeats, args.seed, peak)
            continue
        wl = scaled(WORKLOADS[name], mode)
        try:
            problem = make_problem(wl, args.seed)
        except ImportError as err:
            print(f"\n## {name}: skipped ({err.name or err} not installed, needed for its data)")
            continue
        print(f"\n## {name}: {wl.title}")
        print(f"{problem.n} training samples ({wl.data}"
              f"{', synthetic random data of MNIST shape' if wl.data == 'synthetic' else ''}), "
              f"{problem.steps_per_epoch} steps/epoch x {wl.epochs} epochs = {problem.steps} "
              f"steps per timed run; accuracy on {problem.eval_on} ({problem.y_eval.size})")
        results = measure(problem, [(_display_name(p), factory(p)) for p in peers], repeats)
        limit = None
        if not args.no_roofline:
            from roofline import step_limit

            limit = step_limit(wl, problem.batch_size, 0.05 if mode == "tiny" else 0.3)
            print(f"matmul limit: {limit.flops / 1e6:.2f} MFLOP/step (6*P*B = "
                  f"{limit.approx_flops / 1e6:.2f}) at {limit.rate / 1e9:.1f} GFLOP/s = "
                  f"{limit.seconds * 1e6:.1f} us/step")
        flops = float("nan")
        if peak is not None:
            flops = mlp_step_flops(problem)
            print(f"one step: {flops / 1e6:.2f} MFLOP (cost_analysis of the hand-written step); "
                  f"peak {peak / 1e9:.1f} GFLOP/s (square 1024 matmul, this run)")
        text, agree = report(problem, results, limit, TOLERANCE[name], flops, peak)
        all_agree &= agree
        print(text)
        print(f"accuracies {'agree' if agree else 'DISAGREE'} within {TOLERANCE[name]}")
    print(f"\nall accuracies agree: {'yes' if all_agree else 'NO'}")
    return 0 if all_agree else 1


def _display_name(peer: str) -> str:
    return {"funcnn": "funcnn fit", "funcnn-bf16": "funcnn fit, mixed_bfloat16",
            "jax-fused": "jax fused scan", "jax-loop": "jax step loop",
            "numpy": "numpy (book)", "torch": "pytorch", "flax": "flax linen",
            "equinox": "equinox", "keras": "keras 3 (jax)"}[peer]


if __name__ == "__main__":
    sys.exit(main())
