"""Data parallelism over a `jax.sharding.Mesh`, and multi-host start-up.

`fit(..., mesh=data_mesh())` splits every minibatch over the mesh's `"data"` axis and
keeps params and optimizer state replicated; XLA inserts the gradient all-reduce from the
sharding annotations. Across hosts, every process runs the same program on the same data:
call `initialize()` first (it wraps `jax.distributed.initialize`), then build the mesh
over `jax.devices()`, which then lists every process's devices.

`fit(..., mesh=..., shard_params="data")` splits params and optimizer state over a mesh
axis instead (FSDP); the rule and its helpers live in `funcnn.sharding` and are
re-exported here (`param_spec`, `param_shardings`, `shard_tree`, `sharded_template`,
`unshard`, `MIN_SHARDED_SIZE`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from funcnn.sharding import (
    MIN_SHARDED_SIZE,
    param_shardings,
    param_spec,
    shard_tree,
    sharded_template,
    unshard,
)
from funcnn.typing import PyTree

__all__ = [
    "DATA_AXIS",
    "MIN_SHARDED_SIZE",
    "ProcessConfig",
    "batch_sharding",
    "check_data_mesh",
    "check_divisible",
    "constrain_batch",
    "constrain_replicated",
    "data_mesh",
    "data_parallel_size",
    "free_loopback_port",
    "initialize",
    "is_coordinator",
    "launch_local",
    "param_shardings",
    "param_spec",
    "process_config_from_env",
    "python_command",
    "replicate",
    "replicated_sharding",
    "shard_tree",
    "sharded_template",
    "shutdown",
    "unshard",
]

DATA_AXIS = "data"
"""The mesh axis that minibatches are split over."""

ENV_COORDINATOR = "FUNCNN_COORDINATOR"
ENV_NUM_PROCESSES = "FUNCNN_NUM_PROCESSES"
ENV_PROCESS_ID = "FUNCNN_PROCESS_ID"


# ----------------------------------------------------------------------------- meshes

def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis `"data"` over `devices` (default: `jax.devices()`, i.e. every
    device of every process once `initialize` has run)."""
    chosen = list(jax.devices() if devices is None else devices)
    if not chosen:
        raise ValueError("data_mesh: no devices given")
    return Mesh(np.array(chosen), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def check_data_mesh(where: str, mesh: object) -> Mesh:
    """`mesh` checked to have a `"data"` axis, as a mesh with automatic (compiler-chosen)
    axes: funcnn places arrays itself and only annotates the batch, so an `Explicit` mesh
    from `jax.make_mesh` is used with the same devices and axis names."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{where}: mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(
            f"{where}: the mesh has no {DATA_AXIS!r} axis (its axes are {mesh.axis_names}); "
            f"minibatches are split over an axis named {DATA_AXIS!r}, e.g. "
            "funcnn.parallel.data_mesh()")
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)


def data_parallel_size(mesh: Mesh) -> int:
    """How many ways a batch is split: the size of the mesh's `"data"` axis."""
    return int(mesh.shape[DATA_AXIS])


def check_divisible(where: str, batch_size: int | None, size: int, mesh: Mesh) -> None:
    """Raise unless batches of `size` rows split evenly over the `"data"` axis
    (`batch_size` None: the batch is all `size` samples)."""
    ways = data_parallel_size(mesh)
    if size % ways == 0:
        return
    lower, upper = size - size % ways, size + ways - size % ways
    if batch_size is None:
        raise ValueError(
            f"{where}: the full batch of {size} samples does not split evenly over the {ways} "
            f"devices of the mesh's {DATA_AXIS!r} axis; pass a batch_size that is a multiple "
            f"of {ways} (e.g. {lower or ways})")
    hint = f"{lower} or {upper}" if lower else f"{upper}"
    raise ValueError(
        f"{where}: batch_size {size} does not split evenly over the {ways} devices of the "
        f"mesh's {DATA_AXIS!r} axis; use a multiple of {ways} (e.g. {hint})")


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows split over `"data"`, everything else replicated."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))  # type: ignore[no-untyped-call]


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of `mesh`."""
    return NamedSharding(mesh, PartitionSpec())  # type: ignore[no-untyped-call]


def constrain_batch(tree: PyTree, mesh: Mesh) -> PyTree:
    """Inside `jit`: annotate every leaf (leading axis = rows) as split over `"data"`."""
    return jax.lax.with_sharding_constraint(tree, batch_sharding(mesh))  # type: ignore[no-untyped-call]


def constrain_replicated(tree: PyTree, mesh: Mesh) -> PyTree:
    """Inside `jit`: annotate every leaf as replicated on all devices of `mesh`."""
    return jax.lax.with_sharding_constraint(  # type: ignore[no-untyped-call]
        tree, replicated_sharding(mesh))


def _is_key(leaf: object) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Fresh arrays holding each leaf of `tree` on every device of `mesh` (PRNG keys
    included). Across processes every process must pass the same values; the result
    never shares buffers with `tree`, so a program may donate it."""
    sharding = replicated_sharding(mesh)

    def put(leaf: object) -> jax.Array:
        if _is_key(leaf):
            assert isinstance(leaf, jax.Array)
            data = put(jax.random.key_data(leaf))
            key: jax.Array = jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
            return key
        host = np.array(leaf)  # a copy; a replicated global array reads its local copy
        array: jax.Array = jax.make_array_from_callback(host.shape, sharding,
                                                        lambda index: host[index])
        return array

    return jax.tree.map(put, tree)


# ----------------------------------------------------------------------- multi-host

class ProcessConfig(NamedTuple):
    """Where the coordinator listens (`host:port`), how many processes, and which this is."""

    coordinator_address: str
    num_processes: int
    process_id: int

    def env(self) -> dict[str, str]:
        """The environment variables that `process_config_from_env` reads back."""
        return {ENV_COORDINATOR: self.coordinator_address,
                ENV_NUM_PROCESSES: str(self.num_processes), ENV_PROCESS_ID: str(self.process_id)}


def _check_process_config(config: ProcessConfig) -> ProcessConfig:
    address, count, index = config
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"coordinator_address must be 'host:port', got {address!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"num_processes must be an int >= 1, got {count!r}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ValueError(f"process_id must be an int in [0, {count}), got {index!r}")
    return config


def process_config_from_env(environ: Mapping[str, str] | None = None) -> ProcessConfig | None:
    """The `ProcessConfig` in `FUNCNN_COORDINATOR`, `FUNCNN_NUM_PROCESSES` and
    `FUNCNN_PROCESS_ID`; None when none of them is set, an error when only some are."""
    env = os.environ if environ is None else environ
    names = (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID)
    present = [name for name in names if name in env]
    if not present:
        return None
    if len(present) < len(names):
        missing = [name for name in names if name not in env]
        raise ValueError(f"multi-process environment incomplete: {present} set but {missing} "
                         "missing")
    numbers = {}
    for name in (ENV_NUM_PROCESSES, ENV_PROCESS_ID):
        try:
            numbers[name] = int(env[name])
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {env[name]!r}") from None
    return _check_process_config(ProcessConfig(env[ENV_COORDINATOR], numbers[ENV_NUM_PROCESSES],
                                               numbers[ENV_PROCESS_ID]))


def initialize(config: ProcessConfig | None = None, *,
               local_device_ids: int | Sequence[int] | None = None,
               timeout_s: int = 300) -> ProcessConfig:
    """Join the group of processes: `jax.distributed.initialize` with `config` (default:
    from the environment, see `process_config_from_env`). Call it before any other JAX
    work; afterwards `jax.devices()` lists the devices of every process.

    On a cluster that JAX detects by itself (SLURM, Cloud TPU, ...) call
    `jax.distributed.initialize()` directly instead.
    """
    if config is None:
        config = process_config_from_env()
        if config is None:
            raise ValueError(
                f"initialize: no ProcessConfig given and {ENV_COORDINATOR}, "
                f"{ENV_NUM_PROCESSES}, {ENV_PROCESS_ID} are not set")
    _check_process_config(config)
    jax.distributed.initialize(coordinator_address=config.coordinator_address,
                               num_processes=config.num_processes,
                               process_id=config.process_id,
                               local_device_ids=local_device_ids,
                               initialization_timeout=timeout_s)
    return config


def shutdown() -> None:
    """Leave the group (`jax.distributed.shutdown`); waits for the other processes."""
    jax.distributed.shutdown()  # type: ignore[no-untyped-call]


def is_coordinator() -> bool:
    """Whether this is process 0 (the one that should print and write files)."""
    return jax.process_index() == 0


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a local coordinator)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _with_device_count(xla_flags: str, count: int) -> str:
    kept = [flag for flag in xla_flags.split()
            if not flag.startswith("--xla_force_host_platform_device_count")]
    return " ".join([*kept, f"--xla_force_host_platform_device_count={count}"])


