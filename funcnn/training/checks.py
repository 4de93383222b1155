"""Checks of the training API's arguments, made once per call before anything compiles: each
bad argument gets one line naming it and the fix, never a raw Python, lax or tracer error.

The value check (`check_values`) is one compiled reduction over each array: the first row
of x that is not finite or lies outside the network's declared `input_bounds`, the first
non-finite row of floating targets, and the first integer label outside `[0, K)` for a
network with K outputs.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.losses import IGNORE
from funcnn.nn.errors import LayerError
from funcnn.nn.layer import Layer
from funcnn.training.batching import check_data, param_dtype
from funcnn.typing import Array, ArrayLike, Params, PyTree, Shape, State

__all__ = [
    "as_param_dtype",
    "check_batch_size",
    "check_count",
    "check_key",
    "check_optimizer",
    "check_values",
    "checked_inputs",
    "checked_pair",
    "example_output",
    "first_bad_rows",
    "is_optimizer",
    "label_classes",
    "member_template",
    "raise_bad_rows",
    "refuse_traced",
]

HOST_LEVEL = ("{where} is a host-level loop: it runs compiled programs itself and cannot be "
              "traced by jax.jit, jax.vmap or jax.grad. Inside your own compiled code use "
              "make_train_step (one step) or net.apply; to train many models at once use "
              "fit_ensemble")


def check_count(where: str, name: str, value: object, minimum: int = 0,
                expected: str | None = None) -> int:
    """`value` as an int >= `minimum`: Python or NumPy integers, not bools or floats.
    `expected` words the requirement in the error (default "an int >= minimum")."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{where}: {name} must be {expected or f'an int >= {minimum}'}, "
                         f"got {value!r}")
    return int(value)


def check_batch_size(where: str, batch_size: object, n: int) -> int:
    """The batch size to use: `n` (full batch) when None; otherwise 1 <= batch_size <= n."""
    if batch_size is None:
        return n
    size = check_count(where, "batch_size", batch_size, 1, "a positive int or None")
    if size > n:
        raise ValueError(f"{where}: batch_size {size} is larger than the {n} samples; "
                         "use batch_size=None for full-batch")
    return size


def is_optimizer(value: object) -> bool:
    """True for an optax-style transformation: an object with `init` and `update`."""
    return callable(getattr(value, "init", None)) and callable(getattr(value, "update", None))


def check_key(where: str, key: object, name: str = "key") -> None:
    """A PRNG key: typed (`jax.random.key(0)`) or raw uint32 (`jax.random.PRNGKey(0)`)."""
    ok = isinstance(key, jax.Array | np.ndarray) and (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        or (key.dtype == np.uint32 and key.ndim >= 1 and key.shape[-1] == 2))
    if not ok:
        raise TypeError(f"{where}: {name} must be a JAX PRNG key such as jax.random.key(0), "
                        f"got {type(key).__name__}")


def check_optimizer(where: str, optimizer: object) -> None:
    """An optax-style transformation with `init` and `update`; a factory passed without being
    called (`adam` for `adam(0.001)`) gets a hint."""
    if is_optimizer(optimizer):
        return
    if callable(optimizer):
        name = getattr(optimizer, "__name__", type(optimizer).__name__)
        raise TypeError(f"{where}: optimizer {name} is a function, not an optimizer: call it, "
                        f"e.g. {name}(learning_rate=0.001)")
    raise TypeError(f"{where}: optimizer must have init and update (an optax-style "
                    f"GradientTransformation), got {type(optimizer).__name__}")


def refuse_traced(where: str, tree: PyTree) -> None:
    """Raise when any leaf of `tree` is a tracer: `where` was called under jit/vmap/grad."""
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree)):
        raise TypeError(HOST_LEVEL.format(where=where))


def example_output(where: str, net: Layer, params: Params, state: State, x: PyTree,
                   ) -> jax.ShapeDtypeStruct:
    """The network's output for one example of `x` (shape `x.shape[1:]`; each array's for
    a pair `(x, mask)`), traced abstractly. A shape that does not fit the network raises
    its error with `where` in front and the hint that x needs a leading sample axis."""
    leaves, tree = jax.tree.flatten((params, state))
    signature = tuple((tuple(leaf.shape), np.dtype(leaf.dtype)) for leaf in leaves)
    x_leaves, x_tree = jax.tree.flatten(x)
    example = tuple((tuple(a.shape[1:]), np.dtype(a.dtype)) for a in x_leaves)
    try:
        return _traced_output(net, tree, signature, x_tree, example)
    except LayerError as err:
        shapes = [a.shape[1:] for a in x_leaves]
        hint = (f"; x holds {x_leaves[0].shape[0]} examples of shape "
                f"{shapes[0] if len(shapes) == 1 else tuple(shapes)} (a leading sample "
                "axis; for one example use x[None])")
        raise type(err)(where, f"{err}{hint}") from None


