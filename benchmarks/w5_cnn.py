"""W5: a small CNN on 28x28x1 images (NHWC), batch 128, Adam lr 1e-3, one epoch per run.

Network: Conv(16, 3x3, SAME) - ReLU - MaxPool(2) - Conv(32, 3x3, SAME) - ReLU - MaxPool(2) -
Flatten - Dense(10), softmax cross-entropy; (B, 28, 28, 1) -> (B, 28, 28, 16) ->
(B, 14, 14, 16) -> (B, 14, 14, 32) -> (B, 7, 7, 32) -> (B, 1568) -> (B, 10) logits.
Data: W2's synthetic MNIST (`workloads.synthetic_mnist`: x ~ U(-1, 1)^784 labelled by a
fixed random linear teacher) with x reshaped to (N, 28, 28, 1); 60,000 training samples
(quick 15,000, tiny 1,024), "test acc" on the 10,000 held-out ones.

Canonical weights (float32, drawn with NumPy from the seed after the data):
    conv1.w (3, 3, 1, 16), conv2.w (3, 3, 16, 32): HWIO (kh, kw, c_in, c_out), He-normal
        N(0, 2 / (kh kw c_in));  conv1.b (16,), conv2.b (32,): zeros;
    dense.w (1568, 10): (in, out), rows in NHWC row-major flatten order, row (h*7 + w)*32 + c
        for pooled feature (h, w, c); LeCun-normal N(0, 1 / 1568);  dense.b (10,): zeros.
PyTorch and Equinox are NCHW: their conv weights are OIHW (`w.transpose(3, 2, 0, 1)`) and
their flatten order is (c, h, w), so their dense rows are permuted (`nchw_dense`), not
their activations. Flax and Keras are NHWC/HWIO like the canonical layout.

The hand-written fused loop (`JaxFusedRunner`, W2's house style: the run is one jitted
program, `lax.scan` over minibatches, rows gathered in the step, a masked full-size last
batch, the fused softmax-CE backward `(p - onehot) w / sum w`) was timed in each
formulation (`Formulation`; quick, 118 steps in scan, 2 shared cores; process CPU ms per
step, medians of 5 interleaved runs: wall times were 1.3-2x that and noisier):
    conv1 / conv2: 9 shifted-slice matmuls summed ("taps") / im2col (9 shifted slices
        concatenated, one matmul) 17.3 | im2col / im2col 20.3 | taps / taps 24.3 |
        lax.conv_general_dilated / im2col 43 | lax / lax 296 (622 wall: lax.conv's
        gradients in a scan are slow on XLA:CPU); in other runs conv1 as 9 broadcast
        multiplies 21.8 vs im2col 20.1, and conv2 with a hand-written VJP (dx = im2col(dy)
        @ flipped w) 19.6 vs autodiff's 18.0
    pool (taps / im2col): reshape (B, H/2, 2, W/2, 2, C) + max 18.9 | 4 strided slices +
        maximum 31.3 (im2col / im2col, another run: 23.9 vs 20.3) | reduce_window 41.8
    ReLU after the pool (same values, 4x fewer ReLUs) 19.0 vs 18.9 and scan unroll 2 18.4
        vs 18.9: within the noise, so neither is used.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from harness import OWN_SHUFFLES
from jax import lax
from net_workloads import CanonicalWeights, FitRunner, NetProblem, NumpyArray, shared_orders
from run_jax import block, cce_fused, cce_logits
from workloads import synthetic_mnist

TITLE = "CNN conv16-pool-conv32-pool-dense10 on 28x28x1, batch 128, Adam 1e-3"
METRIC = "test acc"
TOLERANCE = 0.01
"""Largest accepted |test acc - funcnn's|, twice the largest spread measured (seed 0): the six
implementations ended within 0.0051 of each other in full mode (0.1649-0.1700) and 0.0029
in quick (0.1085-0.1114). funcnn's and the hand-written weights agree to 1e-7 after two
steps and then drift apart by rounding only. The task learns slowly (chance is 0.10; quick
ends near 0.11, full near 0.17), so only the full figure separates a broken network."""

SAMPLES = {"full": 60_000, "quick": 15_000, "tiny": 1_024}
SHAPES = {"conv1.w": (3, 3, 1, 16), "conv1.b": (16,), "conv2.w": (3, 3, 16, 32),
          "conv2.b": (32,), "dense.w": (7 * 7 * 32, 10), "dense.b": (10,)}
B1, B2, EPS = 0.9, 0.999, 1e-7
Params = dict[str, jax.Array]
Carry = tuple[Params, Params, Params, jax.Array]  # params, Adam m, v, step count


def make_problem(mode: str, seed: int) -> NetProblem:
    """Data, He-normal initial weights and fit's shuffles for `mode` (full/quick/tiny)."""
    if mode not in SAMPLES:
        raise ValueError(f"mode must be one of {tuple(SAMPLES)}, got {mode!r}")
    rng = np.random.default_rng(seed)
    x, y, x_eval, y_eval = synthetic_mnist(SAMPLES[mode], 10_000, rng)
    init: CanonicalWeights = {}
    for name, shape in SHAPES.items():
        fan_in = int(np.prod(shape[:-1]))
        scale = 0.0 if name.endswith(".b") else np.sqrt(
            (1.0 if name == "dense.w" else 2.0) / fan_in)
        init[name] = (scale * rng.standard_normal(shape)).astype(np.float32)
    return NetProblem("W5", TITLE, x.reshape(-1, 28, 28, 1), y, x_eval.reshape(-1, 28, 28, 1),
                      y_eval, init, shared_orders(seed, 1, x.shape[0]), 128, 1e-3, 1, seed,
                      METRIC)


