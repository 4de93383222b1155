"""The layer contract (DESIGN.md) as reusable checks, run for each dtype a layer supports.

A layer family's tests list `ContractCase`s and call `run_contract(case, dtype)` for every
dtype in `DTYPES` (see tests/test_layers.py). Each case's params (floating leaves) and
floating inputs are cast to the dtype under test; float64 runs with x64 on. Checks:
declared output shape equals the actual one (batched and single example), the output has
the dtype under test, jit equals eager, vmap over examples equals the batched call,
`eval_shape` of init and apply, no retrace, and in float64 gradients against finite
differences (`check_gradients`, 1e-4). Only `check_jit_equals_eager` runs the layer
eagerly (op by op, each op compiled on its own); the other checks call it jitted.

An input may be a pytree, e.g. the pair `(x, mask)` of a padded sequence: `shape` is then
the pair of shapes `((T, F), (T,))`, `make_input` gets the batched pair of shapes and
returns the pair, and gradients are taken with respect to its floating leaves only.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn.nn import Layer, output_shape

DTYPES = ("float32", "float64", "bfloat16")
KEY = jax.random.key(0)
BATCH = 5

# jit/eager and vmap/batch agreement per dtype: one op's rounding, a little amplified
TOLERANCE = {"float32": 1e-5, "float64": 1e-12, "bfloat16": 3e-2}


@functools.partial(jax.jit, static_argnames=("train",))
def jit_apply(layer: Layer, params: Any, state: Any, x: jax.Array, key: jax.Array | None = None,
              train: bool = False) -> tuple[jax.Array, Any]:
    """`layer.apply(params, state, x, key=key, train=train)`, compiled (a layer is static)."""
    return layer.apply(params, state, x, key=key, train=train)


def normal_input(key: jax.Array, shape: tuple[int, ...], dtype: str) -> jax.Array:
    """The default input: standard normal values of `shape` in `dtype`."""
    return jax.random.normal(key, shape, jnp.float32).astype(dtype)


class ContractCase(NamedTuple):
    """One layer configuration: `factory()` builds it, `shape` is one example's input shape
    (or a pair of shapes). `make_input(key, (batch, *shape), dtype)` draws inputs (integer
    ids stay integers; for a pair shape, the pair of batched shapes).
    `float_input=False` marks inputs that are not floats (gradients only w.r.t. params).
    `state_changes_in_training` marks layers whose state a training call updates.
    `fd_floor`: `check_gradients`' floor, raised for gradients that are zero by structure
    (attention's key bias: softmax ignores a shift shared by all keys)."""

    id: str
    factory: Callable[[], Layer]
    shape: Any  # tuple[int, ...], or a pair of them
    make_input: Callable[[jax.Array, Any, str], Any] = normal_input
    float_input: bool = True
    state_changes_in_training: bool = False
    fd_floor: float | None = None


@contextlib.contextmanager
def dtype_mode(dtype: str) -> Iterator[None]:
    """x64 on for float64, unchanged otherwise."""
    with jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext():
        yield


def cast_floats(tree: Any, dtype: str) -> Any:
    """Every floating leaf of `tree` cast to `dtype`; other leaves unchanged."""
    return jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


class Built(NamedTuple):
    """A case's layer, its params (cast to the dtype), its state and a batch of inputs."""

    layer: Layer
    params: Any
    state: Any
    x: Any  # an array, or a pair (x, mask)


def batched_shape(shape: Any, batch: int = BATCH) -> Any:
    """`(batch, *shape)`, or that of each shape of a pair shape."""
    if fn.nn.is_pair_shape(shape):
        return tuple((batch, *s) for s in shape)
    return (batch, *shape)


def first_example(x: Any) -> Any:
    """Example 0 of every leaf of a batched input."""
    return jax.tree.map(lambda a: a[0], x)


def split_floats(x: Any) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    """The floating leaves of input `x` and a function putting new ones in their place."""
    leaves, treedef = jax.tree.flatten(x)
    where = [i for i, a in enumerate(leaves) if jnp.issubdtype(a.dtype, jnp.floating)]

    def rebuild(floats: list[Any]) -> Any:
        merged = list(leaves)
        for i, value in zip(where, floats, strict=True):
            merged[i] = value
        return jax.tree.unflatten(treedef, merged)

    return [leaves[i] for i in where], rebuild


@functools.cache
def _build(case: ContractCase, x64: bool) -> tuple[Layer, Any, Any]:
    """`case`'s layer and its init, made once per x64 mode (a network's init compiles)."""
    layer = case.factory()
    params, state = layer.init(KEY, case.shape)
    return layer, params, state


def setup(case: ContractCase, dtype: str) -> Built:
    """Build `case` once for all checks (float32 and bfloat16 share one build)."""
    layer, params, state = _build(case, bool(jax.config.read("jax_enable_x64")))
    x = case.make_input(jax.random.key(1), batched_shape(case.shape), dtype)
    return Built(layer, cast_floats(params, dtype), state, x)


def close(actual: Any, expected: Any, dtype: str) -> None:
    tol = TOLERANCE[dtype]
    chex.assert_trees_all_close(
        jax.tree.map(lambda a: np.asarray(a, np.float64), actual),
        jax.tree.map(lambda a: np.asarray(a, np.float64), expected), rtol=tol, atol=tol)


def check_declared_shape_and_dtype(case: ContractCase, dtype: str, built: Built) -> None:
    layer, params, state, x = built
    declared = output_shape(layer, params, state, case.shape)
    y, _ = jit_apply(layer, params, state, x)
    assert y.shape == (BATCH, *declared), (y.shape, declared)
    assert y.dtype == jnp.dtype(dtype), f"{case.id}: output {y.dtype} for {dtype}"
    single, _ = jit_apply(layer, params, state, first_example(x))
    assert single.shape == declared


def check_jit_equals_eager(case: ContractCase, dtype: str, built: Built) -> None:
    layer, params, state, x = built
    eager = layer.apply(params, state, x)
    jitted = jit_apply(layer, params, state, x)
    close(jitted, eager, dtype)


def check_vmap_equals_batch(case: ContractCase, dtype: str, built: Built) -> None:
    layer, params, state, x = built
    batched, _ = jit_apply(layer, params, state, x)
    mapped = jax.jit(jax.vmap(lambda xi: layer.apply(params, state, xi)[0]))(x)
    close(mapped, batched, dtype)


def check_eval_shape(case: ContractCase, dtype: str, built: Built) -> None:
    layer, params, state, x = built
    p_shapes, s_shapes = jax.eval_shape(lambda k: layer.init(k, case.shape), KEY)
    chex.assert_trees_all_equal_shapes(p_shapes, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(s_shapes, state)
    p_shapes = jax.tree.map(lambda s, p: jax.ShapeDtypeStruct(s.shape, p.dtype), p_shapes,
                            params)
    out = jax.eval_shape(lambda p, v: layer.apply(p, state, v)[0], p_shapes,
                         jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), x))
    assert out.shape == (BATCH, *output_shape(layer, params, state, case.shape))
    assert out.dtype == jnp.dtype(dtype)


