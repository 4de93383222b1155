"""`funcnn train --data-dir DIR` and `funcnn evaluate MODEL --data-dir DIR`: a directory
of `.npy` files streamed from disk (`funcnn.cli.npy_data`), run in-process through
`funcnn.cli.main`: a classifier trained on three blobs and evaluated, the regression model
uint8 inputs and floating targets make, the figures measured block by block, and bad
directories rejected in one line before any training.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pytest

import funcnn as fn
from funcnn import checkpoint
from funcnn.cli import main, npy_data
from funcnn.cli.model_spec import build_network, load_model, loss_and_metric, save_model
from funcnn.nn import init_shapes

FEATURES = 10


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 10 dimensions, centres about 9 standard deviations apart."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(3, FEATURES)) * 2.0
    y = rng.integers(0, 3, n)
    return (centres[y] + rng.normal(size=(n, FEATURES))).astype(np.float32), y


def write(directory: Path, **arrays: np.ndarray) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(directory / f"{name}.npy", array, allow_pickle=array.dtype == object)
    return directory


def run(capsys: pytest.CaptureFixture[str], *args: object, status: int = 0) -> str:
    """`funcnn ARGS` in-process: its stdout (status 0) or its one stderr line."""
    code = main(["--no-compile-cache", *map(str, args)])
    captured = capsys.readouterr()
    assert code == status, captured.err
    if status:
        assert captured.out == "" and len(captured.err.splitlines()) == 1, captured
        return captured.err
    return captured.out


def figures(stdout: str) -> dict[str, tuple[float, float]]:
    return {split: (float(loss), float(acc)) for split, loss, acc in re.findall(
        r"^(train|test) +loss (\S+)  accuracy (\d\.\d{4})", stdout, re.M)}


@pytest.fixture(scope="module")
def blob_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = blobs(400, 1)
    x_test, y_test = blobs(200, 2)
    return write(tmp_path_factory.mktemp("blobs"), x_train=x, y_train=y.astype(np.int64),
                 x_test=x_test, y_test=y_test.astype(np.uint8))


class Trained(NamedTuple):
    path: Path
    stdout: str


@pytest.fixture(scope="module")
def blob_model(blob_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """`funcnn train --data-dir` on the blobs (4 epochs of 13 batches), once per module."""
    path = tmp_path_factory.mktemp("model") / "blobs.safetensors"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["--no-compile-cache", "train", "--data-dir", str(blob_dir), "--epochs",
                     "4", "--batch-size", "32", "--lr", "0.01", "--hidden", "16", "--out",
                     str(path), "--no-progress"])
    assert code == 0, printed.getvalue()
    return Trained(path, printed.getvalue())


def test_train_on_a_directory_then_evaluate_it(blob_dir: Path, blob_model: Trained,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out, model_path = blob_model.stdout, blob_model.path
    assert out.splitlines()[0] == (
        f"{blob_dir.resolve()}: 400 train / 200 test samples, inputs (10,), 3 classes")
    trained = figures(out)
    assert set(trained) == {"train", "test"}
    assert 0.9 < trained["test"][1] <= 1.0, out  # chance is 1/3; measured 1.0
    meta = checkpoint.read_metadata(model_path)
    assert meta["data"]["dataset"] == str(blob_dir.resolve())
    assert meta["labels"] == ["0", "1", "2"]
    assert meta["model"]["n_outputs"] == 3 and meta["model"]["output"] == "softmax"
    assert meta["preprocessing"]["kind"] == "identity"  # float inputs are used as they are
    assert meta["training"]["streamed"] is True and meta["training"]["batch_size"] == 32
    assert len(meta["history"]["loss"]) == 4
    assert meta["history"]["loss"][-1] < 0.5 * meta["history"]["loss"][0]
    # `evaluate` finds the directory from the model file; --data-dir names it.
    found = run(capsys, "evaluate", model_path)
    assert found.splitlines()[0] == f"{model_path}: {blob_dir.resolve()} test split"
    assert f"accuracy {trained['test'][1]:.4f}  (200 samples)" in found
    train_part = run(capsys, "evaluate", model_path, "--data-dir", blob_dir, "--split",
                     "train")
    assert f"accuracy {trained['train'][1]:.4f}  (400 samples)" in train_part
    summary = run(capsys, "summary", model_path)
    assert f"a classifier of {blob_dir.resolve()} (3 classes: 0, 1, 2)" in summary


def test_figures_are_measured_in_blocks_like_one_evaluate(
        blob_dir: Path, blob_model: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 80 rows (80, 80 and 40) weigh like one evaluate of all 200."""
    model = load_model(blob_model.path)
    monkeypatch.setattr(npy_data, "BLOCK_BYTES", 80 * 4 * FEATURES)
    part = npy_data.open_directory(blob_dir).test
    assert part is not None
    assert list(npy_data.row_blocks(part.x)) == [(0, 80), (80, 160), (160, 200)]
    blocked = npy_data.measure_part(model, part)
    loss, metric = loss_and_metric(model.info.config, None)
    whole = fn.evaluate(model.net, model.params, model.state, loss, np.asarray(part.x),
                        np.asarray(part.y, np.int32), metric=metric)
    np.testing.assert_allclose(blocked, (float(whole.loss), float(whole.accuracy)),
                               rtol=1e-6)