def to_nchw(w: CanonicalWeights) -> CanonicalWeights:
    """Canonical -> PyTorch/Equinox layouts: conv OIHW, dense (out, c h w) for an NCHW flatten."""
    out = {k: a.transpose(3, 2, 0, 1) if a.ndim == 4 else a for k, a in w.items()}
    out["dense.w"] = w["dense.w"].reshape(7, 7, 32, -1).transpose(3, 2, 0, 1).reshape(-1, 1568)
    return {k: np.ascontiguousarray(a) for k, a in out.items()}


def from_nchw(w: CanonicalWeights) -> CanonicalWeights:
    """Inverse of `to_nchw` (biases may carry Equinox's (O, 1, 1) shape)."""
    out = {k: a.transpose(2, 3, 1, 0) if a.ndim == 4 else a.reshape(-1) for k, a in w.items()}
    out["dense.w"] = w["dense.w"].reshape(-1, 32, 7, 7).transpose(2, 3, 1, 0).reshape(1568, -1)
    return {k: np.ascontiguousarray(a) for k, a in out.items()}


# ---- the hand-written forward pass, in each formulation that was timed ----

def conv_same(x: jax.Array, w: jax.Array, how: str) -> jax.Array:
    """3x3 SAME convolution `(B, H, W, C) * (3, 3, C, O) -> (B, H, W, O)`:
    `y[b, i, j, o] = sum_{p, q, c} x_pad[b, i + p, j + q, c] w[p, q, c, o]`."""
    if how == "lax":
        return lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    _, h, wd, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    views = [xp[:, p:p + h, q:q + wd, :] for p in range(3) for q in range(3)]
    if how == "im2col":  # patches (B, H, W, 9C), offsets major: one matmul
        return jnp.concatenate(views, axis=-1) @ w.reshape(9 * c, -1)
    return sum((v @ w[k // 3, k % 3] for k, v in enumerate(views[1:], 1)),  # "taps"
               views[0] @ w[0, 0])


def max_pool2(x: jax.Array, how: str) -> jax.Array:
    """2x2 max pool, stride 2: `(B, H, W, C) -> (B, H/2, W/2, C)`."""
    b, h, w, c = x.shape
    if how == "reshape":
        return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    if how == "window":
        y: jax.Array = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                                         "VALID")
        return y
    return jnp.maximum(jnp.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2]),  # "slices"
                       jnp.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]))


@dataclass(frozen=True)
class Formulation:
    """How the hand-written loop computes; the default is the fastest measured."""

    conv1: str = "taps"  # "lax" | "im2col" | "taps"
    conv2: str = "im2col"
    pool: str = "reshape"  # "reshape" | "window" | "slices"


