"""PNG plots of a training run: loss and accuracy curves, a 2-D classifier's decision
regions, and a confusion matrix.

Needs the optional extra `plot` (`pip install funcnn[plot]`); matplotlib is imported only
when a plot is drawn, and only its object-oriented API is used (no pyplot, no global state,
no display needed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from funcnn.typing import NumpyArray

_MISSING = ("plots need matplotlib, which is not installed; install it with "
            "`pip install funcnn[plot]`")

_DPI = 100


def require_matplotlib() -> Any:
    """`matplotlib.figure.Figure` (with the Agg canvas available), or a clear ImportError."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(_MISSING) from error
    return Figure


def _save(figure: Any, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=_DPI, format="png")
    return path


def confusion_matrix(y_true: NumpyArray, y_pred: NumpyArray, n_classes: int) -> NumpyArray:
    """Counts `(n_classes, n_classes)`: row = true class, column = predicted class."""
    truth = np.asarray(y_true, dtype=np.int64).reshape(-1)
    guess = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if truth.shape != guess.shape:
        raise ValueError(f"confusion_matrix: {truth.size} true labels but {guess.size} "
                         "predictions")
    for name, labels in (("true", truth), ("predicted", guess)):
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"confusion_matrix: {name} labels must lie in [0, {n_classes}), "
                             f"found {labels.min()}..{labels.max()}")
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (truth, guess), 1)
    return counts


def plot_history(history: Mapping[str, Sequence[float]], path: Path, title: str, *,
                 loss_name: str = "categorical cross-entropy",
                 accuracy_name: str = "accuracy") -> Path:
    """Two panels over epochs: the loss and the accuracy, each for training (the mean over
    the epoch's batches, in training mode) and validation (after the epoch, inference mode).
    `history` is `History.to_dict()`; empty series are left out."""
    figure = require_matplotlib()(figsize=(11, 4.2))
    epochs = np.asarray(history["epoch"]) + 1
    panels = (("loss", "val_loss", f"loss ({loss_name})", "loss"),
              ("accuracy", "val_accuracy", accuracy_name, accuracy_name))
    for index, (train_key, val_key, ylabel, what) in enumerate(panels):
        axes = figure.add_subplot(1, 2, index + 1)
        for key, label in ((train_key, f"training {what} (mean over the epoch)"),
                           (val_key, f"validation {what} (after the epoch)")):
            values = history.get(key) or []
            if len(values):
                axes.plot(epochs[: len(values)], values, label=label, linewidth=1.2)
        axes.set_xlabel("epoch")
        axes.set_ylabel(ylabel)
        axes.set_title(f"{what} per epoch")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)


def plot_decision_regions(classify: Callable[[NumpyArray], NumpyArray], x: NumpyArray,
                          y: NumpyArray, label_names: Sequence[str], path: Path, title: str,
                          resolution: int = 300) -> Path:
    """The class `classify` picks at every point of a `resolution`^2 grid around the 2-D
    points `x` `(N, 2)`, shaded, with the points drawn in their true class's colour.

    `classify` maps points `(M, 2)` to class indices `(M,)`.
    """
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"plot_decision_regions needs 2-D points (N, 2), got {x.shape}")
    figure = require_matplotlib()(figsize=(6.4, 6))
    from matplotlib.colors import ListedColormap

    n = len(label_names)
    colours = [f"C{k % 10}" for k in range(n)]
    margin = 0.1 * float(np.max(np.ptp(x, axis=0)))
    lows, highs = x.min(axis=0) - margin, x.max(axis=0) + margin
    g0, g1 = np.meshgrid(np.linspace(lows[0], highs[0], resolution),
                         np.linspace(lows[1], highs[1], resolution))
    grid = np.stack([g0.reshape(-1), g1.reshape(-1)], axis=1).astype(np.float32)
    regions = np.asarray(classify(grid)).reshape(g0.shape)
    axes = figure.add_subplot(1, 1, 1)
    axes.pcolormesh(g0, g1, regions, cmap=ListedColormap(colours), vmin=-0.5, vmax=n - 0.5,
                    alpha=0.3, shading="auto")
    for k, name in enumerate(label_names):
        points = x[np.asarray(y) == k]
        axes.scatter(points[:, 0], points[:, 1], s=14, color=colours[k], edgecolors="black",
                     linewidths=0.4, label=f"{name} (true class)")
    axes.set_xlim(lows[0], highs[0])
    axes.set_ylim(lows[1], highs[1])
    axes.set_xlabel("x1 (first input feature)")
    axes.set_ylabel("x2 (second input feature)")
    axes.set_title(title)
    axes.legend(fontsize=8, loc="upper right", title="shading: predicted class",
                title_fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def plot_confusion_matrix(counts: NumpyArray, label_names: Sequence[str], path: Path,
                          title: str) -> Path:
    """`counts[i, j]` (true class i predicted as j) as a shaded grid with each count written
    in its cell; the diagonal holds the correct predictions."""
    n = len(label_names)
    if counts.shape != (n, n):
        raise ValueError(f"plot_confusion_matrix: counts of shape {counts.shape} for {n} labels")
    figure = require_matplotlib()(figsize=(6.4, 5.6))
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes, label="number of test samples")
    threshold = counts.max() / 2.0 if counts.size else 0.0
    for i in range(n):
        for j in range(n):
            axes.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8,
                      color="white" if counts[i, j] > threshold else "black")
    axes.set_xticks(range(n), labels=list(label_names))
    axes.set_yticks(range(n), labels=list(label_names))
    axes.set_xlabel("predicted label")
    axes.set_ylabel("true label")
    axes.set_title(title)
    figure.tight_layout()
    return _save(figure, path)
