"""W7: a next-character LSTM on the standard library's source, trained one epoch.

Network: ids `(B, T)` -> Embedding(96, 64) -> LSTM(256), every hidden state `(B, T, 256)`
-> Dense(96) logits `(B, T, 96)`; loss: the mean next-character cross-entropy over all
B*T positions. LSTM (PyTorch's equations and gate order i, f, g, o), zero initial state:
    i, f, g, o = split(x_t @ w_x + h @ w_h + b, 4);  c' = σ(f) c + σ(i) tanh(g);
    h' = σ(o) tanh(c').
Data: `net_workloads.text_windows(64, steps * 32, eval_windows, seed)`, so one epoch is
`steps` minibatches of 32 windows in the shared order (`problem.orders`); Adam(1e-3, b1 0.9,
b2 0.999, eps 1e-7 outside the sqrt). Metric: "val loss", nats per character on the
validation windows (`next_char_loss`) from `evaluate`'s own float32 JAX forward pass.

Canonical weights (float32, drawn with NumPy from `default_rng([seed, 7])`, PyTorch's
initial distributions): "embed.table" (96, 64) N(0, 1); "lstm.w_x" (64, 1024), "lstm.w_h"
(256, 1024), "lstm.b" (1024,) U(-1/16, 1/16) (1/sqrt(hidden)), gates i, f, g, o in column
blocks of 256; "dense.w" (256, 96), "dense.b" (96,) U(-1/16, 1/16) (1/sqrt(fan_in)).
PyTorch: weight_ih = w_x.T, weight_hh = w_h.T, bias_ih = b, bias_hh = 0 and frozen (two
trained biases would each take a full Adam step, doubling the bias's effective rate);
Flax: `OptimizedLSTMCell` kernels ii|if|ig|io = w_x's blocks, hi|hf|hg|ho = w_h's, their
biases b's blocks.

The hand-written fused loop (`JaxFusedRunner`): the epoch is one jitted program, a
`lax.scan` over minibatches (rows gathered inside), each a `lax.scan` over T. Tried
(`FusedConfig`; 20-step epochs, process CPU ms/step, best of 5 interleaved runs on the 2
shared, busy cores): with JAX's own backward through the time scan, the input projection
per step (`x_t @ w_x` in the scan) 51, for all T before the scan (`(T B, 64) @ (64,
1024)`) 52, as a gather of rows of `table @ w_x + b` (96, 1024) (the same product: an
embedding followed by a linear map) 42; a hand-written backward through time
(`lstm_bptt`: the forward scan keeps the gate activations, the reverse scan does only the
gate derivatives and `dz_t @ w_h.T`, and `dw_h = sum_t h_{t-1}^T dz_t` is one (256, 2048)
@ (2048, 1024) matmul after it, cuDNN's scheme) 43 with the all-T projection, 32-33 with
the gather (41.7 when that same backward accumulates `dw_h` step by step, as autodiff
does); unrolling the time scan 2 or 4 times: 33 and 42 (custom, gather), 44 (autodiff,
gather), 52 (per step). The default is the fastest: gather, custom backward, unroll 1
(its gradients agree with autodiff's of the per-step form to 1.4e-6 of each leaf's max).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from net_workloads import (
    TEXT_VOCAB,
    CanonicalWeights,
    FitRunner,
    NetProblem,
    NumpyArray,
    next_char_loss,
    shared_orders,
    text_windows,
)
from run_jax import block

TITLE = "char LSTM (Embedding 96x64, LSTM 256, Dense 96), T 64, batch 32, one epoch"
METRIC = "val loss"
TOLERANCE = 2e-3
"""Largest accepted |val loss - funcnn's| in nats/char. Measured spread of the four
implementations (the same weights, batches and order; float rounding only): 9e-6 in quick
mode (2.51518 +- 5e-6, seed 0), 3e-6 (seed 1), 7e-6 in full mode (2.14297)."""
CONTEXT, EMBED, HIDDEN, BATCH, LR = 64, 64, 256, 32, 1e-3
STEPS = {"full": 200, "quick": 100, "tiny": 4}
EVAL_WINDOWS = {"full": 256, "quick": 256, "tiny": 32}

Tree = dict[str, jax.Array]
Carry = tuple[Tree, Tree, Tree, jax.Array]  # params, m, v, count
B1, B2, EPS = 0.9, 0.999, 1e-7


def init_weights(seed: int) -> CanonicalWeights:
    """The canonical initial weights (see the module docstring)."""
    rng = np.random.default_rng([seed, 7])
    k = 1.0 / np.sqrt(HIDDEN)

    def u(*shape: int) -> NumpyArray:
        return rng.uniform(-k, k, shape).astype(np.float32)

    return {"embed.table": rng.standard_normal((TEXT_VOCAB, EMBED)).astype(np.float32),
            "lstm.w_x": u(EMBED, 4 * HIDDEN), "lstm.w_h": u(HIDDEN, 4 * HIDDEN),
            "lstm.b": u(4 * HIDDEN), "dense.w": u(HIDDEN, TEXT_VOCAB),
            "dense.b": u(TEXT_VOCAB)}


def make_problem(mode: str, seed: int) -> NetProblem:
    """`STEPS[mode] * 32` training windows (one epoch of that many steps), validation on
    `EVAL_WINDOWS[mode]` windows."""
    if mode not in STEPS:
        raise ValueError(f"mode must be one of {sorted(STEPS)}, got {mode!r}")
    n = STEPS[mode] * BATCH
    x, y, x_eval, y_eval = text_windows(CONTEXT, n, EVAL_WINDOWS[mode], seed)
    return NetProblem("W7", TITLE, x, y, x_eval, y_eval, init_weights(seed),
                      shared_orders(seed, 1, n), BATCH, LR, 1, seed, METRIC)


# --- the hand-written LSTM ------------------------------------------------------------


def _gates(z: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Pre-activations `z (B, 4h)` and cell `c (B, h)` -> `(h', c', [σi, σf, tanh g, σo])`."""
    zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zg), jax.nn.sigmoid(zo)
    c = f * c + i * g
    return o * jnp.tanh(c), c, jnp.concatenate([i, f, g, o], axis=-1)