PLAIN = Formulation("lax", "lax", "window")
"""lax.conv_general_dilated and lax.reduce_window: plain_step's and evaluate's forward."""


def forward(p: Params, x: jax.Array, f: Formulation) -> jax.Array:
    """Logits (B, 10) of the CNN for NHWC `x (B, 28, 28, 1)`."""
    h = x
    for name, how in (("conv1", f.conv1), ("conv2", f.conv2)):
        h = conv_same(h, p[f"{name}.w"], how) + p[f"{name}.b"]
        h = max_pool2(jax.nn.relu(h), f.pool)
    return h.reshape(h.shape[0], -1) @ p["dense.w"] + p["dense.b"]


def adam(carry: Carry, grads: Params, lr: float) -> Carry:
    """Adam at count t: m, v moments; p -= lr * m/(1-b1^(t+1)) / (sqrt(v/(1-b2^(t+1))) + eps)."""
    params, m, v, t = carry
    tf = t.astype(jnp.float32) + 1.0
    c1, c2 = 1.0 - B1 ** tf, 1.0 - B2 ** tf
    m = {k: B1 * m[k] + (1 - B1) * g for k, g in grads.items()}
    v = {k: B2 * v[k] + (1 - B2) * g * g for k, g in grads.items()}
    params = {k: p - lr * (m[k] / c1) / (jnp.sqrt(v[k] / c2) + EPS) for k, p in params.items()}
    return params, m, v, t + 1


def fresh_carry(init: CanonicalWeights) -> Carry:
    params = {k: jnp.asarray(a) for k, a in init.items()}
    m, v = ({k: jnp.zeros_like(a) for k, a in params.items()} for _ in range(2))
    return params, m, v, jnp.zeros((), jnp.int32)


@jax.jit
def _plain_logits(p: Params, x: jax.Array) -> jax.Array:
    return forward(p, x, PLAIN)


def evaluate(problem: NetProblem, weights: CanonicalWeights) -> float:
    """Test accuracy mean(argmax(logits) == y) on x_eval, float32, lax.conv forward."""
    p = {k: jnp.asarray(np.asarray(a, np.float32)) for k, a in weights.items()}
    pred = np.concatenate([np.argmax(np.asarray(_plain_logits(p, problem.x_eval[i:i + 2000])), 1)
                           for i in range(0, problem.x_eval.shape[0], 2000)])
    return float(np.mean(pred == problem.y_eval))


def plain_step(problem: NetProblem) -> tuple[Any, tuple[Any, ...]]:
    """One jitted training step (lax.conv, reduce_window, log-softmax CE, Adam) on a batch."""
    f, lr = PLAIN, problem.learning_rate

    def step(carry: Carry, xb: jax.Array, yb: jax.Array, wb: jax.Array) -> Carry:
        grads = jax.grad(lambda p: cce_logits(forward(p, xb, f), yb, wb))(carry[0])
        return adam(carry, grads, lr)

    rows = problem.batches(0)[0]
    return jax.jit(step), (fresh_carry(problem.init), jnp.asarray(problem.x[rows]),
                           jnp.asarray(problem.y[rows]), jnp.ones(rows.shape, jnp.float32))