def test_uint8_inputs_and_floating_targets_make_a_regression(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What `train` would build (nothing trains: the model is saved with zero weights and
    bias 0.5): a linear output for (N,) floats, uint8 inputs scaled by their range; the
    batches it reads and the figures `evaluate` gives."""
    from funcnn.cli.commands import TrainOptions

    rng = np.random.default_rng(3)
    x = rng.integers(3, 250, (256, 2, 3), dtype=np.uint8)
    y = (x.reshape(256, 6) @ rng.normal(size=6) / 255.0).astype(np.float64)  # (N,): 1 output
    directory = write(tmp_path / "reg", x_train=x, y_train=y)
    opts = TrainOptions(str(directory), (4,), "relu", "adam", 1e-3, 0.0, None, 0.0, 0.0, 1,
                        64, 0, None, False, data_dir=directory)
    data = npy_data.open_directory(directory)
    info = npy_data.directory_model(opts, data)
    assert npy_data.describe(data, info).endswith(
        ": 256 train samples, inputs (2, 3), regression, 1 output")
    assert (info.config.output, info.config.n_outputs, info.label_names) == ("linear", 1, ())
    assert info.preprocessing == ("min_max", float(x.min()), float(x.max()), -1.0, 1.0)
    assert info.precision == pytest.approx(np.std(y) / 250.0, rel=1e-9)
    xs, ys = npy_data.views(info, data.train)
    scaled = (x.astype(np.float32) - x.min()) / float(x.max() - x.min()) * 2 - 1
    rows = np.array([5, 0, 255])
    np.testing.assert_allclose(xs[rows], scaled[rows], atol=1e-6)
    assert xs[rows].dtype == np.float32 and ys[rows].dtype == np.float32
    np.testing.assert_array_equal(ys[rows], y[rows, None].astype(np.float32))
    net = build_network(info.config)
    params, state = init_shapes(net, info.config.input_shape)
    params = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), params)
    params["3_dense"]["b"] = np.full((1,), 0.5, np.float32)  # predicts 0.5 everywhere
    model_path = tmp_path / "reg.safetensors"
    save_model(model_path, info, params, state, net)
    out = run(capsys, "evaluate", model_path, "--split", "train")
    mse = float(np.mean((y.astype(np.float32) - 0.5) ** 2))
    assert re.search(rf"^train +loss {mse:.4g}  accuracy 0\.0000  \(256 samples\)$", out,
                     re.M), (out, mse)


def test_a_model_of_a_named_dataset_evaluates_on_a_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A spiral model (untrained, constant parameters) on its test split saved as .npy."""
    from funcnn.cli.dataset_splits import load_splits
    from funcnn.cli.model_spec import ModelConfig, ModelInfo, Preprocessing

    config = ModelConfig((2,), (4,), "relu", "softmax", 3)
    net = build_network(config)
    params, state = init_shapes(net, config.input_shape)
    params = jax.tree.map(lambda leaf: np.full(leaf.shape, 0.1, leaf.dtype), params)
    model_path = tmp_path / "spiral.safetensors"
    save_model(model_path, ModelInfo(config, ("a", "b", "c"), "spiral", 0, 30, None,
                                     Preprocessing(), None, {}, {}, {}), params, state, net)
    test = load_splits("spiral", 0, 30).test
    directory = write(tmp_path / "spiral", x_train=test.x, y_train=test.y)
    from_dir = run(capsys, "evaluate", model_path, "--data-dir", directory, "--split", "train")
    from_name = run(capsys, "evaluate", model_path)
    assert re.sub("^train ", "test  ", from_dir.splitlines()[1]) == from_name.splitlines()[1]
    assert from_name.splitlines()[1].endswith("(90 samples)")


X = np.zeros((6, 2), np.float32)
LABELS = np.array([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize(("arrays", "pattern"), [
    ({"y_train": LABELS}, r"load_npy_directory: .*/d has no x_train\.npy"),
    ({"x_train": X, "y_train": LABELS[:5]},
     r"/d: x_train\.npy holds 6 samples but y_train\.npy 5; they need one target per sample"),
    ({"x_train": np.array([["a", "b"]] * 6), "y_train": LABELS},
     r"x_train\.npy: holds <U1 values; expected real numbers \(integers or floats\)"),
    ({"x_train": X, "y_train": LABELS.astype(bool)},
     r"y_train\.npy: holds bool values; expected integer class labels or floating"),
    ({"x_train": X, "y_train": np.array([None, 1, 2, 0, 1, 2], dtype=object)},
     r"load_npy_directory: .*/y_train\.npy is not a plain \.npy array \(Array can't be "
     r"memory-mapped: Python objects in dtype"),
    ({"x_train": X[:, 0], "y_train": LABELS},
     r"x_train\.npy: has shape \(6,\); expected samples \(N, features\.\.\.\)"),
    ({"x_train": X, "y_train": LABELS[:, None]},
     r"y_train\.npy: integer labels must have shape \(N,\), got \(6, 1\)"),
    ({"x_train": X, "y_train": LABELS - 1},
     r"y_train\.npy: holds the label -1; class labels must be 0, 1, \.\.\., K-1"),
    ({"x_train": X, "y_train": LABELS * 0}, r"every label is 0; a classifier needs labels"),
    ({"x_train": X, "y_train": LABELS, "x_test": X},
     r"/d: has x_test\.npy but no y_test\.npy; give both test files or neither"),
    ({"x_train": X, "y_train": LABELS, "x_test": X[:, :1], "y_test": LABELS},
     r"x_test\.npy has samples of shape \(1,\), x_train\.npy of shape \(2,\)"),
    ({"x_train": X, "y_train": LABELS, "x_test": X, "y_test": X[:, 0]},
     r"y_test\.npy \(float32, \(6,\)\) holds other targets than y_train\.npy \(int64"),
    ({"x_train": X, "y_train": np.ones(6)}, r"every target is the same value"),
])
def test_bad_directories_are_one_line(arrays: dict[str, np.ndarray], pattern: str,
                                      tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path / "d", **arrays)
    out = tmp_path / "m.safetensors"
    err = run(capsys, "train", "--data-dir", directory, "--batch-size", 2, "--out", out,
              status=1)
    assert re.fullmatch(rf"funcnn: error: .*{pattern}.*\n", err), err
    assert not out.exists()


@pytest.mark.parametrize(("args", "pattern", "status"), [
    (["--dataset", "digits"], r"argument --dataset: not allowed with argument --data-dir", 2),
    (["--samples", "50"], r"--samples applies to spiral, vertical, sine only, not --data-dir",
     2),
    (["--model", "cnn"], r"--data-dir trains a Dense network \(--model mlp\)", 2),
    (["--batch-size", "full"], r"--batch-size full would read the whole training set", 2),
    (["--batch-size", "7"], r"--batch-size 7 is larger than the 6 training samples of", 1),
    ([], r"load_npy_directory: .*/nowhere is not a directory", 1),
])
def test_data_dir_argument_errors(args: list[str], pattern: str, status: int, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "nowhere" if not args else write(tmp_path / "d", x_train=X,
                                                            y_train=LABELS)
    err = run(capsys, "train", "--data-dir", directory, *args, "--out",
              tmp_path / "m.safetensors", status=status)
    assert re.fullmatch(rf"funcnn: error: .*{pattern}.*\n", err), err


def test_evaluate_errors(blob_dir: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    """Untrained models (nothing compiles): wrong split, wrong inputs, a directory gone."""
    from funcnn.cli.commands import TrainOptions

    moved = write(tmp_path / "moved", x_train=X, y_train=LABELS)
    opts = TrainOptions(str(moved), (4,), "relu", "adam", 1e-3, 0.0, None, 0.0, 0.0, 1, 2, 0,
                        None, False, data_dir=moved)
    info = npy_data.directory_model(opts, npy_data.open_directory(moved))
    net = build_network(info.config)
    params, state = init_shapes(net, info.config.input_shape)
    params = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), params)
    model_path = tmp_path / "m.safetensors"
    save_model(model_path, info, params, state, net)
    cases = [
        (["--split", "validation"], r"a \.npy directory has train and test parts only"),
        ([], r"/moved: has no x_test\.npy and y_test\.npy; use --split train"),
        (["--data-dir", blob_dir], r"takes samples of shape \(2,\), but .*'s test part has "
                                   r"samples of shape \(10,\)"),
    ]
    for args, pattern in cases:
        err = run(capsys, "evaluate", model_path, *args, status=1)
        assert re.fullmatch(rf"funcnn: error: .*{pattern}.*\n", err), err
    three = write(tmp_path / "three", x_train=X, y_train=LABELS + 1)
    err = run(capsys, "evaluate", model_path, "--data-dir", three, "--split", "train",
              status=1)
    assert "the model has 3 classes but" in err and "holds labels 1..3" in err
    for name in ("x_train", "y_train"):
        (moved / f"{name}.npy").unlink()
    moved.rmdir()
    err = run(capsys, "evaluate", model_path, status=1)
    assert re.search(r"the model was trained on the \.npy directory .*/moved, which is gone; "
                     r"give --data-dir DIR", err), err
