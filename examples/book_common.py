"""Shared parts of the book-run examples: command-line flags, the book-style log, and where
random data and initial weights come from.

Every example accepts `--epochs N` (default: the book's), `--quick` (a short run),
`--seed S`, `--print-every N` and `--no-progress`; the spiral examples also accept
`--book-stream`, which draws data and initial weights from numpy's legacy random stream
in the book's order (what `nnfs.init()` sets up: `np.random.seed(0)`), so a run starts
from the very numbers the book's run started from.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn.typing import Array, NumpyArray, Params, Shape, State

BOOK_WEIGHT_SCALE = 0.01
"""The book's weight initialization: `0.01 * N(0, 1)` (chapter 17 uses 0.1)."""


class Outcome(NamedTuple):
    """What an example's `main` returns: its final figures by name (`acc`, `loss`,
    `test_acc`, ...) and the History of each training run, by run name."""

    figures: dict[str, float]
    histories: dict[str, fn.History]


def parse_args(
    description: str,
    argv: Sequence[str] | None,
    *,
    epochs: int,
    quick_epochs: int,
    print_every: int,
    book_stream: bool = True,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """Parse the shared flags (and any that `add_arguments` adds) from `argv`.

    `--quick` runs `quick_epochs` unless `--epochs` is given; without `--print-every`
    the log shows every `print_every` epochs (the book's cadence), or ten lines with
    `--quick`.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"number of epochs (default: the book's {epochs})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a short run of {quick_epochs} epochs, to check that it works")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--print-every", type=int, default=None,
                        help=f"log every N epochs (default {print_every})")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide the progress bar")
    if book_stream:
        parser.add_argument(
            "--book-stream", action="store_true",
            help="draw data and initial weights from numpy's legacy random stream seeded "
                 "with --seed, in the book's order (the book's runs use seed 0)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = quick_epochs if args.quick else epochs
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    if args.print_every is None:
        args.print_every = max(1, args.epochs // 10) if args.quick else print_every
    if args.print_every < 1:
        parser.error(f"--print-every must be at least 1, got {args.print_every}")
    if not book_stream:
        args.book_stream = False
    return args


class Source:
    """Random data sets and initial weights, from jax keys or from the book's stream.

    With `book_stream=False` each draw uses `fold_in(key(seed), n)` for the n-th draw;
    with `book_stream=True` every draw continues one `numpy.random.RandomState(seed)`,
    consuming it exactly as the `nnfs` package and the book's `Layer_Dense` do.
    """

    def __init__(self, seed: int, book_stream: bool = False) -> None:
        self.book_stream = book_stream
        self._key = jax.random.key(seed)
        self._draws = 0
        self._rng = np.random.RandomState(seed)

    def next_key(self) -> Array:
        """A fresh jax key (also used with the book stream, for dropout and shuffling)."""
        self._draws += 1
        return jax.random.fold_in(self._key, self._draws)

    def spiral(self, samples: int, classes: int) -> tuple[Array, Array]:
        """The book's spiral data: `x` float32 `(samples * classes, 2)`, `y` int32."""
        if not self.book_stream:
            return fn.datasets.spiral(self.next_key(), samples, classes)
        x = np.zeros((samples * classes, 2))
        for c in range(classes):
            radius = np.linspace(0.0, 1.0, samples)
            angle = np.linspace(c * 4, (c + 1) * 4, samples) + self._rng.randn(samples) * 0.2
            x[c * samples:(c + 1) * samples] = np.c_[radius * np.sin(angle * 2.5),
                                                     radius * np.cos(angle * 2.5)]
        return _book_arrays(x, samples, classes)

    def vertical(self, samples: int, classes: int) -> tuple[Array, Array]:
        """The book's vertical data: `x` float32 `(samples * classes, 2)`, `y` int32."""
        if not self.book_stream:
            return fn.datasets.vertical(self.next_key(), samples, classes)
        x = np.zeros((samples * classes, 2))
        for c in range(classes):
            x[c * samples:(c + 1) * samples] = np.c_[self._rng.randn(samples) * 0.1 + c / 3,
                                                     self._rng.randn(samples) * 0.1 + 0.5]
        return _book_arrays(x, samples, classes)

    def init(self, net: fn.Layer, input_shape: Shape, *,
             weight_scale: float = BOOK_WEIGHT_SCALE) -> tuple[Params, State]:
        """`net.init` on a fresh key; with the book stream, every Dense weight (in layer
        order) is then redrawn as `weight_scale * randn(n_in, n_out)` and biases zeroed."""
        params, state = net.init(self.next_key(), input_shape)
        if self.book_stream:
            params = _redraw_dense(params, self._rng, weight_scale)
        return params, state


def chosen_models(text: str, known: Sequence[str]) -> list[str]:
    """The comma-separated `--models` names, each one of `known`, or the usage error."""
    models = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in models if name not in known]
    if unknown or not models:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {list(known)}")
    return models


