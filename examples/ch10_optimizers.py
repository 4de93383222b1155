"""Book chapter 10: the optimizer study on the spiral, each optimizer with the book's settings.

Every run trains Dense(2, 64) - ReLU - Dense(64, 3) - softmax for 10,000 full-batch epochs
on 100 samples per class, from the same data and the same initial weights, and reports
its final accuracy and loss: plain SGD, SGD with learning-rate decay, SGD with momentum,
AdaGrad, RMSProp and Adam, in the order the chapter tries them.

    python examples/ch10_optimizers.py [--epochs N] [--quick] [--only adam,sgd_momentum_0.9]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import book_common as book

import funcnn as fn
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.optim import GradientTransformation, adagrad, adam, rmsprop, sgd

OPTIMIZERS: dict[str, tuple[str, Callable[[], GradientTransformation]]] = {
    "sgd": ("SGD(lr=1.0)", lambda: sgd(1.0)),
    "sgd_decay": ("SGD(lr=1.0, decay=1e-3)", lambda: sgd(1.0, decay=1e-3)),
    "sgd_momentum_0.5": ("SGD(lr=1.0, decay=1e-3, momentum=0.5)",
                         lambda: sgd(1.0, decay=1e-3, momentum=0.5)),
    "sgd_momentum_0.9": ("SGD(lr=1.0, decay=1e-3, momentum=0.9)",
                         lambda: sgd(1.0, decay=1e-3, momentum=0.9)),
    "adagrad": ("AdaGrad(lr=1.0, decay=1e-4)", lambda: adagrad(1.0, decay=1e-4)),
    "rmsprop": ("RMSProp(lr=1e-3, decay=1e-4)", lambda: rmsprop(1e-3, decay=1e-4)),
    "rmsprop_tuned": ("RMSProp(lr=0.02, decay=1e-5, rho=0.999)",
                      lambda: rmsprop(0.02, decay=1e-5, rho=0.999)),
    "adam": ("Adam(lr=0.02, decay=1e-5)", lambda: adam(0.02, decay=1e-5)),
    "adam_tuned": ("Adam(lr=0.05, decay=5e-7)", lambda: adam(0.05, decay=5e-7)),
}
"""Name -> (the book's setting, a factory), in the order of the chapter."""


def network() -> fn.Layer:
    """The book's spiral classifier: 2 -> 64 -> ReLU -> 3 -> softmax."""
    return fn.serial(fn.Dense(64), fn.ReLU(), fn.Dense(3), fn.Softmax())


def _only(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", default=",".join(OPTIMIZERS),
                        help=f"comma-separated subset of {', '.join(OPTIMIZERS)}")


def main(argv: Sequence[str] | None = None) -> book.Outcome:
    """Train once per optimizer; print each log and a final table. Returns
    `{"<name>_acc": ..., "<name>_loss": ...}` for every optimizer run."""
    args = book.parse_args(__doc__.splitlines()[0], argv, epochs=10_000, quick_epochs=200,
                           print_every=1000, add_arguments=_only)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in OPTIMIZERS]
    if unknown or not names:
        raise SystemExit(f"--only: unknown optimizer(s) {unknown or names}; choose from "
                         f"{', '.join(OPTIMIZERS)}")
    source = book.Source(args.seed, args.book_stream)
    x, y = source.spiral(100, 3)
    net = network()
    params, state = source.init(net, (2,))
    key = source.next_key()
    print(book.describe_source(args))
    figures: dict[str, float] = {}
    histories: dict[str, fn.History] = {}
    rows = []
    for name in names:
        setting, make = OPTIMIZERS[name]
        print(f"\n{setting}")
        result = fn.fit(net, params, state, make(), categorical_crossentropy, x, y, key=key,
                        epochs=args.epochs, metric=categorical_accuracy,
                        progress=args.progress)
        book.print_log(result.history, args.print_every)
        final = book.final_figures(result.history)
        histories[name] = result.history
        figures[f"{name}_acc"], figures[f"{name}_loss"] = final["acc"], final["loss"]
        rows.append((setting, final["acc"], final["loss"], final["learning_rate"]))
    print(f"\nafter {args.epochs} epochs:")
    width = max(len(row[0]) for row in rows)
    for setting, acc, loss, lr in rows:
        print(f"  {setting:<{width}}  acc: {acc:.3f}, loss: {loss:.3f}, lr: {lr:.7g}")
    return book.Outcome(figures, histories)


if __name__ == "__main__":
    main()
