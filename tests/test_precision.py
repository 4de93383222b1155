"""Training outside float32: float64 under x64 (in a subprocess, since x64 is global) and
bfloat16 params, with the rule that floating data is cast to the params' dtype once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn

ROOT = Path(__file__).resolve().parents[1]

X64_RUN = """
import json
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, numpy as np, funcnn as fn
x, y = fn.datasets.spiral(jax.random.key(0), samples=50, classes=3)
out = {}
for pdt in ("float32", "float64"):
    net = fn.serial(fn.Dense(16, dtype=pdt, w_l2=1e-3), fn.Tanh(), fn.Dense(3, dtype=pdt),
                    fn.Softmax())
    params, state = net.init(jax.random.key(1), (2,))
    params = jax.tree.map(lambda a: a.astype(jnp.float32).astype(pdt), params)  # same start
    for xdt in ("float32", "float64"):
        xs = np.asarray(x, xdt)
        r = fn.fit(net, params, state, fn.optim.adam(0.01), fn.losses.categorical_crossentropy,
                   xs, np.asarray(y), key=jax.random.key(0), epochs=3, batch_size=32,
                   validation_data=(xs, np.asarray(y)), metric=fn.metrics.categorical_accuracy,
                   progress=False)
        e = fn.evaluate(net, r.params, r.state, fn.losses.categorical_crossentropy, xs,
                        np.asarray(y), metric=fn.metrics.categorical_accuracy)
        p = fn.predict(net, r.params, r.state, xs)
        out[pdt + "/" + xdt] = {"loss": r.history.loss, "val": r.history.val_loss,
                                "params": str(jax.tree.leaves(r.params)[0].dtype),
                                "eval": str(e.loss.dtype), "predict": str(p.dtype),
                                "eval_loss": float(e.loss)}
print(json.dumps(out))
"""


def test_fit_evaluate_predict_in_float64_and_float32_under_x64() -> None:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", X64_RUN], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    for key, run in runs.items():
        pdt = key.split("/")[0]
        assert (run["params"], run["eval"], run["predict"]) == (pdt, pdt, pdt), key
        assert all(np.isfinite(run["loss"])) and run["loss"][-1] < run["loss"][0], key
    # the data is cast to the params' dtype: the same run whatever the data's dtype
    for pdt in ("float32", "float64"):
        np.testing.assert_array_equal(runs[f"{pdt}/float32"]["loss"],
                                      runs[f"{pdt}/float64"]["loss"])
    # same start: float32 and float64 runs agree to float32's rounding, amplified a little
    # by Adam's sign-like first steps
    np.testing.assert_allclose(runs["float64/float64"]["loss"], runs["float32/float32"]["loss"],
                               rtol=5e-4)


def test_bfloat16_params_train_with_float32_figures() -> None:
    x, y = fn.datasets.spiral(jax.random.key(0), samples=50, classes=3)
    bf16 = jnp.bfloat16
    net = fn.serial(fn.Dense(16, dtype=bf16), fn.ReLU(), fn.Dense(3, dtype=bf16), fn.Softmax())
    params, state = net.init(jax.random.key(1), (2,))
    result = fn.fit(net, params, state, fn.optim.adam(0.02), fn.losses.categorical_crossentropy,
                    x, y, key=jax.random.key(0), epochs=20, batch_size=50,
                    metric=fn.metrics.categorical_accuracy, progress=False)
    assert jax.tree.leaves(result.params)[0].dtype == jnp.bfloat16
    assert result.history.loss[-1] < result.history.loss[0]
    evaluation = fn.evaluate(net, result.params, result.state,
                             fn.losses.categorical_crossentropy, x, y)
    assert evaluation.loss.dtype == jnp.float32
    assert fn.predict(net, result.params, result.state, x).dtype == jnp.bfloat16
