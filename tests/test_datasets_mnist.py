"""MNIST / Fashion-MNIST loading against a real HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from funcnn.datasets import (
    DIGIT_NAMES,
    FASHION_MNIST_LABELS,
    FASHION_MNIST_SHA256,
    MNIST_MIRRORS,
    MNIST_SHA256,
    DownloadError,
    IdxFormatError,
    dataset_dir,
    encode_idx,
    fashion_mnist,
    mnist,
)
from funcnn.datasets.mnist import IDX_FILES, TEST_IMAGES, TRAIN_IMAGES, TRAIN_LABELS


class Files(NamedTuple):
    directory: Path
    arrays: dict[str, np.ndarray[Any, Any]]
    checksums: dict[str, str]


def write_dataset(directory: Path, *, train: int = 6, test: int = 3, seed: int = 0) -> Files:
    """Four small gzipped IDX files in MNIST's layout, with their SHA-256 digests."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, (train,), dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, (test,), dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        (directory / name).write_bytes(encode_idx(array, compress=True))
    return Files(directory, arrays, {name: sha256(directory / name) for name in arrays})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Server(NamedTuple):
    url: str
    requests: list[str]
    httpd: http.server.ThreadingHTTPServer
    files: Files

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path.startswith("/short/"):  # promises more bytes than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + bytes(100))
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    files = write_dataset(tmp_path / "served")
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(handler, directory=str(files.directory))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    running = Server(f"http://127.0.0.1:{httpd.server_address[1]}/", requests, httpd, files)
    yield running
    if thread.is_alive():
        running.stop()
    thread.join(timeout=5)


