"""Files that change without a word: checksummed checkpoints, saving into places that cannot
be written (and `funcnn train` finding that out before it trains), and the saved file's mode."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from funcnn import checkpoint
from funcnn.checkpoint import (
    FORMAT_NAME,
    CheckpointError,
    load_checkpoint,
    read_arrays,
    read_metadata,
    save_checkpoint,
)
from funcnn.cli import main


def small_tree() -> dict[str, Any]:
    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    return {"params": {"0_dense": {"w": w, "b": np.full(3, -0.5, np.float32)}},
            "count": np.asarray(7, np.int32)}


def safetensors_header(path: Path) -> tuple[int, dict[str, Any]]:
    """`(offset of the data buffer, the safetensors JSON header)` of a file."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return 8 + length, json.loads(raw[8 : 8 + length])


def array_bytes(path: Path, name: str) -> tuple[int, int]:
    """The absolute byte range of one stored array."""
    start, header = safetensors_header(path)
    begin, end = header[name]["data_offsets"]
    return start + begin, start + end


def replace_bytes(path: Path, old: bytes, new: bytes) -> None:
    """Edit a file in place; `old` must occur exactly once and keep its length."""
    data = path.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    path.write_bytes(data.replace(old, new))


def flip_bit(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x10
    path.write_bytes(bytes(data))


def digest(array: np.ndarray[Any, Any]) -> str:
    prefix = f"{array.dtype.name} {list(array.shape)}\n".encode()
    return hashlib.sha256(prefix + array.tobytes()).hexdigest()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, small_tree(), metadata={"labels": ["cat", "dog"]})
    return path


# ----------------------------------------------------------------------------- checksums


def test_header_holds_a_sha256_of_every_array_and_version_1_files_still_load(
    saved: Path, tmp_path: Path
) -> None:
    header = safetensors_header(saved)[1]["__metadata__"]
    assert header["format_version"] == "2"
    sums = json.loads(header["sha256"])
    tree = small_tree()
    assert sums["arrays"] == {
        "params/0_dense/w": digest(tree["params"]["0_dense"]["w"]),
        "params/0_dense/b": digest(tree["params"]["0_dense"]["b"]),
        "count": digest(tree["count"]),
    }
    assert sums["metadata"] == hashlib.sha256(header["metadata"].encode()).hexdigest()
    assert sums["paths"] == hashlib.sha256(header["paths"].encode()).hexdigest()
    # A file of format version 1 (no checksums) loads as before, unverified.
    old = tmp_path / "old.safetensors"
    arrays = {"w": np.arange(3, dtype=np.float32)}
    save_file(arrays, old, metadata={"format": FORMAT_NAME, "format_version": "1",
                                     "paths": '["w"]', "metadata": '{"v": 1}'})
    flip_bit(old, array_bytes(old, "w")[0] + 4)
    loaded, metadata = load_checkpoint(old, arrays, as_numpy=True)
    assert metadata == {"v": 1}
    np.testing.assert_array_equal(loaded["w"], [0.0, 1.0 + 2.0**-19, 2.0])


@pytest.mark.parametrize("name", ["params/0_dense/w", "params/0_dense/b", "count"])
def test_a_flipped_bit_in_an_array_is_named(saved: Path, name: str) -> None:
    flip_bit(saved, array_bytes(saved, name)[1] - 1)  # the last byte of the array
    message = (rf"{re.escape(str(saved))}: checksum mismatch at '{re.escape(name)}': the "
               r"array's bytes, dtype or shape changed after it was saved \(a damaged or "
               r"edited file\)")
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(saved, small_tree())
    with pytest.raises(CheckpointError, match=message):
        read_arrays(saved)
    assert read_metadata(saved) == {"labels": ["cat", "dog"]}  # the header is intact


def test_a_changed_dtype_in_the_safetensors_header_is_caught(saved: Path) -> None:
    replace_bytes(saved, b'"count":{"dtype":"I32"', b'"count":{"dtype":"F32"')
    with pytest.raises(CheckpointError, match=r"checksum mismatch at 'count'"):
        read_arrays(saved)


@pytest.mark.parametrize(("old", "new", "entry"), [
    (b"cat", b"cot", "metadata"),
    (b'\\"params/0_dense/b\\", \\"params/0_dense/w\\"',
     b'\\"params/0_dense/w\\", \\"params/0_dense/b\\"', "paths"),  # the leaf order
])
def test_a_changed_header_entry_is_caught(saved: Path, old: bytes, new: bytes, entry: str) -> None:
    replace_bytes(saved, old, new)
    message = (rf"model\.safetensors: checksum mismatch in the header entry '{entry}': it "
               r"changed after the file was saved \(a damaged or edited file\)")
    for reader in (read_metadata, read_arrays, lambda p: load_checkpoint(p, small_tree())):
        with pytest.raises(CheckpointError, match=message):
            reader(saved)


def v2_header(**entries: str) -> dict[str, str]:
    w = np.ones(2, np.float32)
    sums = {"paths": hashlib.sha256(b'["w"]').hexdigest(),
            "metadata": hashlib.sha256(b"{}").hexdigest(), "arrays": {"w": digest(w)}}
    base = {"format": FORMAT_NAME, "format_version": "2", "paths": '["w"]', "metadata": "{}",
            "sha256": json.dumps(sums)}
    return {key: value for key, value in {**base, **entries}.items() if value != "-"}


