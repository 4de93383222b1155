"""Book chapter 16: binary logistic regression on a two-class spiral.

Dense(2, 64) with L2 5e-4 on weights and biases - ReLU - Dense(64, 1) - sigmoid, binary
cross-entropy, Adam with the default learning rate 1e-3 and decay 5e-7, 10,000
full-batch epochs on 100 samples per class; prediction is `p > 0.5`. The book reaches
train acc ~0.95-0.965 and test acc ~0.92-0.945.

    python examples/ch16_binary.py [--epochs N] [--quick] [--book-stream]
"""

from __future__ import annotations

from collections.abc import Sequence

import book_common as book
import jax.numpy as jnp

import funcnn as fn
from funcnn.losses import binary_crossentropy
from funcnn.metrics import binary_accuracy
from funcnn.optim import adam
from funcnn.typing import Array

L2 = 5e-4
"""The book's L2 coefficient, on the first layer's weights and biases."""


def network() -> fn.Layer:
    """2 -> 64 (L2 5e-4) -> ReLU -> 1 -> sigmoid."""
    return fn.serial(fn.Dense(64, w_l2=L2, b_l2=L2), fn.ReLU(), fn.Dense(1), fn.Sigmoid())


def as_targets(labels: Array) -> Array:
    """Integer labels `(N,)` as the float column `(N, 1)` a one-output network predicts."""
    return labels.reshape(-1, 1).astype(jnp.float32)


def main(argv: Sequence[str] | None = None) -> book.Outcome:
    """Train, print the book's log and the test figures; return the final figures."""
    args = book.parse_args(__doc__.splitlines()[0], argv, epochs=10_000, quick_epochs=500,
                           print_every=100)
    source = book.Source(args.seed, args.book_stream)
    x, labels = source.spiral(100, 2)
    net = network()
    params, state = source.init(net, (2,))
    print(book.describe_source(args))
    result = fn.fit(net, params, state, adam(decay=5e-7), binary_crossentropy, x,
                    as_targets(labels), key=source.next_key(), epochs=args.epochs,
                    metric=binary_accuracy, progress=args.progress)
    book.print_log(result.history, args.print_every)
    x_test, labels_test = source.spiral(100, 2)
    test = fn.evaluate(net, result.params, result.state, binary_crossentropy, x_test,
                       as_targets(labels_test), metric=binary_accuracy)
    print(book.validation_line(test.accuracy, test.loss))
    figures = book.final_figures(result.history)
    figures.update(test_acc=float(test.accuracy), test_loss=float(test.loss))
    return book.Outcome(figures, {"train": result.history})


if __name__ == "__main__":
    main()
