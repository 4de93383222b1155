"""Data parallelism and multi-host start-up: `fit(..., mesh=...)` on one device here, on 8
CPU devices in a subprocess (the device count is fixed when JAX starts), and the
two-process example on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, Mesh

import funcnn as fn
from funcnn import parallel
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.optim import adam

ROOT = Path(__file__).resolve().parent.parent


def cpu_env(devices: int) -> dict[str, str]:
    """The environment for a child JAX process with `devices` CPU devices."""
    return {**os.environ, "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3).astype(np.int32)
    x = (rng.normal(size=(3, 2))[y] * 2 + rng.normal(size=(n, 2))).astype(np.float32)
    return x, y


# ------------------------------------------------------------------ one device, here

def test_fit_on_a_one_device_mesh_equals_plain_fit() -> None:
    net = fn.serial(fn.Dense(4), fn.Tanh(), fn.Dense(3), fn.Softmax())
    x, y = blobs(20)
    params, state = net.init(jax.random.key(0), (2,))
    args = {"key": jax.random.key(1), "epochs": 2, "batch_size": 8, "progress": False,
            "metric": categorical_accuracy}
    plain = fn.fit(net, params, state, adam(0.05), categorical_crossentropy, x, y, **args)
    mesh = parallel.data_mesh()
    meshed = fn.fit(net, params, state, adam(0.05), categorical_crossentropy, x, y, mesh=mesh,
                    **args)
    chex.assert_trees_all_close(meshed.params, plain.params, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(meshed.history.loss, plain.history.loss, rtol=1e-6)
    assert meshed.params["0_dense"]["w"].sharding == parallel.replicated_sharding(mesh)


def test_mesh_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match=r"mesh must be a jax\.sharding\.Mesh, got str"):
        parallel.check_data_mesh("fit", "data")
    batch_mesh = Mesh(np.array(jax.devices()[:1]), ("batch",))
    with pytest.raises(ValueError, match=r"fit: the mesh has no 'data' axis \(its axes are "
                                         r"\('batch',\)\)"):
        fn.fit(fn.serial(fn.Dense(1)), {}, {}, adam(), categorical_crossentropy, np.ones((2, 1),
               np.float32), np.zeros(2, np.int32), key=jax.random.key(0), epochs=1,
               mesh=batch_mesh)
    explicit = jax.make_mesh((1,), ("data",), axis_types=(AxisType.Explicit,))
    auto = parallel.check_data_mesh("fit", explicit)
    assert auto.axis_types == (AxisType.Auto,) and auto.axis_names == ("data",)
    assert list(auto.devices.flat) == list(explicit.devices.flat)
    assert parallel.data_parallel_size(parallel.data_mesh()) == jax.device_count()
    with pytest.raises(ValueError, match="no devices given"):
        parallel.data_mesh([])


def test_replicate_copies_values_and_keys_into_fresh_buffers() -> None:
    mesh = parallel.data_mesh()
    key = jax.random.key(3)
    tree = {"w": jnp.arange(6.0).reshape(2, 3), "key": key, "none": None, "n": 2}
    placed = parallel.replicate(tree, mesh)
    np.testing.assert_array_equal(placed["w"], tree["w"])
    assert placed["w"].sharding == parallel.replicated_sharding(mesh)
    assert placed["w"].unsafe_buffer_pointer() != tree["w"].unsafe_buffer_pointer()
    np.testing.assert_array_equal(jax.random.key_data(placed["key"]), jax.random.key_data(key))
    np.testing.assert_array_equal(jax.random.normal(placed["key"], (3,)),
                                  jax.random.normal(key, (3,)))
    assert placed["none"] is None and int(placed["n"]) == 2


def test_divisibility_error_suggests_multiples() -> None:
    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    parallel.check_divisible("fit", 7, 7, mesh)  # one device divides everything

    class FourWay:
        shape: ClassVar[dict[str, int]] = {"data": 4}

    with pytest.raises(ValueError, match=r"fit: batch_size 30 does not split evenly over the 4 "
                                         r"devices of the mesh's 'data' axis; use a multiple "
                                         r"of 4 \(e.g. 28 or 32\)"):
        parallel.check_divisible("fit", 30, 30, FourWay())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"use a multiple of 4 \(e.g. 4\)"):
        parallel.check_divisible("fit", 3, 3, FourWay())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fit: the full batch of 30 samples does not split "
                                         r"evenly over the 4 devices of the mesh's 'data' axis; "
                                         r"pass a batch_size that is a multiple of 4 \(e.g. 28\)"):
        parallel.check_divisible("fit", None, 30, FourWay())  # type: ignore[arg-type]


# ------------------------------------------------------------------- multi-host helpers

def test_process_config_round_trips_through_the_environment() -> None:
    config = parallel.ProcessConfig("127.0.0.1:4321", 2, 1)
    assert parallel.process_config_from_env(config.env()) == config
    assert parallel.process_config_from_env({}) is None
    with pytest.raises(ValueError, match=r"environment incomplete: \['FUNCNN_COORDINATOR'\] set "
                                         r"but \['FUNCNN_NUM_PROCESSES', 'FUNCNN_PROCESS_ID'\]"):
        parallel.process_config_from_env({"FUNCNN_COORDINATOR": "127.0.0.1:1"})
    with pytest.raises(ValueError, match="FUNCNN_PROCESS_ID must be an integer, got 'one'"):
        parallel.process_config_from_env({**config.env(), "FUNCNN_PROCESS_ID": "one"})
    with pytest.raises(ValueError, match=r"process_id must be an int in \[0, 2\), got 2"):
        parallel.process_config_from_env({**config.env(), "FUNCNN_PROCESS_ID": "2"})
    with pytest.raises(ValueError, match="coordinator_address must be 'host:port', got 'local'"):
        parallel.process_config_from_env({**config.env(), "FUNCNN_COORDINATOR": "local"})
    with pytest.raises(ValueError, match="num_processes must be an int >= 1, got 0"):
        parallel.initialize(parallel.ProcessConfig("127.0.0.1:1", 0, 0))


def test_initialize_without_a_config_says_what_is_missing(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    for name in ("FUNCNN_COORDINATOR", "FUNCNN_NUM_PROCESSES", "FUNCNN_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="no ProcessConfig given and FUNCNN_COORDINATOR"):
        parallel.initialize()


def test_free_loopback_port_can_be_bound() -> None:
    port = parallel.free_loopback_port()
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_launch_local_sets_each_process_environment_and_reports_failures() -> None:
    show = ("import os; print(os.environ['FUNCNN_PROCESS_ID'], os.environ['FUNCNN_NUM_PROCESSES'],"
            " os.environ['FUNCNN_COORDINATOR'].startswith('127.0.0.1:'), os.environ['XLA_FLAGS'],"
            " os.environ['JAX_PLATFORMS'])")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_foo"}
    outputs = parallel.launch_local([sys.executable, "-c", show], 3, local_device_count=2,
                                    env=env)
    assert [line.split()[0] for line in outputs] == ["0", "1", "2"]
    assert all(line.split()[1:] == ["3", "True", "--xla_foo",
                                    "--xla_force_host_platform_device_count=2", "cpu"]
               for line in outputs)
    fail = "import os, sys; sys.exit(3 if os.environ['FUNCNN_PROCESS_ID'] == '1' else 0)"
    with pytest.raises(RuntimeError, match="process 1 of 2 exited with code 3"):
        parallel.launch_local([sys.executable, "-c", fail], 2)
    hang = "import time; print('waiting', flush=True); time.sleep(60)"
    with pytest.raises(TimeoutError, match=r"longer than 2\.0 s; output of process 0:\nwaiting"):
        parallel.launch_local([sys.executable, "-c", hang], 2, timeout_s=2.0)
    with pytest.raises(ValueError, match="num_processes must be an int >= 1, got 0"):
        parallel.launch_local([sys.executable, "-c", ""], 0)


# ------------------------------------------------------------ 8 devices, in a subprocess

EIGHT_DEVICES = textwrap.dedent("""
    import json, re
    import jax, jax.numpy as jnp, numpy as np
    import funcnn as fn
    from funcnn import parallel
    from funcnn.training.ensemble import fit_ensemble, init_ensemble
    from funcnn.losses import categorical_crossentropy as cce
    from funcnn.metrics import categorical_accuracy as acc
    from funcnn.optim import adam
    from funcnn.training.epochs import epoch_inputs, key_seed
    from funcnn.training.fit import owned_copy, prepare_fit
    from funcnn.training.loop import run_epochs_jit

    def largest(a, b):
        return max(jax.tree.leaves(jax.tree.map(
            lambda u, v: float(np.max(np.abs(np.asarray(u) - np.asarray(v)))), a, b)))

    rng = np.random.default_rng(0)
    y = (np.arange(52) % 3).astype(np.int32)
    x = (rng.normal(size=(3, 3))[y] * 2 + rng.normal(size=(52, 3))).astype(np.float32)
    x_val, y_val = x[40:], y[40:]   # 12 samples: validation batches of 12, not split
    x, y = x[:40], y[:40]           # batches of 16: 16, 16 and a padded last one of 8
    net = fn.serial(fn.Dense(8), fn.ReLU(), fn.Dropout(0.1), fn.Dense(3), fn.Softmax())
    init = jax.jit(net.init, static_argnums=1)
    params, state = init(jax.random.key(0), (3,))
    opt = adam(0.05, decay=1e-3)
    args = dict(key=jax.random.key(1), epochs=3, batch_size=16, metric=acc, progress=False,
                validation_data=(x_val, y_val))
    mesh = parallel.data_mesh()
    out = {"devices": jax.device_count()}
    one = fn.fit(net, params, state, opt, cce, x, y, **args)
    eight = fn.fit(net, params, state, opt, cce, x, y, mesh=mesh, **args)
    out["params"] = largest(one.params, eight.params)
    out["opt_state"] = largest(one.opt_state, eight.opt_state)
    out["history"] = largest(one.history.to_dict(), eight.history.to_dict())
    out["replicated"] = all(leaf.sharding.is_fully_replicated
                            for leaf in jax.tree.leaves(eight.params))
    mixed = fn.mixed_precision(net, "mixed_bfloat16")
    mixed_one = fn.fit(mixed, params, state, opt, cce, x, y, **args)
    mixed_eight = fn.fit(mixed, params, state, opt, cce, x, y, mesh=mesh, **args)
    out["mixed_dtypes"] = sorted({str(a.dtype) for a in jax.tree.leaves(mixed_eight.params)})
    out["mixed_history"] = largest(mixed_one.history.to_dict(), mixed_eight.history.to_dict())
    # BatchNorm's statistics are the global batch's: the same state as on one device.
    # No bias before it: that bias's gradient is zero by structure, and Adam turns its
    # rounding (different on 8 devices) into whole steps of the learning rate.
    bn = fn.serial(fn.Dense(8, use_bias=False), fn.BatchNorm(0.9), fn.ReLU(), fn.Dense(3),
                   fn.Softmax())
    bn_params, bn_state = bn.init(jax.random.key(0), (3,))
    bn_one = fn.fit(bn, bn_params, bn_state, opt, cce, x, y, **args)
    bn_eight = fn.fit(bn, bn_params, bn_state, opt, cce, x, y, mesh=mesh, **args)
    out["bn"] = max(largest(bn_one.state, bn_eight.state), largest(bn_one.params,
                                                                   bn_eight.params))
    made = fn.fit(net, params, state, opt, cce, x, y, mesh=jax.make_mesh((8,), ("data",)), **args)
    out["explicit_mesh"] = largest(one.params, made.params)
    for batch_size in (12, None):
        try:
            fn.fit(net, params, state, opt, cce, x[:36], y[:36], mesh=mesh,
                   **{**args, "batch_size": batch_size})
        except ValueError as err:
            out[f"error_{batch_size}"] = str(err)
    keys = jax.random.split(jax.random.key(5), 2)
    members = jax.vmap(lambda k: init(k, (3,))[0])(keys)
    ensemble = fit_ensemble(net, members, {}, opt, cce, x, y, keys=keys, mesh=mesh,
                            **{k: v for k, v in args.items() if k != "key"})
    out["ensemble"] = max(
        largest(member.params,
                fn.fit(net, jax.tree.map(lambda a: a[k], members), {}, opt, cce, x, y,
                       **{**args, "key": keys[k]}).params)
        for k, member in enumerate(ensemble.members()))
    # the program `eight` ran (same arguments, so compiled already): what XLA made of it
    prep = prepare_fit("fit", net, cce, opt, acc, x, y, epochs=3, initial_epoch=0,
                       batch_size=16, validation_data=(x_val, y_val),
                       validation_batch_size=None, shuffle=True, unroll=1, mesh=mesh,
                       template=(params, state))
    placed = [owned_copy(prep.cfg, t) for t in (params, state, opt.init(params))]
    hlo = run_epochs_jit.lower(
        prep.cfg, *placed, prep.x, prep.y, prep.x_val, prep.y_val,
        parallel.replicate(args["key"], mesh),
        *epoch_inputs(prep.cfg, np.arange(3, dtype=np.int32), np.ones(3, bool),
                      key_seed(args["key"]), 40)
    ).compile().as_text()
    out["all_reduce"] = "all-reduce" in hlo
    out["dot_shapes"] = sorted(set(re.findall(r"= f32\\[(\\d+,\\d+)\\]\\{[^}]*\\} dot\\(", hlo)))
    print(json.dumps(out))