@lru_cache(maxsize=256)
def _traced_output(net: Layer, tree: Any, signature: tuple[tuple[Shape, Any], ...],
                   x_tree: Any, x_signature: tuple[tuple[Shape, Any], ...],
                   ) -> jax.ShapeDtypeStruct:
    """`example_output`'s trace, once per network, param shapes and example shapes."""
    params, state = jax.tree.unflatten(tree, [
        jax.ShapeDtypeStruct(shape, leaf_dtype)  # type: ignore[no-untyped-call]
        for shape, leaf_dtype in signature])
    example = jax.tree.unflatten(x_tree, [
        jax.ShapeDtypeStruct(shape, leaf_dtype)  # type: ignore[no-untyped-call]
        for shape, leaf_dtype in x_signature])
    out: jax.ShapeDtypeStruct = jax.eval_shape(lambda p, s, v: net.apply(p, s, v)[0], params,
                                               state, example)
    return out


def _first_true(xp: Any, flags: Any) -> Any:
    """Index of the first True in `flags` (N,), or -1 when there is none."""
    return xp.where(xp.any(flags), xp.argmax(flags), -1)


def _row_flags(xp: Any, bad: Any) -> Any:
    """Per-row OR of an element-wise flag array `(N, ...)`."""
    return xp.any(bad.reshape(bad.shape[0], -1), axis=1)


def first_bad_rows(xp: Any, x: Any, y: Any | None, bounds: tuple[float, float] | None,
                   classes: int | None, valid: Any | None = None) -> Any:
    """`[x non-finite, x out of bounds, y non-finite, y label out of range]`: the first bad
    row (or -1) of each, as one int32 vector; `xp` is NumPy (data still on the host) or
    `jax.numpy` (data already on a device: one compiled program, one transfer). `valid`
    `(N,)` bool: only those rows count (a padded batch's real rows)."""
    none = xp.asarray(-1)

    def first(bad: Any) -> Any:
        flags = _row_flags(xp, bad)
        return _first_true(xp, flags if valid is None else flags & valid)

    floating = xp.issubdtype(x.dtype, xp.floating)
    found = [first(~xp.isfinite(x)) if floating else none,
             none if bounds is None else first((x < bounds[0]) | (x >= bounds[1]))]
    y_floating = y is not None and xp.issubdtype(y.dtype, xp.floating)
    found.append(first(~xp.isfinite(y)) if y_floating else none)
    low = 0 if y is None or y.ndim == 1 else IGNORE  # per-token labels: -1 is padding
    found.append(none if y is None or classes is None else first((y < low) | (y >= classes)))
    return xp.stack([xp.asarray(f).astype(xp.int32) for f in found])


_bad_rows_on_device = jax.jit(partial(first_bad_rows, jnp), static_argnums=(2, 3))


def label_classes(y: Array | np.ndarray | None, out: jax.ShapeDtypeStruct) -> int | None:
    """K for integer labels `(N,)` of a network with K > 1 outputs `(K,)`, or per-token
    labels `(N, T, ...)` of outputs `(T, ..., K)`; else None."""
    if y is None or y.ndim < 1 or not jnp.issubdtype(y.dtype, jnp.integer):
        return None
    if len(out.shape) != y.ndim or tuple(out.shape[:-1]) != tuple(y.shape[1:]):
        return None
    return int(out.shape[-1]) if out.shape[-1] >= 2 else None


def check_values(where: str, net: Layer, x: Array | np.ndarray, y: Array | np.ndarray | None,
                 out: jax.ShapeDtypeStruct) -> None:
    """Refuse data that would train or score silently wrong: a non-finite row of x or of
    floating y, x outside the network's `input_bounds`, or a label outside `[0, K)`
    (K from the per-example output `out`). Names the array and its first bad row. Host
    (NumPy) data is checked on the host, device data on its device."""
    bounds = net.input_bounds
    classes = label_classes(y, out)
    on_host = isinstance(x, np.ndarray) and (y is None or isinstance(y, np.ndarray))
    memo = None if on_host else (id(x), id(y), bounds, classes)
    if memo is not None and _passed_before(memo, x, y):
        return
    if on_host:
        found = first_bad_rows(np, x, y, bounds, classes)
    else:
        found = np.asarray(jax.device_get(_bad_rows_on_device(x, y, bounds, classes)))
    raise_bad_rows(where, found, bounds, classes, None if y is None else y.ndim,
                   lambda i: _label_at(y, i))
    if memo is not None:
        _remember_passed(memo, x, y)


