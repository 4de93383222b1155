"""The `funcnn` command: argument parsing, the compilation cache, dispatch, and errors.

Every failure ends the command with one line on stderr, `funcnn: error: ...`, and a
non-zero exit status (2 for wrong arguments, 1 for anything else); set `FUNCNN_DEBUG=1`
to see the traceback instead. The commands' bodies live in `funcnn.cli.commands` and
`funcnn.cli.demo`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from funcnn.checkpoint import check_writable
from funcnn.cli.commands import (
    BOOK_LEARNING_RATES,
    CNN_PRESETS,
    OPTIMIZERS,
    PRESETS,
    TrainOptions,
)
from funcnn.cli.dataset_splits import DATASETS, GENERATED
from funcnn.cli.networks import ACTIVATIONS, ARCHITECTURES, INITS
from funcnn.cli.npy_data import DIRECTORY_PRESET, train_usage_problem
from funcnn.compile_cache import default_cache_directory, enable_compilation_cache

DEBUG_ENV = "FUNCNN_DEBUG"
DEFAULT_OUT = "funcnn-out"
QUICK_SCALE = 0.05
"""The `--quick` demo's epoch scale (500 spiral epochs, 2 digit epochs)."""

_DESCRIPTION = """\
funcnn: train, evaluate and use the book's neural networks from the command line.

JAX's persistent compilation cache is on: compiled programs are kept in $FUNCNN_CACHE
(default ~/.cache/funcnn/jax), so a second run skips most compilation. Turn it off with
--no-compile-cache. Set FUNCNN_DEBUG=1 to see tracebacks instead of one-line errors.
"""

_PRESET_LINES = "\n".join(
    f"  {name:<14} hidden {','.join(map(str, p.hidden)):<8} lr {p.learning_rate:<6g} "
    f"decay {p.decay:<6g} epochs {p.epochs:<6} batch "
    f"{'full' if p.batch_size is None else p.batch_size}"
    for name, p in PRESETS.items())

_CNN_LINES = "\n".join(
    f"  {name:<14} filters {','.join(map(str, filters)):<6} hidden {','.join(map(str, hidden))}"
    for name, (filters, hidden) in CNN_PRESETS.items())

_TRAIN_EPILOG = f"""\
defaults per dataset (with --optimizer adam; other optimizers default to the book's
learning rate and no decay):
{_PRESET_LINES}
--model cnn (image datasets; 3x3 conv + 2x2 max pool per filter size, then Dense):
{_CNN_LINES}
spiral/vertical: 3 classes, --samples per class (100); sine: --samples points (1000).
digits: scikit-learn's 8x8 digits, split 70/15/15; mnist and fashion-mnist are downloaded
once to $FUNCNN_DATA (default ~/.cache/funcnn) and split 90/10 for validation.
--data-dir DIR (instead of --dataset): DIR/x_train.npy, y_train.npy (x_test.npy, y_test.npy
optional), streamed from disk; integer y: class labels, floating y: regression targets;
defaults hidden 64, lr 0.001, decay 0, 10 epochs, batch 128."""


