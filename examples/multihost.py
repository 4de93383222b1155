"""Multi-host data parallelism on one machine: several processes train one network together.

    python examples/multihost.py [--processes 2] [--local-devices 2] [--epochs 100] [--stream]

Run plainly, this script is the launcher: `funcnn.parallel.launch_local` starts
`--processes` copies of it, each with `--local-devices` CPU devices and the coordinator on
a free 127.0.0.1 port. Each copy (it finds `FUNCNN_*` variables in its environment) joins
the group with `funcnn.parallel.initialize()`, builds one mesh over the devices of all
processes and calls `fit(..., mesh=mesh)` with the same data and keys as the others: every
minibatch is split over all devices, the gradient is summed across processes by XLA's
collectives, and every process ends with the same parameters, which it writes to
`--out`. The launcher then checks that the processes agree with each other (exactly) and
reports how far they are from a plain one-process `fit`: float rounding only (the
gradient is summed in another order), about 1e-6 after a few epochs, but such differences
grow over a long chaotic run (Adam at a high rate), so expect the two to drift apart
then. On a real cluster, start one worker per host with the cluster's own launcher and
the same code runs unchanged.

With `--stream` each process trains with `fit_stream` from a `funcnn.data.ArraySource`
that reads only this process's rows of every global batch (its part of the data);
`jax.make_array_from_process_local_data` joins the parts into the global batch, which is
the batch the one-process `fit` trains on (the same key gives the same orders).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

import funcnn as fn
from funcnn import parallel
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.optim import adam
from funcnn.typing import NumpyArray


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--local-devices", type=int, default=2,
                        help="CPU devices per process (default 2)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="global minibatch, split over all devices (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for each process's parameters (default: a temporary one)")
    parser.add_argument("--stream", action="store_true",
                        help="train with fit_stream, each process reading its own rows")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds the processes may take (default 300)")
    args = parser.parse_args(argv)
    if args.processes < 1 or args.local_devices < 1 or args.epochs < 1:
        parser.error("--processes, --local-devices and --epochs must be at least 1")
    return args


def train(args: argparse.Namespace, mesh: jax.sharding.Mesh | None,
          stream: bool = False) -> fn.FitResult | fn.StreamFitResult:
    """The book's spiral classifier, Adam, minibatches; the same in every process. With
    `stream`, from an ArraySource: this process reads only its part of each batch."""
    key = jax.random.key(args.seed)
    x, y = fn.datasets.spiral(jax.random.fold_in(key, 0), 100, 3)
    net = fn.serial(fn.Dense(64), fn.ReLU(), fn.Dense(3), fn.Softmax())
    init = jax.jit(net.init, static_argnums=1)  # one compiled call, not many small ones
    params, state = init(jax.random.fold_in(key, 1), (2,))
    if stream:
        source = fn.data.ArraySource(x, y, args.batch_size, key=jax.random.fold_in(key, 2))
        return fn.fit_stream(net, params, state, adam(0.05, decay=5e-7),
                             categorical_crossentropy, source, key=jax.random.fold_in(key, 2),
                             epochs=args.epochs, metric=categorical_accuracy, progress=False,
                             mesh=mesh)
    return fn.fit(net, params, state, adam(0.05, decay=5e-7), categorical_crossentropy, x, y,
                  key=jax.random.fold_in(key, 2), epochs=args.epochs,
                  batch_size=args.batch_size, metric=categorical_accuracy, progress=False,
                  mesh=mesh)


def params_file(out: Path, process_id: int) -> Path:
    return out / f"params_process{process_id}.safetensors"


def worker(args: argparse.Namespace) -> None:
    """One process of the group: join, train on the global mesh, write the parameters."""
    config = parallel.initialize()
    mesh = parallel.data_mesh()  # every device of every process
    start = time.perf_counter()
    result = train(args, mesh, stream=args.stream)
    seconds = time.perf_counter() - start
    history = result.history
    fn.save_checkpoint(params_file(args.out, config.process_id), jax.device_get(result.params),
                       metadata={"loss": history.loss[-1], "accuracy": history.accuracy[-1]})
    print(f"process {config.process_id} of {config.num_processes}: "
          f"{jax.local_device_count()} local of {jax.device_count()} devices; "
          f"loss {history.loss[-1]:.4f}, accuracy {history.accuracy[-1]:.3f}; "
          f"fit took {seconds:.2f} s", flush=True)
    parallel.shutdown()


def launch(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """Start the workers, then compare their parameters with each other and with one
    process training alone; returns the largest differences found."""
    command = parallel.python_command(__file__, "--epochs", str(args.epochs),
                                      "--batch-size", str(args.batch_size),
                                      "--seed", str(args.seed), "--out", str(out),
                                      *(["--stream"] if args.stream else []))
    outputs = parallel.launch_local(command, args.processes,
                                    local_device_count=args.local_devices,
                                    timeout_s=args.timeout)
    for text in outputs:
        lines = [line for line in text.splitlines() if line.startswith("process ")]
        print(lines[-1] if lines else text[-500:])
    trained = [fn.read_arrays(params_file(out, i)) for i in range(args.processes)]
    between = max(_largest_difference(trained[0], other) for other in trained)
    start = time.perf_counter()
    alone = jax.device_get(train(args, mesh=None).params)
    seconds = time.perf_counter() - start
    versus_alone = _largest_difference(trained[0], dict(_flat(alone)))
    report = {"between_processes": between, "versus_one_process": versus_alone,
              "one_process_fit_seconds": round(seconds, 2)}
    print(json.dumps(report))
    return report


def _flat(tree: fn.typing.Params, prefix: str = "") -> list[tuple[str, NumpyArray]]:
    items: list[tuple[str, NumpyArray]] = []
    for name, value in tree.items():
        path = f"{prefix}{name}"
        items += _flat(value, f"{path}/") if isinstance(value, dict) else \
            [(path, np.asarray(value))]
    return items


def _largest_difference(a: dict[str, NumpyArray], b: dict[str, NumpyArray]) -> float:
    if sorted(a) != sorted(b):
        raise ValueError(f"different parameter names: {sorted(a)} vs {sorted(b)}")
    return max(float(np.max(np.abs(a[name] - b[name]))) for name in a)


def main(argv: Sequence[str] | None = None) -> dict[str, float] | None:
    args = parse_args(argv)
    if parallel.process_config_from_env() is not None:
        worker(args)
        return None
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        return launch(args, args.out)
    with tempfile.TemporaryDirectory(prefix="funcnn-multihost-") as folder:
        return launch(args, Path(folder))


if __name__ == "__main__":
    report = main()
    if report is not None and report["between_processes"] != 0.0:
        sys.exit("the processes ended with different parameters")
