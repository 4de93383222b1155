"""W2 streamed: one epoch of 784-128-ReLU-128-ReLU-10 (batch 128, Adam 1e-3) trained by
`fit` on arrays in memory, by `fit_stream` from a memory-mapped `.npy` file and from
in-memory arrays (both through `funcnn.data.ArraySource`), and by `fit_stream` through a
Grain `DataLoader`; one process, the runs of the four interleaved.

    .venv/bin/python benchmarks/stream_w2.py                # 60,000 samples, 3 repeats
    .venv/bin/python benchmarks/stream_w2.py --repeats 5
    .venv/bin/python benchmarks/stream_w2.py --tiny --json out.json   # seconds (the tests)

The training set is written once to `x_train.npy`/`y_train.npy` in a temporary directory
and opened with `load_npy_directory` (`np.load(mmap_mode="r")`); it was just written, so
its pages are in the OS cache: the memmap figures are reads through the page cache, not
from the disk. Each variant's first run (tracing, compiling) is untimed. Per variant:
median seconds per epoch, ratio to `fit`'s, and `input_times` as shares of the epoch
(`produce`: the input thread's time reading, checking, stacking and placing chunks;
`wait`: training waiting for it). `ArraySource` with `fit`'s key gives `fit`'s orders, so
those params must equal `fit`'s; Grain shuffles with its own sampler, so only its
accuracy is compared. A second table times the input pipelines alone (no training), per
batch and per record, with Grain's per-record parts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jax
import numpy as np
from harness import OWN_SHUFFLES, Measurement, Runner, fmt, measure, table
from peers import TOLERANCE, machine
from run_funcnn import FuncnnRunner
from workloads import WORKLOADS, Problem, make_problem, scaled

from funcnn.data import ArraySource, load_npy_directory
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.training import fit_stream

TARGET = 1.10
"""The memmap-streamed epoch should take at most this many times `fit`'s."""

Data = tuple[Any, int | None]  # what fit_stream reads, and its steps_per_epoch (or None)


class StreamRunner(FuncnnRunner):
    """`fit_stream` over `make_data(problem, key)`, with the network, initial weights,
    optimizer and key of the `fit` runner `base` (set up first; sharing them also shares
    the compiled `init`); keeps each run's `input_times`."""

    def __init__(self, make_data: Callable[[Problem, Any], Data], base: FuncnnRunner) -> None:
        super().__init__()
        self.make_data, self.base = make_data, base
        self.input_times: list[Any] = []

    def setup(self, problem: Problem) -> None:
        base = self.base
        self.problem, self.net, self.state, self.key = problem, base.net, base.state, base.key
        self.init_params, self.optimizer = base.init_params, base.optimizer
        data, steps = self.make_data(problem, self.key)

        def train(params: Any, opt_state: Any) -> Any:
            return fit_stream(self.net, params, self.state, self.optimizer,
                              categorical_crossentropy, data, key=self.key,
                              epochs=problem.workload.epochs, steps_per_epoch=steps,
                              metric=categorical_accuracy, progress=False,
                              opt_state=opt_state)

        self.train = train

    def run(self) -> None:
        super().run()
        self.input_times.append(self.result.input_times)


class RecordSource:
    """A Grain random-access data source over arrays (memmaps stay on disk): record `i` is
    `(x[i], y[i])`."""

    def __init__(self, x: Any, y: Any) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.x[index], self.y[index]

    def __repr__(self) -> str:  # Grain stores it in its iterator state
        return f"RecordSource({self.x.shape}, {self.y.shape})"


def grain_sampler(n: int, seed: int) -> Any:
    import grain

    return grain.samplers.IndexSampler(n, shard_options=grain.sharding.ShardOptions(0, 1),
                                       shuffle=True, num_epochs=1, seed=seed)


