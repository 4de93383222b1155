"""Book chapters 10-11: Adam on the spiral, then an out-of-sample test on a fresh spiral.

Dense(2, 64) - ReLU - Dense(64, 3) - softmax, categorical cross-entropy, Adam with
learning rate 0.05 and decay 5e-7, 10,000 full-batch epochs on 100 samples per class.
The book reaches train acc 0.97-0.98 (loss ~0.074) and test acc ~0.80: the network
overfits, which is what chapter 11 sets out to show.

    python examples/ch11_adam_test.py [--epochs N] [--quick] [--book-stream]
"""

from __future__ import annotations

from collections.abc import Sequence

import book_common as book

import funcnn as fn
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.optim import adam


def network() -> fn.Layer:
    """The book's spiral classifier: 2 -> 64 -> ReLU -> 3 -> softmax."""
    return fn.serial(fn.Dense(64), fn.ReLU(), fn.Dense(3), fn.Softmax())


def main(argv: Sequence[str] | None = None) -> book.Outcome:
    """Train, print the book's log and the test figures; return the final figures."""
    args = book.parse_args(__doc__.splitlines()[0], argv, epochs=10_000, quick_epochs=500,
                           print_every=100)
    source = book.Source(args.seed, args.book_stream)
    x, y = source.spiral(100, 3)
    net = network()
    params, state = source.init(net, (2,))
    print(book.describe_source(args))
    result = fn.fit(net, params, state, adam(0.05, decay=5e-7), categorical_crossentropy,
                    x, y, key=source.next_key(), epochs=args.epochs,
                    metric=categorical_accuracy, progress=args.progress)
    book.print_log(result.history, args.print_every)
    x_test, y_test = source.spiral(100, 3)
    test = fn.evaluate(net, result.params, result.state, categorical_crossentropy, x_test,
                       y_test, metric=categorical_accuracy)
    print(book.validation_line(test.accuracy, test.loss))
    figures = book.final_figures(result.history)
    figures.update(test_acc=float(test.accuracy), test_loss=float(test.loss))
    return book.Outcome(figures, {"train": result.history})


if __name__ == "__main__":
    main()