class JaxFusedRunner:
    """Hand-written: the whole run one jitted program, `lax.scan` over the padded epoch's
    minibatches (last one masked by weights), rows gathered in the step, buffers donated."""

    name = "jax fused scan"

    def __init__(self, formulation: Formulation | None = None) -> None:
        self.f = formulation or Formulation()

    def setup(self, problem: NetProblem) -> None:
        self.problem = problem
        f, lr, b, n = self.f, problem.learning_rate, problem.batch_size, problem.n
        padded = problem.steps_per_epoch * b
        self.x, self.y = jax.device_put((problem.x, problem.y))

        def step(carry: Carry, xb: jax.Array, yb: jax.Array, wb: jax.Array) -> Carry:
            grads = jax.grad(lambda p: cce_fused(forward(p, xb, f), yb, wb))(carry[0])
            return adam(carry, grads, lr)

        def epoch(carry: Carry, x: jax.Array, y: jax.Array, order: jax.Array) -> Carry:
            rows = jnp.concatenate([order, jnp.zeros(padded - n, order.dtype)]).reshape(-1, b)
            weight = (jnp.arange(padded) < n).astype(jnp.float32).reshape(-1, b)

            def body(c: Carry, s: tuple[jax.Array, jax.Array]) -> tuple[Carry, None]:
                return step(c, x[s[0]], y[s[0]], s[1]), None

            return lax.scan(body, carry, (rows, weight))[0]

        def run(carry: Carry, x: jax.Array, y: jax.Array, orders: jax.Array) -> Carry:
            return lax.scan(lambda c, o: (epoch(c, x, y, o), None), carry, orders)[0]

        self.program = jax.jit(run, donate_argnums=0)
        self.orders = jnp.asarray(problem.orders)

    def reset(self) -> None:
        self.carry = fresh_carry(self.problem.init)

    def run(self) -> None:
        self.carry = block(self.program(self.carry, self.x, self.y, self.orders))

    def weights(self) -> CanonicalWeights:
        return {k: np.asarray(a) for k, a in self.carry[0].items()}


class FuncnnRunner(FitRunner):
    """`fn.fit` of the serial net ending in `Softmax()`, `categorical_crossentropy` (fit fuses
    the two), `fn.optim.adam(lr, eps=1e-7)` reused so that fit's program stays cached."""

    def build(self, problem: NetProblem) -> None:
        import funcnn as fn

        self.problem, self.fn = problem, fn
        self.net = fn.serial(fn.Conv2D(16, 3), fn.ReLU(), fn.MaxPool2D(2), fn.Conv2D(32, 3),
                             fn.ReLU(), fn.MaxPool2D(2), fn.Flatten(3), fn.Dense(10),
                             fn.Softmax())
        self.key = jax.random.key(problem.seed)  # the shuffles of problem.orders
        params, self.state = self.net.init(self.key, (28, 28, 1))
        # '0_conv2d', '3_conv2d', '7_dense' <-> conv1, conv2, dense
        layers = sorted(params, key=lambda k: int(k.split("_", 1)[0]))
        self.names = dict(zip(SHAPES, ((k, leaf) for k in layers for leaf in ("w", "b")),
                              strict=True))
        self.init_params = {k: dict(params[k]) for k in layers}
        for name, (k, leaf) in self.names.items():
            self.init_params[k][leaf] = jax.device_put(problem.init[name])

    def weights(self) -> CanonicalWeights:
        return {name: np.asarray(self.result.params[k][leaf])
                for name, (k, leaf) in self.names.items()}


def _batches(problem: NetProblem) -> list[NumpyArray]:
    return [rows for e in range(problem.epochs) for rows in problem.batches(e)]


FLAX_MODULES = {"conv1": "Conv_0", "conv2": "Conv_1", "dense": "Dense_0"}
FLAX_LEAVES = {"w": "kernel", "b": "bias"}


class FlaxRunner:
    """Flax linen `nn.Conv`, `nn.max_pool`, `nn.Dense`, a `TrainState` with optax.adam, a
    jitted step (rows gathered inside, integer-label softmax CE) in a Python loop."""

    name = "flax linen"

    def setup(self, problem: NetProblem) -> None:
        nn: Any = importlib.import_module("flax.linen")
        train_state: Any = importlib.import_module("flax.training.train_state")
        optax: Any = importlib.import_module("optax")

        class CNN(nn.Module):  # type: ignore[misc]
            @nn.compact  # type: ignore[untyped-decorator]
            def __call__(self, x: jax.Array) -> Any:
                for width in (16, 32):
                    x = nn.max_pool(nn.relu(nn.Conv(width, (3, 3), padding="SAME")(x)),
                                    (2, 2), strides=(2, 2))
                return nn.Dense(10)(x.reshape(x.shape[0], -1))

        self.problem, self.module, self.make = problem, CNN(), train_state.TrainState.create
        self.tx = optax.adam(problem.learning_rate, eps=1e-7)
        self.x, self.y = jax.device_put((problem.x, problem.y))

        @jax.jit
        def step(state: Any, x: jax.Array, y: jax.Array, rows: jax.Array) -> Any:
            def loss_fn(params: Any) -> Any:
                logits = state.apply_fn(params, x[rows])
                return optax.softmax_cross_entropy_with_integer_labels(logits, y[rows]).mean()

            return state.apply_gradients(grads=jax.grad(loss_fn)(state.params))

        self.step = step

    def reset(self) -> None:
        params: dict[str, dict[str, jax.Array]] = {m: {} for m in FLAX_MODULES.values()}
        for k, a in self.problem.init.items():
            params[FLAX_MODULES[k[:-2]]][FLAX_LEAVES[k[-1]]] = jnp.asarray(a)
        self.state = self.make(apply_fn=self.module.apply, params={"params": params},
                               tx=self.tx)

    def run(self) -> None:
        state = self.state
        for rows in _batches(self.problem):
            state = self.step(state, self.x, self.y, rows)
        self.state = block(state)

    def weights(self) -> CanonicalWeights:
        p = self.state.params["params"]
        return {k: np.asarray(p[FLAX_MODULES[k[:-2]]][FLAX_LEAVES[k[-1]]]) for k in SHAPES}


