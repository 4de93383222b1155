"""The `funcnn` console script, run as a subprocess: `demo`, the train -> evaluate ->
predict round trip on scikit-learn's digits, `summary`, and errors that end in one line.

Argument checks that fail before any data is touched also run in-process through
`funcnn.cli.main` (same code, no interpreter start-up).
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import FitResult, History, NonFiniteLossError, checkpoint, predict
from funcnn.cli import main, one_line
from funcnn.cli.dataset_splits import load_splits
from funcnn.cli.demo import PLOTS
from funcnn.cli.model_spec import (
    ModelConfig,
    ModelInfo,
    Preprocessing,
    build_network,
    load_model,
    params_template,
    save_model,
)
from funcnn.cli.plots import confusion_matrix
from funcnn.data import fit_min_max

FUNCNN = Path(sys.executable).parent / "funcnn"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRAIN_EPOCHS = 2  # the quick demo's digit run has the same length, so it shares compilations


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every subprocess: a private compilation cache shared by this
    module's runs, CPU only, and rank promotion as strict as in the test process."""
    env = {k: v for k, v in os.environ.items() if k != "FUNCNN_DEBUG"}
    env["FUNCNN_CACHE"] = str(tmp_path_factory.mktemp("jax-cache"))
    env["JAX_PLATFORMS"] = "cpu"
    env["JAX_NUMPY_RANK_PROMOTION"] = "raise"
    return env


