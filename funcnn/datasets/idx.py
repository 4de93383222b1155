"""The IDX file format of MNIST and Fashion-MNIST, read and written with validation.

An IDX file is a 4-byte magic number `0x00 0x00 <dtype code> <ndim>`, then `ndim` big-endian
uint32 dimensions, then exactly `prod(dims)` big-endian values. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from funcnn.typing import NumpyArray, Shape

IDX_DTYPES: dict[int, np.dtype[np.generic]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX dtype code -> big-endian numpy dtype of the stored values."""

_GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(ValueError):
    """An IDX file that is truncated, corrupt or not IDX at all; the message names the file."""


def _load_bytes(source: str | os.PathLike[str] | bytes, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), name or "<bytes>"
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            return path.read_bytes(), name or str(path)
        except OSError as error:
            raise FileNotFoundError(f"cannot read IDX file {path}: {error}") from error
    raise TypeError(f"read_idx expects a path or bytes, got {type(source).__name__}")


def _decompress(raw: bytes, name: str) -> bytes:
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise IdxFormatError(f"{name}: corrupt or truncated gzip data ({error})") from error


def parse_idx_header(data: bytes, name: str = "<bytes>") -> tuple[np.dtype[np.generic], Shape]:
    """The stored dtype and shape from an uncompressed IDX header; raises `IdxFormatError`."""
    if len(data) < 4:
        raise IdxFormatError(f"{name}: {len(data)} bytes is too short for an IDX magic number")
    if data[0] != 0 or data[1] != 0:
        raise IdxFormatError(
            f"{name}: bad IDX magic number 0x{data[:4].hex()} (must start with two zero bytes)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise IdxFormatError(f"{name}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise IdxFormatError(f"{name}: IDX header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxFormatError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header_size} bytes, "
            f"file has {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return IDX_DTYPES[code], shape



def read_idx(
    source: str | os.PathLike[str] | bytes, *, name: str | None = None
) -> NumpyArray:
    """Decode an IDX file (path or bytes, gzip or plain) into a native-endian numpy array.

    The header's magic number, dtype code and dimension count are checked, and the payload
    must hold exactly `prod(dims) * itemsize` bytes; anything else raises `IdxFormatError`
    naming the file (`name` overrides the path in messages). Nothing is half-loaded.
    """
    raw, label = _load_bytes(source, name)
    data = _decompress(raw, label)
    dtype, shape = parse_idx_header(data, label)
    header_size = 4 + 4 * len(shape)
    expected = math.prod(shape) * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        kind = "truncated" if actual < expected else "has trailing bytes"
        raise IdxFormatError(
            f"{label}: IDX payload {kind}: header {shape} of {dtype.name} needs {expected} "
            f"bytes, found {actual}"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=True)


def encode_idx(array: NumpyArray, *, compress: bool = False) -> bytes:
    """The IDX bytes of `array` (dtype uint8, int8, int16, int32, float32 or float64).

    `compress=True` gzips them (deterministically: no timestamp in the header).
    """
    values = np.asarray(array)
    codes = {dtype.newbyteorder("=").str: code for code, dtype in IDX_DTYPES.items()}
    native = values.dtype.newbyteorder("=").str
    if native not in codes:
        raise TypeError(f"IDX cannot store dtype {values.dtype}; use one of uint8, int8, "
                        "int16, int32, float32, float64")
    if values.ndim == 0 or values.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {values.ndim}")
    if any(d >= 2**32 for d in values.shape):
        raise ValueError(f"IDX dimensions must be below 2**32, got shape {values.shape}")
    code = codes[native]
    header = bytes([0, 0, code, values.ndim]) + np.asarray(values.shape, dtype=">u4").tobytes()
    payload = values.astype(IDX_DTYPES[code], copy=False).tobytes()
    data = header + payload
    return gzip.compress(data, mtime=0) if compress else data


def write_idx(path: str | os.PathLike[str], array: NumpyArray, *, compress: bool | None = None
              ) -> Path:
    """Write `array` as an IDX file; `compress=None` gzips when the name ends in `.gz`."""
    target = Path(path)
    gz = target.suffix == ".gz" if compress is None else compress
    target.write_bytes(encode_idx(array, compress=gz))
    return target
