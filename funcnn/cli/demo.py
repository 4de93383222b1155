"""`funcnn demo`: the book's spiral classifier and a classifier of real handwritten digits,
trained, measured on train / validation / test splits, saved, and plotted.

Spiral: Dense(64)-ReLU-Dense(3)-Softmax, Adam lr 0.05 decay 5e-7, 10,000 full-batch epochs
on 100 points per class (the book's chapter-10 run). Digits: scikit-learn's 1,797 8x8
images scaled to [-1, 1], 64-64-ReLU-10, Adam lr 0.005 decay 1e-3, 30 epochs of batch 32.

Weights start Glorot-uniform rather than the book's `0.01 * N(0, 1)`: with the book's
initializer this spiral run ends anywhere between 0.74 and 0.96 train accuracy depending on
the seed (10 seeds measured); with Glorot's, between 0.95 and 0.98, the band the book reports.
`funcnn train --init book` trains with the book's initializer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from funcnn.checkpoint import check_writable
from funcnn.cli.commands import PRESETS, SPLITS, TrainedModel, TrainOptions, train_model
from funcnn.cli.model_spec import save_model
from funcnn.training.inference import predict
from funcnn.typing import NumpyArray

PLOTS = ("spiral_curves.png", "spiral_regions.png", "digits_curves.png",
         "digits_confusion.png")
"""The files `run_demo` writes into its output directory, besides the two checkpoints."""


def scaled_epochs(epochs: int, scale: float) -> int:
    """`round(epochs * scale)`, at least 1."""
    return max(1, round(epochs * scale))


def demo_options(dataset: str, scale: float, seed: int, progress: bool) -> TrainOptions:
    """The demo's run on `dataset`: its preset with Adam and ReLU, epochs scaled."""
    preset = PRESETS[dataset]
    return TrainOptions(dataset, preset.hidden, "relu", "adam", preset.learning_rate,
                        preset.decay, None, 0.0, 0.0, scaled_epochs(preset.epochs, scale),
                        preset.batch_size, seed, None, progress)


def _report(title: str, trained: TrainedModel) -> None:
    """Print the train, validation and test figures measured after training."""
    model, splits = trained.model, trained.splits
    print(title)
    for split, part in zip(SPLITS, splits.parts, strict=True):
        accuracy = model.info.results[f"{split}_accuracy"]
        loss = model.info.results[f"{split}_loss"]
        print(f"  {split:<11} accuracy {accuracy:.4f}  loss {loss:.4g}  "
              f"({part.x.shape[0]} samples)")


def _classifier(trained: TrainedModel) -> Callable[[NumpyArray], NumpyArray]:
    """`x (N, *input_shape) -> predicted classes (N,)` of a trained model (raw inputs)."""
    model = trained.model

    def classify(x: NumpyArray) -> NumpyArray:
        probs = predict(model.net, model.params, model.state, model.info.preprocessing.apply(x))
        return np.asarray(np.argmax(np.asarray(probs), axis=-1))

    return classify


def run_demo(out: Path, scale: float, seed: int, progress: bool) -> None:
    """Train both models, print their figures, write checkpoints and PNG plots into `out`."""
    from funcnn.cli import plots

    plots.require_matplotlib()  # fail before training, not after
    out.mkdir(parents=True, exist_ok=True)
    check_writable(out / "spiral.safetensors")  # likewise: a failed save would lose the runs
    spiral = train_model(demo_options("spiral", scale, seed, progress))
    _report(f"spiral (the book's chapter-10 run: 3 classes of 100 points, "
            f"{spiral.model.info.training['epochs']} full-batch epochs)", spiral)
    digits = train_model(demo_options("digits", scale, seed, progress))
    _report(f"digits (scikit-learn's 8x8 handwritten digits, "
            f"{digits.model.info.training['epochs']} epochs of batch 32)", digits)
    for name, trained in (("spiral", spiral), ("digits", digits)):
        model = trained.model
        save_model(out / f"{name}.safetensors", model.info, model.params, model.state,
                   model.net)

    points = spiral.splits.train
    plots.plot_history(spiral.model.info.history, out / PLOTS[0],
                       "Spiral classifier: Dense(64)-ReLU-Dense(3)-Softmax, Glorot init, "
                       "Adam lr 0.05 decay 5e-7")
    plots.plot_decision_regions(_classifier(spiral), points.x, points.y,
                                spiral.splits.label_names, out / PLOTS[1],
                                "Spiral: decision regions and training points")
    plots.plot_history(digits.model.info.history, out / PLOTS[2],
                       "Digit classifier: 64-64-ReLU-10 on scikit-learn's 8x8 digits, Adam")
    test = digits.splits.test
    counts = plots.confusion_matrix(test.y, _classifier(digits)(test.x),
                                    len(digits.splits.label_names))
    accuracy = float(np.trace(counts)) / float(np.sum(counts))
    plots.plot_confusion_matrix(
        counts, digits.splits.label_names, out / PLOTS[3],
        f"Digits: confusion matrix on the test split\n"
        f"({int(np.sum(counts))} images, accuracy {accuracy:.3f})")
    print(f"wrote {', '.join(PLOTS)} and spiral.safetensors, digits.safetensors to {out}/")