def assert_matches(data: Any, files: Files, names: tuple[str, ...]) -> None:
    (train_x, train_y, train_names), (test_x, test_y, test_names) = data
    arrays = files.arrays
    np.testing.assert_array_equal(train_x, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(train_y, arrays["train-labels-idx1-ubyte.gz"])
    np.testing.assert_array_equal(test_x, arrays["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(test_y, arrays["t10k-labels-idx1-ubyte.gz"])
    assert train_x.dtype == test_x.dtype == np.uint8
    assert train_y.dtype == test_y.dtype == np.int32
    assert train_names == test_names == data.label_names == names


def test_download_verifies_and_caches_without_a_second_request(
    server: Server, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    data = mnist(cache, mirrors=[server.url], checksums=server.files.checksums)
    assert_matches(data, server.files, DIGIT_NAMES)
    assert sorted(server.requests) == sorted(f"/{name}" for name in IDX_FILES)
    assert sorted(p.name for p in cache.iterdir()) == sorted(IDX_FILES)  # no temporary files
    for name in IDX_FILES:
        assert sha256(cache / name) == server.files.checksums[name]

    again = mnist(cache, mirrors=[server.url], checksums=server.files.checksums)
    assert len(server.requests) == 4
    assert_matches(again, server.files, DIGIT_NAMES)
    server.stop()
    assert_matches(mnist(cache, mirrors=[server.url], checksums=server.files.checksums),
                   server.files, DIGIT_NAMES)


def test_fashion_mnist_goes_to_its_own_directory_under_funcnn_data(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNCNN_DATA", str(tmp_path / "root"))
    data = fashion_mnist(mirrors=[server.url], checksums=server.files.checksums)
    assert_matches(data, server.files, FASHION_MNIST_LABELS)
    assert (tmp_path / "root" / "fashion_mnist" / TRAIN_IMAGES).is_file()
    assert dataset_dir("mnist") == tmp_path / "root" / "mnist"
    assert data.label_names[0] == "T-shirt/top" and data.label_names[9] == "Ankle boot"


def test_default_cache_is_under_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FUNCNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert dataset_dir("fashion_mnist") == tmp_path / ".cache" / "funcnn" / "fashion_mnist"
    assert dataset_dir("mnist", "~/mine") == tmp_path / "mine"


def test_a_local_directory_needs_no_network(tmp_path: Path) -> None:
    files = write_dataset(tmp_path / "mine", seed=3)
    data = mnist(files.directory, mirrors=(), checksums=files.checksums, download=False)
    assert_matches(data, files, DIGIT_NAMES)


def test_next_mirror_is_tried_when_one_fails(server: Server, tmp_path: Path) -> None:
    mirrors = [server.url + "missing/", server.url]
    mnist(tmp_path / "c", mirrors=mirrors, checksums=server.files.checksums)
    assert server.requests.count(f"/missing/{TRAIN_IMAGES}") == 1
    assert server.requests.count(f"/{TRAIN_IMAGES}") == 1


def test_checksum_mismatch_keeps_nothing(server: Server, tmp_path: Path) -> None:
    wrong = dict(server.files.checksums, **{TRAIN_LABELS: "0" * 64})
    cache = tmp_path / "c"
    message = (rf"cannot obtain mnist file {TRAIN_LABELS}:(.|\n)*"
               rf"{re.escape(server.url + TRAIN_LABELS)}: SHA-256 mismatch: got "
               rf"{server.files.checksums[TRAIN_LABELS]}, expected 0{{64}}")
    with pytest.raises(DownloadError, match=message):
        mnist(cache, mirrors=[server.url], checksums=wrong)
    assert not (cache / TRAIN_LABELS).exists()
    assert not list(cache.glob(".*.part"))


def test_connection_dropped_mid_file_leaves_no_partial_file(
    server: Server, tmp_path: Path
) -> None:
    cache = tmp_path / "c"
    with pytest.raises(DownloadError, match=re.escape(server.url + "short/" + TRAIN_IMAGES)):
        mnist(cache, mirrors=[server.url + "short/"], checksums=server.files.checksums)
    assert list(cache.iterdir()) == []


def test_truncated_cached_file_is_replaced_by_a_verified_download(
    server: Server, tmp_path: Path
) -> None:
    cache = tmp_path / "c"
    shutil.copytree(server.files.directory, cache)
    full = (cache / TEST_IMAGES).read_bytes()
    (cache / TEST_IMAGES).write_bytes(full[: len(full) // 2])
    data = mnist(cache, mirrors=[server.url], checksums=server.files.checksums)
    assert server.requests == [f"/{TEST_IMAGES}"]
    assert (cache / TEST_IMAGES).read_bytes() == full
    assert_matches(data, server.files, DIGIT_NAMES)


def test_truncated_file_offline_is_reported_with_its_checksum(tmp_path: Path) -> None:
    files = write_dataset(tmp_path / "mine")
    path = files.directory / TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:-10])
    message = re.escape(f"{path} exists but its SHA-256 is {sha256(path)}, "
                        f"expected {files.checksums[TRAIN_IMAGES]}")
    with pytest.raises(DownloadError, match=message):
        mnist(files.directory, checksums=files.checksums, download=False)


def test_corrupt_file_with_matching_checksum_is_named(server: Server, tmp_path: Path) -> None:
    corrupt = server.files.directory / TRAIN_IMAGES
    corrupt.write_bytes(b"\x00\x00\x07\x03" + bytes(12))  # unknown dtype code 0x07
    sums = dict(server.files.checksums, **{TRAIN_IMAGES: sha256(corrupt)})
    cache = tmp_path / "c"
    with pytest.raises(IdxFormatError, match=re.escape(f"{cache / TRAIN_IMAGES}: unknown IDX")):
        mnist(cache, mirrors=[server.url], checksums=sums)


def test_wrong_image_shape_is_named(tmp_path: Path) -> None:
    files = write_dataset(tmp_path / "mine")
    path = files.directory / TEST_IMAGES
    path.write_bytes(encode_idx(np.zeros((3, 27, 28), np.uint8), compress=True))
    sums = dict(files.checksums, **{TEST_IMAGES: sha256(path)})
    message = re.escape(
        f"{path}: expected uint8 images of shape (N, 28, 28), got uint8 (3, 27, 28)"
    )
    with pytest.raises(ValueError, match=message):
        mnist(files.directory, checksums=sums, download=False)


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    files = write_dataset(tmp_path / "mine")
    path = files.directory / TRAIN_LABELS
    path.write_bytes(encode_idx(np.zeros(5, np.uint8), compress=True))
    sums = dict(files.checksums, **{TRAIN_LABELS: sha256(path)})
    with pytest.raises(ValueError, match="6 images but 5 labels"):
        mnist(files.directory, checksums=sums, download=False)


def test_labels_beyond_the_ten_classes_are_rejected(tmp_path: Path) -> None:
    files = write_dataset(tmp_path / "mine")
    path = files.directory / TRAIN_LABELS
    path.write_bytes(encode_idx(np.array([0, 1, 2, 3, 4, 10], np.uint8), compress=True))
    sums = dict(files.checksums, **{TRAIN_LABELS: sha256(path)})
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\), found 0..10"):
        fashion_mnist(files.directory, checksums=sums, download=False)


def test_offline_error_says_which_files_to_put_where(server: Server, tmp_path: Path) -> None:
    server.stop()
    cache = tmp_path / "empty"
    with pytest.raises(DownloadError) as caught:
        mnist(cache, mirrors=[server.url], checksums=server.files.checksums, timeout=5)
    message = str(caught.value)
    assert f"cannot obtain mnist file {TRAIN_IMAGES}" in message
    assert f"{cache / TRAIN_IMAGES} does not exist" in message
    assert server.url + TRAIN_IMAGES in message
    assert f"put these files into {cache}" in message
    for name in IDX_FILES:
        assert f"{name}  (sha256 {server.files.checksums[name]})" in message
    assert f"They are published at {server.url}" in message
    assert not cache.exists() or list(cache.iterdir()) == []


def test_download_disabled_and_no_mirrors(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"downloading is disabled \(download=False\)"):
        mnist(tmp_path, download=False)
    with pytest.raises(DownloadError, match="no download mirrors were given"):
        mnist(tmp_path, mirrors=())
    with pytest.raises(TypeError, match="mirrors must be a sequence of base URLs"):
        mnist(tmp_path, mirrors="http://127.0.0.1:9/")


def test_bad_checksum_tables(tmp_path: Path) -> None:
    partial_table = {TRAIN_IMAGES: MNIST_SHA256[TRAIN_IMAGES]}
    with pytest.raises(ValueError, match="checksums for mnist lack entries for train-labels"):
        mnist(tmp_path, checksums=partial_table, download=False)
    with pytest.raises(ValueError, match="must be 64 hex digits of SHA-256, got 'abc'"):
        mnist(tmp_path, checksums=dict(MNIST_SHA256, **{TEST_IMAGES: "abc"}), download=False)


def test_embedded_checksums_cover_the_public_files() -> None:
    for table in (MNIST_SHA256, FASHION_MNIST_SHA256):
        assert sorted(table) == sorted(IDX_FILES)
        assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in table.values())
    assert MNIST_SHA256[TRAIN_IMAGES].startswith("440fcabf")
    assert FASHION_MNIST_SHA256[TRAIN_IMAGES].startswith("3aede38d")
    assert all(mirror.startswith("https://") for mirror in MNIST_MIRRORS)