def lstm_scan(xs: jax.Array, w_h: jax.Array, project: Callable[[jax.Array], jax.Array],
              unroll: int = 1) -> jax.Array:
    """Hidden states `(T, B, h)` of the LSTM over time-major `xs (T, B, .)`, step input
    `project(x_t) (B, 4h)`, from zeros; plain `lax.scan`, differentiated by JAX."""
    zero = jnp.zeros((xs.shape[1], w_h.shape[0]), w_h.dtype)

    def step(carry: tuple[jax.Array, jax.Array], x_t: jax.Array) -> tuple[Any, jax.Array]:
        h, c, _ = _gates(project(x_t) + carry[0] @ w_h, carry[1])
        return (h, c), h

    return jax.lax.scan(step, (zero, zero), xs, unroll=unroll)[1]


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def lstm_bptt(xp: jax.Array, w_h: jax.Array, unroll: int = 1) -> jax.Array:
    """`lstm_scan(xp, w_h, identity)` on projected inputs `xp (T, B, 4h)`, with a
    hand-written backward through time (see the module docstring)."""
    return _bptt_fwd(xp, w_h, unroll)[0]


def _bptt_fwd(xp: jax.Array, w_h: jax.Array, unroll: int) -> tuple[jax.Array, Any]:
    zero = jnp.zeros((xp.shape[1], w_h.shape[0]), w_h.dtype)

    def step(carry: tuple[jax.Array, jax.Array], p_t: jax.Array) -> tuple[Any, Any]:
        h, c, acts = _gates(p_t + carry[0] @ w_h, carry[1])
        return (h, c), (h, c, acts)

    hs, cs, acts = jax.lax.scan(step, (zero, zero), xp, unroll=unroll)[1]
    return hs, (hs, cs, acts, w_h)


