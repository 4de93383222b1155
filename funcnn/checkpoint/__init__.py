"""Pickle-free checkpoints: any pytree of arrays in one safetensors file.

Each leaf is stored under its readable key path (`params/0_dense/w`,
`opt_state/0/mu/0_dense/w`) with its exact dtype and shape; the safetensors header also
holds a format marker, a format version, the leaf order, user metadata as JSON and (from
format version 2) SHA-256 checksums of every array, the leaf order and the metadata,
verified on every read: a changed byte raises CheckpointError naming the array (or header
entry) and the file. Files of format version 1 (no checksums) still load, unverified.
Saving is atomic (temp file in the same directory, fsync, `os.replace`) and gives the file
the mode any new file gets (on overwrite, the replaced file's); loading checks every path,
shape and dtype against a template before anything is returned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from safetensors import SafetensorError, TensorSpec

from funcnn.checkpoint._files import (
    StrPath,
    check_writable,
    open_checkpoint,
    resolve_source,
    resolve_target,
    write_atomically,
)
from funcnn.checkpoint._format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    RESERVED_NAME,
    CheckpointError,
    build_header,
    get_tensor,
    read_header,
)
from funcnn.tree import path_to_str
from funcnn.typing import NumpyArray, PyTree

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointError",
    "StrPath",
    "check_writable",
    "load_checkpoint",
    "read_arrays",
    "read_metadata",
    "save_checkpoint",
]


# ----------------------------------------------------------------------------- saving


def save_checkpoint(
    path: StrPath, tree: PyTree, *, metadata: Mapping[str, Any] | None = None
) -> None:
    """Write `tree` (a pytree of arrays) and JSON `metadata` to `path`, atomically.

    Leaves are stored under their key paths with exact dtype and shape (0-d included).
    Python scalars are stored as JAX would see them (`3` -> int32 unless x64 is on).
    `metadata` must be JSON (str keys; tuples come back as lists). The file is first
    written to a hidden temp file beside `path`, fsynced, then moved over `path` with
    `os.replace`: a crash leaves the previous file intact (a killed writer may leave its
    `.NAME.<hex>.tmp` file behind, NAME cut to 32 characters; it is never read). A place
    that cannot be written raises CheckpointError (an OSError) naming `path`. Arrays split
    over devices (`fit(..., shard_params=...)`) are gathered to the host; across processes
    a leaf split over other processes' devices is refused (`funcnn.sharding.unshard`).
    """
    target = resolve_target(path)
    arrays = _flatten_to_numpy(tree)
    header = build_header(arrays, _metadata_to_json(metadata))
    specs = {name: _tensor_spec(name, array) for name, array in arrays.items()}
    write_atomically(target, specs, header)


def _flatten_to_numpy(tree: PyTree) -> dict[str, NumpyArray]:
    """`{key path: contiguous little-endian numpy array}` in flattening order."""
    arrays: dict[str, NumpyArray] = {}
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = path_to_str(key_path)
        if name in arrays:
            raise ValueError(
                f"two leaves share the checkpoint path '{name}'; rename a key "
                "(dict keys containing '/' can collide with nested keys)"
            )
        if name == RESERVED_NAME:
            raise ValueError(f"leaf path '{name}' is reserved by safetensors; rename that key")
        arrays[name] = _leaf_to_numpy(name, leaf)
    return arrays


def _leaf_to_numpy(name: str, leaf: object) -> NumpyArray:
    """One leaf as a host numpy array, or a TypeError naming the leaf."""
    if not isinstance(leaf, jax.Array | np.ndarray | np.generic):
        if not isinstance(leaf, bool | int | float):
            raise TypeError(
                f"leaf '{name}' is a {type(leaf).__name__}; checkpoints store arrays "
                "(jax or numpy) and Python scalars only"
            )
        leaf = jnp.asarray(leaf)
    _check_not_prng_key(name, leaf.dtype)
    if isinstance(leaf, jax.Array) and not (leaf.is_fully_addressable
                                            or leaf.is_fully_replicated):
        raise ValueError(
            f"leaf '{name}' is split over devices of other processes ({leaf.sharding}), so "
            "this process cannot read it whole; gather it first on every process with "
            "funcnn.sharding.unshard(tree), then save"
        )
    array = np.asarray(jax.device_get(leaf))
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    # np.ascontiguousarray would turn a 0-d array into shape (1,).
    return array if array.flags.c_contiguous else array.copy(order="C")


def _check_not_prng_key(name: str, dtype: Any) -> None:
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        raise TypeError(
            f"leaf '{name}' is a typed PRNG key ({dtype}); store jax.random.key_data(key) "
            "and rebuild it with jax.random.wrap_key_data"
        )


def _tensor_spec(name: str, array: NumpyArray) -> TensorSpec:
    """The safetensors description of `array`; unsupported dtypes name the leaf."""
    try:
        return TensorSpec(
            dtype=array.dtype.name,
            shape=array.shape,
            data_ptr=array.ctypes.data,
            data_len=array.nbytes,
        )
    except SafetensorError as error:
        raise TypeError(
            f"leaf '{name}' has dtype {array.dtype.name}, which safetensors cannot store ({error})"
        ) from None


def _metadata_to_json(metadata: Mapping[str, Any] | None) -> str:
    """`metadata` as JSON text; anything JSON cannot hold is a TypeError naming where."""
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    _check_json_value(metadata, "metadata")
    return json.dumps(metadata)


def _check_json_value(value: object, where: str) -> None:
    """Accept only str/int/float/bool/None, lists, tuples and str-keyed dicts of these."""
    if value is None or isinstance(value, str | int | float):
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json_value(item, f"{where}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has key {key!r} of type {type(key).__name__}; "
                    "metadata keys must be str"
                )
            _check_json_value(item, f"{where}[{key!r}]")
        return
    hint = " (convert arrays with .tolist() or float())" if hasattr(value, "dtype") else ""
    raise TypeError(f"{where} is a {type(value).__name__}, which JSON metadata cannot hold{hint}")


# ----------------------------------------------------------------------------- reading


def read_metadata(path: StrPath) -> dict[str, Any]:
    """The JSON metadata stored by `save_checkpoint` (`{}` when none was given)."""
    source = resolve_source(path)
    with open_checkpoint(source) as handle:
        return read_header(source, handle).metadata


def read_arrays(path: StrPath) -> dict[str, NumpyArray]:
    """Every stored array as `{key path: numpy array}`, in the saved tree's leaf order
    (each checked against its checksum)."""
    source = resolve_source(path)
    with open_checkpoint(source) as handle:
        header = read_header(source, handle)
        return {name: get_tensor(source, handle, name, header.digests) for name in header.paths}


def load_checkpoint(
    path: StrPath, template: PyTree, *, as_numpy: bool = False
) -> tuple[PyTree, dict[str, Any]]:
    """`(tree, metadata)` with `tree` shaped exactly like `template`.

    `template` leaves may be arrays, `jax.ShapeDtypeStruct`s (e.g. from `jax.eval_shape`)
    or Python scalars. Every array's checksum, then every path, shape and dtype is checked
    first; the first mismatch (missing path, shape, dtype, then unexpected extra path)
    raises CheckpointError. Leaves come back as jax arrays (on the template leaf's sharding
    when it has one), or as numpy arrays with `as_numpy=True`.
    """
    source = resolve_source(path)
    flat_template, treedef = jax.tree_util.tree_flatten_with_path(template)
    with open_checkpoint(source) as handle:
        paths, metadata, digests = read_header(source, handle)
        stored = {name: get_tensor(source, handle, name, digests) for name in paths}
    leaves = []
    for key_path, template_leaf in flat_template:
        name = path_to_str(key_path)
        array = _matching_array(source, stored, name, template_leaf)
        leaves.append(array if as_numpy else _to_jax(source, name, array, template_leaf))
    expected = {path_to_str(key_path) for key_path, _ in flat_template}
    extra = [name for name in paths if name not in expected]
    if extra:
        raise CheckpointError(
            f"{source}: unexpected path '{extra[0]}' is not in the template "
            f"({len(extra)} extra path(s): {_preview(extra)})"
        )
    return jax.tree_util.tree_unflatten(treedef, leaves), metadata


def _matching_array(
    source: Path, stored: dict[str, NumpyArray], name: str, template_leaf: object
) -> NumpyArray:
    """The stored array at `name` after checking it against the template leaf."""
    shape, dtype = _template_shape_dtype(name, template_leaf)
    if name not in stored:
        raise CheckpointError(
            f"{source}: missing path '{name}' required by the template "
            f"(the file has {len(stored)} array(s): {_preview(list(stored))})"
        )
    array = stored[name]
    if array.shape != shape:
        raise CheckpointError(
            f"{source}: shape mismatch at '{name}': file has {array.shape}, "
            f"template expects {shape}"
        )
    if array.dtype != dtype:
        raise CheckpointError(
            f"{source}: dtype mismatch at '{name}': file has {array.dtype}, "
            f"template expects {dtype}"
        )
    return array


def _template_shape_dtype(name: str, leaf: object) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Expected `(shape, dtype)` of one template leaf."""
    if isinstance(leaf, bool | int | float) and not isinstance(leaf, np.generic):
        leaf = jnp.asarray(leaf)
    shape = getattr(leaf, "shape", None)
    dtype = getattr(leaf, "dtype", None)
    if shape is None or dtype is None:
        raise TypeError(
            f"template leaf '{name}' is a {type(leaf).__name__}; expected an array, "
            "a jax.ShapeDtypeStruct or a Python scalar"
        )
    _check_not_prng_key(name, dtype)
    return tuple(int(size) for size in shape), np.dtype(dtype)


def _to_jax(source: Path, name: str, array: NumpyArray, template_leaf: object) -> jax.Array:
    """`array` on device, refusing the silent 64 -> 32 bit cast JAX makes without x64."""
    if jax.dtypes.canonicalize_dtype(array.dtype) != array.dtype:
        raise CheckpointError(
            f"{source}: array '{name}' has dtype {array.dtype}, which JAX would turn into "
            f"{jax.dtypes.canonicalize_dtype(array.dtype)} because jax_enable_x64 is off; "
            "enable x64 or load with as_numpy=True"
        )
    sharding = getattr(template_leaf, "sharding", None)
    if isinstance(sharding, jax.sharding.Sharding):
        placed: jax.Array = jax.device_put(array, sharding)
        return placed
    return jnp.asarray(array)


def _preview(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{name}'" for name in names[:limit])
    return shown + (", ..." if len(names) > limit else "")
