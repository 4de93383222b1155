"""Checksummed, cached, atomic downloads of data files.

Files live in one directory per data set: the `data_dir` argument when given, else
`$FUNCNN_DATA/<name>`, else `~/.cache/funcnn/<name>`. A file that is already there and whose
SHA-256 matches is used as is, without any network access; a missing or mismatching file is
fetched from the first mirror that serves bytes with the right SHA-256, written to a temporary
file in the same directory and renamed into place only once verified.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

DATA_ENV = "FUNCNN_DATA"
"""Environment variable naming the root of funcnn's data cache."""

DEFAULT_TIMEOUT = 30.0
"""Seconds a connection to a mirror may stay silent before it counts as failed."""

_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class DownloadError(OSError):
    """A data file that is neither in the cache nor obtainable from any mirror."""


def data_root() -> Path:
    """The cache root: `$FUNCNN_DATA`, else `~/.cache/funcnn`."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "funcnn"


def dataset_dir(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding data set `name`'s files: `data_dir` itself, else `root/name`."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return data_root() / name


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The lowercase hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(filename: str, sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256_PATTERN.fullmatch(sha256.lower()):
        raise ValueError(f"checksum of {filename} must be 64 hex digits of SHA-256, got {sha256!r}")
    return sha256.lower()


def _mirror_url(mirror: str, filename: str) -> str:
    return mirror.rstrip("/") + "/" + filename


def download_verified(url: str, target: Path, sha256: str, *, timeout: float) -> None:
    """Download `url` to `target` if and only if its SHA-256 is `sha256`.

    Bytes stream into a temporary file beside `target`, which is renamed over `target` only
    after the digest matches; on any failure the temporary file is removed and `target` is
    left as it was. Raises `OSError` or `http.client.HTTPException` (network), `ValueError`
    (malformed URL) or `DownloadError` (checksum mismatch).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as rsp:
            while chunk := rsp.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise DownloadError(
                f"SHA-256 mismatch: got {digest.hexdigest()}, expected {sha256}"
            )
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _placement_hint(
    dataset: str, directory: Path, files: Mapping[str, str], mirrors: Sequence[str]
) -> str:
    listing = "\n".join(f"  {name}  (sha256 {digest})" for name, digest in files.items())
    source = f"\nThey are published at {', '.join(mirrors)}" if mirrors else ""
    return (
        f"To load {dataset} without network access, put these files into {directory} "
        f"(or pass data_dir=..., or set {DATA_ENV} to a root holding {dataset}/):\n{listing}"
        f"{source}"
    )


def fetch_files(
    dataset: str,
    files: Mapping[str, str],
    mirrors: Sequence[str],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Path]:
    """Paths of `files` (name -> SHA-256) in `dataset`'s directory, fetched when needed.

    A verified local file is never downloaded again. With `download=False` or when every
    mirror fails, raises `DownloadError` listing each failure and which files to put where.
    """
    if isinstance(mirrors, str):
        raise TypeError("mirrors must be a sequence of base URLs, not a single string")
    checked = {name: _check_sha256(name, digest) for name, digest in files.items()}
    directory = dataset_dir(dataset, data_dir)
    paths: dict[str, Path] = {}
    for name, digest in checked.items():
        target = directory / name
        problems: list[str] = []
        if target.is_file():
            found = sha256_of(target)
            if found == digest:
                paths[name] = target
                continue
            problems.append(f"{target} exists but its SHA-256 is {found}, expected {digest}")
        elif target.exists():
            problems.append(f"{target} exists but is not a regular file")
        else:
            problems.append(f"{target} does not exist")
        if not download:
            problems.append("downloading is disabled (download=False)")
        elif not mirrors:
            problems.append("no download mirrors were given")
        elif target.is_file() or not target.exists():
            for mirror in mirrors:
                url = _mirror_url(mirror, name)
                try:
                    download_verified(url, target, digest, timeout=timeout)
                except (OSError, http.client.HTTPException, ValueError) as error:
                    problems.append(f"{url}: {error}")
                else:
                    paths[name] = target
                    break
        if name not in paths:
            detail = "\n".join(f"  - {problem}" for problem in problems)
            raise DownloadError(
                f"cannot obtain {dataset} file {name}:\n{detail}\n"
                + _placement_hint(dataset, directory, checked, mirrors)
            )
    return paths
