"""Checkpoints: bit-exact round trips, template checks, atomic writes, bad files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from funcnn.checkpoint import (
    FORMAT_NAME,
    CheckpointError,
    load_checkpoint,
    read_arrays,
    read_metadata,
    save_checkpoint,
)
from funcnn.typing import NumpyArray

REPO_ROOT = Path(__file__).resolve().parents[1]


class ScaleState(NamedTuple):
    """An optimizer-like state: an int32 count and per-parameter moments."""

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optimizer states do
    mu: dict[str, Any]
    nu: dict[str, Any]


def make_params(scale: float = 1.0) -> dict[str, Any]:
    w = scale * jnp.arange(6, dtype=jnp.float32).reshape(2, 3) / 7
    return {"0_dense": {"w": w, "b": jnp.full((3,), -0.5 * scale, jnp.float32)}}


def make_tree(scale: float = 1.0) -> dict[str, Any]:
    params = make_params(scale)
    moments = jax.tree_util.tree_map(lambda leaf: leaf / 2, params)  # fresh dicts, no aliasing
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return {
        "params": params,
        "state": {},
        "opt_state": (ScaleState(jnp.asarray(7, jnp.int32), moments, zeros), ()),
    }


def shape_dtype(shape: tuple[int, ...], dtype: Any, sharding: Any = None) -> Any:
    """A `jax.ShapeDtypeStruct` template leaf."""
    return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)  # type: ignore[no-untyped-call]


def assert_bit_exact(actual: Any, expected: Any) -> None:
    """Same dtype, same shape and the same bytes (so NaN payloads and -0.0 count)."""
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.dtype == e.dtype
    assert a.shape == e.shape
    assert a.tobytes() == e.tobytes()


def assert_trees_bit_exact(actual: Any, expected: Any) -> None:
    structure = jax.tree_util.tree_structure
    assert repr(structure(actual)) == repr(structure(expected))
    leaves = jax.tree_util.tree_leaves
    for a, e in zip(leaves(actual), leaves(expected), strict=True):
        assert_bit_exact(a, e)


def tricky_float32() -> NumpyArray:
    """NaN with a payload, infinities, -0.0, a subnormal and the largest finite value."""
    bits = np.array([0x7FC01234, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001, 0x7F7FFFFF])
    return bits.astype(np.uint32).view(np.float32).reshape(2, 3)


# ----------------------------------------------------------------------------- round trips


def test_round_trip_is_bit_exact_for_every_leaf_kind(tmp_path: Path) -> None:
    tree = {
        "f32": jnp.asarray(tricky_float32()),
        "i32": jnp.asarray([-(2**31), 0, 2**31 - 1], jnp.int32),
        "u8": jnp.asarray([[0, 1], [254, 255]], jnp.uint8),
        "mask": jnp.asarray([True, False, True]),
        "scalar": jnp.asarray(3.25, jnp.float32),
        "empty": jnp.zeros((0, 4), jnp.float32),
        "nested": {"list": [jnp.ones(2, jnp.int32), (jnp.asarray(-1.5),)], "none": None},
    }
    save_checkpoint(tmp_path / "all.safetensors", tree)
    loaded, metadata = load_checkpoint(tmp_path / "all.safetensors", tree)
    assert metadata == {}
    assert_trees_bit_exact(loaded, tree)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves(loaded))
    assert loaded["nested"]["none"] is None
    assert loaded["scalar"].shape == ()


def test_float64_and_int64_round_trip_with_x64(tmp_path: Path) -> None:
    with jax.enable_x64(True):
        tree = {
            "f64": jnp.asarray([np.pi, -0.0, np.nextafter(1.0, 2.0), 1e-310]),
            "i64": jnp.asarray([-(2**63), 2**62 + 1], jnp.int64),
        }
        assert tree["f64"].dtype == jnp.float64
        save_checkpoint(tmp_path / "x64.safetensors", tree)
        loaded, _ = load_checkpoint(tmp_path / "x64.safetensors", tree)
    assert_trees_bit_exact(loaded, tree)
    assert read_arrays(tmp_path / "x64.safetensors")["i64"][0] == -(2**63)


def test_bfloat16_and_float16_round_trip(tmp_path: Path) -> None:
    values = np.array([1.0, -2.5, 3.140625, 65504.0], np.float32)
    tree = {"bf16": jnp.asarray(values, jnp.bfloat16), "f16": jnp.asarray(values, jnp.float16)}
    save_checkpoint(tmp_path / "half.safetensors", tree)
    loaded, _ = load_checkpoint(tmp_path / "half.safetensors", tree)
    assert_trees_bit_exact(loaded, tree)
    assert loaded["bf16"].dtype == jnp.bfloat16


def test_numpy_leaves_transposed_big_endian_and_scalars(tmp_path: Path) -> None:
    transposed = np.arange(12, dtype=np.float32).reshape(3, 4).T
    big_endian = np.array([1, 256, -7], dtype=">i4")
    tree = {"t": transposed, "be": big_endian, "g": np.float32(2.5), "z": np.array(9, np.uint8)}
    save_checkpoint(tmp_path / "np.safetensors", tree)
    arrays = read_arrays(tmp_path / "np.safetensors")
    np.testing.assert_array_equal(arrays["t"], transposed)
    np.testing.assert_array_equal(arrays["be"], [1, 256, -7])
    assert arrays["be"].dtype == np.dtype("<i4")
    assert arrays["g"].shape == () and arrays["g"] == np.float32(2.5)
    assert arrays["z"].shape == () and arrays["z"].dtype == np.uint8


def test_python_scalars_are_stored_as_jax_sees_them(tmp_path: Path) -> None:
    tree = {"step": 3, "lr": 0.5, "flag": True}
    save_checkpoint(tmp_path / "py.safetensors", tree)
    arrays = read_arrays(tmp_path / "py.safetensors")
    assert {name: a.dtype for name, a in arrays.items()} == {
        "step": np.dtype(np.int32),
        "lr": np.dtype(np.float32),
        "flag": np.dtype(bool),
    }
    loaded, _ = load_checkpoint(tmp_path / "py.safetensors", tree)
    assert int(loaded["step"]) == 3 and float(loaded["lr"]) == 0.5 and bool(loaded["flag"])


def test_readable_key_paths_in_flattening_order(tmp_path: Path) -> None:
    tree = make_tree()
    save_checkpoint(tmp_path / "paths.safetensors", tree)
    assert list(read_arrays(tmp_path / "paths.safetensors")) == [
        "opt_state/0/count",
        "opt_state/0/mu/0_dense/b",
        "opt_state/0/mu/0_dense/w",
        "opt_state/0/nu/0_dense/b",
        "opt_state/0/nu/0_dense/w",
        "params/0_dense/b",
        "params/0_dense/w",
    ]


def test_template_from_eval_shape_restores_namedtuple_state(tmp_path: Path) -> None:
    tree = make_tree(scale=3.0)
    save_checkpoint(tmp_path / "model.safetensors", tree)
    template = jax.eval_shape(make_tree)
    assert isinstance(template["params"]["0_dense"]["w"], jax.ShapeDtypeStruct)
    loaded, _ = load_checkpoint(tmp_path / "model.safetensors", template)
    assert_trees_bit_exact(loaded, tree)
    state = loaded["opt_state"][0]
    assert isinstance(state, ScaleState)
    assert state.count.dtype == jnp.int32 and int(state.count) == 7
    np.testing.assert_allclose(loaded["params"]["0_dense"]["w"][1], [9 / 7, 12 / 7, 15 / 7], 1e-6)


def test_as_numpy_returns_writable_numpy_arrays(tmp_path: Path) -> None:
    tree = make_tree()
    save_checkpoint(tmp_path / "np.safetensors", tree)
    loaded, _ = load_checkpoint(tmp_path / "np.safetensors", tree, as_numpy=True)
    leaves = jax.tree_util.tree_leaves(loaded)
    assert all(type(leaf) is np.ndarray for leaf in leaves)
    leaves[0][...] = 0  # a private copy, not a view of the file
    assert_trees_bit_exact(load_checkpoint(tmp_path / "np.safetensors", tree)[0], tree)


def test_load_places_leaves_on_the_template_sharding(tmp_path: Path) -> None:
    device = jax.devices()[0]
    sharding = jax.sharding.SingleDeviceSharding(device)
    template = {"w": shape_dtype((2, 2), jnp.float32, sharding=sharding)}
    save_checkpoint(tmp_path / "s.safetensors", {"w": jnp.eye(2)})
    loaded, _ = load_checkpoint(tmp_path / "s.safetensors", template)
    assert loaded["w"].sharding == sharding
    np.testing.assert_array_equal(loaded["w"], np.eye(2, dtype=np.float32))


def test_str_and_pathlike_paths_and_overwrite(tmp_path: Path) -> None:
    class CustomPath:
        def __fspath__(self) -> str:
            return str(tmp_path / "c.safetensors")

    save_checkpoint(str(tmp_path / "c.safetensors"), make_tree(1.0), metadata={"run": 1})
    save_checkpoint(CustomPath(), make_tree(2.0), metadata={"run": 2})
    loaded, metadata = load_checkpoint(CustomPath(), make_tree())
    assert metadata == {"run": 2}
    assert_trees_bit_exact(loaded, make_tree(2.0))
    assert read_metadata(str(tmp_path / "c.safetensors")) == {"run": 2}
    assert sorted(os.listdir(tmp_path)) == ["c.safetensors"]


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), max_size=3).map(tuple),
    dtype=st.sampled_from(["float32", "int32", "uint8", "bool", "float16", "int8"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_arrays_round_trip_bit_exact(shape: tuple[int, ...], dtype: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype=np.uint8)
    if dtype == "bool":
        array = (raw % 2).astype(bool).reshape(shape)
    else:
        array = raw.view(dtype).reshape(shape)  # every bit pattern, NaNs included
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "r.safetensors"
        save_checkpoint(path, {"a": array})
        loaded, _ = load_checkpoint(path, {"a": array}, as_numpy=True)
    assert_bit_exact(loaded["a"], array)


# ----------------------------------------------------------------------------- metadata


def test_metadata_round_trip(tmp_path: Path) -> None:
    metadata = {
        "layers": [{"kind": "Dense", "units": 64, "w_l2": 5e-4}, {"kind": "ReLU"}],
        "labels": ["T-shirt/top", "Trouser", "Ankle boot"],
        "history": {"loss": [1.0986, 0.5, float("nan")], "accuracy": [0.33, 0.9, None]},
        "note": "Fashion-MNIST, 10 epochs — ünïcode",
        "flags": {"trained": True, "epochs": 10},
    }
    save_checkpoint(tmp_path / "m.safetensors", make_tree(), metadata=metadata)
    read = read_metadata(tmp_path / "m.safetensors")
    assert read["layers"] == metadata["layers"]
    assert read["labels"] == metadata["labels"]
    assert read["note"] == metadata["note"] and read["flags"] == metadata["flags"]
    loss = read["history"]["loss"]
    assert loss[:2] == [1.0986, 0.5] and np.isnan(loss[2])
    assert read["history"]["accuracy"] == [0.33, 0.9, None]
    assert load_checkpoint(tmp_path / "m.safetensors", make_tree())[1] == read


def test_metadata_tuples_become_lists(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "t.safetensors", {}, metadata={"shape": (28, 28)})
    assert read_metadata(tmp_path / "t.safetensors") == {"shape": [28, 28]}
    assert read_arrays(tmp_path / "t.safetensors") == {}


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (
            {"history": {"loss": [np.float32(0.5)]}},
            r"metadata\['history'\]\['loss'\]\[0\] is a float32.*tolist",
        ),
        (
            {"loss": jnp.ones(3)},
            r"metadata\['loss'\] is a ArrayImpl, which JSON metadata cannot hold",
        ),
        (
            {"labels": {0: "zero"}},
            r"metadata\['labels'\] has key 0 of type int; metadata keys must be str",
        ),
        ({"fn": print}, r"metadata\['fn'\] is a builtin_function_or_method"),
        (["not", "a", "dict"], r"metadata must be a dict, got list"),
    ],
)
def test_metadata_that_json_cannot_hold_is_rejected(
    tmp_path: Path, metadata: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        save_checkpoint(tmp_path / "bad.safetensors", make_tree(), metadata=metadata)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- template checks


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, make_tree())
    return path


def test_missing_path_is_named(saved: Path) -> None:
    template = make_tree()
    template["params"]["1_dense"] = {"w": jnp.zeros((3, 2))}
    with pytest.raises(
        CheckpointError,
        match=r"model\.safetensors: missing path 'params/1_dense/w' required by the template "
        r"\(the file has 7 array\(s\): 'opt_state/0/count', ",
    ):
        load_checkpoint(saved, template)


def test_unexpected_extra_path_is_named(saved: Path) -> None:
    template = make_tree()
    del template["params"]["0_dense"]["b"]
    with pytest.raises(
        CheckpointError,
        match=r"model\.safetensors: unexpected path 'params/0_dense/b' is not in the template "
        r"\(1 extra path\(s\): 'params/0_dense/b'\)",
    ):
        load_checkpoint(saved, template)


def test_extra_optimizer_state_is_counted(saved: Path) -> None:
    template = {"params": make_params(), "state": {}}
    with pytest.raises(CheckpointError, match=r"'opt_state/0/count' .*\(5 extra path\(s\)"):
        load_checkpoint(saved, template)


def test_shape_mismatch_is_named(saved: Path) -> None:
    template = make_tree()
    template["opt_state"][0].nu["0_dense"]["w"] = shape_dtype((3, 2), jnp.float32)
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatch at 'opt_state/0/nu/0_dense/w': file has \(2, 3\), "
        r"template expects \(3, 2\)",
    ):
        load_checkpoint(saved, template)


def test_dtype_mismatch_is_named(saved: Path) -> None:
    template = make_tree()
    template["opt_state"] = (template["opt_state"][0]._replace(count=jnp.asarray(0.0)), ())
    with pytest.raises(
        CheckpointError,
        match=r"dtype mismatch at 'opt_state/0/count': file has int32, template expects float32",
    ):
        load_checkpoint(saved, template)


def test_first_mismatch_in_template_order_is_reported(saved: Path) -> None:
    template = make_tree()
    template["params"]["0_dense"]["w"] = jnp.zeros((2, 3), jnp.int32)  # dtype, later path
    template["opt_state"][0].mu["0_dense"]["b"] = jnp.zeros(4)  # shape, earlier path
    with pytest.raises(CheckpointError, match=r"shape mismatch at 'opt_state/0/mu/0_dense/b'"):
        load_checkpoint(saved, template)


def test_bad_template_leaf_is_named(saved: Path) -> None:
    template = make_tree()
    template["params"]["0_dense"]["b"] = "zeros"
    with pytest.raises(TypeError, match=r"template leaf 'params/0_dense/b' is a str"):
        load_checkpoint(saved, template)


def test_64_bit_array_without_x64_is_refused_unless_numpy(tmp_path: Path) -> None:
    tree = {"f64": np.array([0.1, 0.2])}
    save_checkpoint(tmp_path / "f64.safetensors", tree)
    with pytest.raises(
        CheckpointError,
        match=r"array 'f64' has dtype float64, which JAX would turn into float32 "
        r"because jax_enable_x64 is off",
    ):
        load_checkpoint(tmp_path / "f64.safetensors", tree)
    loaded, _ = load_checkpoint(tmp_path / "f64.safetensors", tree, as_numpy=True)
    assert_bit_exact(loaded["f64"], tree["f64"])


# ----------------------------------------------------------------------------- bad trees


@pytest.mark.parametrize(
    ("tree", "error", "message"),
    [
        (
            {"w": np.ones(2, np.complex128)},
            TypeError,
            r"leaf 'w' has dtype complex128, which safetensors cannot store",
        ),
        ({"key": jax.random.key(0)}, TypeError, r"leaf 'key' is a typed PRNG key .*key_data"),
        ({"name": "dense"}, TypeError, r"leaf 'name' is a str; checkpoints store arrays"),
        (
            {"a/b": np.ones(1), "a": {"b": np.ones(1)}},
            ValueError,
            r"two leaves share the checkpoint path 'a/b'",
        ),
        ({"__metadata__": np.ones(1)}, ValueError, r"leaf path '__metadata__' is reserved"),
    ],
)
def test_unstorable_trees_are_rejected(
    tmp_path: Path, tree: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        save_checkpoint(tmp_path / "bad.safetensors", tree)
    assert os.listdir(tmp_path) == []


def test_missing_parent_directory(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "model.safetensors"
    with pytest.raises(
        FileNotFoundError,
        match=r"cannot save checkpoint to '.*model\.safetensors': parent directory "
        r"'.*no/such' does not exist",
    ):
        save_checkpoint(target, make_tree())


def test_saving_onto_a_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match=r"cannot save checkpoint to .*: it is a directory"):
        save_checkpoint(tmp_path, make_tree())


# ----------------------------------------------------------------------------- not a checkpoint


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.safetensors: no such checkpoint file"):
        read_metadata(tmp_path / "nothing.safetensors")
    with pytest.raises(IsADirectoryError, match=r"is a directory, not a checkpoint file"):
        load_checkpoint(tmp_path, {})


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (np.random.default_rng(0).bytes(1000), r"not a funcnn checkpoint \(.*header too large"),
        (b"", r"not a funcnn checkpoint \(.*header too small"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}!!!!!!!", r"not a funcnn checkpoint \("),
    ],
    ids=["random-bytes", "empty", "bad-json-header"],
)
def test_garbage_files_are_not_checkpoints(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(content)
    for reader in (read_metadata, read_arrays, lambda p: load_checkpoint(p, {})):
        with pytest.raises(CheckpointError, match=r"garbage\.safetensors: " + reason):
            reader(path)


@pytest.mark.parametrize("cut", [3, 100, 0.5])
def test_truncated_checkpoint(saved: Path, cut: float) -> None:
    data = saved.read_bytes()
    keep = int(len(data) * cut) if isinstance(cut, float) else len(data) - cut
    saved.write_bytes(data[:keep])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a funcnn checkpoint \("):
        load_checkpoint(saved, make_tree())


def test_plain_safetensors_file_without_marker(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"w": np.ones((2, 2), np.float32)}, path)
    with pytest.raises(
        CheckpointError,
        match=r"plain\.safetensors: not a funcnn checkpoint \(a safetensors file without the "
        r"'format: funcnn\.checkpoint' marker\)",
    ):
        read_arrays(path)
    save_file({"w": np.ones(1)}, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"without the 'format: funcnn\.checkpoint' marker"):
        read_metadata(path)


def header(**entries: str) -> dict[str, str]:
    base = {"format": FORMAT_NAME, "format_version": "1", "paths": '["w"]', "metadata": "{}"}
    return {**base, **entries}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            {"format_version": "3"},
            r"unsupported checkpoint format version 3 \(this funcnn reads versions up to 2\)",
        ),
        ({"format_version": "one"}, r"corrupt checkpoint header \(format version 'one'\)"),
        ({"paths": '["w", "b"]'}, r"corrupt checkpoint header \(the 'paths' list does not match"),
        ({"paths": "[w"}, r"corrupt checkpoint header \(entry 'paths': JSONDecodeError"),
        ({"metadata": "[1]"}, r"corrupt checkpoint header \(metadata is not a dict\)"),
    ],
)
def test_bad_headers(tmp_path: Path, entries: dict[str, str], message: str) -> None:
    path = tmp_path / "h.safetensors"
    save_file({"w": np.ones(2, np.float32)}, path, metadata=header(**entries))
    with pytest.raises(CheckpointError, match=r"h\.safetensors: " + message):
        load_checkpoint(path, {"w": np.ones(2, np.float32)})


def test_handmade_header_with_our_marker_loads(tmp_path: Path) -> None:
    """The format is plain safetensors: other tools can write it."""
    path = tmp_path / "h.safetensors"
    save_file({"w": np.arange(2, dtype=np.float32)}, path, metadata=header(metadata='{"a": 1}'))
    loaded, metadata = load_checkpoint(path, {"w": shape_dtype((2,), jnp.float32)})
    np.testing.assert_array_equal(loaded["w"], [0.0, 1.0])
    assert metadata == {"a": 1}


# ----------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_fault_between_temp_file_and_rename_keeps_previous_file(
    saved: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    before = saved.read_bytes()
    seen: list[str] = []

    def crash(*args: Any) -> None:
        seen.extend(name for name in os.listdir(saved.parent) if name.endswith(".tmp"))
        raise OSError(f"injected {failing} failure")

    monkeypatch.setattr(os, failing, crash)
    with pytest.raises(OSError, match=f"injected {failing} failure"):
        save_checkpoint(saved, make_tree(5.0), metadata={"new": True})
    monkeypatch.undo()
    assert len(seen) == 1 and seen[0].startswith(".model.safetensors.")  # the temp file existed
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == ["model.safetensors"]  # temp file removed
    loaded, metadata = load_checkpoint(saved, make_tree())
    assert_trees_bit_exact(loaded, make_tree())
    assert metadata == {}


WRITER = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from funcnn.checkpoint import save_checkpoint

    def hang(src, dst):
        print("TEMP-WRITTEN", src, flush=True)
        time.sleep(600)

    os.replace = hang
    save_checkpoint(sys.argv[1], {"w": np.full((64, 64), 9.0, np.float32)}, metadata={"v": 2})
    """
)


