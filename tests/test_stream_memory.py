"""Streamed training holds batches, not the data set: one epoch of `fit_stream` over an
`ArraySource` of a 1.25 GiB float32 memmap runs in a fresh process whose anonymous memory
(`RssAnon`: the heap, JAX's buffers and compiler, every array the run allocates; not the
file's pages in the page cache) is sampled every 10 ms and stays under a quarter of the
file's size, and the network learns the (easy) problem the file holds.

The file is written here a block of 4096 rows (64 MiB) at a time, so the writer never
holds it either; the training runs in a child process, so the parent's memory does not
count. The child prints its figures as JSON; run this file with `-s` to see them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

FEATURES = 4096
ROWS = 81_920  # 81,920 x 4096 float32: 1.25 GiB (a quarter: 320 MiB)
CLASSES = 4
BLOCK_ROWS = 4096
SIGNAL = 0.08  # each class mean is +-0.08 per feature: 5.1 noise standard deviations long
HELD_OUT = 2048
FREE_DISK_NEEDED = 3 * 1024**3
# fit_stream's defaults (0: steps_per_call=None): two 4 MiB batches per call, two calls
# ready ahead. JAX and its compiled programs alone take ~215 MiB (measured), so at 1 GiB
# the run peaked at 231-242 MiB of the 256 allowed; 1.25 GiB leaves a margin
STEPS_PER_CALL = 0
PREFETCH = 2

CHILD = textwrap.dedent("""
    import json, sys, threading, time
    began = time.perf_counter()

    def rss_anon():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no RssAnon in /proc/self/status")

    peak = [rss_anon()]
    done = threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    import jax
    import numpy as np
    import funcnn as fn
    from funcnn.data import ArraySource

    directory = sys.argv[1]
    classes, held_out, steps_per_call, prefetch = map(int, sys.argv[2:6])
    x = np.load(f"{directory}/x.npy", mmap_mode="r")
    y = np.load(f"{directory}/y.npy", mmap_mode="r")
    net = fn.serial(fn.Dense(32), fn.ReLU(), fn.Dense(classes), fn.Softmax())
    params, state = net.init(jax.random.key(0), x.shape[1:])
    key = jax.random.key(1)
    baseline = rss_anon()
    train_began = time.perf_counter()
    result = fn.fit_stream(net, params, state, fn.optim.adam(1e-3),
                           fn.losses.categorical_crossentropy,
                           ArraySource(x, y, 256, key=key), key=key, epochs=1,
                           metric=fn.metrics.categorical_accuracy, progress=False,
                           steps_per_call=steps_per_call or None, prefetch=prefetch)
    jax.block_until_ready(result.params)
    train_s = time.perf_counter() - train_began
    done.set()
    poller.join()
    # A held-out set drawn in memory, after the measured run: the class means, fresh noise.
    means = np.load(f"{directory}/means.npy")
    rng = np.random.default_rng(1)
    y_test = rng.integers(0, classes, held_out).astype(np.int32)
    x_test = means[y_test] + rng.standard_normal((held_out, means.shape[1]), np.float32)
    figures = fn.evaluate(net, result.params, result.state,
                          fn.losses.categorical_crossentropy, x_test, y_test,
                          metric=fn.metrics.categorical_accuracy, batch_size=1024)
    print(json.dumps({
        "peak_rss_anon": peak[0], "baseline_rss_anon": baseline,
        "file_size": int(x.nbytes), "accuracy": float(figures.accuracy),
        "train_accuracy": result.history.accuracy[-1], "train_s": train_s,
        "child_s": time.perf_counter() - began,
        "input_produce_s": result.input_times.produce_s,
        "input_wait_s": result.input_times.wait_s}))
""")


def write_problem(directory: Path) -> int:
    """`x.npy` `(ROWS, FEATURES)` float32, row i = the mean of class `y[i]` plus noise,
    written a block at a time after its .npy header; `y.npy` the labels, `means.npy` the
    class means. Returns the bytes of x's data.

    The noise is N(0, 1) draws, but not 1 GiB of fresh ones (7 s here): one pool of
    `BLOCK_ROWS * FEATURES + 4 * FEATURES` draws, each block a window of it at a random
    offset, so rows of different blocks see the pool shifted against the features. Plain
    writes, not an `np.lib.format.open_memmap` filled in place (5 s of page faults and a
    3 s flush here for the same bytes)."""
    rng = np.random.default_rng(0)
    means = (SIGNAL * rng.choice([-1.0, 1.0], (CLASSES, FEATURES))).astype(np.float32)
    np.save(directory / "means.npy", means)
    labels = rng.integers(0, CLASSES, ROWS).astype(np.int32)
    np.save(directory / "y.npy", labels)
    block_size = BLOCK_ROWS * FEATURES
    pool = rng.standard_normal(block_size + 4 * FEATURES, dtype=np.float32)
    block = np.empty((BLOCK_ROWS, FEATURES), np.float32)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": (ROWS, FEATURES)}
    with open(directory / "x.npy", "wb") as file:
        np.lib.format.write_array_header_1_0(file, header)
        for start in range(0, ROWS, BLOCK_ROWS):
            offset = int(rng.integers(0, 4 * FEATURES))
            noise = pool[offset:offset + block_size].reshape(BLOCK_ROWS, FEATURES)
            np.add(noise, means[labels[start:start + BLOCK_ROWS]], out=block)
            file.write(block.data)
    return ROWS * FEATURES * 4


@pytest.mark.slow
def test_streaming_a_1_25_gib_memmap_holds_under_a_quarter_of_it(tmp_path: Path) -> None:
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs /proc/self/status (Linux) to read the process's RssAnon")
    free = shutil.disk_usage(tmp_path).free
    if free < FREE_DISK_NEEDED:
        pytest.skip(f"needs 3 GiB of free disk in {tmp_path} for the 1.25 GiB file, has "
                    f"{free / 1024**3:.1f} GiB")
    data_bytes = write_problem(tmp_path)
    x = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert x.shape == (ROWS, FEATURES) and x.dtype == np.float32
    np.testing.assert_allclose(x[:3].mean(axis=1), 0.0, atol=0.1)  # noise about the means
    del x
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), str(CLASSES), str(HELD_OUT),
         str(STEPS_PER_CALL), str(PREFETCH)],
        env=env, capture_output=True, text=True, timeout=600, check=False)
    assert child.returncode == 0, child.stderr
    figures = json.loads(child.stdout.splitlines()[-1])
    print(json.dumps(figures))
    assert figures["file_size"] == data_bytes == 5 * 1024**3 // 4
    assert figures["baseline_rss_anon"] < figures["peak_rss_anon"] < data_bytes / 4, figures
    # Chance is 0.25; one epoch of 320 steps reaches 0.9995 on fresh noise (the epoch's
    # running mean, train_accuracy, is 0.985: it includes the first steps).
    assert 0.9 < figures["accuracy"] <= 1.0, figures