def _bptt_bwd(unroll: int, res: Any, d_hs: jax.Array) -> tuple[jax.Array, jax.Array]:
    hs, cs, acts, w_h = res
    zero = jnp.zeros_like(hs[0])
    h_prev = jnp.concatenate([zero[None], hs[:-1]])
    c_prev = jnp.concatenate([zero[None], cs[:-1]])
    w_ht = w_h.T

    def step(carry: tuple[jax.Array, jax.Array], s: tuple[jax.Array, ...],
             ) -> tuple[Any, jax.Array]:
        dh, dc = carry
        dh_t, c_t, cp, a = s
        i, f, g, o = jnp.split(a, 4, axis=-1)
        dh = dh + dh_t
        tc = jnp.tanh(c_t)
        dc = dc + dh * o * (1 - tc * tc)
        dz = jnp.concatenate([dc * g * i * (1 - i), dc * cp * f * (1 - f),
                              dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=-1)
        return (dz @ w_ht, dc * f), dz

    dz = jax.lax.scan(step, (zero, zero), (d_hs, cs, c_prev, acts), reverse=True,
                      unroll=unroll)[1]
    return dz, jnp.einsum("tbh,tbg->hg", h_prev, dz)


lstm_bptt.defvjp(_bptt_fwd, _bptt_bwd)


@dataclass(frozen=True)
class FusedConfig:
    """How the fused loop computes the LSTM (timings in the module docstring).
    `project`: "step" (`x_t @ w_x + b` in the scan), "all" (`emb @ w_x + b` of all T
    before it), "table" (rows of `table @ w_x + b` gathered); `bptt`: "autodiff" or
    "custom" (`lstm_bptt`, needs project != "step"); `unroll` of the time scan."""

    project: str = "table"
    bptt: str = "custom"
    unroll: int = 1


def logits_tm(p: Tree, x: jax.Array, cfg: FusedConfig = FusedConfig("all", "autodiff"),
              ) -> jax.Array:
    """Time-major logits `(T, B, 96)` of windows `x (B, T)` under canonical params `p`."""
    ids = x.T
    w_x, b = p["lstm.w_x"], p["lstm.b"]
    if cfg.project == "step":
        xs = p["embed.table"][ids]
        hs = lstm_scan(xs, p["lstm.w_h"], lambda e: e @ w_x + b, cfg.unroll)
    else:
        xs = ((p["embed.table"] @ w_x + b)[ids] if cfg.project == "table"
              else p["embed.table"][ids] @ w_x + b)
        hs = (lstm_bptt(xs, p["lstm.w_h"], cfg.unroll) if cfg.bptt == "custom"
              else lstm_scan(xs, p["lstm.w_h"], lambda e: e, cfg.unroll))
    return hs @ p["dense.w"] + p["dense.b"]


def batch_loss(p: Tree, x: jax.Array, y: jax.Array, weight: jax.Array,
               cfg: FusedConfig) -> jax.Array:
    """Mean next-char cross-entropy of each window over its T positions, then the
    `weight`-ed mean over windows (weight 0: a padding row)."""
    log_p = jax.nn.log_softmax(logits_tm(p, x, cfg))
    per_row = -jnp.mean(jnp.take_along_axis(log_p, y.T[..., None], axis=-1)[..., 0], axis=0)
    return jnp.sum(per_row * weight) / jnp.sum(weight)


def adam(carry: Carry, grads: Tree, lr: float) -> Carry:
    """Adam with bias correction, eps outside the sqrt, at step count t -> t + 1."""
    params, m, v, t = carry
    tf = (t + 1).astype(jnp.float32)
    c1, c2 = 1.0 - B1 ** tf, 1.0 - B2 ** tf
    m = jax.tree.map(lambda m_, g: B1 * m_ + (1 - B1) * g, m, grads)
    v = jax.tree.map(lambda v_, g: B2 * v_ + (1 - B2) * g * g, v, grads)
    params = jax.tree.map(lambda w, m_, v_: w - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + EPS),
                          params, m, v)
    return params, m, v, t + 1


def train_step(cfg: FusedConfig, lr: float) -> Callable[..., Carry]:
    """`step(carry, xb, yb, weight) -> carry`: one Adam step on a (masked) minibatch."""
    def step(carry: Carry, xb: jax.Array, yb: jax.Array, weight: jax.Array) -> Carry:
        return adam(carry, jax.grad(batch_loss)(carry[0], xb, yb, weight, cfg), lr)

    return step


def fresh_carry(init: CanonicalWeights) -> Carry:
    """Device copies of the initial weights, zero Adam moments, count 0."""
    params = {k: jnp.asarray(w) for k, w in init.items()}
    return (params, {k: jnp.zeros_like(w) for k, w in params.items()},
            {k: jnp.zeros_like(w) for k, w in params.items()}, jnp.zeros((), jnp.int32))


def evaluate(problem: NetProblem, weights: CanonicalWeights) -> float:
    """Validation nats per character of `weights`: the plain float32 forward pass."""
    p = {k: jnp.asarray(v, jnp.float32) for k, v in weights.items()}
    logits = jax.jit(logits_tm)(p, jnp.asarray(problem.x_eval))
    return next_char_loss(np.asarray(logits).transpose(1, 0, 2), problem.y_eval)