class UsageError(Exception):
    """Wrong command-line arguments (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _number(text: str, *, low: float, high: float = float("inf"), open_low: bool = False,
            open_high: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    ok = (value > low if open_low else value >= low) and (
        value < high if open_high else value <= high)
    if not ok:
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        raise argparse.ArgumentTypeError(
            f"expected a number in {left}{low:g}, {high:g}{right}, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _number(text, low=0.0, open_low=True, open_high=True)


def _non_negative_float(text: str) -> float:
    return _number(text, low=0.0, open_high=True)


def _rate(text: str) -> float:
    return _number(text, low=0.0, high=1.0, open_high=True)


def _hidden_sizes(text: str) -> tuple[int, ...]:
    parts = text.split(",") if text.strip() else []
    try:
        sizes = tuple(int(part) for part in parts)
    except ValueError:
        sizes = (0,)
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive layer sizes such as 64,64, got {text!r}")
    return sizes


def _batch_size(text: str) -> int:
    if text == "full":
        return 0
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'full', got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The `funcnn` argument parser with its five sub-commands."""
    parser = _Parser(prog="funcnn", description=_DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from funcnn import __version__

    parser.add_argument("--version", action="version", version=f"funcnn {__version__}")
    parser.add_argument("--no-compile-cache", action="store_true",
                        help="do not use JAX's persistent compilation cache")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="train the book's spiral classifier and a digit classifier, with plots",
        description="Train the book's spiral classifier and a classifier of scikit-learn's "
                    "real 8x8 handwritten digits; print train/validation/test accuracy; "
                    "write PNG plots and both checkpoints into --out.")
    demo.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), metavar="DIR",
                      help=f"output directory for plots and checkpoints (default {DEFAULT_OUT})")
    length = demo.add_mutually_exclusive_group()
    length.add_argument("--epochs-scale", type=_positive_float, default=1.0, metavar="F",
                        help="multiply every run's number of epochs by F (default 1)")
    length.add_argument("--quick", action="store_true",
                        help=f"a short smoke run: --epochs-scale {QUICK_SCALE}")
    demo.add_argument("--seed", type=_non_negative_int, default=0, metavar="N",
                      help="seed of the data, initialization and shuffling (default 0)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    train = commands.add_parser(
        "train", help="train a network on a dataset and save it as a checkpoint",
        description="Train a Dense network (or, with --model cnn, a convolutional one on "
                    "an image dataset) and save a checkpoint holding its parameters, layer "
                    "description, label names, input scaling and training history.",
        epilog=_TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = train.add_mutually_exclusive_group(required=True)
    data.add_argument("--dataset", choices=DATASETS,
                      help="the data to train on; its defaults are listed below")
    data.add_argument("--data-dir", type=Path, metavar="DIR",
                      help="train on the .npy files in DIR (see below)")
    train.add_argument("--model", choices=ARCHITECTURES, default="mlp",
                       help="mlp: Dense layers (default); cnn: conv blocks, then Dense "
                            "layers, on the images of digits, mnist or fashion-mnist")
    train.add_argument("--filters", type=_hidden_sizes, metavar="SIZES",
                       help="--model cnn: filters of each conv block, e.g. 16,32")
    train.add_argument("--hidden", type=_hidden_sizes, metavar="SIZES",
                       help="hidden (Dense) layer sizes, comma-separated, e.g. 64,64")
    train.add_argument("--activation", choices=tuple(ACTIVATIONS), default="relu",
                       help="hidden-layer activation (default relu)")
    train.add_argument("--init", choices=INITS, default="glorot",
                       help="weight initializer: glorot (uniform, default), he (normal) or the "
                            "book's 0.01 * N(0, 1) (0.1 for sine)")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                       help="the book's optimizers (default adam)")
    train.add_argument("--lr", type=_positive_float, metavar="RATE", help="learning rate")
    train.add_argument("--decay", type=_non_negative_float, metavar="D",
                       help="learning-rate decay: lr / (1 + D * step)")
    train.add_argument("--momentum", type=_rate, metavar="M", help="SGD momentum in [0, 1)")
    train.add_argument("--l2", type=_non_negative_float, default=0.0, metavar="C",
                       help="L2 penalty on the hidden layers' weights and biases (default 0)")
    train.add_argument("--dropout", type=_rate, default=0.0, metavar="RATE",
                       help="dropout rate after each hidden activation (default 0)")
    train.add_argument("--epochs", type=_positive_int, metavar="N",
                       help="passes over the training data (default: per dataset, below)")
    train.add_argument("--batch-size", type=_batch_size, metavar="B",
                       help="minibatch size, or 'full' for full-batch training")
    train.add_argument("--seed", type=_non_negative_int, default=0, metavar="S",
                       help="seed of the data split, initialization and shuffling (default 0)")
    train.add_argument("--samples", type=_positive_int, metavar="N",
                       help=f"size of the generated datasets ({', '.join(GENERATED)})")
    train.add_argument("--out", type=Path, required=True, metavar="FILE",
                       help="checkpoint to write, e.g. model.safetensors")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    evaluate = commands.add_parser(
        "evaluate", help="loss and accuracy of a saved model on a test split",
        description="Loss and accuracy of a saved model on the test split of the dataset it "
                    "was trained on (rebuilt from its seed), or of --dataset.")
    evaluate.add_argument("model", type=Path, help="a checkpoint written by `funcnn train`")
    other = evaluate.add_mutually_exclusive_group()
    other.add_argument("--dataset", choices=DATASETS,
                       help="evaluate on this dataset instead of the training one")
    other.add_argument("--data-dir", type=Path, metavar="DIR",
                       help="evaluate on the .npy files in DIR (train or test part)")
    evaluate.add_argument("--split", choices=("train", "validation", "test"), default="test",
                          help="which split to measure (default test)")

    predict = commands.add_parser(
        "predict", help="classify image files or .npy arrays with a saved model",
        description="Print one line per sample: its name and the predicted label with its "
                    "confidence (or the predicted values of a regression model). Images are "
                    "read as grayscale and resized to the model's input size; a .npy file "
                    "holds raw samples (N, *input_shape) or one sample, unscaled.")
    predict.add_argument("model", type=Path, help="a checkpoint written by `funcnn train`")
    predict.add_argument("files", type=Path, nargs="+", metavar="FILE",
                         help="image files (.png, .jpg, ...) or .npy arrays")
    predict.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                         help="invert images (for dark ink on light paper); auto inverts "
                              "images whose border is brighter than mid-grey (default auto)")

    summary = commands.add_parser("summary", help="describe a saved model, layer by layer")
    summary.add_argument("model", type=Path, help="a checkpoint written by `funcnn train`")
    return parser


