"""Book chapter 17: regression of a sine wave.

Dense(1, 64) - ReLU - Dense(64, 64) - ReLU - Dense(64, 1) - linear, every weight drawn as
`0.1 * N(0, 1)` (the chapter's larger initialization), mean squared error, Adam with
learning rate 0.005 and decay 1e-3, 10,000 full-batch epochs on `sine(1000)`. The
"accuracy" counts predictions within `std(y) / 250` of the target; the book reaches ~0.98.

    python examples/ch17_regression.py [--epochs N] [--quick] [--book-stream]
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import book_common as book

import funcnn as fn
from funcnn.initializers import book_normal
from funcnn.losses import mean_absolute_error, mean_squared_error
from funcnn.metrics import regression_accuracy, regression_precision

WEIGHT_SCALE = 0.1
"""Chapter 17's weight initialization: `0.1 * N(0, 1)` instead of 0.01."""


def network() -> fn.Layer:
    """1 -> 64 -> ReLU -> 64 -> ReLU -> 1, weights `0.1 * N(0, 1)`."""
    init = book_normal(WEIGHT_SCALE)
    return fn.serial(fn.Dense(64, w_init=init), fn.ReLU(), fn.Dense(64, w_init=init),
                     fn.ReLU(), fn.Dense(1, w_init=init), fn.Linear())


def main(argv: Sequence[str] | None = None) -> book.Outcome:
    """Train, print the book's log and the final errors; return the final figures."""
    args = book.parse_args(__doc__.splitlines()[0], argv, epochs=10_000, quick_epochs=500,
                           print_every=100)
    source = book.Source(args.seed, args.book_stream)
    x, y = fn.datasets.sine(1000)
    precision = regression_precision(y)
    metric = functools.partial(regression_accuracy, precision=precision)
    net = network()
    params, state = source.init(net, (1,), weight_scale=WEIGHT_SCALE)
    print(book.describe_source(args))
    print(f"accuracy precision: std(y) / 250 = {precision:.6f}")
    result = fn.fit(net, params, state, fn.optim.adam(0.005, decay=1e-3), mean_squared_error,
                    x, y, key=source.next_key(), epochs=args.epochs, metric=metric,
                    progress=args.progress)
    book.print_log(result.history, args.print_every)
    # The log's acc comes from each epoch's forward pass, before its update; score the
    # parameters training ends with as well (Adam's steps make single epochs jumpy).
    final = fn.evaluate(net, result.params, result.state, mean_squared_error, x, y,
                        metric=metric)
    mae = fn.evaluate(net, result.params, result.state, mean_absolute_error, x, y)
    print(f"final parameters, acc: {float(final.accuracy):.3f}, mse: {float(final.loss):.3g}, "
          f"mae: {float(mae.loss):.3g}")
    figures = book.final_figures(result.history)
    figures.update(final_acc=float(final.accuracy), mse=float(final.loss), mae=float(mae.loss))
    return book.Outcome(figures, {"train": result.history})


if __name__ == "__main__":
    main()
