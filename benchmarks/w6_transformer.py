"""W6: a character-level causal transformer on the standard library's own source.

Data: `net_workloads.text_windows(T, N, n_eval, seed)`: N training windows `x (N, T)` of
ids in `TEXT_VOCAB` = 96 (newline + printable ASCII) at random offsets, `y` the next
character at every position, and `n_eval` validation windows from the held-out tail.
Modes: full T 128, 6400 windows (200 steps); quick T 128, 2048 (64 steps); tiny T 32, 128
windows (4 steps); validation on 256 windows (tiny: 32).

Network (every implementation), d 128, 4 heads of 32, MLP width 512, ReLU:
    x = embed.table[ids] + pos.table                               (B, T, d)
    per block i of 2:  x = x + MHA(LN1(x));  x = x + relu(LN2(x) @ w1 + b1) @ w2 + b2
    logits = LN_f(x) @ out.w + out.b                               (B, T, 96)
LN(x) = (x - mean) / sqrt(var + 1e-5) * scale + bias over d, biased variance (funcnn's
and PyTorch's default eps; Flax's set to it). MHA(h): q, k, v = h @ w + b, each split
from its last axis as (heads, 32) in order; a = softmax(q k^T / sqrt(32) + causal mask)
over the keys; concat_heads(a v) @ o.w + o.b. Loss: the mean over all B*T positions of
-log softmax(logits)[y] (funcnn: Softmax + `token_crossentropy`, whose 1e-7 clip never
binds here; the others from logits). Adam lr 3e-4, b1 0.9, b2 0.999, eps 1e-7 outside
the sqrt, batch 32, one epoch of problem.steps steps in problem.orders (N = 32 k).

Canonical weights (float32, NumPy draws from the seed; matrices `(in, out)`):
    embed.table (96, 128) N(0, 1);  pos.table (T, 128) 0.02 N(0, 1)
    block{i}.ln1.scale, .bias and block{i}.ln2.scale, .bias (128,): ones, zeros
    block{i}.attn.{q,k,v,o}.w (128, 128) Glorot uniform, .b (128,) zeros
    block{i}.mlp.w1 (128, 512), b1 (512,), w2 (512, 128), b2 (128,): Glorot uniform, zeros
    ln_f.scale, ln_f.bias (128,);  out.w (128, 96) Glorot uniform, out.b (96,) zeros

The hand-written loop ("jax fused scan") runs the epoch as one program: lax.scan over
the steps, rows gathered from device-resident data in the body, buffers donated. Measured
(process CPU ms per step of 16-step programs, min of 4-6 interleaved runs, 2 shared
cores): (B, T, heads, h) einsum attention 128-135; jax.nn.dot_product_attention 147-152;
projecting straight into head-major (B, heads, T, h) with einsum("btd,dxhe->xbhte") 123;
one fused (d, 3d) qkv weight 125-129; both 113-118 (kept, BEST). No gain (within noise):
one-hot-matmul embedding 134, a custom-VJP softmax cross-entropy 124-130, scan unroll 2,
deferred softmax normalization. A Python loop of the same jitted step: 167-181 against
the scan's 101-116. `python w6_transformer.py [mode]` times VARIANTS again; on the quick
problem (64 steps, load 9 on the 2 cores) it gave CPU ms/step einsum 134, dpa 157, heads
137, fused qkv 146, heads + fused qkv 118, val losses within 6e-6 of each other.
"""

from __future__ import annotations

import math
import sys
import time
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
    next_char_loss,
    shared_orders,
    text_windows,
)

TITLE = "char transformer: T 128, d 128, 4 heads, 2 pre-LN blocks, MLP 512, batch 32"
METRIC = "val loss"
TOLERANCE = 0.005
"""Largest accepted |val loss - funcnn's| (nats/char). Measured spread of the four
implementations (seed 0): 3e-6 after the 4 tiny steps, 1.2e-5 after the 64 quick steps
(2.717191 to 2.717203), 2e-4 after the 200 full steps (2.4900 to 2.4902); 25x margin,
still far below what a wrong mask or gradient gives."""
D, HEADS, BLOCKS, HIDDEN, LN_EPS = 128, 4, 2, 512, 1e-5
B1, B2, ADAM_EPS = 0.9, 0.999, 1e-7
MODES = {"full": (128, 6400, 256), "quick": (128, 2048, 256), "tiny": (32, 128, 32)}
"""mode -> (context T, training windows, validation windows)."""