def raise_bad_rows(where: str, found: Any, bounds: tuple[float, float] | None,
                   classes: int | None, y_ndim: int | None,
                   label_at: Callable[[int], int] | None = None) -> None:
    """Raise ValueError for the first bad row that `first_bad_rows` found (none: return);
    `label_at(i)` gives a bad label's value for the message."""
    def label_text(i: int) -> str:
        if y_ndim != 1:
            return (f"row {i} of y has labels outside 0..{(classes or 0) - 1} (and {IGNORE}, "
                    f"padding), the {classes} classes of the network's output")
        value = "" if label_at is None else f" = {label_at(i)}"
        return (f"label y[{i}]{value} is outside 0..{(classes or 0) - 1}, the {classes} "
                "classes of the network's output")

    describe: list[Callable[[int], str]] = [
        lambda i: f"row {i} of x is not finite (NaN or infinity)",
        lambda i: f"row {i} of x has values outside [{bounds[0]}, {bounds[1]}), the range "
        "the network's first layer accepts" if bounds else "",
        lambda i: f"row {i} of y is not finite (NaN or infinity)",
        label_text,
    ]
    for index, text in zip(np.asarray(found), describe, strict=True):
        if index >= 0:
            raise ValueError(f"{where}: {text(int(index))}")


_PASSED: dict[tuple[Any, ...], tuple[weakref.ref[Any], weakref.ref[Any] | None]] = {}
"""Device arrays (immutable) whose values passed, with the same bounds and classes: a
`fit` called again on them, epoch by epoch, does not pay the pass over the data again
(25 ms for 60,000 x 784 on a 2-core CPU, a fifth of such an epoch). Entries go with the
arrays."""


def _passed_before(memo: tuple[Any, ...], x: Any, y: Any) -> bool:
    refs = _PASSED.get(memo)
    return (refs is not None and refs[0]() is x
            and (y is None if refs[1] is None else refs[1]() is y))


def _remember_passed(memo: tuple[Any, ...], x: Any, y: Any) -> None:
    def forget(_: object) -> None:
        _PASSED.pop(memo, None)

    _PASSED[memo] = (weakref.ref(x, forget), None if y is None else weakref.ref(y, forget))


def _label_at(y: Any, i: int) -> int:
    return int(jax.device_get(y[i]))


def as_param_dtype(value: ArrayLike, dtype: np.dtype[Any] | None) -> ArrayLike:
    """Floating `value` as `dtype` (on the host for host data); anything else unchanged."""
    if dtype is None:
        return value
    if not isinstance(value, jax.Array | np.ndarray):
        value = np.asarray(value)
    if jnp.issubdtype(value.dtype, jnp.floating) and value.dtype != dtype:
        return value.astype(dtype)
    return value


def member_template(tree: PyTree) -> PyTree:
    """One member's abstract tree (`ShapeDtypeStruct`s) of an ensemble's stacked `tree`."""
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), tree)  # type: ignore[no-untyped-call]


def checked_pair(where: str, net: Layer, params: Params, state: State, x: Any,
                 y: ArrayLike | None) -> tuple[PyTree, Array]:
    """`x` and its targets `y` on the device after every check of this module (see
    `checked_inputs`); `y` None is an error."""
    if y is None:
        raise ValueError(f"{where}: y is None; pass the targets (labels or values), one per "
                         "row of x")
    x_arr, y_arr = _checked(where, net, params, state, x, y)
    return x_arr, cast(Array, y_arr)  # an array: y was given


def checked_inputs(where: str, net: Layer, params: Params, state: State,
                   x: Any) -> PyTree:
    """`x` on the device after every check of this module: one example of x fits the
    network, and its values pass `check_values`. Floating data is cast once to the
    params' floating dtype (float64 NumPy data for a float32 network becomes float32, and
    the reverse), before it is checked and moved. `params`/`state` may be abstract
    (`jax.ShapeDtypeStruct` trees)."""
    return _checked(where, net, params, state, x, None)[0]


def _checked(where: str, net: Layer, params: Params, state: State, x: Any,
             y: ArrayLike | None) -> tuple[Any, Array | None]:
    dtype = param_dtype(params)
    pair = isinstance(x, tuple | list)
    x = tuple(as_param_dtype(a, dtype) for a in x) if pair else as_param_dtype(x, dtype)
    y = None if y is None else as_param_dtype(y, dtype)
    x_arr, y_arr = check_data(where, x, y, net.input_dtype)
    out = example_output(where, net, params, state, x_arr)
    values, values_arr = (x[0], x_arr[0]) if pair else (x, x_arr)  # masks are bool: no check
    if isinstance(values, np.ndarray) and (y is None or isinstance(y, np.ndarray)):
        check_values(where, net, values, y, out)  # host data, checked where it is: no compile
    else:
        check_values(where, net, values_arr, y_arr, out)
    return x_arr, y_arr
