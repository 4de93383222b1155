"""A learning-rate sweep of the book's spiral network as one compiled program.

    python examples/sweep_learning_rates.py [--rates 16] [--epochs 10000] [--out sweep.png]

Sixteen copies of Dense(2, 64) - ReLU - Dense(64, 3) - softmax, each with Adam (decay
5e-7, the book's chapter 10 setting) at its own learning rate from 1e-4 to 1 (log-spaced),
train together on 100 spiral samples per class, full batch: the learning rate is an array
leaf of the optimizer state, so `fit_ensemble` trains all of them in one `jax.vmap`-ed
program. All members start from the same weights (so only the rate differs). The script
prints each rate's final training and test accuracy and plots them against the rate.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.optim import adam
from funcnn.training.ensemble import evaluate_ensemble, fit_ensemble
from funcnn.tree import tree_stack
from funcnn.typing import NumpyArray


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, default=16, help="number of rates (default 16)")
    parser.add_argument("--low", type=float, default=1e-4, help="smallest rate (default 1e-4)")
    parser.add_argument("--high", type=float, default=1.0, help="largest rate (default 1)")
    parser.add_argument("--epochs", type=int, default=10_000,
                        help="full-batch epochs (default the book's 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, default=Path("sweep_learning_rates.png"),
                        help="where to write the plot (default sweep_learning_rates.png)")
    parser.add_argument("--no-plot", dest="plot", action="store_false", help="skip the plot")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.rates < 1 or args.epochs < 1 or not 0 < args.low <= args.high:
        parser.error("need --rates >= 1, --epochs >= 1 and 0 < --low <= --high")
    return args


def sweep(args: argparse.Namespace) -> dict[str, NumpyArray]:
    """Train one member per rate; returns the rates and each member's final figures."""
    key = jax.random.key(args.seed)
    x, y = fn.datasets.spiral(jax.random.fold_in(key, 0), 100, 3)
    x_test, y_test = fn.datasets.spiral(jax.random.fold_in(key, 1), 100, 3)
    net = fn.serial(fn.Dense(64), fn.ReLU(), fn.Dense(3), fn.Softmax())
    params, state = net.init(jax.random.fold_in(key, 2), (2,))
    rates = np.geomspace(args.low, args.high, args.rates).astype(np.float32)
    members = tree_stack([params] * args.rates), tree_stack([state] * args.rates)
    keys = jax.random.split(jax.random.fold_in(key, 3), args.rates)
    start = time.perf_counter()
    result = fit_ensemble(net, *members, adam(0.05, decay=5e-7), categorical_crossentropy, x, y,
                          keys=keys, epochs=args.epochs, metric=categorical_accuracy,
                          hyperparams={"learning_rate": rates}, progress=args.progress)
    seconds = time.perf_counter() - start
    test = evaluate_ensemble(net, result.params, result.state, categorical_crossentropy,
                             x_test, y_test, metric=categorical_accuracy)
    train = evaluate_ensemble(net, result.params, result.state, categorical_crossentropy, x, y,
                              metric=categorical_accuracy)
    print(f"{args.rates} learning rates x {args.epochs} epochs in one program: {seconds:.1f} s")
    print(f"{'rate':>10}  {'train acc':>9}  {'train loss':>10}  {'test acc':>8}")
    for k, rate in enumerate(rates):
        note = f"  (diverged in epoch {result.diverged[k]})" if result.diverged[k] is not None \
            else ""
        print(f"{rate:10.2e}  {float(train.accuracy[k]):9.3f}  {float(train.loss[k]):10.4f}  "
              f"{float(test.accuracy[k]):8.3f}{note}")
    return {"rates": rates, "train_accuracy": np.asarray(train.accuracy),
            "train_loss": np.asarray(train.loss), "test_accuracy": np.asarray(test.accuracy),
            "diverged": np.array([d is not None for d in result.diverged])}


def plot(figures: dict[str, NumpyArray], epochs: int, out: Path) -> None:
    """Final accuracy against learning rate (log scale), training and test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogx(figures["rates"], figures["train_accuracy"], "o-", label="training")
    ax.semilogx(figures["rates"], figures["test_accuracy"], "s--", label="test")
    ax.set_xlabel("Adam learning rate (decay 5e-7)")
    ax.set_ylabel(f"accuracy after {epochs} epochs")
    ax.set_ylim(0.0, 1.02)
    ax.set_title("Spiral, 2-64-3: one vmapped run per rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")


def main(argv: Sequence[str] | None = None) -> dict[str, NumpyArray]:
    args = parse_args(argv)
    figures = sweep(args)
    if args.plot:
        plot(figures, args.epochs, args.out)
    best = int(jnp.argmax(jnp.asarray(figures["train_accuracy"])))
    print(f"best training accuracy {figures['train_accuracy'][best]:.3f} at learning rate "
          f"{figures['rates'][best]:.2e}")
    return figures


if __name__ == "__main__":
    main()