def enable_compile_cache() -> Path | None:
    """Point JAX's persistent compilation cache at `$FUNCNN_CACHE` or ~/.cache/funcnn/jax.

    A directory that cannot be created only costs speed: a one-line warning, no cache.
    """
    directory = default_cache_directory()
    try:
        return enable_compilation_cache(directory)
    except OSError as error:
        print(f"funcnn: warning: cannot create the compilation cache directory {directory} "
              f"({error.strerror or error}); continuing without it", file=sys.stderr)
        return None


def train_options(args: argparse.Namespace) -> TrainOptions:
    """The `train` arguments completed with the dataset's defaults, checked together."""
    preset = DIRECTORY_PRESET if args.data_dir is not None else PRESETS[args.dataset]
    adam = args.optimizer == "adam"
    problem = train_usage_problem(args.data_dir, args.samples, args.model, args.batch_size)
    if problem is not None:
        raise UsageError(problem)
    if args.momentum is not None and args.optimizer != "sgd":
        raise UsageError(f"--momentum applies to --optimizer sgd only, not {args.optimizer}")
    if args.samples is not None and args.dataset not in GENERATED:
        raise UsageError(f"--samples applies to {', '.join(GENERATED)} only, "
                         f"not {args.dataset}")
    out: Path = args.out
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file name such as "
                         f"{out / 'model.safetensors'}")
    if out.parent.exists() and not out.parent.is_dir():
        raise UsageError(f"--out {out}: {out.parent} is not a directory")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: directory {out.parent} does not exist")
    filters, hidden = _architecture_defaults(args, preset.hidden)
    batch = preset.batch_size if args.batch_size is None else (args.batch_size or None)
    return TrainOptions(
        args.dataset or str(args.data_dir), hidden, args.activation, args.optimizer,
        args.lr or (preset.learning_rate if adam else BOOK_LEARNING_RATES[args.optimizer]),
        args.decay if args.decay is not None else (preset.decay if adam else 0.0),
        args.momentum, args.l2, args.dropout, args.epochs or preset.epochs, batch, args.seed,
        args.samples, not args.no_progress, args.init, args.model, filters, args.data_dir)


def _architecture_defaults(args: argparse.Namespace, mlp_hidden: tuple[int, ...],
                           ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """`(filters, hidden)` of the chosen `--model`, the dataset's defaults filled in."""
    if args.model == "mlp":
        if args.filters is not None:
            raise UsageError("--filters applies to --model cnn only")
        return (), args.hidden or mlp_hidden
    if args.dataset not in CNN_PRESETS:
        raise UsageError(f"--model cnn needs an image dataset ({', '.join(CNN_PRESETS)}), "
                         f"not {args.dataset}")
    filters, hidden = CNN_PRESETS[args.dataset]
    return args.filters or filters, args.hidden or hidden


def _check_model_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not a checkpoint file")


def run(args: argparse.Namespace) -> None:
    """Dispatch parsed arguments to the command's body."""
    if args.command is None:
        raise UsageError("a command is required: demo, train, evaluate, predict or summary "
                         "(see `funcnn --help`)")
    options = train_options(args) if args.command == "train" else None
    if options is not None:
        check_writable(args.out)  # before any training: a failed save would lose the run
    if args.command in ("evaluate", "predict", "summary"):
        _check_model_file(args.model)
    if not args.no_compile_cache:
        enable_compile_cache()
    from funcnn.cli import commands, npy_data

    if args.command == "demo":
        from funcnn.cli.demo import run_demo

        run_demo(args.out, QUICK_SCALE if args.quick else args.epochs_scale, args.seed,
                 not args.no_progress)
    elif options is not None:
        (commands if options.data_dir is None else npy_data).run_train(options, args.out)
    elif args.command == "evaluate":
        npy_data.run_evaluate(args.model, args.dataset, args.data_dir, args.split)
    elif args.command == "predict":
        commands.run_predict(args.model, args.files, args.invert)
    else:
        commands.run_summary(args.model)


def one_line(error: BaseException) -> str:
    """The message of `error` as one line (the diverged-training case in command terms)."""
    from funcnn.training import NonFiniteLossError

    if isinstance(error, NonFiniteLossError):
        return (f"training diverged: the loss became non-finite in epoch {error.epoch + 1}; "
                "try a smaller --lr")
    text = " ".join(str(error).split())
    return text or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run `funcnn` with `argv` (default `sys.argv[1:]`); returns the exit status."""
    parser = build_parser()
    debug = bool(os.environ.get(DEBUG_ENV))
    try:
        run(parser.parse_args(argv))
        sys.stdout.flush()
    except UsageError as error:
        print(f"funcnn: error: {one_line(error)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `funcnn summary m.safetensors | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("funcnn: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        known = isinstance(error, ValueError | TypeError | OSError | ImportError |
                           FloatingPointError)
        prefix = "" if known else f"internal error ({type(error).__name__}): "
        hint = "" if known else f" (set {DEBUG_ENV}=1 for the traceback)"
        print(f"funcnn: error: {prefix}{one_line(error)}{hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
