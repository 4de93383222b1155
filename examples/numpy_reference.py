"""A NumPy cross-check: the book's own training loop for the spiral runs of chapters 11
and 16, written with hand-derived gradients and no funcnn, seeded like the book.

`np.random.seed(seed)`, the spiral data, `0.01 * randn` weights in layer order, then
10,001 updates of the book's Adam (bias correction `1 - b**(t+1)`, eps outside the root,
`lr / (1 + decay * t)`), the gradient of softmax + cross-entropy as `(p - y) / N` and of
sigmoid + binary cross-entropy as `(p - y) / N` (through the book's clip), L2 adding
`2 * l2 * w`. Then a test spiral drawn from the same stream. Compare with
`ch11_adam_test.py --book-stream` and `ch16_binary.py --book-stream`.

    python examples/numpy_reference.py [--binary] [--seed S] [--epochs N] [--float32]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np

NDArray = np.ndarray[Any, Any]


def spiral(samples: int, classes: int) -> tuple[NDArray, NDArray]:
    """The nnfs package's spiral, drawn from numpy's global legacy stream."""
    x = np.zeros((samples * classes, 2))
    y = np.zeros(samples * classes, dtype=np.int64)
    for c in range(classes):
        radius = np.linspace(0.0, 1.0, samples)
        angle = np.linspace(c * 4, (c + 1) * 4, samples) + np.random.randn(samples) * 0.2
        x[c * samples:(c + 1) * samples] = np.c_[radius * np.sin(angle * 2.5),
                                                 radius * np.cos(angle * 2.5)]
        y[c * samples:(c + 1) * samples] = c
    return x, y


def forward(params: list[NDArray], x: NDArray, binary: bool,
            dot: Any) -> tuple[NDArray, NDArray, NDArray]:
    """Hidden pre-activations, hidden ReLU outputs and output probabilities."""
    w1, b1, w2, b2 = params
    z1 = dot(x, w1) + b1
    a1 = np.maximum(0.0, z1)
    z2 = dot(a1, w2) + b2
    if binary:
        return z1, a1, 1.0 / (1.0 + np.exp(-z2))
    e = np.exp(z2 - z2.max(axis=1, keepdims=True))
    return z1, a1, e / e.sum(axis=1, keepdims=True)


def loss_and_accuracy(p: NDArray, y: NDArray, binary: bool) -> tuple[float, float]:
    """The book's clipped data loss and accuracy."""
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    if binary:
        loss = np.mean(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
        return float(loss), float(np.mean((p > 0.5) == y))
    loss = np.mean(-np.log(clipped[np.arange(len(y)), y]))
    return float(loss), float(np.mean(p.argmax(axis=1) == y))


def book_adam_update(params: list[NDArray], m: list[NDArray], v: list[NDArray],
                     grads: list[NDArray], t: int, *, lr: float, decay: float) -> None:
    """Update `t` (from 0) of the book's Adam, in place: betas 0.9 / 0.999, bias correction
    `1 - b**(t+1)`, eps 1e-7 outside the root, rate `lr / (1 + decay * t)`."""
    rate = lr / (1 + decay * t)
    for i, g in enumerate(grads):
        m[i] = 0.9 * m[i] + 0.1 * g
        v[i] = 0.999 * v[i] + 0.001 * g * g
        m_hat, v_hat = m[i] / (1 - 0.9 ** (t + 1)), v[i] / (1 - 0.999 ** (t + 1))
        params[i] = params[i] - rate * m_hat / (np.sqrt(v_hat) + 1e-7)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", action="store_true",
                        help="chapter 16's run (default: chapter 11's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10_001, help="updates (the book's 10,001)")
    parser.add_argument("--float32", action="store_true",
                        help="compute products in float32, as nnfs.init() arranges")
    args = parser.parse_args(argv)
    binary = args.binary
    classes, hidden, outputs = (2, 64, 1) if binary else (3, 64, 3)
    lr, decay, l2 = (1e-3, 5e-7, 5e-4) if binary else (0.05, 5e-7, 0.0)

    def dot(a: NDArray, b: NDArray) -> NDArray:
        result: NDArray = np.dot(a.astype(np.float32), b.astype(np.float32)) \
            if args.float32 else np.dot(a, b)
        return result

    np.random.seed(args.seed)
    x, y = spiral(100, classes)
    target = y.reshape(-1, 1) if binary else y
    params = [0.01 * np.random.randn(2, hidden), np.zeros((1, hidden)),
              0.01 * np.random.randn(hidden, outputs), np.zeros((1, outputs))]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    n = len(x)
    for t in range(args.epochs):
        z1, a1, p = forward(params, x, binary, dot)
        if binary:
            clipped = np.clip(p, 1e-7, 1 - 1e-7)
            dz2 = -(target / clipped - (1 - target) / (1 - clipped)) * p * (1 - p) / n
        else:
            dz2 = p.copy()
            dz2[np.arange(n), y] -= 1
            dz2 /= n
        da1 = dot(dz2, params[2].T) * (z1 > 0)
        grads = [dot(x.T, da1) + 2 * l2 * params[0], da1.sum(axis=0, keepdims=True)
                 + 2 * l2 * params[1], dot(a1.T, dz2), dz2.sum(axis=0, keepdims=True)]
        book_adam_update(params, m, v, grads, t, lr=lr, decay=decay)
    _, _, p = forward(params, x, binary, dot)
    loss, acc = loss_and_accuracy(p, target, binary)
    reg = l2 * float(np.sum(params[0] ** 2) + np.sum(params[1] ** 2))
    x_test, y_test = spiral(100, classes)
    _, _, p_test = forward(params, x_test, binary, dot)
    test_loss, test_acc = loss_and_accuracy(p_test, y_test.reshape(-1, 1) if binary else y_test,
                                            binary)
    print(f"after {args.epochs} updates, acc: {acc:.3f}, loss: {loss + reg:.3f} "
          f"(data_loss: {loss:.3f}, reg_loss: {reg:.3f})")
    print(f"validation, acc: {test_acc:.3f}, loss: {test_loss:.3f}")
    return {"acc": acc, "loss": loss + reg, "test_acc": test_acc, "test_loss": test_loss}


if __name__ == "__main__":
    main()
