"""funcnn's own training loop: `funcnn.fit` with the public layers, loss and Adam."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from run_jax import block
from workloads import Problem, Weights


def build_net(problem: Problem) -> Any:
    """`serial(Dense, act, ..., Dense, Softmax)` for the workload's layer sizes."""
    from funcnn.nn import Dense, ReLU, Sigmoid, Softmax, serial

    wl = problem.workload
    act = ReLU if wl.hidden == "relu" else Sigmoid
    layers: list[Any] = []
    for width in wl.sizes[1:-1]:
        layers += [Dense(width), act()]
    return serial(*layers, Dense(wl.sizes[-1]), Softmax())


def load_weights(params: dict[str, Any], init: Weights) -> dict[str, Any]:
    """Put the shared initial weights into funcnn's params, Dense layers in position order."""
    names = sorted(params, key=lambda k: int(k.split("_", 1)[0]))
    if len(names) != len(init):
        raise ValueError(f"funcnn net has {len(names)} parameterised layers, expected {len(init)}")
    out = {}
    for name, (w, b) in zip(names, init, strict=True):
        have = (tuple(params[name]["w"].shape), tuple(params[name]["b"].shape))
        if have != (w.shape, b.shape):
            raise ValueError(f"{name}: funcnn shapes {have} differ from {(w.shape, b.shape)}")
        out[name] = {"w": jax.device_put(w), "b": jax.device_put(b)}
    return out


class FuncnnRunner:
    """`fit(net, params, state, adam(lr, decay=...), categorical_crossentropy, x, y, ...)`
    for the workload's epochs; data already on the device, the optimizer object reused so
    that the compiled program is cached between runs."""

    name = "funcnn fit"

    def __init__(self, unroll: int | None = None, policy: str | None = None) -> None:
        self.unroll = unroll
        self.policy = policy  # e.g. "mixed_bfloat16": funcnn.nn.mixed_precision(net, policy)
        if policy is not None:
            self.name = f"funcnn fit, {policy}"

    def setup(self, problem: Problem) -> None:
        from funcnn.losses import categorical_crossentropy
        from funcnn.metrics import categorical_accuracy
        from funcnn.optim import adam
        from funcnn.training import fit

        self.problem = problem
        wl = problem.workload
        self.net = build_net(problem)
        if self.policy is not None:
            from funcnn.nn import mixed_precision

            self.net = mixed_precision(self.net, self.policy)
        self.key = jax.random.key(problem.seed)  # the shuffles of problem.orders
        params, self.state = self.net.init(self.key, (wl.sizes[0],))
        self.init_params = load_weights(params, problem.init)
        self.optimizer = adam(wl.learning_rate, decay=wl.decay, eps=1e-7)
        self.x, self.y = jax.device_put((problem.x, problem.y))
        extra: dict[str, Any] = {} if self.unroll is None else {"unroll": self.unroll}

        def train(params: Any, opt_state: Any) -> Any:
            return fit(self.net, params, self.state, self.optimizer, categorical_crossentropy,
                       self.x, self.y, key=self.key, epochs=wl.epochs,
                       batch_size=wl.batch_size, metric=categorical_accuracy, progress=False,
                       opt_state=opt_state, **extra)

        self.train = train

    def reset(self) -> None:
        # A fresh optimizer state each run (fit copies it before its program donates it).
        self.opt_state = self.optimizer.init(self.init_params)
        self.result: Any = None

    def run(self) -> None:
        self.result = self.train(self.init_params, self.opt_state)
        block(self.result.params)

    def weights(self) -> Weights:
        params = self.result.params
        names = sorted(params, key=lambda k: int(k.split("_", 1)[0]))
        return [(np.asarray(params[k]["w"]), np.asarray(params[k]["b"])) for k in names]
