"""The peer libraries, each written the way its documentation teaches: PyTorch (CPU, two
threads), Flax linen + optax and Equinox + optax (a jitted step in a Python loop), and
Keras 3 on its JAX backend (`model.fit`). Imports happen in `setup`, so a missing package
raises ImportError there and the harness skips that peer with a note.

PyTorch, Flax and Equinox train on logits with their fused softmax cross-entropy (the
idiomatic form; the book's clip never binds at these losses); Keras uses a softmax layer
and sparse categorical cross-entropy, which clips at 1e-7 like the book.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from harness import OWN_SHUFFLES
from workloads import Problem, Weights


def inverse_time(lr: float, decay: float) -> Any:
    """The book's `lr / (1 + decay * count)` as an optax schedule (count before the step)."""
    if not decay:
        return lr
    return lambda count: lr / (1.0 + decay * count)


class TorchRunner:
    """`nn.Sequential` of `nn.Linear` layers, `F.cross_entropy`, `torch.optim.Adam(eps=1e-7)`
    and a `LambdaLR` for the inverse-time decay; `torch.set_num_threads(2)`."""

    name = "pytorch"

    def __init__(self, threads: int = 2, foreach: bool | None = None) -> None:
        self.threads = threads
        self.foreach = foreach

    def setup(self, problem: Problem) -> None:
        import torch

        torch.set_num_threads(self.threads)
        self.torch = torch
        self.problem = problem
        wl = problem.workload
        act = torch.nn.ReLU if wl.hidden == "relu" else torch.nn.Sigmoid
        layers: list[Any] = []
        for i, (a, b) in enumerate(zip(wl.sizes[:-1], wl.sizes[1:], strict=True)):
            layers.append(torch.nn.Linear(a, b))
            if i < len(wl.sizes) - 2:
                layers.append(act())
        self.model = torch.nn.Sequential(*layers)
        self.linears = [m for m in self.model if isinstance(m, torch.nn.Linear)]
        self.x = torch.from_numpy(problem.x)
        self.y = torch.from_numpy(problem.y.astype(np.int64))
        self.orders = [[torch.from_numpy(rows.astype(np.int64)) for rows in problem.batches(e)]
                       for e in range(wl.epochs)] if wl.batch_size is not None else []

    def reset(self) -> None:
        torch = self.torch
        wl = self.problem.workload
        with torch.no_grad():
            for layer, (w, b) in zip(self.linears, self.problem.init, strict=True):
                layer.weight.copy_(torch.from_numpy(w.T.copy()))
                layer.bias.copy_(torch.from_numpy(b))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=wl.learning_rate, eps=1e-7,
                                    foreach=self.foreach)
        decay = wl.decay
        self.sched = (torch.optim.lr_scheduler.LambdaLR(self.opt,
                                                        lambda t: 1.0 / (1.0 + decay * t))
                      if decay else None)

    def _step(self, xb: Any, yb: Any) -> None:
        loss: Any = self.torch.nn.functional.cross_entropy(self.model(xb), yb)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.sched is not None:
            self.sched.step()

    def run(self) -> None:
        self.model.train()
        for epoch in range(self.problem.workload.epochs):
            if self.problem.workload.batch_size is None:
                self._step(self.x, self.y)
                continue
            for rows in self.orders[epoch]:
                self._step(self.x[rows], self.y[rows])

    def weights(self) -> Weights:
        return [(layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy())
                for layer in self.linears]


class _JaxLoop:
    """Shared driver of the Flax and Equinox runners: data on the device once, a jitted
    `step(model, opt_state, x, y, rows)` per minibatch (rows gathered inside the step)."""

    step: Any
    model: Any
    opt_state: Any

    def _load(self, problem: Problem) -> None:
        import jax.numpy as jnp

        self.problem = problem
        self.x, self.y = jnp.asarray(problem.x), jnp.asarray(problem.y)
        self.all_rows = jnp.arange(problem.n, dtype=jnp.int32)

    def run(self) -> None:
        from run_jax import block

        p = self.problem
        model, opt_state = self.model, self.opt_state
        for epoch in range(p.workload.epochs):
            if p.workload.batch_size is None:
                model, opt_state = self.step(model, opt_state, self.x, self.y, self.all_rows)
                continue
            for rows in p.batches(epoch):
                model, opt_state = self.step(model, opt_state, self.x, self.y, rows)
        self.model, self.opt_state = block((model, opt_state))


class FlaxRunner(_JaxLoop):
    """A linen `nn.Module` of `nn.Dense` layers, a `TrainState` and `optax.adam(eps=1e-7)`."""

    name = "flax linen"

    def setup(self, problem: Problem) -> None:
        import flax.linen as nn
        import jax
        import optax
        from flax.training import train_state

        wl = problem.workload
        act = nn.relu if wl.hidden == "relu" else nn.sigmoid
        widths = wl.sizes[1:]

        class MLP(nn.Module):  # type: ignore[misc,unused-ignore]
            @nn.compact  # type: ignore[untyped-decorator,unused-ignore]
            def __call__(self, x: jax.Array) -> Any:
                for i, width in enumerate(widths):
                    x = nn.Dense(width)(x)
                    if i < len(widths) - 1:
                        x = act(x)
                return x

        self._load(problem)
        self.module = MLP()
        self.tx = optax.adam(inverse_time(wl.learning_rate, wl.decay), eps=1e-7)
        self.make_state: Any = train_state.TrainState.create

        @jax.jit
        def step(state: Any, _: Any, x: jax.Array, y: jax.Array, rows: jax.Array) -> Any:
            xb, yb = x[rows], y[rows]

            def loss_fn(params: Any) -> Any:
                logits = state.apply_fn(params, xb)
                return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

            grads = jax.grad(loss_fn)(state.params)
            return state.apply_gradients(grads=grads), None

        self.step = step

    def reset(self) -> None:
        import jax.numpy as jnp

        params = {"params": {f"Dense_{i}": {"kernel": jnp.asarray(w), "bias": jnp.asarray(b)}
                             for i, (w, b) in enumerate(self.problem.init)}}
        self.model = self.make_state(apply_fn=self.module.apply, params=params, tx=self.tx)
        self.opt_state = None

    def weights(self) -> Weights:
        params = self.model.params["params"]
        dense = [params[f"Dense_{i}"] for i in range(len(self.problem.init))]
        return [(np.asarray(d["kernel"]), np.asarray(d["bias"])) for d in dense]