Tree = dict[str, jax.Array]
Carry = tuple[Tree, Tree, Tree, jax.Array]  # params, Adam m, v, step count
Path = tuple[str, ...]


def initial_weights(context: int, seed: int) -> CanonicalWeights:
    """The canonical initial weights (names, shapes and draws in the module docstring)."""
    rng = np.random.default_rng([seed, 6])

    def dense(n_in: int, n_out: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        limit = math.sqrt(6.0 / (n_in + n_out))  # Glorot uniform
        return rng.uniform(-limit, limit, (n_in, n_out)).astype(np.float32), np.zeros(
            n_out, np.float32)

    def norm() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        return np.ones(D, np.float32), np.zeros(D, np.float32)

    w: CanonicalWeights = {
        "embed.table": rng.standard_normal((TEXT_VOCAB, D)).astype(np.float32),
        "pos.table": (0.02 * rng.standard_normal((context, D))).astype(np.float32)}
    for i in range(BLOCKS):
        n = f"block{i}."
        w[n + "ln1.scale"], w[n + "ln1.bias"] = norm()
        w[n + "ln2.scale"], w[n + "ln2.bias"] = norm()
        for c in "qkvo":
            w[n + f"attn.{c}.w"], w[n + f"attn.{c}.b"] = dense(D, D)
        w[n + "mlp.w1"], w[n + "mlp.b1"] = dense(D, HIDDEN)
        w[n + "mlp.w2"], w[n + "mlp.b2"] = dense(HIDDEN, D)
    w["ln_f.scale"], w["ln_f.bias"] = norm()
    w["out.w"], w["out.b"] = dense(D, TEXT_VOCAB)
    return w


def make_problem(mode: str, seed: int) -> NetProblem:
    """The W6 problem at `mode` ("full", "quick", "tiny"): one epoch of N / 32 steps."""
    context, n, n_eval = MODES[mode]
    x, y, x_eval, y_eval = text_windows(context, n, n_eval, seed)
    return NetProblem("W6", TITLE, x, y, x_eval, y_eval, initial_weights(context, seed),
                      shared_orders(seed, 1, n), batch_size=32, learning_rate=3e-4, epochs=1,
                      seed=seed, metric=METRIC)


# --- hand-written JAX: forward pass, loss, Adam ---------------------------------------


@dataclass(frozen=True)
class Config:
    """Formulations of the hand-written network; all give the same numbers up to float32
    rounding (weights 2e-5 apart after 16 steps that moved them 1e-2)."""

    attention: str = "einsum"  # "einsum": (B, T, heads, h), softmax written out;
    # "heads": the same on head-major (B, heads, T, h); "dpa": jax.nn.dot_product_attention
    qkv: str = "split"  # "split": three (d, d) weights; "fused": one (d, 3d) in training


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """`(x - mean) / sqrt(var + 1e-5) * scale + bias` over the last axis."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + LN_EPS) * scale + bias


def attend(q: jax.Array, k: jax.Array, v: jax.Array, how: str) -> jax.Array:
    """Causal attention of `q, k, v (B, T, heads, h)` ("einsum", "dpa") or `(B, heads, T,
    h)` ("heads"), the output in the same layout."""
    if how == "dpa":
        out: jax.Array = jax.nn.dot_product_attention(q, k, v, is_causal=True)
        return out
    head_major = how == "heads"
    scores, mix = (("bhtd,bhsd->bhts", "bhts,bhsd->bhtd") if head_major
                   else ("bthd,bshd->bhts", "bhts,bshd->bthd"))
    t = q.shape[2 if head_major else 1]
    logits = jnp.einsum(scores, q, k) / math.sqrt(q.shape[-1])
    logits = jnp.where(jnp.tril(jnp.ones((t, t), jnp.bool_)), logits, -jnp.inf)
    return jnp.einsum(mix, jax.nn.softmax(logits, axis=-1), v)


def self_attention(p: Tree, n: str, h: jax.Array, cfg: Config) -> jax.Array:
    """`MHA(h)` for `h (B, T, d)` with block `n`'s weights. "heads" projects straight into
    head-major layout, `einsum("btd,dxhe->xbhte", h, w.reshape(d, x, heads, h))`, and
    back with `einsum("bhte,hed->btd")`; the others project, then reshape to (heads, h)."""
    b, t, _ = h.shape
    hd = (HEADS, D // HEADS)
    names = ["qkv"] if cfg.qkv == "fused" else ["q", "k", "v"]
    if cfg.attention == "heads":
        q, k, v = jnp.concatenate([
            jnp.einsum("btd,dxhe->xbhte", h, p[n + f"attn.{c}.w"].reshape(D, -1, *hd))
            + p[n + f"attn.{c}.b"].reshape(-1, 1, hd[0], 1, hd[1]) for c in names])
        a = attend(q, k, v, "heads")
        return jnp.einsum("bhte,hed->btd", a, p[n + "attn.o.w"].reshape(*hd, D)) + p[
            n + "attn.o.b"]
    outs = [h @ p[n + f"attn.{c}.w"] + p[n + f"attn.{c}.b"] for c in names]
    q, k, v = (z.reshape(b, t, *hd) for z in (jnp.split(outs[0], 3, axis=-1)
                                               if cfg.qkv == "fused" else outs))
    return attend(q, k, v, cfg.attention).reshape(b, t, D) @ p[n + "attn.o.w"] + p[
        n + "attn.o.b"]


def logits_of(p: Tree, ids: jax.Array, cfg: Config = Config()) -> jax.Array:
    """The logits `(B, T, 96)` for ids `(B, T)` from weights `p` (canonical names; with
    `cfg.qkv == "fused"`, `block{i}.attn.qkv.{w,b}` in place of q, k, v)."""
    x = p["embed.table"][ids] + p["pos.table"][None]
    for i in range(BLOCKS):
        n = f"block{i}."
        x = x + self_attention(p, n, layer_norm(x, p[n + "ln1.scale"], p[n + "ln1.bias"]), cfg)
        h = layer_norm(x, p[n + "ln2.scale"], p[n + "ln2.bias"])
        x = x + jax.nn.relu(h @ p[n + "mlp.w1"] + p[n + "mlp.b1"]) @ p[n + "mlp.w2"] + p[
            n + "mlp.b2"]
    return layer_norm(x, p["ln_f.scale"], p["ln_f.bias"]) @ p["out.w"] + p["out.b"]


def mean_nll(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Mean over all positions of `-log_softmax(logits)[y]`."""
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[..., None], axis=-1))