@pytest.mark.parametrize(("entries", "message"), [
    ({}, None),
    ({"sha256": "-"}, r"corrupt checkpoint header \(entry 'sha256': KeyError\('sha256'\)\)"),
    ({"sha256": '{"paths": "0"}'}, r"corrupt checkpoint header \(entry 'sha256' is not a table "
                                   r"of SHA-256 checksums of the header entries and arrays\)"),
    ({"sha256": json.dumps({"paths": hashlib.sha256(b'["w"]').hexdigest(),
                            "metadata": hashlib.sha256(b"{}").hexdigest(), "arrays": {}})},
     r"corrupt checkpoint header \(the 'sha256' table does not list the stored arrays\)"),
    ({"format_version": "1"}, r"corrupt checkpoint header \(a format version 1 header with "
                              r"checksums\)"),
])
def test_bad_checksum_tables(tmp_path: Path, entries: dict[str, str], message: str | None) -> None:
    path = tmp_path / "h.safetensors"
    save_file({"w": np.ones(2, np.float32)}, path, metadata=v2_header(**entries))
    if message is None:  # the handmade version 2 header itself is valid
        assert load_checkpoint(path, {"w": np.ones(2, np.float32)}, as_numpy=True)[1] == {}
        return
    with pytest.raises(CheckpointError, match=r"h\.safetensors: " + message):
        load_checkpoint(path, {"w": np.ones(2, np.float32)})


# ----------------------------------------------------------------------------- unwritable places


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in which no file can be created: a read-only one, or for root (whom
    permissions do not stop) sysfs's /sys, where nobody can create regular files."""
    if os.name == "posix" and os.geteuid() != 0:
        directory = tmp_path / "read-only"
        directory.mkdir()
        directory.chmod(0o500)
        yield directory
        directory.chmod(0o700)
        return
    sysfs = Path("/sys")
    try:
        (sysfs / ".funcnn-probe").open("x").close()
    except OSError:
        if sysfs.is_dir():
            yield sysfs
            return
    else:
        (sysfs / ".funcnn-probe").unlink()
    pytest.skip("no directory here is unwritable for this user")


def test_saving_into_an_unwritable_directory_names_the_target(unwritable_dir: Path) -> None:
    target = unwritable_dir / "model.safetensors"
    with pytest.raises(
        CheckpointError,
        match=rf"^cannot save checkpoint to '{re.escape(str(target))}': Permission denied$",
    ) as caught:
        save_checkpoint(target, small_tree())
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.EACCES
    assert isinstance(caught.value, ValueError)  # as every other CheckpointError
    assert not target.exists()
    with pytest.raises(CheckpointError, match=r"cannot save checkpoint to .*Permission denied"):
        checkpoint.check_writable(target)


def test_saving_below_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    target = tmp_path / "a_file" / "model.safetensors"
    message = (rf"^cannot save checkpoint to '{re.escape(str(target))}': "
               rf"'{re.escape(str(tmp_path / 'a_file'))}' is not a directory$")
    with pytest.raises(NotADirectoryError, match=message):
        save_checkpoint(target, small_tree())
    with pytest.raises(NotADirectoryError, match=message):
        checkpoint.check_writable(target)


def test_check_writable_leaves_nothing_behind(tmp_path: Path) -> None:
    checkpoint.check_writable(tmp_path / "model.safetensors")
    assert os.listdir(tmp_path) == []
    with pytest.raises(IsADirectoryError, match=r"cannot save checkpoint to .*: it is a directory"):
        checkpoint.check_writable(tmp_path)


def test_a_long_file_name_can_be_saved(tmp_path: Path) -> None:
    """The hidden temp file beside the target must not be longer than a legal target name."""
    target = tmp_path / ("m" * 240 + ".safetensors")
    save_checkpoint(target, small_tree())
    assert os.listdir(tmp_path) == [target.name]
    assert read_arrays(target)["count"] == 7


def test_train_checks_its_output_file_before_training(
    unwritable_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = unwritable_dir / "m.safetensors"
    status = main(["--no-compile-cache", "train", "--dataset", "digits", "--epochs", "1",
                   "--no-progress", "--out", str(out)])
    captured = capsys.readouterr()
    assert (status, captured.out) == (1, "")  # nothing was loaded or trained
    assert captured.err == f"funcnn: error: cannot save checkpoint to '{out}': Permission denied\n"


def test_train_output_below_a_regular_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "m.safetensors"
    assert main(["--no-compile-cache", "train", "--dataset", "digits", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"funcnn: error: --out {out}: {tmp_path / 'a_file'} is not a "
                            "directory\n")


def test_demo_checks_its_output_directory_before_training(
    unwritable_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--no-compile-cache", "demo", "--quick", "--no-progress",
                   "--out", str(unwritable_dir)])
    captured = capsys.readouterr()
    assert (status, captured.out) == (1, "")
    target = unwritable_dir / "spiral.safetensors"
    assert captured.err == (f"funcnn: error: cannot save checkpoint to '{target}': "
                            "Permission denied\n")


# ----------------------------------------------------------------------------- file mode


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.usefixtures("umask")
def test_a_new_checkpoint_gets_the_mode_of_any_new_file(tmp_path: Path) -> None:
    for mask, expected in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        os.umask(mask)
        target = tmp_path / f"m{mask:o}.safetensors"
        save_checkpoint(target, small_tree())
        plain = tmp_path / f"plain{mask:o}.txt"
        plain.write_text("any file")
        assert (mode(target), mode(plain)) == (expected, expected)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.usefixtures("umask")
def test_overwriting_keeps_the_mode_of_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "m.safetensors"
    save_checkpoint(target, small_tree())
    for previous in (0o640, 0o600, 0o664):
        target.chmod(previous)
        save_checkpoint(target, small_tree())
        assert mode(target) == previous