class EquinoxRunner(_JaxLoop):
    """An `eqx.Module` of `eqx.nn.Linear` layers (vmapped over the batch), `eqx.filter_jit`,
    `eqx.filter_grad` and `optax.adam(eps=1e-7)`."""

    name = "equinox"

    def setup(self, problem: Problem) -> None:
        import equinox as eqx
        import jax
        import optax

        wl = problem.workload
        act = jax.nn.relu if wl.hidden == "relu" else jax.nn.sigmoid

        class MLP(eqx.Module):  # type: ignore[misc,unused-ignore]
            layers: list[eqx.nn.Linear]

            def __call__(self, x: jax.Array) -> Any:
                for layer in self.layers[:-1]:
                    x = act(layer(x))
                return self.layers[-1](x)

        self._load(problem)
        self.eqx = eqx
        keys = jax.random.split(jax.random.key(0), len(wl.sizes) - 1)
        self.template = MLP([eqx.nn.Linear(a, b, key=k) for a, b, k in
                             zip(wl.sizes[:-1], wl.sizes[1:], keys, strict=True)])
        tx = optax.adam(inverse_time(wl.learning_rate, wl.decay), eps=1e-7)
        self.tx = tx

        @eqx.filter_jit  # type: ignore[untyped-decorator,unused-ignore]
        def step(model: MLP, opt_state: Any, x: jax.Array, y: jax.Array,
                 rows: jax.Array) -> tuple[MLP, Any]:
            xb, yb = x[rows], y[rows]

            def loss_fn(m: MLP) -> Any:
                logits = jax.vmap(m)(xb)
                return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

            grad_fn: Any = eqx.filter_grad(loss_fn)
            grads = grad_fn(model)
            updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
            return eqx.apply_updates(model, updates), opt_state

        self.step = step

    def reset(self) -> None:
        import jax.numpy as jnp

        eqx = self.eqx
        leaves = [jnp.asarray(a) for w, b in self.problem.init for a in (w.T.copy(), b)]
        self.model = eqx.tree_at(
            lambda m: [a for layer in m.layers for a in (layer.weight, layer.bias)],
            self.template, leaves)
        self.opt_state = self.tx.init(eqx.filter(self.model, eqx.is_array))

    def weights(self) -> Weights:
        return [(np.asarray(layer.weight).T.copy(), np.asarray(layer.bias))
                for layer in self.model.layers]


class KerasRunner:
    """Keras 3 on the JAX backend: `Sequential` of `Dense` layers with a softmax output,
    `Adam(epsilon=1e-7)` (with `InverseTimeDecay` for W1), `model.fit(..., verbose=0)`."""

    name = "keras 3 (jax)"

    def setup(self, problem: Problem) -> None:
        os.environ["KERAS_BACKEND"] = "jax"
        import keras

        if keras.backend.backend() != "jax":
            raise RuntimeError(f"keras runs on {keras.backend.backend()!r}, not jax")
        self.problem = problem
        wl = problem.workload
        act = "relu" if wl.hidden == "relu" else "sigmoid"
        layers: list[Any] = [keras.Input((wl.sizes[0],))]
        layers += [keras.layers.Dense(w, activation=act) for w in wl.sizes[1:-1]]
        layers.append(keras.layers.Dense(wl.sizes[-1], activation="softmax"))
        self.model = keras.Sequential(layers)
        lr: Any = wl.learning_rate
        if wl.decay:
            lr = keras.optimizers.schedules.InverseTimeDecay(wl.learning_rate, decay_steps=1,
                                                             decay_rate=wl.decay)
        self.model.compile(optimizer=keras.optimizers.Adam(lr, epsilon=1e-7),
                           loss="sparse_categorical_crossentropy")
        # One epoch per run: the shared order, pre-gathered (untimed), and no shuffling, so
        # Keras sees the same minibatches as everyone else. Several epochs: Keras shuffles
        # itself (its own order and cost), and its accuracy may differ more.
        self.shuffle = wl.batch_size is not None and wl.epochs > 1
        self.note = OWN_SHUFFLES if self.shuffle else ""
        self.x, self.y = problem.x, problem.y
        if wl.batch_size is not None and wl.epochs == 1:
            self.x, self.y = problem.x[problem.orders[0]], problem.y[problem.orders[0]]

    def reset(self) -> None:
        self.model.set_weights([a for w, b in self.problem.init for a in (w, b)])
        for var in self.model.optimizer.variables:  # iteration, moments; not the rate
            if not var.path.endswith("learning_rate"):
                var.assign(np.zeros(var.shape, var.dtype))

    def run(self) -> None:
        p = self.problem
        self.model.fit(self.x, self.y, batch_size=p.batch_size, epochs=p.workload.epochs,
                       shuffle=self.shuffle, verbose=0)

    def weights(self) -> Weights:
        arrays = self.model.get_weights()
        return [(np.asarray(arrays[i]), np.asarray(arrays[i + 1]))
                for i in range(0, len(arrays), 2)]