class TorchRunner:
    """Eager PyTorch, NCHW: `nn.Sequential(Conv2d, ReLU, MaxPool2d, ..., Flatten, Linear)`,
    `F.cross_entropy`, `torch.optim.Adam(eps=1e-7)`, `torch.set_num_threads(2)`."""

    name = "pytorch"

    def setup(self, problem: NetProblem) -> None:
        torch: Any = importlib.import_module("torch")
        torch.set_num_threads(2)
        nn = torch.nn
        self.torch, self.problem = torch, problem
        self.model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(1568, 10))
        self.layers = {"conv1": self.model[0], "conv2": self.model[3], "dense": self.model[7]}
        self.x = torch.from_numpy(np.ascontiguousarray(problem.x.transpose(0, 3, 1, 2)))
        self.y = torch.from_numpy(problem.y.astype(np.int64))
        self.rows = [torch.from_numpy(r.astype(np.int64)) for r in _batches(problem)]

    def reset(self) -> None:
        torch, init = self.torch, to_nchw(self.problem.init)
        with torch.no_grad():
            for name, layer in self.layers.items():
                layer.weight.copy_(torch.from_numpy(init[f"{name}.w"]))
                layer.bias.copy_(torch.from_numpy(init[f"{name}.b"]))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.problem.learning_rate,
                                    eps=1e-7)

    def run(self) -> None:
        f = self.torch.nn.functional
        self.model.train()
        for rows in self.rows:
            loss = f.cross_entropy(self.model(self.x[rows]), self.y[rows])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()

    def weights(self) -> CanonicalWeights:
        return from_nchw({f"{name}.{leaf}": getattr(layer, attr).detach().numpy()
                          for name, layer in self.layers.items()
                          for leaf, attr in (("w", "weight"), ("b", "bias"))})