def launch_local(argv: Sequence[str], num_processes: int = 2, *, local_device_count: int = 1,
                 timeout_s: float = 300.0, env: Mapping[str, str] | None = None,
                 ) -> list[str]:
    """Run `num_processes` copies of the command `argv` on this machine as one multi-process
    JAX job on CPU: coordinator on a free 127.0.0.1 port, `local_device_count` CPU devices
    per process, `FUNCNN_*` variables set for `initialize()`. Waits for all of them and
    returns their outputs (stdout and stderr), by process id; raises RuntimeError if one
    fails and TimeoutError (after stopping them all) if they outlive `timeout_s`."""
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"launch_local: num_processes must be an int >= 1, got {num_processes!r}")
    if isinstance(local_device_count, bool) or not isinstance(local_device_count, int) \
            or local_device_count < 1:
        raise ValueError("launch_local: local_device_count must be an int >= 1, got "
                         f"{local_device_count!r}")
    address = f"127.0.0.1:{free_loopback_port()}"
    base = dict(os.environ if env is None else env)
    base["JAX_PLATFORMS"] = "cpu"
    base["XLA_FLAGS"] = _with_device_count(base.get("XLA_FLAGS", ""), local_device_count)
    with tempfile.TemporaryDirectory(prefix="funcnn-launch-") as logs:
        paths = [Path(logs) / f"process_{i}.log" for i in range(num_processes)]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i, path in enumerate(paths):
                child_env = {**base, **ProcessConfig(address, num_processes, i).env()}
                with path.open("wb") as log:
                    procs.append(subprocess.Popen(list(argv), env=child_env, stdout=log,
                                                  stderr=subprocess.STDOUT))
            deadline = time.monotonic() + timeout_s
            for proc in procs:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            outputs = _stop_all(procs, paths)
            raise TimeoutError(f"launch_local: the processes ran longer than {timeout_s} s; "
                               f"output of process 0:\n{outputs[0][-4000:]}") from None
        except BaseException:
            _stop_all(procs, paths)
            raise
        outputs = [path.read_text(errors="replace") for path in paths]
    for i, proc in enumerate(procs):
        if proc.returncode != 0:
            raise RuntimeError(f"launch_local: process {i} of {num_processes} exited with code "
                               f"{proc.returncode}; its output:\n{outputs[i][-4000:]}")
    return outputs


def _stop_all(procs: Sequence[subprocess.Popen[bytes]], paths: Sequence[Path]) -> list[str]:
    """Kill the still-running processes we started (by their own handle) and read logs."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return [path.read_text(errors="replace") if path.exists() else "" for path in paths]


def python_command(script: str | os.PathLike[str], *args: str) -> list[str]:
    """`[sys.executable, script, *args]`: a command line for `launch_local`."""
    return [sys.executable, os.fspath(script), *args]