def _check_forward(name: str, problem: NetProblem, logits: NumpyArray) -> None:
    """A peer's first-windows logits `(4, T, 96)` from the initial weights must be ours."""
    ours = np.asarray(jax.jit(logits_tm)({k: jnp.asarray(v) for k, v in problem.init.items()},
                                         jnp.asarray(problem.x_eval[:4]))).transpose(1, 0, 2)
    err = float(np.max(np.abs(logits - ours)))
    if err > 1e-5:
        raise AssertionError(f"{name}: forward pass differs from the canonical one by {err:.2e}")


# --- runners --------------------------------------------------------------------------


class JaxFusedRunner:
    """The whole epoch in one jitted program: `lax.scan` over minibatches (rows gathered
    inside the step, buffers donated, a shorter last batch padded with zero weights)."""

    name = "jax fused scan"

    def __init__(self, config: FusedConfig | None = None) -> None:
        self.cfg = config or FusedConfig()

    def setup(self, problem: NetProblem) -> None:
        self.problem = problem
        step = train_step(self.cfg, problem.learning_rate)
        b, n = problem.batch_size, problem.n
        padded = -(-n // b) * b
        self.x, self.y = jnp.asarray(problem.x), jnp.asarray(problem.y)
        order = np.zeros(padded, np.int32)
        order[:n] = problem.orders[0]
        self.rows = jnp.asarray(order.reshape(-1, b))
        self.weight = jnp.asarray((np.arange(padded) < n).astype(np.float32).reshape(-1, b))

        def epoch(carry: Carry, x: jax.Array, y: jax.Array, rows: jax.Array,
                  weight: jax.Array) -> Carry:
            def body(c: Carry, s: tuple[jax.Array, jax.Array]) -> tuple[Carry, None]:
                return step(c, x[s[0]], y[s[0]], s[1]), None

            return jax.lax.scan(body, carry, (rows, weight))[0]

        self.epoch = jax.jit(epoch, donate_argnums=0)

    def reset(self) -> None:
        self.carry = fresh_carry(self.problem.init)

    def run(self) -> None:
        self.carry = block(self.epoch(self.carry, self.x, self.y, self.rows, self.weight))

    def weights(self) -> CanonicalWeights:
        return {k: np.asarray(v, np.float32) for k, v in self.carry[0].items()}


FUNCNN_NAMES = {"0_embedding": {"table": "embed.table"},
                "1_lstm": {"w_x": "lstm.w_x", "w_h": "lstm.w_h", "b": "lstm.b"},
                "2_dense": {"w": "dense.w", "b": "dense.b"}}


class FuncnnRunner(FitRunner):
    """`fn.fit` of `serial(Embedding, LSTM(256), Dense(96), Softmax())` with
    `token_crossentropy` (per-window mean over T of the clipped `-log p[y]`, then the
    batch mean: the mean over all B*T positions) and one reused `adam(1e-3, eps=1e-7)`."""

    loss = "token_crossentropy"

    def __init__(self, **lstm_kwargs: Any) -> None:
        self.lstm_kwargs = lstm_kwargs  # e.g. lowering="precomputed", unroll=2

    def build(self, problem: NetProblem) -> None:
        import funcnn as fn

        self.fn, self.problem = fn, problem
        self.net = fn.serial(fn.Embedding(vocab=TEXT_VOCAB, features=EMBED),
                             fn.LSTM(HIDDEN, **self.lstm_kwargs), fn.Dense(TEXT_VOCAB),
                             fn.Softmax())
        self.key = jax.random.key(problem.seed)  # the shuffles of problem.orders
        params, self.state = self.net.init(self.key, (CONTEXT,))
        loaded = {layer: {leaf: jnp.asarray(problem.init[canon]) for leaf, canon in m.items()}
                  for layer, m in FUNCNN_NAMES.items()}
        if jax.tree.map(jnp.shape, params) != jax.tree.map(jnp.shape, loaded):
            raise ValueError(f"funcnn params {jax.tree.map(jnp.shape, params)} differ")
        self.init_params = loaded

    def weights(self) -> CanonicalWeights:
        return {canon: np.asarray(self.result.params[layer][leaf])
                for layer, m in FUNCNN_NAMES.items() for leaf, canon in m.items()}


GATES = "ifgo"


class FlaxRunner:
    """Flax linen: `nn.Embed`, `nn.RNN(nn.OptimizedLSTMCell(256))`, `nn.Dense(96)`, a
    `TrainState` with `optax.adam(1e-3, eps=1e-7)`, optax's integer-label softmax
    cross-entropy; a jitted step per minibatch from a Python loop, rows gathered inside.
    (Flax NNX, `nnx.RNN(nnx.OptimizedLSTMCell)` with an `nnx.jit` step and `nnx.Optimizer`,
    took 133 CPU ms/step against linen's 43 in one interleaved measurement.)"""

    name = "flax linen"

    def setup(self, problem: NetProblem) -> None:
        import flax.linen as nn  # type: ignore[import-not-found,unused-ignore]
        import optax
        from flax.training import train_state  # type: ignore[import-not-found,unused-ignore]

        class CharLSTM(nn.Module):  # type: ignore[misc,unused-ignore]
            @nn.compact  # type: ignore[untyped-decorator,unused-ignore]
            def __call__(self, x: jax.Array) -> Any:
                h = nn.RNN(nn.OptimizedLSTMCell(HIDDEN))(nn.Embed(TEXT_VOCAB, EMBED)(x))
                return nn.Dense(TEXT_VOCAB)(h)

        self.problem = problem
        self.module = CharLSTM()
        self.tx = optax.adam(problem.learning_rate, eps=1e-7)
        self.make_state: Any = train_state.TrainState.create
        self.x, self.y = jnp.asarray(problem.x), jnp.asarray(problem.y)
        self.rows = [jnp.asarray(r) for r in problem.batches(0)]
        template = self.module.init(jax.random.key(0), self.x[:1])
        params = self._params(problem.init)
        if jax.tree.map(jnp.shape, template) != jax.tree.map(jnp.shape, params):
            raise ValueError("flax params are not the canonical layout")
        _check_forward(self.name, problem, np.asarray(
            self.module.apply(params, jnp.asarray(problem.x_eval[:4]))))

        @jax.jit
        def step(state: Any, x: jax.Array, y: jax.Array, rows: jax.Array) -> Any:
            xb, yb = x[rows], y[rows]

            def loss_fn(params: Any) -> Any:
                logits = state.apply_fn(params, xb)
                return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

            return state.apply_gradients(grads=jax.grad(loss_fn)(state.params))

        self.step = step

    @staticmethod
    def _params(w: CanonicalWeights) -> Any:
        cell: dict[str, Any] = {}
        for j, gate in enumerate(GATES):
            cols = slice(j * HIDDEN, (j + 1) * HIDDEN)
            cell[f"i{gate}"] = {"kernel": jnp.asarray(w["lstm.w_x"][:, cols])}
            cell[f"h{gate}"] = {"kernel": jnp.asarray(w["lstm.w_h"][:, cols]),
                                "bias": jnp.asarray(w["lstm.b"][cols])}
        return {"params": {"Embed_0": {"embedding": jnp.asarray(w["embed.table"])},
                           "OptimizedLSTMCell_0": cell,
                           "Dense_0": {"kernel": jnp.asarray(w["dense.w"]),
                                       "bias": jnp.asarray(w["dense.b"])}}}

    def reset(self) -> None:
        self.model = self.make_state(apply_fn=self.module.apply,
                                     params=self._params(self.problem.init), tx=self.tx)

    def run(self) -> None:
        state = self.model
        for rows in self.rows:
            state = self.step(state, self.x, self.y, rows)
        self.model = block(state)

    def weights(self) -> CanonicalWeights:
        p = jax.tree.map(np.asarray, self.model.params["params"])
        cell = p["OptimizedLSTMCell_0"]
        return {"embed.table": p["Embed_0"]["embedding"],
                "lstm.w_x": np.concatenate([cell[f"i{g}"]["kernel"] for g in GATES], 1),
                "lstm.w_h": np.concatenate([cell[f"h{g}"]["kernel"] for g in GATES], 1),
                "lstm.b": np.concatenate([cell[f"h{g}"]["bias"] for g in GATES]),
                "dense.w": p["Dense_0"]["kernel"], "dense.b": p["Dense_0"]["bias"]}


class TorchRunner:
    """Eager PyTorch: `nn.Embedding`, `nn.LSTM(batch_first=True)`, `nn.Linear`,
    `F.cross_entropy` over all B*T positions, `torch.optim.Adam(eps=1e-7)`; two threads."""

    name = "pytorch"

    def setup(self, problem: NetProblem) -> None:
        import torch  # type: ignore[import-not-found,unused-ignore]

        torch.set_num_threads(2)
        self.torch, self.problem = torch, problem

        class CharLSTM(torch.nn.Module):  # type: ignore[misc,unused-ignore]
            def __init__(self) -> None:
                super().__init__()
                self.embed = torch.nn.Embedding(TEXT_VOCAB, EMBED)
                self.lstm = torch.nn.LSTM(EMBED, HIDDEN, batch_first=True)
                self.dense = torch.nn.Linear(HIDDEN, TEXT_VOCAB)

            def forward(self, x: Any) -> Any:
                return self.dense(self.lstm(self.embed(x))[0])

        self.model: Any = CharLSTM()
        self.model.lstm.bias_hh_l0.requires_grad_(False)  # canonical: one bias (docstring)
        self.x = torch.from_numpy(problem.x.astype(np.int64))
        self.y = torch.from_numpy(problem.y.astype(np.int64))
        self.batches = [torch.from_numpy(r.astype(np.int64)) for r in problem.batches(0)]
        self.reset()
        with torch.no_grad():
            logits = self.model(torch.from_numpy(problem.x_eval[:4].astype(np.int64)))
        _check_forward(self.name, problem, logits.numpy())

    def reset(self) -> None:
        torch, w, m = self.torch, self.problem.init, self.model
        with torch.no_grad():
            for param, value in ((m.embed.weight, w["embed.table"]),
                                 (m.lstm.weight_ih_l0, w["lstm.w_x"].T),
                                 (m.lstm.weight_hh_l0, w["lstm.w_h"].T),
                                 (m.lstm.bias_ih_l0, w["lstm.b"]),
                                 (m.lstm.bias_hh_l0, np.zeros_like(w["lstm.b"])),
                                 (m.dense.weight, w["dense.w"].T), (m.dense.bias, w["dense.b"])):
                param.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        self.opt = torch.optim.Adam([q for q in m.parameters() if q.requires_grad],
                                    lr=self.problem.learning_rate, eps=1e-7)

    def run(self) -> None:
        f = self.torch.nn.functional
        for rows in self.batches:
            logits = self.model(self.x[rows])
            loss = f.cross_entropy(logits.reshape(-1, TEXT_VOCAB), self.y[rows].reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()

    def weights(self) -> CanonicalWeights:
        m = self.model

        def a(t: Any) -> NumpyArray:
            return np.ascontiguousarray(t.detach().numpy(), np.float32)

        return {"embed.table": a(m.embed.weight), "lstm.w_x": a(m.lstm.weight_ih_l0.T),
                "lstm.w_h": a(m.lstm.weight_hh_l0.T),
                "lstm.b": a(m.lstm.bias_ih_l0 + m.lstm.bias_hh_l0),
                "dense.w": a(m.dense.weight.T), "dense.b": a(m.dense.bias)}


RUNNERS: dict[str, Callable[[], Any]] = {"funcnn": FuncnnRunner, "jax-fused": JaxFusedRunner,
                                         "flax": FlaxRunner, "torch": TorchRunner}


def plain_step(problem: NetProblem) -> tuple[Any, tuple[Any, ...]]:
    """One Adam step on the first minibatch in the plain formulation (embedding gather,
    all-T input projection, a plain `lax.scan`, autodiff), for `cost_analysis`.

    XLA counts the time scan's body once: 1169 MFLOP, where the step does 5319 (the same
    step with the scan unrolled 64 times, whose compilation takes 90-100 s here; its
    matmuls alone are 4328: 3 x 2 x (2048 x 64 x 1024 + 64 x 32 x 256 x 1024 + 2048 x 256
    x 96)), so the table's share of peak for W7 is about 4.5 times too low."""
    return _plain(problem, 1)


def _plain(problem: NetProblem, unroll: int) -> tuple[Any, tuple[Any, ...]]:
    step = train_step(FusedConfig("all", "autodiff", unroll), problem.learning_rate)
    rows = problem.batches(0)[0]
    args = (fresh_carry(problem.init), jnp.asarray(problem.x[rows]),
            jnp.asarray(problem.y[rows]), jnp.ones(len(rows), jnp.float32))
    return jax.jit(step), args


def step_flops(problem: NetProblem) -> float:
    """FLOPs of one plain step with the time scan unrolled over all T steps, so that every
    step is counted, from XLA's `cost_analysis()` of the lowered (not compiled: that takes
    90-100 s) program."""
    step, args = _plain(problem, int(problem.x.shape[1]))
    cost = step.lower(*args).cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost["flops"])
