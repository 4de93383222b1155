"""The persistent compilation cache: a second process loads `fit`'s program from disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import funcnn as fn

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    import funcnn as fn
    hits = []
    jax.monitoring.register_event_listener(
        lambda name, **kw: hits.append(name) if name.endswith("cache_hits") else None)
    fn.enable_compilation_cache(sys.argv[1], min_compile_time_s=0.0)
    net = fn.serial(fn.Dense(8), fn.ReLU(), fn.Dense(3), fn.Softmax())
    params, state = net.init(jax.random.key(0), (2,))
    x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    y = (np.arange(40) % 3).astype(np.int32)
    result = fn.fit(net, params, state, fn.optim.adam(0.01), fn.losses.categorical_crossentropy,
                    x, y, key=jax.random.key(1), epochs=2, batch_size=8, progress=False)
    print(json.dumps({"hits": len(hits), "loss": result.history.loss[-1]}))
""")


def run(cache: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(cache)],
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True,
                          text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def test_a_second_process_loads_the_compiled_programs(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run(cache)
    assert first["hits"] == 0
    entries = sorted(p.name for p in cache.iterdir())
    assert entries, "the first process wrote no compiled program"
    second = run(cache)
    assert second["hits"] >= 2  # at least net.init's and fit's programs
    assert second["loss"] == first["loss"]


def test_enable_compilation_cache_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"min_compile_time_s must be >= 0, got -1"):
        fn.enable_compilation_cache(tmp_path, min_compile_time_s=-1)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        fn.enable_compilation_cache(blocker / "cache")
