"""The book's "from scratch" NumPy implementation: forward/backward classes, the combined
softmax + categorical cross-entropy backward `(p - onehot) / N`, and Adam as the book writes
it (inverse-time decay, bias correction with `iterations + 1`, eps outside the sqrt).
float32 throughout, like every other implementation here."""

from __future__ import annotations

from typing import Any

import numpy as np
from workloads import NumpyArray, Problem, Weights


class LayerDense:
    """`output = inputs @ weights + biases`; backward gives dweights, dbiases, dinputs."""

    def __init__(self, w: NumpyArray, b: NumpyArray) -> None:
        self.weights = w.copy()
        self.biases = b.reshape(1, -1).copy()

    def forward(self, inputs: NumpyArray) -> None:
        self.inputs = inputs
        self.output = inputs @ self.weights + self.biases

    def backward(self, dvalues: NumpyArray) -> None:
        self.dweights = self.inputs.T @ dvalues
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = dvalues @ self.weights.T


class ActivationReLU:
    def forward(self, inputs: NumpyArray) -> None:
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues: NumpyArray) -> None:
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0


class ActivationSigmoid:
    def forward(self, inputs: NumpyArray) -> None:
        with np.errstate(over="ignore"):  # exp(-x) = inf for x << 0 gives the right 0
            self.output = 1 / (1 + np.exp(-inputs))

    def backward(self, dvalues: NumpyArray) -> None:
        self.dinputs = dvalues * (1 - self.output) * self.output


class SoftmaxCategoricalCrossentropy:
    """Softmax (row max subtracted) with the clipped CCE loss and the combined backward."""

    def forward(self, inputs: NumpyArray, y_true: NumpyArray) -> float:
        exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)
        clipped = np.clip(self.output[np.arange(len(y_true)), y_true], 1e-7, 1 - 1e-7)
        return float(np.mean(-np.log(clipped)))

    def backward(self, dvalues: NumpyArray, y_true: NumpyArray) -> None:
        samples = len(dvalues)
        self.dinputs = dvalues.copy()
        self.dinputs[np.arange(samples), y_true] -= 1
        self.dinputs = self.dinputs / samples


class OptimizerAdam:
    """The book's Adam: `lr_t = lr / (1 + decay * iterations)`, eps 1e-7, b1 0.9, b2 0.999."""

    def __init__(self, learning_rate: float, decay: float, epsilon: float = 1e-7,
                 beta_1: float = 0.9, beta_2: float = 0.999) -> None:
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0
        self.epsilon = epsilon
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def pre_update_params(self) -> None:
        if self.decay:
            self.current_learning_rate = self.learning_rate * (
                1.0 / (1.0 + self.decay * self.iterations))

    def update_params(self, layer: Any) -> None:
        if not hasattr(layer, "weight_cache"):
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
            layer.bias_cache = np.zeros_like(layer.biases)
        b1, b2, t = self.beta_1, self.beta_2, self.iterations + 1
        layer.weight_momentums = b1 * layer.weight_momentums + (1 - b1) * layer.dweights
        layer.bias_momentums = b1 * layer.bias_momentums + (1 - b1) * layer.dbiases
        weight_momentums_corrected = layer.weight_momentums / (1 - b1 ** t)
        bias_momentums_corrected = layer.bias_momentums / (1 - b1 ** t)
        layer.weight_cache = b2 * layer.weight_cache + (1 - b2) * layer.dweights ** 2
        layer.bias_cache = b2 * layer.bias_cache + (1 - b2) * layer.dbiases ** 2
        weight_cache_corrected = layer.weight_cache / (1 - b2 ** t)
        bias_cache_corrected = layer.bias_cache / (1 - b2 ** t)
        lr = np.float32(self.current_learning_rate)
        layer.weights += (-lr * weight_momentums_corrected
                          / (np.sqrt(weight_cache_corrected) + self.epsilon)).astype(np.float32)
        layer.biases += (-lr * bias_momentums_corrected
                         / (np.sqrt(bias_cache_corrected) + self.epsilon)).astype(np.float32)

    def post_update_params(self) -> None:
        self.iterations += 1


class NumpyRunner:
    """The book's training loop (chapter 19 style), shuffled batches from the shared orders."""

    name = "numpy (book)"

    def setup(self, problem: Problem) -> None:
        self.problem = problem

    def reset(self) -> None:
        wl = self.problem.workload
        self.dense = [LayerDense(w, b) for w, b in self.problem.init]
        act = ActivationReLU if wl.hidden == "relu" else ActivationSigmoid
        self.activations = [act() for _ in self.dense[:-1]]
        self.head = SoftmaxCategoricalCrossentropy()
        self.optimizer = OptimizerAdam(wl.learning_rate, wl.decay)

    def _step(self, xb: NumpyArray, yb: NumpyArray) -> None:
        h = xb
        for dense, act in zip(self.dense[:-1], self.activations, strict=True):
            dense.forward(h)
            act.forward(dense.output)
            h = act.output
        self.dense[-1].forward(h)
        self.head.forward(self.dense[-1].output, yb)
        self.head.backward(self.head.output, yb)
        self.dense[-1].backward(self.head.dinputs)
        grad = self.dense[-1].dinputs
        for dense, act in zip(reversed(self.dense[:-1]), reversed(self.activations),
                              strict=True):
            act.backward(grad)
            dense.backward(act.dinputs)
            grad = dense.dinputs
        self.optimizer.pre_update_params()
        for dense in self.dense:
            self.optimizer.update_params(dense)
        self.optimizer.post_update_params()

    def run(self) -> None:
        p = self.problem
        full_batch = p.workload.batch_size is None
        for epoch in range(p.workload.epochs):
            if full_batch:
                self._step(p.x, p.y)
                continue
            for rows in p.batches(epoch):
                self._step(p.x[rows], p.y[rows])

    def weights(self) -> Weights:
        return [(d.weights.copy(), d.biases.reshape(-1).copy()) for d in self.dense]
