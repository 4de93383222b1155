"""Book chapter 15: dropout on a larger spiral, then an out-of-sample test.

1000 samples per class; Dense(2, 64) with L2 5e-4 on weights and biases - ReLU -
Dropout(0.1) - Dense(64, 3) - softmax, Adam with learning rate 0.05 and decay 5e-5,
10,000 full-batch epochs. The training accuracy is measured with dropout on, so it sits
below the test accuracy: the book reaches train acc ~0.69 and test acc ~0.74-0.76.

    python examples/ch15_dropout.py [--epochs N] [--quick] [--book-stream]

With `--book-stream` the data and initial weights are the book's, the dropout masks are
jax's (the book draws them from the same numpy stream), and the test spiral is drawn
right after the initial weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import book_common as book

import funcnn as fn
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.optim import adam

L2 = 5e-4
"""The book's L2 coefficient, on the first layer's weights and biases."""


def network(rate: float = 0.1) -> fn.Layer:
    """2 -> 64 (L2 5e-4) -> ReLU -> Dropout(rate) -> 3 -> softmax."""
    return fn.serial(fn.Dense(64, w_l2=L2, b_l2=L2), fn.ReLU(), fn.Dropout(rate), fn.Dense(3),
                     fn.Softmax())


def main(argv: Sequence[str] | None = None) -> book.Outcome:
    """Train, print the book's log and the test figures; return the final figures."""
    args = book.parse_args(__doc__.splitlines()[0], argv, epochs=10_000, quick_epochs=500,
                           print_every=100)
    source = book.Source(args.seed, args.book_stream)
    x, y = source.spiral(1000, 3)
    net = network()
    params, state = source.init(net, (2,))
    x_test, y_test = source.spiral(100, 3)
    print(book.describe_source(args))
    result = fn.fit(net, params, state, adam(0.05, decay=5e-5), categorical_crossentropy,
                    x, y, key=source.next_key(), epochs=args.epochs,
                    metric=categorical_accuracy, progress=args.progress)
    book.print_log(result.history, args.print_every)
    test = fn.evaluate(net, result.params, result.state, categorical_crossentropy, x_test,
                       y_test, metric=categorical_accuracy)
    print(book.validation_line(test.accuracy, test.loss))
    figures = book.final_figures(result.history)
    figures.update(test_acc=float(test.accuracy), test_loss=float(test.loss))
    return book.Outcome(figures, {"train": result.history})


if __name__ == "__main__":
    main()
