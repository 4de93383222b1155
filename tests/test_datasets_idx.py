"""IDX decoding against bytes built by hand, and every way a file can be broken."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from funcnn.datasets import IdxFormatError, encode_idx, read_idx, write_idx


def idx_bytes(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file written out field by field, independent of funcnn's encoder."""
    return struct.pack(">BBBB", 0, 0, code, len(shape)) + struct.pack(f">{len(shape)}I", *shape) \
        + payload


def test_reads_uint8_tensor_from_bytes() -> None:
    values = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    result = read_idx(idx_bytes(0x08, (2, 3, 4), values.tobytes()))
    assert result.dtype == np.uint8 and result.shape == (2, 3, 4)
    np.testing.assert_array_equal(result, values)
    assert result.flags.writeable


@pytest.mark.parametrize(
    ("code", "fmt", "values", "dtype"),
    [
        (0x09, ">3b", (-128, 0, 127), np.int8),
        (0x0B, ">3h", (-2, 300, 32767), np.int16),
        (0x0C, ">3i", (-70000, 1, 2**31 - 1), np.int32),
        (0x0D, ">3f", (-1.5, 0.25, 3.0e38), np.float32),
        (0x0E, ">3d", (-1e300, 0.1, 2.5), np.float64),
    ],
)
def test_big_endian_values_of_every_dtype_code(
    code: int, fmt: str, values: tuple[float, ...], dtype: type[np.generic]
) -> None:
    result = read_idx(idx_bytes(code, (3,), struct.pack(fmt, *values)))
    assert result.dtype == np.dtype(dtype)
    assert result.dtype.byteorder in ("=", "|")  # native order, ready for jax
    np.testing.assert_array_equal(result, np.asarray(values, dtype=dtype))


def test_reads_plain_and_gzip_files(tmp_path: Path) -> None:
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    raw = idx_bytes(0x08, (5,), labels.tobytes())
    plain = tmp_path / "labels-idx1-ubyte"
    plain.write_bytes(raw)
    packed = tmp_path / "labels-idx1-ubyte.gz"
    packed.write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(plain), labels)
    np.testing.assert_array_equal(read_idx(str(packed)), labels)
    np.testing.assert_array_equal(read_idx(gzip.compress(raw)), labels)


def test_encode_and_write_round_trip(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    assert encode_idx(images) == idx_bytes(0x08, (3, 28, 28), images.tobytes())
    floats = np.array([[1.5, -2.0]], dtype=np.float32)
    assert encode_idx(floats) == idx_bytes(0x0D, (1, 2), struct.pack(">2f", 1.5, -2.0))
    path = write_idx(tmp_path / "x.gz", images)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(path), images)
    assert encode_idx(images, compress=True) == encode_idx(images, compress=True)  # no mtime


def test_encode_rejects_unstorable_arrays() -> None:
    with pytest.raises(TypeError, match="IDX cannot store dtype bool"):
        encode_idx(np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="IDX needs 1 to 255 dimensions, got 0"):
        encode_idx(np.array(3, dtype=np.uint8))


def test_bad_magic_number_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(IdxFormatError, match=re.escape(str(path)) + r": bad IDX magic number"):
        read_idx(path)


def test_unknown_dtype_code_and_zero_dimensions() -> None:
    with pytest.raises(IdxFormatError, match=r"<bytes>: unknown IDX dtype code 0x0A"):
        read_idx(idx_bytes(0x0A, (1,), b"\x00"))
    with pytest.raises(IdxFormatError, match="declares 0 dimensions"):
        read_idx(b"\x00\x00\x08\x00")
    with pytest.raises(IdxFormatError, match="too short for an IDX magic number"):
        read_idx(b"\x00\x00")


def test_truncated_header() -> None:
    with pytest.raises(IdxFormatError, match=r"truncated IDX header: 3 dimensions need 16 bytes"):
        read_idx(b"\x00\x00\x08\x03" + struct.pack(">2I", 2, 2))


def test_truncated_payload_is_rejected_not_half_loaded(tmp_path: Path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(idx_bytes(0x08, (2, 28, 28), bytes(2 * 28 * 28 - 1)))
    pattern = re.escape(f"{path}: IDX payload truncated: header (2, 28, 28) of uint8 needs "
                        "1568 bytes, found 1567")
    with pytest.raises(IdxFormatError, match=pattern):
        read_idx(path)


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(IdxFormatError, match=r"mine: IDX payload has trailing bytes.*found 5"):
        read_idx(idx_bytes(0x0C, (1,), bytes(5)), name="mine")


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(0x08, (100,), bytes(range(100))))
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(IdxFormatError, match=re.escape(str(path)) + ": corrupt or truncated gzip"):
        read_idx(path)


def test_missing_file_and_wrong_argument_type(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gz"
    with pytest.raises(FileNotFoundError, match=re.escape(f"cannot read IDX file {missing}")):
        read_idx(missing)
    with pytest.raises(TypeError, match="read_idx expects a path or bytes, got int"):
        read_idx(3)  # type: ignore[arg-type]
