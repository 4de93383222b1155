"""The book's training runs (examples/), shortened, each with a band that proves learning.

The full runs take 10,000 epochs; these take a few thousand or fewer, so the bands are
looser than the book's (examples/README.md has the full-length figures). Runs start from
the book's own random stream (`--book-stream`: numpy's legacy seed-0 stream, stable
across numpy versions), so data and initial weights are the book's. Accuracy on a
spiral jumps from epoch to epoch under Adam's large steps, so bands on training
accuracy use the median over the last tenth of the epochs.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))  # the examples import their helper, book_common

import book_common as book  # noqa: E402

pytestmark = pytest.mark.slow

LOG_LINE = re.compile(
    r"^epoch: \d+, acc: \d\.\d{3}, loss: \d+\.\d{3} \(data_loss: \d+\.\d{3}, "
    r"reg_loss: \d+\.\d{3}\), lr: [0-9.e-]+$")


def example(name: str) -> ModuleType:
    return importlib.import_module(name)


def run(name: str, *argv: str) -> book.Outcome:
    outcome: book.Outcome = example(name).main([*argv, "--no-progress"])
    return outcome


def late_median(values: list[float]) -> float:
    """Median over the last tenth of a run's epochs."""
    return float(np.median(values[-max(1, len(values) // 10):]))


def test_random_walk_fits_vertical_data_but_not_the_spiral(
        capsys: pytest.CaptureFixture[str]) -> None:
    figures = run("ch06_random_search", "--epochs", "2000", "--walks", "4",
                  "--print-every", "1000").figures
    # Pure random search stays near chance on both sets (loss ~ ln 3 = 1.0986).
    for data in ("vertical", "spiral"):
        assert figures[f"{data}_search_loss"] > 1.05
        assert figures[f"{data}_search_acc"] < 0.5
    # The random walk separates the three blobs: every walk ...
    assert figures["vertical_walk_acc_min"] > 0.85
    assert figures["vertical_walk_loss"] < 0.3
    # ... but none of them untangles the spiral.
    assert figures["spiral_walk_acc_max"] < 0.6
    assert figures["spiral_walk_loss"] > 0.9
    out = capsys.readouterr().out
    assert re.search(r"^iteration: 2000, loss: \d\.\d{3}, acc: \d\.\d{3}$", out, re.M)


def test_adam_fits_the_spiral_and_overfits_it(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run("ch11_adam_test", "--book-stream", "--epochs", "3000", "--print-every", "1000")
    history, figures = outcome.histories["train"], outcome.figures
    assert late_median(history.accuracy) > 0.9
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert figures["reg_loss"] == 0.0
    # Out of sample it is clearly learned, and clearly worse than on the training data.
    assert 0.7 < figures["test_acc"] < late_median(history.accuracy) - 0.05
    lines = capsys.readouterr().out.splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch: ")]
    assert [line.split(",")[0] for line in epoch_lines] == [
        "epoch: 1000", "epoch: 2000", "epoch: 3000"]
    assert all(LOG_LINE.match(line) for line in epoch_lines), epoch_lines
    assert re.fullmatch(r"validation, acc: \d\.\d{3}, loss: \d+\.\d{3}", lines[-1])


def test_l2_reports_its_penalty_apart_and_keeps_test_accuracy_close() -> None:
    outcome = run("ch14_l2", "--book-stream", "--epochs", "3000")
    history, figures = outcome.histories["train"], outcome.figures
    # The penalty 5e-4 * (sum w1^2 + sum b1^2) is reported apart from the data loss.
    assert all(r > 0.0 for r in history.reg_loss)
    assert 0.02 < figures["reg_loss"] < 0.2
    np.testing.assert_allclose(history.loss, np.add(history.data_loss, history.reg_loss),
                               rtol=1e-6)
    train_acc = late_median(history.accuracy)
    assert train_acc > 0.85
    # Test accuracy stays within 0.15 of the training accuracy (the book: 0.95 vs 0.83).
    assert figures["test_acc"] > max(0.75, train_acc - 0.15)


def test_dropout_run_learns_and_scores_higher_out_of_sample() -> None:
    outcome = run("ch15_dropout", "--book-stream", "--epochs", "1000")
    history, figures = outcome.histories["train"], outcome.figures
    train_acc = late_median(history.accuracy)  # measured with dropout on
    assert train_acc > 0.6
    assert history.loss[-1] < 0.8 * history.loss[0]
    assert figures["reg_loss"] > 0.0
    # Inference without dropout does better than the dropout-on training figure.
    assert figures["test_acc"] > max(0.68, train_acc)


def test_binary_logistic_regression_separates_two_spirals() -> None:
    outcome = run("ch16_binary", "--book-stream", "--epochs", "5000")
    history, figures = outcome.histories["train"], outcome.figures
    assert late_median(history.accuracy) > 0.85
    assert figures["test_acc"] > 0.8
    assert figures["reg_loss"] > 0.0


def test_sine_regression_gets_most_points_within_the_books_precision(
        capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run("ch17_regression", "--book-stream", "--epochs", "2000")
    history, figures = outcome.histories["train"], outcome.figures
    assert late_median(history.accuracy) > 0.5
    # precision = std(sin) / 250 = (1 / sqrt(2)) / 250 for a full period
    assert f"std(y) / 250 = {1 / np.sqrt(2) / 250:.6f}" in capsys.readouterr().out
    assert figures["mae"] < 0.02
    assert history.data_loss[-1] < 1e-3 * history.data_loss[0]


@pytest.mark.parametrize(("script", "flags", "updates"), [
    ("ch11_adam_test", (), "20"), ("ch16_binary", ("--binary",), "100")])
def test_from_the_books_start_funcnn_follows_the_books_numpy_loop(
        script: str, flags: tuple[str, ...], updates: str) -> None:
    # numpy_reference.py is the book's loop with hand-written gradients. From the same data
    # and weights both score the same test spiral alike until rounding takes over: Adam at
    # lr 0.05 amplifies float32-vs-float64 differences to 1e-3 within ~50 updates (as it
    # does between NumPy in float64 and in float32), at lr 1e-3 within a few hundred.
    reference = example("numpy_reference").main([*flags, "--epochs", updates])
    figures = run(script, "--book-stream", "--epochs", updates).figures
    assert figures["test_loss"] == pytest.approx(reference["test_loss"], rel=1e-5)
    # the test set has 300 points; one lying on a decision boundary (margin ~1e-6) may fall
    # either way with float32 rounding, so accuracies agree to one point
    assert figures["test_acc"] == pytest.approx(reference["test_acc"], abs=1 / 300 + 1e-6)
