"""Mixed-precision policies: which dtype the params are stored in, which the forward and
backward pass compute in, and which the network's output (and so the loss) uses.

A `Policy` is plain data (after DeepMind's jmp and Flax's `dtype`/`param_dtype` split);
`funcnn.nn.mixed_precision(net, policy)` applies one to any network. The usual choice on
accelerators is `Policy.parse("mixed_bfloat16")`: float32 master weights and optimizer
state, bfloat16 compute, float32 softmax, loss and reductions.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.typing import DTypeLike, PyTree

__all__ = ["Policy", "cast_floating"]

_NAMED = {
    "float32": ("float32", "float32", "float32"),
    "float64": ("float64", "float64", "float64"),
    "bfloat16": ("bfloat16", "bfloat16", "bfloat16"),
    "float16": ("float16", "float16", "float16"),
    "mixed_bfloat16": ("float32", "bfloat16", "float32"),
    "mixed_float16": ("float32", "float16", "float32"),
}
_FIELDS = {"params": "param_dtype", "p": "param_dtype", "param": "param_dtype",
           "compute": "compute_dtype", "c": "compute_dtype",
           "output": "output_dtype", "o": "output_dtype"}


def _floating(label: str, dtype: DTypeLike) -> np.dtype[Any]:
    try:
        resolved = jnp.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"Policy: {label} {dtype!r} is not a dtype") from err
    if not jnp.issubdtype(resolved, jnp.floating):
        raise ValueError(f"Policy: {label} must be a floating dtype, got {resolved}")
    return resolved


def cast_floating(tree: PyTree, dtype: DTypeLike) -> PyTree:
    """Every floating-point leaf of `tree` cast to `dtype`; integer, bool and key leaves
    (token ids, counters, PRNG keys) are left as they are."""
    def cast(leaf: Any) -> Any:
        dt = getattr(leaf, "dtype", None)
        if dt is not None and jnp.issubdtype(dt, jnp.floating) and dt != dtype:
            return jnp.asarray(leaf).astype(dtype)
        return leaf
    return jax.tree.map(cast, tree)


class Policy(NamedTuple):
    """`param_dtype`: how params (and so gradients and optimizer moments) are stored;
    `compute_dtype`: the forward and backward pass; `output_dtype`: the network's output,
    its final softmax/sigmoid and the loss. All three are floating dtypes."""

    param_dtype: np.dtype[Any]
    compute_dtype: np.dtype[Any]
    output_dtype: np.dtype[Any]

    @classmethod
    def of(cls, param_dtype: DTypeLike, compute_dtype: DTypeLike,
           output_dtype: DTypeLike | None = None) -> Policy:
        """A checked policy; `output_dtype` defaults to `param_dtype`."""
        return cls(_floating("param_dtype", param_dtype),
                   _floating("compute_dtype", compute_dtype),
                   _floating("output_dtype",
                             param_dtype if output_dtype is None else output_dtype))

    @classmethod
    def parse(cls, spec: str) -> Policy:
        """From a name (`"float32"`, `"mixed_bfloat16"`, `"mixed_float16"`, ...) or jmp's
        form `"params=float32,compute=bfloat16,output=float32"` (also `p=`, `c=`, `o=`;
        a missing output defaults to params)."""
        if not isinstance(spec, str):
            raise TypeError(f"Policy.parse: expected a string, got {type(spec).__name__}")
        text = spec.strip().lower()
        if text in _NAMED:
            return cls.of(*_NAMED[text])
        chosen: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            if not sep or name.strip() not in _FIELDS or "=" in value:
                raise ValueError(f"Policy.parse: cannot read {part!r} in {spec!r}; expected "
                                 f"one of {sorted(_NAMED)} or 'params=...,compute=...,"
                                 "output=...'")
            chosen[_FIELDS[name.strip()]] = value.strip()
        missing = {"param_dtype", "compute_dtype"} - set(chosen)
        if missing:
            raise ValueError(f"Policy.parse: {spec!r} names no {' and no '.join(sorted(missing))}")
        return cls.of(chosen["param_dtype"], chosen["compute_dtype"], chosen.get("output_dtype"))

    def cast_to_param(self, tree: PyTree) -> PyTree:
        return cast_floating(tree, self.param_dtype)

    def cast_to_compute(self, tree: PyTree) -> PyTree:
        return cast_floating(tree, self.compute_dtype)

    def cast_to_output(self, tree: PyTree) -> PyTree:
        return cast_floating(tree, self.output_dtype)

    def describe(self) -> str:
        """`"params=float32,compute=bfloat16,output=float32"`, which `parse` reads back."""
        return (f"params={self.param_dtype.name},compute={self.compute_dtype.name},"
                f"output={self.output_dtype.name}")