class EquinoxRunner:
    """As Equinox's CNN tutorial: `eqx.nn.Conv2d` / `MaxPool2d` / `Linear` on one NCHW example
    `(1, 28, 28)`, vmapped; an `eqx.filter_jit` step, `filter_value_and_grad`, optax.adam."""

    name = "equinox"

    def setup(self, problem: NetProblem) -> None:
        eqx: Any = importlib.import_module("equinox")
        optax: Any = importlib.import_module("optax")
        k1, k2, k3 = jax.random.split(jax.random.key(0), 3)

        class CNN(eqx.Module):  # type: ignore[misc]
            conv1: Any
            conv2: Any
            linear: Any
            pool: Any

            def __call__(self, x: jax.Array) -> jax.Array:
                x = self.pool(jax.nn.relu(self.conv1(x)))
                x = self.pool(jax.nn.relu(self.conv2(x)))
                return self.linear(x.reshape(-1))  # type: ignore[no-any-return]

        self.eqx, self.problem = eqx, problem
        self.template = CNN(eqx.nn.Conv2d(1, 16, 3, padding=1, key=k1),
                            eqx.nn.Conv2d(16, 32, 3, padding=1, key=k2),
                            eqx.nn.Linear(1568, 10, key=k3), eqx.nn.MaxPool2d(2, 2))
        self.tx = tx = optax.adam(problem.learning_rate, eps=1e-7)
        self.x = jnp.asarray(problem.x.transpose(0, 3, 1, 2))
        self.y = jnp.asarray(problem.y)

        @eqx.filter_jit  # type: ignore[untyped-decorator]
        def step(model: Any, opt_state: Any, x: jax.Array, y: jax.Array, rows: jax.Array,
                 ) -> tuple[Any, Any]:
            def loss_fn(m: Any) -> Any:
                logits = jax.vmap(m)(x[rows])
                return optax.softmax_cross_entropy_with_integer_labels(logits, y[rows]).mean()

            _, grads = eqx.filter_value_and_grad(loss_fn)(model)
            updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
            return eqx.apply_updates(model, updates), opt_state

        self.step = step

    def reset(self) -> None:
        init = to_nchw(self.problem.init)
        leaves = [jnp.asarray(init[k].reshape(-1, 1, 1) if k.startswith("conv") and
                              k.endswith(".b") else init[k]) for k in SHAPES]
        self.model = self.eqx.tree_at(self._leaves, self.template, leaves)
        self.opt_state = self.tx.init(self.eqx.filter(self.model, self.eqx.is_array))

    def run(self) -> None:
        model, opt_state = self.model, self.opt_state
        for rows in _batches(self.problem):
            model, opt_state = self.step(model, opt_state, self.x, self.y, rows)
        self.model, self.opt_state = block((model, opt_state))

    @staticmethod
    def _leaves(m: Any) -> list[Any]:  # in SHAPES' order
        return [m.conv1.weight, m.conv1.bias, m.conv2.weight, m.conv2.bias, m.linear.weight,
                m.linear.bias]

    def weights(self) -> CanonicalWeights:
        return from_nchw({k: np.asarray(a) for k, a in
                          zip(SHAPES, self._leaves(self.model), strict=True)})


class KerasRunner:
    """Keras 3 on JAX: `Sequential` ending in `Dense(softmax)`, `Adam(epsilon=1e-7)`, sparse
    categorical CE, `model.fit` on the data pre-gathered in the shared order, no shuffle."""

    name = "keras 3 (jax)"

    def setup(self, problem: NetProblem) -> None:
        os.environ["KERAS_BACKEND"] = "jax"
        keras: Any = importlib.import_module("keras")
        if keras.backend.backend() != "jax":
            raise RuntimeError(f"keras runs on {keras.backend.backend()!r}, not jax")
        layers = keras.layers
        self.problem = problem
        self.model = keras.Sequential([
            keras.Input((28, 28, 1)),
            layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Flatten(), layers.Dense(10, activation="softmax")])
        self.model.compile(optimizer=keras.optimizers.Adam(problem.learning_rate, epsilon=1e-7),
                           loss="sparse_categorical_crossentropy")
        self.shuffle = problem.epochs > 1  # then Keras' own shuffles (not the case here)
        self.note = OWN_SHUFFLES if self.shuffle else ""
        order = np.arange(problem.n) if self.shuffle else problem.orders[0]
        self.x, self.y = problem.x[order], problem.y[order]

    def reset(self) -> None:
        self.model.set_weights([self.problem.init[k] for k in SHAPES])
        for var in self.model.optimizer.variables:  # iteration, moments; not the rate
            if not var.path.endswith("learning_rate"):
                var.assign(np.zeros(var.shape, var.dtype))

    def run(self) -> None:
        p = self.problem
        self.model.fit(self.x, self.y, batch_size=p.batch_size, epochs=p.epochs,
                       shuffle=self.shuffle, verbose=0)

    def weights(self) -> CanonicalWeights:
        return {k: np.asarray(a) for k, a in zip(SHAPES, self.model.get_weights(), strict=True)}


RUNNERS: dict[str, Callable[[], Any]] = {
    "funcnn": FuncnnRunner, "jax-fused": JaxFusedRunner, "flax": FlaxRunner,
    "torch": TorchRunner, "equinox": EquinoxRunner, "keras": KerasRunner}