def to_training(w: CanonicalWeights, cfg: Config) -> Tree:
    """Canonical weights as device arrays in `cfg`'s layout (q, k, v side by side)."""
    p = {k: jnp.asarray(v) for k, v in w.items()}
    for i in range(BLOCKS if cfg.qkv == "fused" else 0):
        for part in ("w", "b"):
            n = f"block{i}.attn."
            p[n + "qkv." + part] = jnp.concatenate([p.pop(n + c + "." + part) for c in "qkv"],
                                                   axis=-1)
    return p


def to_canonical(p: Tree) -> CanonicalWeights:
    """The inverse of `to_training`, as NumPy arrays."""
    w = {k: np.asarray(v) for k, v in p.items()}
    for name in [k for k in w if ".qkv." in k]:
        for c, a in zip("qkv", np.split(w.pop(name), 3, axis=-1), strict=True):
            w[name.replace(".qkv.", f".{c}.")] = a
    return w


def train_step(cfg: Config, lr: float) -> Callable[[Carry, jax.Array, jax.Array], Carry]:
    """`step(carry, xb, yb) -> carry`: the gradient of the mean loss, one Adam update."""

    def step(carry: Carry, xb: jax.Array, yb: jax.Array) -> Carry:
        params, m, v, t = carry
        grads = jax.grad(lambda p: mean_nll(logits_of(p, xb, cfg), yb))(params)
        tf = t.astype(jnp.float32) + 1.0
        c1, c2 = 1.0 - B1 ** tf, 1.0 - B2 ** tf
        m = jax.tree.map(lambda m_, g: B1 * m_ + (1 - B1) * g, m, grads)
        v = jax.tree.map(lambda v_, g: B2 * v_ + (1 - B2) * g * g, v, grads)
        params = jax.tree.map(
            lambda p_, m_, v_: p_ - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + ADAM_EPS),
            params, m, v)
        return params, m, v, t + 1

    return step


