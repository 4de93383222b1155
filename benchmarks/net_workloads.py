"""The shared ground of W5-W7 (CNN, transformer, LSTM): one `NetProblem` per workload with
data, initial weights and minibatch orders that every implementation uses, and the module
contract each workload file (`w5_cnn.py`, `w6_transformer.py`, `w7_lstm.py`) follows.

A workload module defines
    TITLE: str, METRIC: str ("test acc" or "val loss"), TOLERANCE: float,
    make_problem(mode: str, seed: int) -> NetProblem,
    evaluate(problem, weights) -> float      # METRIC from canonical weights, hand-written JAX
    RUNNERS: dict[str, Callable[[], Runner]] # peer name -> zero-argument constructor
    plain_step(problem) -> (jitted_fn, args) # one training step in the plain formulation
                                             # (lax.conv, a plain scan), for cost_analysis
A runner follows `harness.Runner`; its `weights()` returns the canonical dict (the names
and layouts of `problem.init`) as float32 NumPy arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

NumpyArray = np.ndarray[Any, Any]
CanonicalWeights = dict[str, NumpyArray]
"""Flat names (e.g. "conv1.w") -> float32 arrays in the layouts the workload documents."""


@dataclass(frozen=True)
class NetProblem:
    """Data, initial weights and shuffles of one workload at one size."""

    name: str  # "W5"
    title: str
    x: NumpyArray  # W5 (N, 28, 28, 1) float32; W6/W7 (N, T) int32 ids
    y: NumpyArray  # W5 (N,) int32 labels; W6/W7 (N, T) int32 next ids
    x_eval: NumpyArray
    y_eval: NumpyArray
    init: CanonicalWeights
    orders: NumpyArray  # (epochs, N) int32: funcnn fit's own shuffles with key(seed)
    batch_size: int
    learning_rate: float
    epochs: int
    seed: int
    metric: str  # what evaluate() returns: "test acc" or "val loss"

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def batches(self, epoch: int) -> list[NumpyArray]:
        """The row indices of each minibatch of `epoch`; the last one may be shorter."""
        order = self.orders[epoch]
        return [order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)]


def shared_orders(seed: int, epochs: int, n: int) -> NumpyArray:
    """The orders `funcnn.fit(..., key=jax.random.key(seed))` shuffles with."""
    import jax

    from funcnn.training import epoch_orders, key_seed

    return np.asarray(epoch_orders(key_seed(jax.random.key(seed)), np.arange(epochs), n))


TEXT_VOCAB = 96
"""Newline and the 95 printable ASCII characters; other characters are dropped."""


def text_windows(context: int, windows: int, eval_windows: int, seed: int,
                 ) -> tuple[NumpyArray, NumpyArray, NumpyArray, NumpyArray]:
    """`windows` training windows `(x, y)` of `context` ids at random offsets (seeded) in
    the first 90% of the standard library's text, and `eval_windows` non-overlapping
    validation windows from the last 10%: (x, y, x_eval, y_eval), int32, y = x shifted."""
    from funcnn.datasets import encode_chars, stdlib_text

    ids = encode_chars(stdlib_text(), unknown="drop")
    cut = int(len(ids) * 0.9)
    train, held_out = ids[:cut], ids[cut:]
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(train) - context - 1, windows)
    rows = starts[:, None] + np.arange(context + 1)[None, :]
    x, y = train[rows[:, :-1]], train[rows[:, 1:]]
    n_eval = min(eval_windows, (len(held_out) - 1) // context)
    if n_eval < eval_windows:
        raise ValueError(f"only {n_eval} validation windows of {context} exist")
    ev = np.arange(eval_windows)[:, None] * context + np.arange(context + 1)[None, :]
    return x, y, held_out[ev[:, :-1]], held_out[ev[:, 1:]]


def next_char_loss(logits: NumpyArray, targets: NumpyArray) -> float:
    """Mean cross-entropy in nats of `logits (N, T, V)` against `targets (N, T)`, in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-np.take_along_axis(log_p, targets[..., None], axis=-1).mean())


class FitRunner:
    """funcnn's runner: `funcnn.fit` over the problem's data on the device, Adam (eps 1e-7,
    one optimizer object, so the compiled program is reused between runs) and the loss
    named by `loss`. A workload's subclass defines `build(problem)`, which sets `net`,
    `state`, `init_params` (the canonical initial weights in funcnn's tree) and `key`
    (`jax.random.key(problem.seed)`: fit's shuffles are `problem.orders`), and `weights()`."""

    name = "funcnn fit"
    loss = "categorical_crossentropy"
    net: Any
    state: Any
    init_params: Any
    key: Any

    def build(self, problem: NetProblem) -> None:
        raise NotImplementedError

    def setup(self, problem: NetProblem) -> None:
        import jax

        import funcnn as fn

        self.problem, self.fn = problem, fn
        self.build(problem)
        self.optimizer = fn.optim.adam(problem.learning_rate, eps=1e-7)
        self.x, self.y = jax.device_put((problem.x, problem.y))

    def reset(self) -> None:
        self.opt_state = self.optimizer.init(self.init_params)
        self.result: Any = None

    def run(self) -> None:
        import jax

        p = self.problem
        self.result = self.fn.fit(self.net, self.init_params, self.state, self.optimizer,
                                  getattr(self.fn.losses, self.loss), self.x, self.y,
                                  key=self.key, epochs=p.epochs, batch_size=p.batch_size,
                                  progress=False, opt_state=self.opt_state)
        jax.block_until_ready(self.result.params)  # type: ignore[no-untyped-call]
