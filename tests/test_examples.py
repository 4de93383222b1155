"""The example scripts run as a user runs them: `python examples/<name>.py --quick`, in a
subprocess, printing the book's log format."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.slow

EPOCH_LINE = re.compile(
    r"^epoch: (\d+), acc: (\d\.\d{3}), loss: (\d+\.\d{3}) \(data_loss: (\d+\.\d{3}), "
    r"reg_loss: (\d+\.\d{3})\), lr: ([0-9.e-]+)$")
VALIDATION_LINE = re.compile(r"^validation, acc: (\d\.\d{3}), loss: (\d+\.\d{3})$")


def run_script(name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "JAX_NUMPY_RANK_PROMOTION": "raise", "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, str(EXAMPLES / name), *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def epoch_lines(stdout: str) -> list[re.Match[str]]:
    return [m for m in map(EPOCH_LINE.match, stdout.splitlines()) if m]


def test_adam_example_prints_the_books_log_every_tenth_of_a_quick_run() -> None:
    done = run_script("ch11_adam_test.py", "--quick")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "data and initial weights: funcnn keys, seed 0"
    matches = epoch_lines(done.stdout)
    # --quick is 500 epochs, logged every 50: ten lines, the last at epoch 500.
    assert [int(m[1]) for m in matches] == list(range(50, 501, 50))
    assert len(matches) == len(lines) - 2  # header, ten epoch lines, validation
    for m in matches:
        loss, data_loss, reg_loss = float(m[3]), float(m[4]), float(m[5])
        assert reg_loss == 0.0 and abs(loss - data_loss) <= 0.0015
        # Adam's rate lr / (1 + decay * t) after t = epoch updates, to the printed digits
        assert float(m[6]) == pytest.approx(0.05 / (1 + 5e-7 * int(m[1])), rel=1e-6)
    assert float(matches[-1][2]) > float(matches[0][2])  # it learns
    assert float(matches[-1][3]) < float(matches[0][3])
    assert VALIDATION_LINE.match(lines[-1])


def test_fashion_mnist_example_falls_back_to_sklearn_digits_on_request() -> None:
    done = run_script("ch19_fashion_mnist.py", "--quick", "--digits", "--no-progress")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"sklearn digits: \d+ training and \d+ test images of 64 pixels, "
                        r"10 classes", lines[0])
    # one training line and one validation line per epoch
    assert [int(m[1]) for m in epoch_lines(done.stdout)] == [1, 2]
    assert [bool(VALIDATION_LINE.match(line)) for line in lines[1:]] == [False, True] * 2
    assert done.stderr == ""


def test_optimizer_study_prints_a_final_table_for_the_chosen_optimizers() -> None:
    done = run_script("ch10_optimizers.py", "--quick", "--only", "sgd,adam_tuned",
                      "--no-progress")
    assert done.returncode == 0, done.stderr
    table = done.stdout.split("after 200 epochs:\n")[1].splitlines()
    assert [row.split("  acc:")[0].strip() for row in table] == [
        "SGD(lr=1.0)", "Adam(lr=0.05, decay=5e-7)"]
    assert all(re.search(r"acc: \d\.\d{3}, loss: \d+\.\d{3}, lr: ", row) for row in table)
    assert len(epoch_lines(done.stdout)) == 2 * 10


def test_bad_flags_are_refused_with_a_message_naming_them() -> None:
    done = run_script("ch14_l2.py", "--epochs", "0")
    assert done.returncode == 2
    assert "--epochs must be at least 1, got 0" in done.stderr
    done = run_script("ch10_optimizers.py", "--quick", "--only", "adam,nadam")
    assert done.returncode != 0
    assert "unknown optimizer(s) ['nadam']" in done.stderr


def test_float16_example_shows_the_flush_to_zero_and_the_scaled_run() -> None:
    done = run_script("float16_loss_scaling.py", "--epochs", "40")
    assert done.returncode == 0, done.stderr
    shares = [float(s) for s in re.findall(r"float16, loss x \d+: ([\d.]+)%", done.stdout)]
    assert len(shares) == 2 and shares[0] > 90.0 and shares[1] < 1.0, done.stdout
    runs = re.findall(r"^  (.+?) +loss after \d+ epochs [\d.]+, final ([\d.]+), acc ([\d.]+), "
                      r"skipped steps (\d+)$", done.stdout, re.M)
    assert [r[0] for r in runs] == ["float32", "float16", "float16 + dynamic loss scale"]


def test_cnn_example_beats_the_mlp_on_mnist_digits_and_prints_its_table() -> None:
    done = run_script("cnn_digits.py", "--epochs", "4", "--train-samples", "1000",
                      "--batch-size", "50", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "total params: 114,314" in done.stdout  # the summary of the CNN
    rows = re.findall(r"^(\S+) +([\d,]+) +(\d\.\d{3}) +(\d+\.\d)$",
                      done.stdout.split("after 4 epochs:\n")[1], re.M)
    assert [r[0] for r in rows] == ["mlp", "cnn", "bn-residual"]
    acc = {r[0]: float(r[2]) for r in rows}
    assert [int(r[1].replace(",", "")) for r in rows] == [118_282, 114_314, 25_210]
    # 80 steps on 1,000 digits (the full run reaches 0.97 on all 4,000): both convolutional
    # models have clearly learned, well ahead of the book's MLP, on the 1,000 test digits
    assert acc["cnn"] >= 0.9 and acc["bn-residual"] >= 0.85, rows
    assert acc["cnn"] > acc["mlp"] + 0.05, rows
    assert [int(m[1]) for m in epoch_lines(done.stdout)] == [4, 4, 4]  # each model's last
    assert len(re.findall(r"^validation, acc: ", done.stdout, re.M)) == 3


def char_text_sample(stdout: str, model: str, chars: int) -> str:
    """The sample a model printed: the text between its header line and the rule."""
    header = f"{model} sample ({chars} characters, temperature 0.7):\n"
    assert header in stdout, stdout
    return stdout.split(header)[1].split("\n" + "-" * 40 + "\n")[0]


def test_char_text_example_beats_the_unigram_baseline_and_samples_text() -> None:
    done = run_script("char_text.py", "--epochs", "2", "--chars", "40000", "--context", "16",
                      "--sample-chars", "60", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Python "), done.stdout
    baseline = float(re.search(r"^unigram baseline: (\d\.\d{3}) bits/char on the validation "
                               r"text$", done.stdout, re.M)[1])
    table = done.stdout.split("after 2 epochs:\n")[1].splitlines()
    assert table[0].split() == ["model", "params", "val", "bits/char", "val", "acc", "seconds"]
    assert table[1].split() == ["unigram", "96", f"{baseline:.3f}"]
    rows = [re.fullmatch(r"(\S+) +([\d,]+) +(\d\.\d{3}) +(\d\.\d{3}) +(\d+\.\d)", row)
            for row in table[2:]]
    assert all(rows) and [r[1] for r in rows] == ["transformer", "lstm"], table
    # positions: a (16, 128) table; the LSTM's count does not depend on the window
    assert [int(r[2].replace(",", "")) for r in rows] == [429_921 - 48 * 128, 359_841]
    bits = {r[1]: float(r[3]) for r in rows}
    # 2 x 71 steps on 36,000 characters (seeds 0-2: transformer 2.29-2.31, LSTM 2.48-2.58
    # bits against the unigram's 4.07): both a full bit below the baseline at least
    assert bits["transformer"] < baseline - 1.0 and bits["lstm"] < baseline - 1.0, table
    for model in ("transformer", "lstm"):
        assert len(char_text_sample(done.stdout, model, 60)) == 60
    assert "samples continue the first 16 validation characters: '" in done.stdout
    assert [int(m[1]) for m in epoch_lines(done.stdout)] == [1, 2] * 2