def grain_loader(x: Any, y: Any, batch_size: int, seed: int, threads: int = 0) -> Any:
    """One epoch of shuffled batches (the last one smaller) in this process (no workers);
    `threads` reading threads (Grain's default is 16; it advises 0 for data in memory)."""
    import grain

    options = (grain.ReadOptions() if threads else
               grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    return grain.DataLoader(data_source=RecordSource(x, y), sampler=grain_sampler(len(y), seed),
                            operations=[grain.transforms.Batch(batch_size,
                                                               drop_remainder=False)],
                            worker_count=0, read_options=options)


def variants(directory: Path) -> list[tuple[str, Callable[[], Runner]]]:
    """The four runners; (b) and (d) read the memmapped files in `directory`."""
    def memmap(problem: Problem, key: Any) -> Data:
        files = load_npy_directory(directory)
        return ArraySource(files["x_train"], files["y_train"], problem.batch_size,
                           key=key), None

    def in_memory(problem: Problem, key: Any) -> Data:
        return ArraySource(problem.x, problem.y, problem.batch_size, key=key), None

    def through_grain(problem: Problem, key: Any) -> Data:
        files = load_npy_directory(directory)
        return (grain_loader(files["x_train"], files["y_train"], problem.batch_size,
                             problem.seed), problem.steps_per_epoch)

    base = FuncnnRunner()
    return [("fit, in memory", lambda: base),
            ("fit_stream, ArraySource over memmap", lambda: StreamRunner(memmap, base)),
            ("fit_stream, ArraySource in memory", lambda: StreamRunner(in_memory, base)),
            ("fit_stream, Grain DataLoader over memmap",
             lambda: StreamRunner(through_grain, base))]


def timed_pass(make: Callable[[], Iterable[Any]], limit: int | None) -> tuple[float, int]:
    """Seconds to draw the first `limit` items (None: all) of a fresh `make()`, and how many."""
    began = time.perf_counter()
    count = 0
    for _ in make() if limit is None else _take(make(), limit):
        count += 1
    return time.perf_counter() - began, count


def _take(items: Iterable[Any], limit: int) -> Iterator[Any]:
    for i, item in enumerate(items):
        if i == limit:
            return
        yield item


def input_alone(problem: Problem, directory: Path, repeats: int,
                ) -> list[tuple[str, int, float, float]]:
    """(what, records timed, us per batch, us per record) of each input pipeline alone,
    the median of `repeats` passes; Grain's per-record parts timed one by one."""
    from funcnn.training.prefetch import place_chunk
    from funcnn.training.stream import CHUNK_BYTES, MAX_CHUNK_STEPS
    from funcnn.training.stream_batches import Chunk, StreamReader

    files = load_npy_directory(directory)
    mx, my = files["x_train"], files["y_train"]
    b, n, key = problem.batch_size, problem.n, jax.random.key(problem.seed)
    k = int(np.clip(CHUNK_BYTES // (b * (mx.shape[1] * 4 + 4)), 1, MAX_CHUNK_STEPS))

    def chunks(place: bool) -> Iterator[Any]:
        """fit_stream's host side over the memmap: each batch's rows read straight into a
        (K, B, ...) chunk (ArraySource.read_into), and each chunk placed if `place`."""
        reader = StreamReader("stream_w2", ArraySource(mx, my, b, key=key), "source", None,
                              k, False, np.asarray)
        reader.first(0, 0)
        for item in reader.items(0, 0, 1, None):
            if isinstance(item, Chunk):
                for _ in range(len(item.rows)):  # count batches, not chunks
                    yield item
                if place:
                    jax.block_until_ready(place_chunk("stream_w2", item, None).xs)

    # (what, a fresh pass, batches to draw (None: all), unit drawn, records per pass)
    rows: list[tuple[str, Callable[[], Iterable[Any]], int | None, str, int]] = [
        ("ArraySource.batches, memmap (x[rows] per batch)",
         lambda: ArraySource(mx, my, b, key=key).batches(0), None, "batch", n),
        ("ArraySource.batches, in memory",
         lambda: ArraySource(problem.x, problem.y, b, key=key).batches(0), None, "batch", n),
        (f"fit_stream's reader: rows read into aligned chunks of {k} (StreamReader)",
         lambda: chunks(False), None, "batch", n),
        ("+ jax.device_put of each chunk (place_chunk)", lambda: chunks(True), None, "batch",
         n)]
    try:
        import grain
        from grain._src.python.dataset.transformations.batch import make_batch
    except ImportError:
        grain = None
    if grain is not None:
        source, sampler = RecordSource(mx, my), grain_sampler(n, problem.seed)
        probe = max(2, min(40, problem.steps_per_epoch // 8))  # 16 threads: a few batches
        metas = [sampler[i] for i in range(min(n, 40 * b))]  # the parts: 40 batches' records
        grain_records = [source[m.record_key] for m in metas]
        rows += [
            ("Grain DataLoader, ReadOptions(num_threads=0), the one trained",
             lambda: grain_loader(mx, my, b, problem.seed), None, "batch", n),
            ("Grain DataLoader, default ReadOptions (16 threads)",
             lambda: grain_loader(mx, my, b, problem.seed, threads=16), probe, "batch",
             min(n, probe * b)),
            ("Grain MapDataset.source().shuffle().batch()",
             lambda: grain.MapDataset.source(source).shuffle(seed=problem.seed).batch(b),
             None, "batch", n),
            ("  part: IndexSampler[i] (RecordMetadata, Philox rng)",
             lambda: (sampler[i] for i in range(len(metas))), None, "record", len(metas)),
            ("  part: source[record_key] (x[i], y[i])",
             lambda: (source[m.record_key] for m in metas), None, "record", len(metas)),
            (f"  part: Batch's make_batch (np.stack of {b} records)",
             lambda: (make_batch(grain_records[i:i + b])
                     for i in range(0, len(grain_records), b)),
             None, "batch", len(metas))]
    out = []
    for name, make, limit, unit, records in rows:
        passes = [timed_pass(make, limit) for _ in range(repeats)]
        seconds = statistics.median(s for s, _ in passes)
        batches = passes[0][1] if unit == "batch" else records / b
        out.append((name, records, seconds / batches * 1e6, seconds / records * 1e6))
    return out


def percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def max_abs_diff(a: Any, b: Any) -> float:
    return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
               for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 3)")
    parser.add_argument("--tiny", action="store_true", help="2,048 samples; seconds")
    parser.add_argument("--samples", type=int, default=None, help="training samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    repeats = (1 if args.tiny else 3) if args.repeats is None else args.repeats
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")
    wl = scaled(WORKLOADS["W2"], "tiny" if args.tiny else "full")
    if args.samples is not None:
        if args.samples < (wl.batch_size or 1):
            parser.error(f"--samples must be at least the batch size {wl.batch_size}, got "
                         f"{args.samples}")
        wl = replace(wl, samples=args.samples)
    problem = make_problem(wl, args.seed)
    try:
        import grain
        grain_version = grain.__version__
    except ImportError:
        grain_version = "not installed"
    print(f"machine: {machine()}, numpy {np.__version__}, grain {grain_version}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"## W2 streamed: {wl.title}; {problem.n} samples, {problem.steps_per_epoch} "
          f"steps per epoch, {repeats} interleaved repeats")
    made: dict[str, Any] = {}  # the runners by name, to compare their final params

    def kept(name: str, make: Callable[[], Runner]) -> Callable[[], Runner]:
        def build() -> Runner:
            runner = made[name] = make()
            return runner
        return build

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        np.save(directory / "x_train.npy", problem.x)
        np.save(directory / "y_train.npy", problem.y)
        chosen = variants(directory)
        results = measure(problem, [(name, kept(name, make)) for name, make in chosen],
                          repeats, log=lambda line: print(line, flush=True))
        alone = input_alone(problem, directory, repeats)
    load_after = os.getloadavg()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in load_after)}")
    report, ok = summarise(problem, results, made)
    print(table(report["rows"], report["header"]))
    print(f"params equal to fit's: {report['params']}")
    memmap = report["variants"]["fit_stream, ArraySource over memmap"]["ratio"]
    report["target_met"] = bool(memmap <= TARGET)
    print(f"target (memmap-streamed epoch <= {TARGET} x fit's): "
          f"{'met' if report['target_met'] else 'missed'} ({memmap:.2f})")
    print(f"accuracies {'agree' if ok else 'DISAGREE'} with fit's within {TOLERANCE['W2']} "
          f"({3 * TOLERANCE['W2']:.2g} for Grain's own shuffles)")
    print("\n## Input pipelines alone (no training), medians of the repeats")
    print(table([[name, str(records), fmt(per_batch), fmt(per_record)]
                 for name, records, per_batch, per_record in alone],
                ["input", "records timed", "us/batch", "us/record"]))
    report["input_alone"] = {name: {"records": records, "us_per_batch": per_batch,
                                    "us_per_record": per_record}
                             for name, records, per_batch, per_record in alone}
    if args.json is not None:
        del report["rows"], report["header"]
        report.update(samples=problem.n, repeats=repeats, machine=machine(), grain=grain_version)
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if ok else 1


def summarise(problem: Problem, results: list[Measurement], made: dict[str, Any],
              ) -> tuple[dict[str, Any], bool]:
    """The table's rows, the figures per variant, params against fit's, and whether every
    accuracy is within W2's tolerance of fit's and the ArraySource params equal fit's."""
    ref = results[0]
    reference = made[ref.name]
    rows, figures, params, ok = [], {}, {}, True
    for m in results:
        if m.skipped:
            rows.append([m.name, *["-"] * 8, m.note or "skipped"])
            continue
        runs = getattr(made[m.name], "input_times", None)
        timed = [] if runs is None else list(zip(runs[1:], m.times_s, strict=True))
        produce = [t.produce_s / s for t, s in timed]  # the timed runs, not the first
        wait = [t.wait_s / s for t, s in timed]
        grain = "Grain" in m.name  # its own shuffles: peers.py's 3x tolerance
        agree = abs(m.accuracy - ref.accuracy) <= TOLERANCE["W2"] * (3 if grain else 1)
        note = OWN_SHUFFLES if grain else ""
        if m is not ref and "ArraySource" in m.name:
            diff = max_abs_diff(reference.result.params, made[m.name].result.params)
            params[m.name] = diff
            note = "params = fit's" if diff == 0 else f"params differ by {diff:.3g}"
            agree &= diff == 0.0
        ok &= agree
        loss = made[m.name].result.history.loss[-1]
        figures[m.name] = {
            "median_s": m.median_s, "best_s": m.best_s, "first_s": m.first_s,
            "ratio": m.median_s / ref.median_s, "accuracy": m.accuracy, "loss": loss,
            "produce_share": statistics.median(produce) if produce else None,
            "wait_share": statistics.median(wait) if wait else None}
        rows.append([m.name, fmt(m.median_s), fmt(m.best_s), fmt(m.median_s / ref.median_s, 3),
                     percent(figures[m.name]["produce_share"]),
                     percent(figures[m.name]["wait_share"]), fmt(m.first_s),
                     f"{loss:.6f}", f"{m.accuracy:.4f}" + ("" if agree else " (!)"), note])
    header = ["variant", "s/epoch", "best s/epoch", "x fit", "input produce", "input wait",
              "first run s", "epoch loss", "test acc", "notes"]
    equal = bool(params) and all(d == 0.0 for d in params.values())
    summary = "bit for bit" if equal else ", ".join(f"{k}: max |diff| {v:.3g}"
                                                     for k, v in params.items())
    return {"rows": rows, "header": header, "variants": figures, "params_max_abs_diff": params,
            "params_equal": equal, "params": summary,
            "steps_per_epoch": problem.steps_per_epoch}, ok


if __name__ == "__main__":
    sys.exit(main())
