"""The checkpoint's file system side: where it may be written, the atomic write, opening."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Any, TypeAlias

from safetensors import SafetensorError, TensorSpec, safe_open, serialize_file

from funcnn.checkpoint._format import CheckpointError

StrPath: TypeAlias = str | os.PathLike[str]

_TEMP_NAME_CHARS = 32
"""Characters of the target's name kept in the temp file's, so that `.NAME.<16 hex>.tmp`
stays within the 255 bytes a file name may have wherever the target's name fits."""


def resolve_target(path: StrPath) -> Path:
    """`path` as a Path whose parent is an existing directory and which is not one itself."""
    target = Path(os.fspath(path))
    parent = target.parent
    if not parent.exists():
        raise FileNotFoundError(
            f"cannot save checkpoint to '{target}': parent directory '{parent}' does not exist"
        )
    if not parent.is_dir():
        raise NotADirectoryError(
            f"cannot save checkpoint to '{target}': '{parent}' is not a directory"
        )
    if target.is_dir():
        raise IsADirectoryError(f"cannot save checkpoint to '{target}': it is a directory")
    return target


def check_writable(path: StrPath) -> None:
    """Raise what `save_checkpoint(path, ...)` would for the place alone, writing nothing:
    the checks of `resolve_target`, then the temp file beside `path` created and removed
    (a CheckpointError naming `path` when that fails, e.g. for a read-only directory)."""
    _create_temp(resolve_target(path))[0].unlink()


def write_atomically(target: Path, specs: dict[str, TensorSpec], header: dict[str, str]) -> None:
    """Serialize into a temp file beside `target`, give it the mode `target` should have,
    fsync it, then `os.replace` it over; any failure removes the temp file and raises a
    CheckpointError naming `target`."""
    temp, mode = _create_temp(target)
    try:
        serialize_file(specs, temp, metadata=header)
        os.chmod(temp, mode)
        with open(temp, "r+b") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if isinstance(error, SafetensorError):
            raise CheckpointError(f"cannot save checkpoint to '{target}': {error}") from None
        if isinstance(error, OSError) and not isinstance(error, CheckpointError):
            raise _write_error(target, error) from error
        raise
    _fsync_directory(target.parent)


def _create_temp(target: Path) -> tuple[Path, int]:
    """A new empty hidden temp file beside `target`, and the mode the checkpoint gets: that
    of the file it replaces, else that of any new file (`0o666` less the umask)."""
    temp = target.with_name(f".{target.name[:_TEMP_NAME_CHARS]}.{secrets.token_hex(8)}.tmp")
    try:
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise _write_error(target, error) from error
    try:
        mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(descriptor)
    with contextlib.suppress(OSError):  # no previous file: keep the new file's mode
        mode = stat.S_IMODE(os.stat(target).st_mode) & 0o777  # never set-id bits
    return temp, mode


def _write_error(target: Path, error: OSError) -> CheckpointError:
    """`error` as a CheckpointError naming `target` (not the temp file), same errno."""
    wrapped = CheckpointError(f"cannot save checkpoint to '{target}': {error.strerror or error}")
    wrapped.errno = error.errno
    return wrapped


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def resolve_source(path: StrPath) -> Path:
    """`path` as a Path to an existing regular file, or a clear OSError."""
    source = Path(os.fspath(path))
    if source.is_dir():
        raise IsADirectoryError(f"{source}: is a directory, not a checkpoint file")
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such checkpoint file")
    return source


def open_checkpoint(source: Path) -> Any:
    """The safetensors reader of `source`; unreadable files raise CheckpointError."""
    try:
        return safe_open(source, framework="numpy")
    except SafetensorError as error:
        raise CheckpointError(f"{source}: not a funcnn checkpoint ({error})") from None