def _book_arrays(x: NumpyArray, samples: int, classes: int) -> tuple[Array, Array]:
    labels = np.repeat(np.arange(classes, dtype=np.int32), samples)
    return jnp.asarray(x, jnp.float32), jnp.asarray(labels)


def _redraw_dense(params: Mapping[str, Any], rng: np.random.RandomState,
                  scale: float) -> Params:
    """A copy of `params` whose `w`/`b` leaves are redrawn the book's way, in dict order."""
    redrawn: Params = {}
    for name, value in params.items():
        if isinstance(value, Mapping) and "w" in value and not isinstance(value["w"], Mapping):
            w = value["w"]
            redrawn[name] = {**value, "w": jnp.asarray(scale * rng.randn(*w.shape), w.dtype)}
            if "b" in value:
                redrawn[name]["b"] = jnp.zeros_like(value["b"])
        elif isinstance(value, Mapping):
            redrawn[name] = _redraw_dense(value, rng, scale)
        else:
            redrawn[name] = value
    return redrawn


def epoch_line(history: fn.History, index: int) -> str:
    """The book's log line for History entry `index` (epochs counted from 1).

    `acc` and `data_loss` come from the epoch's forward passes (training mode), `reg_loss`
    from the parameters at its end, `lr` is the rate of the next update.
    """
    acc = history.accuracy[index] if history.accuracy else float("nan")
    return (f"epoch: {history.epoch[index] + 1}, acc: {acc:.3f}, "
            f"loss: {history.loss[index]:.3f} (data_loss: {history.data_loss[index]:.3f}, "
            f"reg_loss: {history.reg_loss[index]:.3f}), lr: {history.learning_rate[index]:.7g}")


def print_log(history: fn.History, every: int, *, validation_each: bool = False) -> None:
    """Print `epoch_line` for every `every`-th epoch and for the last one, then the last
    validation figures (with `validation_each`, after every printed epoch)."""
    last = len(history.epoch) - 1
    for index, epoch in enumerate(history.epoch):
        if (epoch + 1) % every == 0 or index == last:
            print(epoch_line(history, index))
            if history.val_loss and (validation_each or index == last):
                print(validation_line(history.val_accuracy[index] if history.val_accuracy
                                      else float("nan"), history.val_loss[index]))


def validation_line(accuracy: float | Array, loss: float | Array) -> str:
    """The book's out-of-sample line: `validation, acc: 0.803, loss: 0.817`."""
    return f"validation, acc: {float(accuracy):.3f}, loss: {float(loss):.3f}"


def final_figures(history: fn.History) -> dict[str, float]:
    """The last epoch's training figures, by name (`acc`, `loss`, `data_loss`, ...)."""
    last = history.last()
    names = ("loss", "data_loss", "reg_loss", "learning_rate")
    figures = {name: float(last[name]) for name in names if name in last}
    if "accuracy" in last:
        figures["acc"] = float(last["accuracy"])
    if "val_loss" in last:
        figures["val_loss"] = float(last["val_loss"])
    if "val_accuracy" in last:
        figures["val_acc"] = float(last["val_accuracy"])
    return figures


def describe_source(args: argparse.Namespace) -> str:
    """One line saying where the run's random numbers come from."""
    if getattr(args, "book_stream", False):
        return f"data and initial weights: the book's numpy stream, seed {args.seed}"
    return f"data and initial weights: funcnn keys, seed {args.seed}"