def fresh_carry(w: CanonicalWeights, cfg: Config) -> Carry:
    """Device copies of `w` in `cfg`'s layout, zero Adam moments, step count 0."""
    p = to_training(w, cfg)
    zeros = jax.tree.map(jnp.zeros_like, p)
    return p, zeros, jax.tree.map(jnp.zeros_like, p), jnp.zeros((), jnp.int32)


def _block(tree: Any) -> Any:
    """Wait until every array in `tree` is computed; returns `tree`."""
    for leaf in jax.tree.leaves(tree):
        leaf.block_until_ready()
    return tree


class JaxFusedRunner:
    """The whole epoch in one jitted program: lax.scan over the shared minibatches, the
    rows gathered from device-resident data in the body, params and moments donated."""

    name = "jax fused scan"

    def __init__(self, config: Config | None = None) -> None:
        self.cfg = config or BEST

    def setup(self, problem: NetProblem) -> None:
        self.problem = problem
        step = train_step(self.cfg, problem.learning_rate)
        self.x, self.y = jnp.asarray(problem.x), jnp.asarray(problem.y)
        self.orders = jnp.asarray(problem.orders.reshape(-1, problem.batch_size))

        def epoch(carry: Carry, x: jax.Array, y: jax.Array, rows: jax.Array) -> Carry:
            return jax.lax.scan(lambda c, r: (step(c, x[r], y[r]), None), carry, rows)[0]

        self.epoch = jax.jit(epoch, donate_argnums=0)

    def reset(self) -> None:
        self.carry = fresh_carry(self.problem.init, self.cfg)

    def run(self) -> None:
        self.carry = _block(self.epoch(self.carry, self.x, self.y, self.orders))

    def weights(self) -> CanonicalWeights:
        return to_canonical(self.carry[0])


# --- funcnn -----------------------------------------------------------------------------


def funcnn_net() -> Any:
    """`serial(Embedding, PositionEmbedding, 2 x [residual(LN, MHA), residual(LN, Dense,
    ReLU, Dense)], LayerNorm, Dense(96), Softmax)` of funcnn's public layers."""
    import funcnn as fn

    blocks: list[Any] = []
    for _ in range(BLOCKS):
        blocks += [fn.residual(fn.serial(fn.LayerNorm(), fn.MultiHeadAttention(
                       heads=HEADS, features=D, causal=True))),
                   fn.residual(fn.serial(fn.LayerNorm(), fn.Dense(HIDDEN), fn.ReLU(),
                                         fn.Dense(D)))]
    return fn.serial(fn.Embedding(vocab=TEXT_VOCAB, features=D), fn.PositionEmbedding(),
                     *blocks, fn.LayerNorm(), fn.Dense(TEXT_VOCAB), fn.Softmax())


def funcnn_paths(params: dict[str, Any]) -> dict[str, Path]:
    """Canonical name -> key path in the params of `funcnn_net()`: top-level layers
    `"{index}_{kind}"`, each residual's serial `"0_serial"` holding `"0_layernorm"` and
    `"1_multiheadattention"` ({q,k,v,o}: {w, b}) or `"1_dense"`, `"3_dense"`."""
    roles = ["embed", "pos", *[f"block{i}.{s}" for i in range(BLOCKS) for s in ("a", "m")],
             "ln_f", "out"]
    paths: dict[str, Path] = {}
    for key_path, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys: Path = tuple(str(getattr(k, "key", k)) for k in key_path)
        role = roles[int(keys[0].split("_")[0])]
        if role in ("embed", "pos", "ln_f", "out"):
            name = f"{role}.{keys[-1]}"
        else:
            block, kind = role.split(".")
            layer = int(keys[2].split("_")[0])  # inside the residual's serial
            if layer == 0:
                name = f"{block}.{'ln1' if kind == 'a' else 'ln2'}.{keys[-1]}"
            elif kind == "a":
                name = f"{block}.attn.{keys[3]}.{keys[4]}"
            else:
                name = f"{block}.mlp.{keys[-1]}{1 if layer == 1 else 2}"
        paths[name] = keys
    return paths


