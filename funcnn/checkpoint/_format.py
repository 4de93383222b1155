"""The checkpoint header: its entries, their checks, and the SHA-256 checksums of version 2.

The safetensors header metadata (all strings) holds `format`, `format_version`, `paths`
(JSON list of leaf paths in order), `metadata` (the user's JSON) and, from version 2 on,
`sha256`: JSON `{"paths": hex, "metadata": hex, "arrays": {path: hex}}`, the SHA-256 of the
two header entries' text and of every array (see `array_digest`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from safetensors import SafetensorError

from funcnn.typing import NumpyArray

FORMAT_NAME = "funcnn.checkpoint"
FORMAT_VERSION = 2
"""Version 2 added the `sha256` checksums; version 1 files load unverified."""

RESERVED_NAME = "__metadata__"  # safetensors keeps its header metadata under this name
_FORMAT_KEY = "format"
_VERSION_KEY = "format_version"
_PATHS_KEY = "paths"
_METADATA_KEY = "metadata"
_SUMS_KEY = "sha256"
_CHECKED_ENTRIES = (_PATHS_KEY, _METADATA_KEY)
_DAMAGED = "(a damaged or edited file)"


class CheckpointError(ValueError, OSError):
    """A file that is not a readable funcnn checkpoint, one that does not fit a template,
    or a checkpoint that cannot be written (then `errno` is the system's error number)."""


class Header(NamedTuple):
    """A checked header: leaf paths in order, user metadata, and the arrays' SHA-256 hex
    digests (None for a version 1 file, which has none)."""

    paths: list[str]
    metadata: dict[str, Any]
    digests: dict[str, str] | None


def array_digest(array: NumpyArray) -> str:
    """SHA-256 hex digest of `f"{dtype} {list(shape)}\\n"` (e.g. `float32 [2, 3]`) followed by
    the array's raw C-order bytes, so a changed byte, dtype or shape all show."""
    hasher = hashlib.sha256(f"{array.dtype.name} {list(array.shape)}\n".encode())
    hasher.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
    return hasher.hexdigest()


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_header(arrays: dict[str, NumpyArray], metadata_json: str) -> dict[str, str]:
    """The header entries of `arrays` (`{path: array}` in leaf order) and JSON metadata."""
    entries = {_PATHS_KEY: json.dumps(list(arrays)), _METADATA_KEY: metadata_json}
    sums = {key: _text_digest(entries[key]) for key in _CHECKED_ENTRIES}
    digests = {name: array_digest(array) for name, array in arrays.items()}
    return {
        _FORMAT_KEY: FORMAT_NAME,
        _VERSION_KEY: str(FORMAT_VERSION),
        **entries,
        _SUMS_KEY: json.dumps({**sums, "arrays": digests}),
    }


def read_header(source: Path, handle: Any) -> Header:
    """The checked header of an open file: format marker, version, checksums of the header
    entries (version 2 on), leaf paths against the stored arrays, metadata."""
    header: dict[str, str] = handle.metadata() or {}
    if header.get(_FORMAT_KEY) != FORMAT_NAME:
        raise CheckpointError(
            f"{source}: not a funcnn checkpoint (a safetensors file without the "
            f"'{_FORMAT_KEY}: {FORMAT_NAME}' marker)"
        )
    sums = _checksums(source, header, _version(source, header))
    if sums is not None:
        for key in _CHECKED_ENTRIES:
            if key in header and _text_digest(header[key]) != sums[key]:
                raise CheckpointError(
                    f"{source}: checksum mismatch in the header entry '{key}': it changed "
                    f"after the file was saved {_DAMAGED}"
                )
    paths = _parse_json(source, header, _PATHS_KEY)
    if not isinstance(paths, list) or sorted(paths) != sorted(handle.keys()):
        raise _corrupt(source, f"the '{_PATHS_KEY}' list does not match the stored arrays")
    digests = None if sums is None else sums["arrays"]
    if digests is not None and sorted(digests) != sorted(paths):
        raise _corrupt(source, f"the '{_SUMS_KEY}' table does not list the stored arrays")
    metadata = _parse_json(source, header, _METADATA_KEY)
    if not isinstance(metadata, dict):
        raise _corrupt(source, "metadata is not a dict")
    return Header(paths, metadata, digests)


def _version(source: Path, header: dict[str, str]) -> int:
    version = header.get(_VERSION_KEY, "")
    if not version.isdigit():
        raise _corrupt(source, f"format version {version!r}")
    if not 1 <= int(version) <= FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: unsupported checkpoint format version {int(version)} "
            f"(this funcnn reads versions up to {FORMAT_VERSION})"
        )
    return int(version)


def _checksums(source: Path, header: dict[str, str], version: int) -> dict[str, Any] | None:
    """The `sha256` table of a version 2 header, checked for form; None for version 1."""
    if version == 1:
        if _SUMS_KEY in header:
            raise _corrupt(source, "a format version 1 header with checksums")
        return None
    sums = _parse_json(source, header, _SUMS_KEY)
    arrays = sums.get("arrays") if isinstance(sums, dict) else None
    texts = [sums.get(key) for key in _CHECKED_ENTRIES] if isinstance(sums, dict) else []
    if not (
        isinstance(arrays, dict)
        and all(isinstance(text, str) for text in texts)
        and all(isinstance(value, str) for value in arrays.values())
    ):
        raise _corrupt(
            source,
            f"entry '{_SUMS_KEY}' is not a table of SHA-256 checksums of the header entries "
            "and arrays",
        )
    checked: dict[str, Any] = sums
    return checked


def _parse_json(source: Path, header: dict[str, str], key: str) -> Any:
    try:
        return json.loads(header[key])
    except (KeyError, json.JSONDecodeError) as error:
        raise _corrupt(source, f"entry '{key}': {error!r}") from None


def _corrupt(source: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{source}: corrupt checkpoint header ({what})")


def get_tensor(source: Path, handle: Any, name: str, digests: dict[str, str] | None) -> NumpyArray:
    """One stored array, checked against its checksum when the file has them; a file whose
    bytes cannot be read or do not match raises CheckpointError naming the array."""
    try:
        array: NumpyArray = handle.get_tensor(name)
    except SafetensorError as error:
        raise CheckpointError(f"{source}: cannot read array '{name}' ({error})") from None
    if digests is not None and array_digest(array) != digests[name]:
        raise CheckpointError(
            f"{source}: checksum mismatch at '{name}': the array's bytes, dtype or shape "
            f"changed after it was saved {_DAMAGED}"
        )
    return array
