"""Book chapter 18: the model object's run, a larger network with L2 and dropout.

1000 samples per class; Dense(2, 512) with L2 5e-4 on weights and biases - ReLU -
Dropout(0.1) - Dense(512, 3) - softmax, categorical cross-entropy, Adam with learning
rate 0.05 and decay 5e-5, 10,000 full-batch epochs, validated on a fresh spiral of 100
samples per class. The book's `Model` (add layers, set loss, optimizer and accuracy,
train, validate) is funcnn's `serial` + `fit` + `evaluate` + `predict` over pure
init/apply functions; training accuracy is measured with dropout on.

    python examples/ch18_model.py [--epochs N] [--quick] [--book-stream]
"""

from __future__ import annotations

from collections.abc import Sequence

import book_common as book
import jax.numpy as jnp

import funcnn as fn
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.optim import adam

L2 = 5e-4
"""The book's L2 coefficient, on the first layer's weights and biases."""


def network() -> fn.Layer:
    """2 -> 512 (L2 5e-4) -> ReLU -> Dropout(0.1) -> 3 -> softmax."""
    return fn.serial(fn.Dense(512, w_l2=L2, b_l2=L2), fn.ReLU(), fn.Dropout(0.1), fn.Dense(3),
                     fn.Softmax())


def main(argv: Sequence[str] | None = None) -> book.Outcome:
    """Train with validation, print the book's log; return the final figures."""
    args = book.parse_args(__doc__.splitlines()[0], argv, epochs=10_000, quick_epochs=300,
                           print_every=100)
    source = book.Source(args.seed, args.book_stream)
    x, y = source.spiral(1000, 3)
    x_test, y_test = source.spiral(100, 3)
    net = network()
    params, state = source.init(net, (2,))
    print(book.describe_source(args))
    print(fn.summary_table(net, (2,)))
    result = fn.fit(net, params, state, adam(0.05, decay=5e-5), categorical_crossentropy,
                    x, y, key=source.next_key(), epochs=args.epochs,
                    validation_data=(x_test, y_test), metric=categorical_accuracy,
                    progress=args.progress)
    book.print_log(result.history, args.print_every)
    test = fn.evaluate(net, result.params, result.state, categorical_crossentropy, x_test,
                       y_test, metric=categorical_accuracy)
    probs = fn.predict(net, result.params, result.state, x_test)
    predicted = fn.classes_from_outputs(probs)
    print(f"predict: first ten test samples {predicted[:10].tolist()}, "
          f"labels {y_test[:10].tolist()}, accuracy {float(jnp.mean(predicted == y_test)):.3f}")
    figures = book.final_figures(result.history)
    figures.update(test_acc=float(test.accuracy), test_loss=float(test.loss))
    return book.Outcome(figures, {"train": result.history})


if __name__ == "__main__":
    main()