def _at(tree: Any, path: Path) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _put(tree: dict[str, Any], path: Path, value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


class FuncnnRunner(FitRunner):
    """`fn.fit(net, params, state, adam(3e-4, eps=1e-7), token_crossentropy, x, y, ...)`
    for one epoch; one optimizer object reused, so fit's compiled program is cached."""

    loss = "token_crossentropy"

    def build(self, problem: NetProblem) -> None:
        import funcnn as fn

        self.problem, self.fn = problem, fn
        self.net = funcnn_net()
        self.key = jax.random.key(problem.seed)  # the shuffles of problem.orders
        params, self.state = self.net.init(self.key, problem.x.shape[1:])
        self.paths = funcnn_paths(params)
        if set(self.paths) != set(problem.init):
            raise ValueError(f"funcnn params {sorted(self.paths)} are not the canonical ones")
        loaded: dict[str, Any] = {}
        for name, path in self.paths.items():
            if _at(params, path).shape != problem.init[name].shape:
                raise ValueError(f"{name}: funcnn shape {_at(params, path).shape}")
            _put(loaded, path, jax.device_put(problem.init[name]))
        self.init_params = loaded

    def weights(self) -> CanonicalWeights:
        return {k: np.asarray(_at(self.result.params, path)) for k, path in self.paths.items()}


# --- Flax linen -------------------------------------------------------------------------


def _flax_layout(context: int) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """Canonical name -> (path in the linen params, shape there): attention kernels `(d,
    heads, h)`, biases `(heads, h)`, the output projection's kernel `(heads, h, d)`."""
    hd = (HEADS, D // HEADS)
    lay: dict[str, tuple[Path, tuple[int, ...]]] = {
        "embed.table": (("embed", "embedding"), (TEXT_VOCAB, D)),
        "pos.table": (("pos",), (context, D)), "out.w": (("out", "kernel"), (D, TEXT_VOCAB)),
        "out.b": (("out", "bias"), (TEXT_VOCAB,)), "ln_f.scale": (("ln_f", "scale"), (D,)),
        "ln_f.bias": (("ln_f", "bias"), (D,))}
    for i in range(BLOCKS):
        n, b = f"block{i}.", f"block{i}_"
        for ln in ("ln1", "ln2"):
            for part in ("scale", "bias"):
                lay[n + f"{ln}.{part}"] = ((b + ln, part), (D,))
        for c, mod in zip("qkvo", ("query", "key", "value", "out"), strict=True):
            lay[n + f"attn.{c}.w"] = ((b + "attn", mod, "kernel"),
                                      (*hd, D) if c == "o" else (D, *hd))
            lay[n + f"attn.{c}.b"] = ((b + "attn", mod, "bias"), (D,) if c == "o" else hd)
        for k, shape in (("1", (D, HIDDEN)), ("2", (HIDDEN, D))):
            lay[n + "mlp.w" + k] = ((b + "fc" + k, "kernel"), shape)
            lay[n + "mlp.b" + k] = ((b + "fc" + k, "bias"), shape[1:])
    return lay


class FlaxRunner:
    """A linen module (nn.Embed, a position param, nn.LayerNorm(epsilon=1e-5), the stock
    nn.MultiHeadDotProductAttention with nn.make_causal_mask, nn.Dense), a TrainState and
    optax.adam(eps=1e-7); a jitted step per minibatch in a Python loop."""

    name = "flax linen"

    def setup(self, problem: NetProblem) -> None:
        import flax.linen as nn  # type: ignore[import-not-found,unused-ignore]
        import optax
        from flax.training import train_state  # type: ignore[import-not-found,unused-ignore]

        context = problem.x.shape[1]

        class Transformer(nn.Module):  # type: ignore[misc,unused-ignore]
            @nn.compact  # type: ignore[untyped-decorator,unused-ignore]
            def __call__(self, ids: jax.Array) -> jax.Array:
                pos = self.param("pos", nn.initializers.normal(0.02), (context, D))
                x = nn.Embed(TEXT_VOCAB, D, name="embed")(ids) + pos
                mask = nn.make_causal_mask(ids)
                for i in range(BLOCKS):  # params "block{i}_{ln1,attn,ln2,fc1,fc2}"
                    b = f"block{i}_"
                    h = nn.LayerNorm(epsilon=LN_EPS, name=b + "ln1")(x)
                    x = x + nn.MultiHeadDotProductAttention(num_heads=HEADS, name=b + "attn")(
                        h, mask=mask)
                    h = nn.LayerNorm(epsilon=LN_EPS, name=b + "ln2")(x)
                    h = nn.relu(nn.Dense(HIDDEN, name=b + "fc1")(h))
                    x = x + nn.Dense(D, name=b + "fc2")(h)
                out: jax.Array = nn.Dense(TEXT_VOCAB, name="out")(
                    nn.LayerNorm(epsilon=LN_EPS, name="ln_f")(x))
                return out

        self.problem, self.layout = problem, _flax_layout(context)
        self.module = Transformer()
        self.tx = optax.adam(problem.learning_rate, eps=1e-7)
        self.create: Any = train_state.TrainState.create
        self.x, self.y = jnp.asarray(problem.x), jnp.asarray(problem.y)

        @jax.jit
        def step(state: Any, x: jax.Array, y: jax.Array, rows: jax.Array) -> Any:
            def loss_fn(params: Any) -> jax.Array:
                logits = state.apply_fn(params, x[rows])
                loss: jax.Array = optax.softmax_cross_entropy_with_integer_labels(
                    logits, y[rows]).mean()
                return loss

            return state.apply_gradients(grads=jax.grad(loss_fn)(state.params))

        self.step = step

    def reset(self) -> None:
        params: dict[str, Any] = {}
        for name, (path, shape) in self.layout.items():
            _put(params, path, jnp.asarray(self.problem.init[name].reshape(shape)))
        self.state = self.create(apply_fn=self.module.apply, params={"params": params},
                                 tx=self.tx)

    def run(self) -> None:
        state = self.state
        for rows in self.problem.batches(0):
            state = self.step(state, self.x, self.y, rows)
        self.state = _block(state)

    def weights(self) -> CanonicalWeights:
        p, init = self.state.params["params"], self.problem.init
        return {name: np.asarray(_at(p, path)).reshape(init[name].shape)
                for name, (path, _) in self.layout.items()}


# --- PyTorch ----------------------------------------------------------------------------


class TorchRunner:
    """nn.Embedding + a position nn.Parameter, nn.TransformerEncoder of two
    nn.TransformerEncoderLayer(norm_first=True, dropout=0, relu, batch_first) called with
    is_causal=True (their scaled_dot_product_attention path) and a final nn.LayerNorm,
    nn.Linear; F.cross_entropy; torch.optim.Adam(eps=1e-7); eager, 2 threads."""

    name = "pytorch"

    def setup(self, problem: NetProblem) -> None:
        import torch  # type: ignore[import-not-found,unused-ignore]
        from torch import nn

        torch.set_num_threads(2)
        self.torch, self.problem = torch, problem
        t = problem.x.shape[1]
        layer = nn.TransformerEncoderLayer(D, HEADS, HIDDEN, dropout=0.0, activation="relu",
                                           layer_norm_eps=LN_EPS, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, BLOCKS, norm=nn.LayerNorm(D, eps=LN_EPS),
                                             enable_nested_tensor=False)
        self.embed, self.out = nn.Embedding(TEXT_VOCAB, D), nn.Linear(D, TEXT_VOCAB)
        self.pos = nn.Parameter(torch.zeros(t, D))
        self.model = nn.ModuleList([self.embed, self.encoder, self.out])
        self.mask = nn.Transformer.generate_square_subsequent_mask(t)
        self.x = torch.from_numpy(problem.x.astype(np.int64))
        self.y = torch.from_numpy(problem.y.astype(np.int64))
        self.batches = [torch.from_numpy(r.astype(np.int64)) for r in problem.batches(0)]

    def _tensors(self) -> dict[str, tuple[Any, bool]]:
        """Canonical name -> (torch tensor or view, whether the canonical array is its
        transpose); q, k, v are the row blocks of each layer's packed in_proj."""
        enc: Any = self.encoder
        m: dict[str, tuple[Any, bool]] = {
            "embed.table": (self.embed.weight, False), "pos.table": (self.pos, False),
            "ln_f.scale": (enc.norm.weight, False), "ln_f.bias": (enc.norm.bias, False),
            "out.w": (self.out.weight, True), "out.b": (self.out.bias, False)}
        for i, lyr in enumerate(enc.layers):
            n, att = f"block{i}.", lyr.self_attn
            for ln, norm in (("ln1", lyr.norm1), ("ln2", lyr.norm2)):
                m[n + ln + ".scale"], m[n + ln + ".bias"] = (norm.weight, False), (
                    norm.bias, False)
            for j, c in enumerate("qkv"):
                m[n + f"attn.{c}.w"] = (att.in_proj_weight[j * D:(j + 1) * D], True)
                m[n + f"attn.{c}.b"] = (att.in_proj_bias[j * D:(j + 1) * D], False)
            m[n + "attn.o.w"] = (att.out_proj.weight, True)
            m[n + "attn.o.b"] = (att.out_proj.bias, False)
            for k, lin in (("1", lyr.linear1), ("2", lyr.linear2)):
                m[n + "mlp.w" + k], m[n + "mlp.b" + k] = (lin.weight, True), (lin.bias, False)
        return m

    def reset(self) -> None:
        torch, w = self.torch, self.problem.init
        with torch.no_grad():
            for name, (tensor, transpose) in self._tensors().items():
                tensor.copy_(torch.from_numpy(w[name].T.copy() if transpose else w[name]))
        self.opt = torch.optim.Adam([*self.model.parameters(), self.pos],
                                    lr=self.problem.learning_rate, eps=1e-7)

    def run(self) -> None:
        f = self.torch.nn.functional
        self.model.train()
        for rows in self.batches:
            h = self.encoder(self.embed(self.x[rows]) + self.pos, mask=self.mask,
                             is_causal=True)
            loss = f.cross_entropy(self.out(h).reshape(-1, TEXT_VOCAB), self.y[rows].reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()

    def weights(self) -> CanonicalWeights:
        with self.torch.no_grad():
            return {name: (t.numpy().T if tr else t.numpy()).copy()
                    for name, (t, tr) in self._tensors().items()}


# --- the contract: evaluate, plain_step, RUNNERS ----------------------------------------

BEST = Config(attention="heads", qkv="fused")
"""The fastest hand-written formulation measured (module docstring)."""

RUNNERS: dict[str, Callable[[], Any]] = {"funcnn": FuncnnRunner, "jax-fused": JaxFusedRunner,
                                         "flax": FlaxRunner, "torch": TorchRunner}


@partial(jax.jit, static_argnums=2)
def _eval_logits(p: Tree, ids: jax.Array, cfg: Config) -> jax.Array:
    return logits_of(p, ids, cfg)


def evaluate(problem: NetProblem, weights: CanonicalWeights) -> float:
    """Mean validation cross-entropy (nats/char) of canonical `weights`: this module's
    float32 JAX forward pass with einsum attention, independent of funcnn."""
    p = {k: jnp.asarray(np.asarray(v, np.float32)) for k, v in weights.items()}
    logits = _eval_logits(p, jnp.asarray(problem.x_eval), Config())
    return next_char_loss(np.asarray(logits), problem.y_eval)


def plain_step(problem: NetProblem) -> tuple[Any, tuple[Any, ...]]:
    """One jitted training step (plain einsum attention, gathered embedding, log_softmax
    loss, Adam) at batch 32, with its arguments, for cost_analysis."""
    rows = problem.batches(0)[0]
    step = jax.jit(train_step(Config(), problem.learning_rate))
    return step, (fresh_carry(problem.init, Config()), jnp.asarray(problem.x[rows]),
                  jnp.asarray(problem.y[rows]))


VARIANTS = [Config(), Config(attention="dpa"), Config(attention="heads"), Config(qkv="fused"),
            BEST]


def time_variants(mode: str = "quick") -> None:
    """Wall and process-CPU ms/step (the faster of two interleaved runs after a warm-up)
    and val loss of each formulation in VARIANTS."""
    problem = make_problem(mode, 0)
    runners = [JaxFusedRunner(cfg) for cfg in VARIANTS]
    times: list[list[tuple[float, float]]] = [[] for _ in runners]
    for r in runners:
        r.setup(problem)
    for r, t in [(r, t) for _ in range(3) for r, t in zip(runners, times, strict=True)]:
        r.reset()
        cpu, start = time.process_time(), time.perf_counter()
        r.run()
        t.append(((time.perf_counter() - start) * 1e3, (time.process_time() - cpu) * 1e3))
    for r, t in zip(runners, times, strict=True):
        wall, cpu = (min(x[i] for x in t[1:]) / problem.steps for i in (0, 1))
        print(f"{r.cfg}: {wall:.1f} ms/step wall, {cpu:.1f} cpu, val loss "
              f"{evaluate(problem, r.weights()):.6f}", flush=True)


if __name__ == "__main__":
    time_variants(*sys.argv[1:2])