def test_writer_killed_before_rename_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    previous = {"w": np.full((64, 64), 1.0, np.float32)}
    save_checkpoint(path, previous, metadata={"v": 1})
    before = path.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "JAX_PLATFORMS": "cpu"}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert writer.stdout is not None
        line = writer.stdout.readline()
        assert line.startswith("TEMP-WRITTEN"), writer.stderr.read() if writer.stderr else line
        temp = Path(line.split()[1])
        assert read_metadata(temp) == {"v": 2}  # the new checkpoint was complete on disk...
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    assert path.read_bytes() == before  # ...but the rename never happened
    loaded, metadata = load_checkpoint(path, previous, as_numpy=True)
    assert_trees_bit_exact(loaded, previous)
    assert metadata == {"v": 1}
    # The killed writer leaves its hidden temp file behind; it never shadows the checkpoint.
    assert sorted(os.listdir(tmp_path)) == sorted(["model.safetensors", temp.name])


def test_successful_save_leaves_no_temp_file(tmp_path: Path) -> None:
    for scale in (1.0, 2.0, 3.0):
        save_checkpoint(tmp_path / "m.safetensors", make_tree(scale))
    assert os.listdir(tmp_path) == ["m.safetensors"]
    assert_trees_bit_exact(
        load_checkpoint(tmp_path / "m.safetensors", make_tree())[0], make_tree(3.0)
    )