""")


def test_data_parallel_fit_on_eight_devices_equals_one_device() -> None:
    done = subprocess.run([sys.executable, "-c", EIGHT_DEVICES], env=cpu_env(8), cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8
    assert out["params"] <= 1e-5 and out["opt_state"] <= 1e-5 and out["history"] <= 1e-5
    assert out["explicit_mesh"] <= 1e-5 and out["ensemble"] <= 1e-5
    assert out["replicated"]
    # mixed bfloat16 over the mesh: float32 masters, the same run to bfloat16's rounding
    assert out["mixed_dtypes"] == ["float32"] and out["mixed_history"] <= 2e-2
    assert out["bn"] <= 1e-5  # global-batch statistics (ragged last batch of 8 included)
    assert out["error_12"] == ("fit: batch_size 12 does not split evenly over the 8 devices of "
                               "the mesh's 'data' axis; use a multiple of 8 (e.g. 8 or 16)")
    assert out["error_None"].startswith("fit: the full batch of 36 samples does not split")
    # XLA reduces the gradient across devices, and each device multiplies 16 / 8 = 2 rows
    # by the (3, 8) weights; no product runs over a whole batch of 16 (validation batches
    # of 12 do not split over 8 devices and run whole)
    assert out["all_reduce"]
    assert "2,8" in out["dot_shapes"], out["dot_shapes"]
    assert not any("16" in shape.split(",") for shape in out["dot_shapes"]), out["dot_shapes"]


# ------------------------------------------------------------- two processes, example

def test_two_processes_on_loopback_train_to_identical_params(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "multihost.py"), "--epochs", "3",
         "--out", str(tmp_path), "--timeout", "240"],
        env={**os.environ, "JAX_PLATFORMS": "cpu"}, cwd=ROOT, capture_output=True, text=True,
        timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert sum(line.startswith("process ") and "2 local of 4 devices" in line
               for line in lines) == 2, lines
    report = json.loads(lines[-1])
    first, second = (fn.read_arrays(tmp_path / f"params_process{i}.safetensors")
                     for i in range(2))
    assert sorted(first) == ["0_dense/b", "0_dense/w", "2_dense/b", "2_dense/w"]
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    assert report["between_processes"] == 0.0
    # the same training in one process sums each gradient in another order; after 3 epochs
    # of Adam (which divides by the gradients' size) the float32 rounding has grown to ~1e-5
    # (a wrongly split batch differs by 1e-2 or more)
    assert report["versus_one_process"] <= 5e-5


def test_two_processes_stream_their_own_rows_to_the_one_process_fit(tmp_path: Path) -> None:
    """fit_stream over ArraySource: each process reads only its half of every global batch
    (the ragged last batch of 12 rows falls all on process 0); the joined batches are
    those of one process's in-memory fit."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "multihost.py"), "--epochs", "3", "--stream",
         "--out", str(tmp_path), "--timeout", "240"],
        env={**os.environ, "JAX_PLATFORMS": "cpu"}, cwd=ROOT, capture_output=True, text=True,
        timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    losses = {line.split("loss ")[1].split(",")[0] for line in lines
              if line.startswith("process ")}
    assert len(losses) == 1, lines  # one History: figures over the global batches
    report = json.loads(lines[-1])
    assert report["between_processes"] == 0.0
    assert report["versus_one_process"] <= 5e-5