def check_no_retrace(case: ContractCase, dtype: str, built: Built) -> None:
    layer, params, state, x = built
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def forward(p: Any, s: Any, v: Any) -> jax.Array:
        return layer.apply(p, s, v)[0]

    other = case.make_input(jax.random.key(7), batched_shape(case.shape), dtype)
    first = forward(params, state, x)
    second = forward(params, state, other)
    third = forward(params, state, x)
    np.testing.assert_array_equal(np.asarray(first, np.float64), np.asarray(third, np.float64))
    assert second.shape == first.shape


def check_gradients(case: ContractCase, dtype: str, built: Built) -> None:
    """Finite, of the params' dtype; in float64 equal to finite differences (1e-4), for the
    params and the float inputs together (one compiled check)."""
    layer, params, state, x = built
    weights = jax.random.normal(jax.random.key(2), jit_apply(layer, params, state, x)[0].shape)
    weights = weights.astype(dtype)

    floats, rebuild = split_floats(x)

    def objective(p: Any, v: list[Any]) -> jax.Array:
        y, _ = layer.apply(p, state, rebuild(v))
        return jnp.sum(weights * y) + layer.penalty(p)

    argnums = (0, 1) if case.float_input else (0,)
    grads = jax.jit(jax.grad(objective, argnums=argnums))(params, floats)
    chex.assert_tree_all_finite(grads)
    chex.assert_trees_all_equal_dtypes(grads[0], params)
    if dtype != "float64":
        return
    if case.float_input:
        fn.check_gradients(lambda pv: objective(*pv), (params, floats),
                           floor=case.fd_floor).assert_close(1e-4)
    elif jax.tree.leaves(params):
        fn.check_gradients(lambda p: objective(p, floats), params,
                           floor=case.fd_floor).assert_close(1e-4)


def check_state_threading(case: ContractCase, dtype: str, built: Built) -> None:
    """Inference leaves the state as it was; training changes it for stateful layers and
    returns a state of the same structure, shapes and dtypes."""
    layer, params, state, x = built
    _, after_inference = jit_apply(layer, params, state, x, train=False)
    chex.assert_trees_all_equal(after_inference, state)
    _, after_training = jit_apply(layer, params, state, x, key=jax.random.key(3), train=True)
    chex.assert_trees_all_equal_shapes_and_dtypes(after_training, state)
    changed = any(not np.array_equal(a, b) for a, b in
                  zip(jax.tree.leaves(after_training), jax.tree.leaves(state), strict=True))
    assert changed == case.state_changes_in_training, case.id


CHECKS = (check_declared_shape_and_dtype, check_jit_equals_eager, check_vmap_equals_batch,
          check_eval_shape, check_no_retrace, check_gradients, check_state_threading)


def run_contract(case: ContractCase, dtype: str) -> None:
    """Every contract check for `case` in `dtype` (float64 with x64 on)."""
    with dtype_mode(dtype):
        built = setup(case, dtype)
        for check in CHECKS:
            check(case, dtype, built)