def run_cli(env: dict[str, str], *args: object) -> subprocess.CompletedProcess[str]:
    assert FUNCNN.is_file(), f"the console script is missing: {FUNCNN}"
    return subprocess.run([str(FUNCNN), *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def succeeds(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails_with(result: subprocess.CompletedProcess[str], pattern: str, status: int = 1) -> None:
    """Exit `status`, and exactly one stderr line `funcnn: error: ...` matching `pattern`."""
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("funcnn: error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert result.stdout == ""


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


# ----------------------------------------------------------------------------- demo


def test_demo_quick_prints_figures_and_writes_plots(cli_env: dict[str, str],
                                                    tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "demo-out"
    stdout = succeeds(run_cli(cli_env, "demo", "--quick", "--out", out, "--no-progress"))
    assert f"to {out}/" in stdout
    figures = re.findall(r"^  (train|validation|test) +accuracy (\d\.\d{4})  loss ",
                         stdout, re.M)
    assert [split for split, _ in figures] == ["train", "validation", "test"] * 2
    spiral_test, digits_test = float(figures[2][1]), float(figures[5][1])
    assert 0.45 < spiral_test <= 1.0  # 500 epochs: well above chance (1/3), not yet fitted
    assert digits_test > 0.85  # two epochs of the digit net already reach about 0.94
    for name in PLOTS:
        width, height = png_size(out / name)
        assert 500 <= width <= 1500 and 400 <= height <= 800, (name, width, height)
        with Image.open(out / name) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.float32)
        assert pixels.std() > 10.0, f"{name} looks blank"
    for name in ("spiral", "digits"):
        assert load_model(out / f"{name}.safetensors").info.dataset == name
    assert any(Path(cli_env["FUNCNN_CACHE"]).iterdir()), "the compilation cache stayed empty"


# ----------------------------------------------------------------------------- round trip


class TrainRun(NamedTuple):
    path: Path
    stdout: str


@pytest.fixture(scope="module")
def digits_run(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> TrainRun:
    path = tmp_path_factory.mktemp("model") / "digits.safetensors"
    stdout = succeeds(run_cli(cli_env, "train", "--dataset", "digits", "--epochs", TRAIN_EPOCHS,
                              "--seed", 0, "--out", path, "--no-progress"))
    return TrainRun(path, stdout)


@pytest.fixture(scope="module")
def digits_test() -> tuple[np.ndarray, np.ndarray]:
    return load_splits("digits", 0).test


def test_train_reports_and_saves_everything_to_rebuild(digits_run: TrainRun) -> None:
    assert digits_run.stdout.splitlines()[0] == (
        "digits: 1258 train / 270 validation / 269 test samples, inputs (8, 8), 10 classes")
    printed = dict(re.findall(r"^(train|validation) +loss \S+  accuracy (\d\.\d{4})$",
                              digits_run.stdout, re.M))
    assert f"saved the model to {digits_run.path}" in digits_run.stdout
    meta = checkpoint.read_metadata(digits_run.path)
    assert meta["model"] == {"input_shape": [8, 8], "hidden": [64], "activation": "relu",
                             "output": "softmax", "n_outputs": 10, "dropout": 0.0, "l2": 0.0,
                             "init": "glorot", "init_scale": 0.01}
    assert meta["funcnn_model"] == 2
    assert [layer["kind"] for layer in meta["network"]["children"]] == [
        "Flatten", "Dense", "ReLU", "Dense", "Softmax"]
    assert meta["labels"] == [str(d) for d in range(10)]
    assert meta["data"] == {"dataset": "digits", "seed": 0, "samples": None,
                            "pixel_range": [0.0, 16.0]}
    assert meta["preprocessing"] == {"kind": "min_max", "data_min": 0.0, "data_max": 16.0,
                                     "low": -1.0, "high": 1.0}
    assert meta["training"] == {"optimizer": "adam", "learning_rate": 0.005, "decay": 0.001,
                                "momentum": None, "epochs": TRAIN_EPOCHS, "batch_size": 32}
    history = meta["history"]
    assert history["epoch"] == list(range(TRAIN_EPOCHS))
    assert len(history["loss"]) == len(history["val_accuracy"]) == TRAIN_EPOCHS
    assert history["loss"][-1] < history["loss"][0]
    # The validation figure after the last epoch is the one printed and stored.
    assert float(printed["validation"]) == pytest.approx(history["val_accuracy"][-1], abs=1e-4)
    assert float(printed["train"]) == pytest.approx(meta["results"]["train_accuracy"], abs=1e-4)


def _classes_and_confidences(path: Path, x_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The saved model's predictions for raw digits, computed in this process."""
    model = load_model(path)
    x = (x_raw.astype(np.float32) - 8.0) / 8.0  # 0..16 -> [-1, 1], the stored scaling
    probs = np.asarray(predict(model.net, model.params, model.state, x))
    return probs.argmax(axis=1), probs.max(axis=1)


def test_evaluate_prints_the_test_split_figures(cli_env: dict[str, str], digits_run: TrainRun,
                                                digits_test: tuple[np.ndarray, np.ndarray]
                                                ) -> None:
    stdout = succeeds(run_cli(cli_env, "evaluate", digits_run.path))
    match = re.search(r"^test +loss (\S+)  accuracy (\d\.\d{4})  \((\d+) samples\)$", stdout,
                      re.M)
    assert match, stdout
    x_test, y_test = digits_test
    classes, _ = _classes_and_confidences(digits_run.path, x_test)
    assert int(match[3]) == y_test.shape[0] == 269
    assert float(match[2]) == pytest.approx(np.mean(classes == y_test), abs=1e-4)
    assert float(match[2]) > 0.85
    # The same split as the one `train` held out and measured.
    stored = checkpoint.read_metadata(digits_run.path)["results"]["test_accuracy"]
    assert float(match[2]) == pytest.approx(stored, abs=1e-4)


def test_predict_images_and_arrays(cli_env: dict[str, str], digits_run: TrainRun,
                                   digits_test: tuple[np.ndarray, np.ndarray],
                                   tmp_path: Path) -> None:
    from PIL import Image

    x_test, _ = digits_test
    samples = x_test[:3]
    files = []
    for i, digit in enumerate(samples):  # light ink on black, like the training data
        files.append(tmp_path / f"digit{i}.png")
        Image.fromarray(np.round(digit * 255 / 16).astype(np.uint8)).save(files[-1])
    # Dark ink on white paper at 4x the size: inverted (auto) and resized to 8x8.
    paper = tmp_path / "paper.png"
    big = Image.fromarray(255 - np.round(samples[0] * 255 / 16).astype(np.uint8))
    big.resize((32, 32), Image.Resampling.NEAREST).save(paper)
    np.save(tmp_path / "batch.npy", x_test[:4])
    np.save(tmp_path / "one.npy", x_test[5])
    stdout = succeeds(run_cli(cli_env, "predict", digits_run.path, *files, paper,
                              tmp_path / "batch.npy", tmp_path / "one.npy"))
    lines = stdout.splitlines()
    names = [*map(str, files), str(paper), *(f"{tmp_path / 'batch.npy'}[{i}]" for i in range(4)),
             str(tmp_path / "one.npy")]
    parsed = [re.fullmatch(r"(.+): (\d) \(confidence (\d\.\d{4})\)", line) for line in lines]
    assert all(parsed), lines
    assert [m[1] for m in parsed if m] == names
    labels = np.array([int(m[2]) for m in parsed if m])
    confidences = np.array([float(m[3]) for m in parsed if m])
    # Reference: the arrays through the model in this process; PNG pixels are rounded to
    # 1/255, which moves confidences by far less than 0.01.
    reference = np.concatenate([samples, x_test[:4], x_test[5:6]])
    ref_labels, ref_conf = _classes_and_confidences(digits_run.path, reference)
    keep = [0, 1, 2, 4, 5, 6, 7, 8]
    np.testing.assert_array_equal(labels[keep], ref_labels)
    np.testing.assert_allclose(confidences[keep], ref_conf, atol=0.01)
    np.testing.assert_allclose(confidences[4:], ref_conf[3:], atol=2e-4)  # .npy: exact input
    # The paper image: Pillow's grayscale + bilinear resize + inversion as the reference.
    with Image.open(paper) as image:
        shrunk = np.asarray(image.convert("L").resize((8, 8), Image.Resampling.BILINEAR))
    paper_label, paper_conf = _classes_and_confidences(
        digits_run.path, ((255.0 - shrunk) * 16 / 255)[None])
    assert labels[3] == paper_label[0]
    assert confidences[3] == pytest.approx(paper_conf[0], abs=2e-3)


def test_summary_prints_the_layer_table(cli_env: dict[str, str], digits_run: TrainRun) -> None:
    stdout = succeeds(run_cli(cli_env, "summary", digits_run.path))
    assert stdout.startswith(f"{digits_run.path}: a classifier of digits (10 classes: 0, 1, ")
    assert f"trained: {TRAIN_EPOCHS} epochs, adam lr 0.005 decay 0.001, batch 32" in stdout
    assert re.search(r"^1_dense +Dense +\(None, 64\) +4,160$", stdout, re.M)  # 64*64 + 64
    assert re.search(r"^3_dense +Dense +\(None, 10\) +650$", stdout, re.M)  # 64*10 + 10
    assert stdout.rstrip().endswith("total params: 4,810")


# ----------------------------------------------------------------------------- errors


def test_argument_errors_are_one_line(cli_env: dict[str, str]) -> None:
    fails_with(run_cli(cli_env, "train", "--dataset", "cifar", "--out", "m.safetensors"),
               r"argument --dataset: invalid choice: 'cifar' .*see `funcnn train --help`",
               status=2)


def test_file_errors_are_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    fails_with(run_cli(cli_env, "evaluate", tmp_path / "missing.safetensors"),
               r"missing\.safetensors: no such checkpoint file")
    text = tmp_path / "notes.safetensors"
    text.write_text("not a checkpoint")
    fails_with(run_cli(cli_env, "summary", text), r"notes\.safetensors: not a funcnn checkpoint")


def test_incompatible_inputs_are_one_line(cli_env: dict[str, str], digits_run: TrainRun,
                                          tmp_path: Path) -> None:
    mnist_like = tmp_path / "mnist.npy"
    np.save(mnist_like, np.zeros((3, 28, 28), np.float32))
    fails_with(run_cli(cli_env, "predict", digits_run.path, mnist_like),
               r"mnist\.npy: holds an array of shape \(3, 28, 28\), but the model \(trained on "
               r"digits\) takes samples of shape \(8, 8\)")
    fails_with(run_cli(cli_env, "evaluate", digits_run.path, "--dataset", "spiral"),
               r"takes samples of shape \(8, 8\), but data set spiral has samples of shape "
               r"\(2,\)")
    # Parameters that do not fit the network the metadata describes.
    meta = checkpoint.read_metadata(digits_run.path)
    arrays = checkpoint.read_arrays(digits_run.path)
    meta["network"]["children"][1]["config"]["features"] = 32  # the layer spec is the network
    mismatched = tmp_path / "mismatched.safetensors"
    tree = {"params": {layer: {leaf: arrays[f"params/{layer}/{leaf}"] for leaf in ("w", "b")}
                       for layer in ("1_dense", "3_dense")}}
    checkpoint.save_checkpoint(mismatched, tree, metadata=meta)
    fails_with(run_cli(cli_env, "summary", mismatched),
               r"shape mismatch at 'params/1_dense/b': file has \(64,\), template expects "
               r"\(32,\)")


@pytest.mark.parametrize(("args", "pattern"), [
    ([], r"a command is required: demo, train, evaluate, predict or summary"),
    (["train", "--dataset", "digits", "--hidden", "64,x"],
     r"argument --hidden: expected comma-separated positive layer sizes such as 64,64, got "
     r"'64,x'"),
    (["train", "--dataset", "digits", "--momentum", "0.9"],
     r"--momentum applies to --optimizer sgd only, not adam"),
    (["train", "--dataset", "digits", "--dropout", "1.5"],
     r"argument --dropout: expected a number in \[0, 1\), got '1.5'"),
    (["train", "--dataset", "spiral", "--lr", "0"],
     r"argument --lr: expected a number in \(0, inf\), got '0'"),
    (["train", "--dataset", "spiral", "--epochs", "0"],
     r"argument --epochs: expected a positive integer, got '0'"),
    (["train", "--dataset", "spiral", "--batch-size", "many"],
     r"argument --batch-size: expected a positive integer or 'full', got 'many'"),
    (["train", "--dataset", "digits", "--samples", "50"],
     r"--samples applies to spiral, vertical, sine only, not digits"),
    (["train", "--dataset", "digits", "--activation", "softplus"],
     r"argument --activation: invalid choice: 'softplus'"),
    (["train", "--dataset", "digits", "--out", "/nowhere/m.safetensors"],
     r"--out /nowhere/m\.safetensors: directory /nowhere does not exist"),
    (["demo", "--quick", "--epochs-scale", "0.5"],
     r"argument --epochs-scale: not allowed with argument --quick \(see `funcnn demo --help`\)"),
])
def test_argument_errors_in_process(args: list[str], pattern: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.safetensors"
    out_args = [] if not args or "--out" in args or args[0] == "demo" else ["--out", str(out)]
    assert main(["--no-compile-cache", *args, *out_args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert re.fullmatch(rf"funcnn: error: .*{pattern}.*\n", captured.err), captured.err
    assert not out.exists()


def _untrained_model(path: Path, *, image: bool) -> Path:
    """A small model saved without training: 8x8 images in 0..16 (like digits) or 2-D points
    (like spiral), 3 classes; constant parameters (nothing to compile)."""
    shape, pixels = ((8, 8), (0.0, 16.0)) if image else ((2,), None)
    config = ModelConfig(shape, (4,), "relu", "softmax", 3)
    params, state = params_template(build_network(config), config)
    params = jax.tree.map(lambda leaf: np.full(leaf.shape, 0.1, leaf.dtype), params)
    info = ModelInfo(config, ("a", "b", "c"), "digits" if image else "spiral", 0,
                     None if image else 100, pixels, Preprocessing(), None, {}, {}, {})
    save_model(path, info, params, state)
    return path


def test_in_process_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _untrained_model(tmp_path / "points.safetensors", image=False)
    image_model = _untrained_model(tmp_path / "images.safetensors", image=True)
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    (tmp_path / "notes.txt").write_text("1 2")
    plain = tmp_path / "plain.safetensors"
    checkpoint.save_checkpoint(plain, {"w": np.ones(3, np.float32)})
    broken = tmp_path / "broken.png"
    broken.write_bytes(PNG_SIGNATURE + b"truncated")
    cases = [
        (["evaluate", str(plain)],
         r"plain\.safetensors: a funcnn checkpoint, but not a model saved by `funcnn train`"),
        (["predict", str(image_model), str(broken)], r"broken\.png: cannot read as an image"),
        (["predict", str(model), str(image)],
         r"digit\.png: the model \(trained on spiral\) takes samples of shape \(2,\), not "
         r"images; give them as \.npy"),
        (["predict", str(model), str(tmp_path)], r"is a directory; give image or \.npy files"),
        (["predict", str(model), str(tmp_path / "notes.txt")],
         r"notes\.txt: unknown file type; give image files"),
        (["train", "--dataset", "digits", "--batch-size", "5000", "--out",
          str(tmp_path / "m.safetensors")],
         r"--batch-size 5000 is larger than the 1258 training samples of digits"),
    ]
    for args, pattern in cases:
        assert main(["--no-compile-cache", *args]) == 1
        err = capsys.readouterr().err
        assert re.fullmatch(rf"funcnn: error: .*{pattern}.*\n", err), err


def test_error_messages_become_one_line() -> None:
    diverged = NonFiniteLossError(2, FitResult({}, {}, None, History()))
    assert one_line(diverged) == ("training diverged: the loss became non-finite in epoch 3; "
                                  "try a smaller --lr")
    assert one_line(ValueError("first line\n  second   line")) == "first line second line"
    assert one_line(KeyError()) == "KeyError"


def test_help_documents_the_compilation_cache(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "compilation cache is on" in text
    assert "$FUNCNN_CACHE (default ~/.cache/funcnn/jax)" in text
    assert "--no-compile-cache" in text


# ----------------------------------------------------------------------------- helpers


def test_preprocessing_matches_the_library_scaler() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 0.7
    prep = Preprocessing.fit_min_max(x)
    scaler = fit_min_max(jnp.asarray(x), per_feature=False)
    np.testing.assert_allclose(prep.apply(x), np.asarray(scaler.transform(x)), atol=1e-6)
    assert prep.apply(x).min() == -1.0 and prep.apply(x).max() == pytest.approx(1.0)
    np.testing.assert_array_equal(Preprocessing().apply(x), x)


def test_confusion_matrix_counts() -> None:
    counts = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    with pytest.raises(ValueError, match=r"predicted labels must lie in \[0, 3\), found 0..3"):
        confusion_matrix(np.array([0, 1]), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="2 true labels but 3 predictions"):
        confusion_matrix(np.array([0, 1]), np.array([0, 1, 2]), 3)


# ----------------------------------------------------------------------------- cnn


def _main_output(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    """Run `funcnn` in-process; its stdout, after checking that it succeeded."""
    status = main(["--no-compile-cache", *map(str, args)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out


def test_cnn_trains_saves_and_predicts_an_image(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    path = tmp_path / "cnn.safetensors"
    stdout = _main_output(capsys, "train", "--dataset", "digits", "--model", "cnn",
                          "--filters", "4", "--hidden", "8", "--epochs", 2, "--batch-size",
                          "full", "--out", path, "--no-progress")
    assert f"saved the model to {path}" in stdout
    meta = checkpoint.read_metadata(path)
    assert meta["model"]["input_shape"] == [8, 8, 1]
    assert (meta["model"]["architecture"], meta["model"]["filters"]) == ("cnn", [4])
    kinds = [layer["kind"] for layer in meta["network"]["children"]]
    assert kinds == ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense", "ReLU", "Dense",
                     "Softmax"]
    model = load_model(path)
    assert model.params["0_conv2d"]["w"].shape == (3, 3, 1, 4)
    # An image written with Pillow and a .npy of (N, 8, 8) images, as for a Dense model.
    x_test, _ = load_splits("digits", 0).test
    image = tmp_path / "digit.png"
    Image.fromarray(np.round(x_test[0] * 255 / 16).astype(np.uint8)).save(image)
    np.save(tmp_path / "two.npy", x_test[:2])
    lines = _main_output(capsys, "predict", path, image, tmp_path / "two.npy").splitlines()
    parsed = [re.fullmatch(r"(.+): (\d) \(confidence (\d\.\d{4})\)", line) for line in lines]
    assert all(parsed) and [m[1] for m in parsed if m] == [
        str(image), f"{tmp_path / 'two.npy'}[0]", f"{tmp_path / 'two.npy'}[1]"], lines
    scaled = ((x_test[:2] - 8.0) / 8.0)[..., None]  # 0..16 -> [-1, 1], (N, 8, 8, 1)
    probs = np.asarray(predict(model.net, model.params, model.state, scaled))
    assert [int(m[2]) for m in parsed if m] == [*probs.argmax(axis=1)[:1], *probs.argmax(axis=1)]
    np.testing.assert_allclose([float(m[3]) for m in parsed if m][1:], probs.max(axis=1),
                               atol=2e-4)
    summary = _main_output(capsys, "summary", path)
    assert "network: cnn, filters [4] (3x3 conv, 2x2 max pool each), hidden [8]" in summary
    assert re.search(r"^0_conv2d +Conv2D +\(None, 8, 8, 4\) +40$", summary, re.M)


def _format_1_copy(source: Path, target: Path, **model: object) -> Path:
    """`source` (a Dense model) rewritten as a model file of format 1, with `model`
    entries changed."""
    meta = checkpoint.read_metadata(source)
    del meta["network"]
    meta["funcnn_model"] = 1
    meta["model"].update(model)
    arrays = checkpoint.read_arrays(source)
    tree = {"params": {layer: {leaf: arrays[f"params/{layer}/{leaf}"] for leaf in ("w", "b")}
                       for layer in ("1_dense", "3_dense")}}
    checkpoint.save_checkpoint(target, tree, metadata=meta)
    return target


def test_model_files_of_format_1_still_load(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    model = _untrained_model(tmp_path / "new.safetensors", image=True)
    old = load_model(_format_1_copy(model, tmp_path / "old.safetensors"))
    assert [layer.name for layer in old.net.children] == [
        "Flatten", "Dense", "ReLU", "Dense", "Softmax"]
    assert old.params["1_dense"]["w"].shape == (64, 4)
    # Format 1 builds the network from the config: other sizes no longer fit the params.
    wrong = _format_1_copy(model, tmp_path / "wrong.safetensors", hidden=[5])
    assert main(["--no-compile-cache", "summary", str(wrong)]) == 1
    assert re.search(r"shape mismatch at 'params/1_dense/b': file has \(4,\), template "
                     r"expects \(5,\)", capsys.readouterr().err)


def test_bad_network_descriptions_are_one_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    source = _untrained_model(tmp_path / "m.safetensors", image=True)
    arrays = checkpoint.read_arrays(source)
    tree = {"params": {layer: {leaf: arrays[f"params/{layer}/{leaf}"] for leaf in ("w", "b")}
                       for layer in ("1_dense", "3_dense")}}
    cases = [
        ({"kind": "Bogus"}, r"invalid network description \(Bogus: unknown layer kind "
         r"'Bogus'; known kinds: AvgPool1D, "),
        ({"kind": "serial", "children": [{"kind": "Flatten", "config": {"ndim": 2}},
                                         {"kind": "Dense", "config": {"features": 4}}]},
         r"the network gives outputs of shape \(4,\), but the model has 3 outputs"),
        ({"kind": "serial", "children": [{"kind": "Conv2D", "config": {"features": 3,
                                                                      "kernel_size": 3}}]},
         r"invalid network description \(serial\[0\]/Conv2D: expected one example of shape "
         r"\(H, W, C\) \(no batch axis\), got input_shape \(8, 8\)\)"),
    ]
    for network, pattern in cases:
        meta = checkpoint.read_metadata(source)
        meta["network"] = network
        broken = tmp_path / "broken.safetensors"
        checkpoint.save_checkpoint(broken, tree, metadata=meta)
        assert main(["--no-compile-cache", "summary", str(broken)]) == 1
        err = capsys.readouterr().err
        assert re.fullmatch(rf"funcnn: error: .*broken\.safetensors: .*{pattern}.*\n", err), err


@pytest.mark.parametrize(("args", "pattern", "status"), [
    (["--dataset", "spiral", "--model", "cnn"],
     r"--model cnn needs an image dataset \(digits, mnist, fashion-mnist\), not spiral", 2),
    (["--dataset", "digits", "--filters", "8"], r"--filters applies to --model cnn only", 2),
    (["--dataset", "digits", "--model", "cnn", "--filters", "8,8,8,8"],
     r"4 conv blocks do not fit 8x8 images: each halves the size, so at most 3", 1),
])
def test_cnn_argument_errors(args: list[str], pattern: str, status: int, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.safetensors"
    assert main(["--no-compile-cache", "train", *args, "--out", str(out)]) == status
    err = capsys.readouterr().err
    assert re.fullmatch(rf"funcnn: error: .*{pattern}.*\n", err), err
    assert not out.exists()
