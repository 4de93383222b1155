"""float16 training with and without loss scaling, against float32.

A deep tanh network with the book's `0.01 * N(0, 1)` weights (2 -> 5 x [64, tanh] -> 3,
softmax), categorical cross-entropy, Adam (lr 0.03), full-batch epochs on the spiral with
1,000 points per class. Under `mixed_precision(net, "mixed_float16")` the forward and
backward pass run in float16, whose smallest magnitude is 6e-8: at the start, nearly every
gradient entry flushes to zero. `dynamic_loss_scale` multiplies the loss by 2**15 before
the backward pass and divides the gradients again, so they survive.

    python examples/float16_loss_scaling.py [--epochs N] [--quick]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn


def network() -> fn.Layer:
    """2 -> five Dense(64) + tanh -> Dense(3) -> softmax, the book's Dense init."""
    return fn.serial(*([fn.Dense(64), fn.Tanh()] * 5), fn.Dense(3), fn.Softmax())


def flushed_fraction(net: fn.Layer, reference: fn.Layer, params: Any, state: Any,
                     x: jax.Array, y: jax.Array, scale: float) -> float:
    """Share of gradient entries that are nonzero in float32 but exactly zero in `net`'s
    backward pass of `scale * loss`."""
    def grads(layer: fn.Layer, factor: float) -> np.ndarray:
        g = jax.grad(lambda p: factor * jnp.mean(fn.losses.categorical_crossentropy(
            layer.apply(p, state, x)[0], y)))(params)
        return np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(g)])
    low, full = grads(net, scale), grads(reference, 1.0)
    return float(np.mean((low == 0) & (full != 0)))


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (600)")
    parser.add_argument("--quick", action="store_true", help="150 epochs per run")
    args = parser.parse_args(argv)
    epochs = args.epochs or (150 if args.quick else 600)
    x, y = fn.datasets.spiral(jax.random.key(0), samples=1000, classes=3)
    base = network()
    runs = {"float32": (base, fn.optim.adam(0.03)),
            "float16": (fn.mixed_precision(base, "mixed_float16"), fn.optim.adam(0.03)),
            "float16 + dynamic loss scale": (
                fn.mixed_precision(base, "mixed_float16"),
                fn.optim.dynamic_loss_scale(fn.optim.adam(0.03)))}
    params, state = base.init(jax.random.key(1), (2,))
    f16 = runs["float16"][0]
    print("gradient entries flushed to zero at the start (nonzero in float32):")
    for scale in (1.0, 2.0**15):
        share = flushed_fraction(f16, base, params, state, x, y, scale)
        print(f"  float16, loss x {scale:g}: {share:.1%}")
    figures: dict[str, dict[str, float]] = {}
    print(f"{epochs} full-batch epochs, Adam 0.03:")
    for name, (net, optimizer) in runs.items():
        result = fn.fit(net, params, state, optimizer, fn.losses.categorical_crossentropy,
                        x, y, key=jax.random.key(0), epochs=epochs,
                        metric=fn.metrics.categorical_accuracy, progress=False)
        h = result.history
        quarter = h.loss[len(h.loss) // 4]
        figures[name] = {"loss_quarter": quarter, "loss": h.loss[-1],
                         "acc": float(np.median(h.accuracy[-max(1, epochs // 10):])),
                         "skipped": float(sum(h.skipped_steps))}
        print(f"  {name:30s} loss after {len(h.loss) // 4} epochs {quarter:.3f}, "
              f"final {h.loss[-1]:.3f}, acc {figures[name]['acc']:.3f}, skipped steps "
              f"{figures[name]['skipped']:.0f}")
    return figures


if __name__ == "__main__":
    main()
