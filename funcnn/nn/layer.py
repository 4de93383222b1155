"""The layer contract: `Layer(init, apply, penalty)`, a triple of pure functions plus its
description (book chapters 2-4), and the shape and input checks every layer shares.

`init(key, input_shape) -> (params, state)` with `input_shape` excluding the batch axis;
`apply(params, state, x, *, key=None, train=False) -> (y, state)` on one example or a batch;
`penalty(params) -> scalar`, the book's L1/L2 regularization (0 for most layers).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp

from funcnn.nn.errors import LayerError, LayerTypeError
from funcnn.tree import hashable
from funcnn.typing import (
    ApplyFn,
    Array,
    DTypeLike,
    InitFn,
    Params,
    PenaltyFn,
    PRNGKey,
    Shape,
    State,
)

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def no_penalty(params: Params) -> Array:
    """The penalty of a layer without regularization: 0."""
    del params
    return jnp.zeros((), jnp.float32)


ChildInputs: TypeAlias = Callable[[Shape], "tuple[tuple[str, Layer, Shape], ...]"]
"""A combinator's wiring: for its per-example input shape, each child's param key and the
per-example input shape that child sees (what `summary` walks)."""


class Layer(NamedTuple):
    """A layer as pure functions plus the description a summary or checkpoint needs.

    `name` is the layer kind (`"Dense"`), used in error paths and param keys; `config`
    holds its JSON-friendly settings; `children` the sub-layers of a combinator; `key`
    overrides the param key a combinator gives this layer (see `funcnn.named`).
    `child_inputs` tells `summary` how a combinator feeds its children (a combinator
    without it is summarised as one row); `input_bounds = (low, high)` declares that every
    input value must lie in `[low, high)` (e.g. an embedding's ids), which `fit`,
    `evaluate` and `predict` check before they run; `input_dtype` is the dtype of inputs
    that are not floating (an embedding's `int32` ids), None for floating input.
    `structure` (set by `described`, never by hand) is what fully determines the layer's
    functions; two layers with equal structures are interchangeable and share compiled
    programs. None (a layer of one's own, a closure): compared by identity.
    """

    init: InitFn
    apply: ApplyFn
    penalty: PenaltyFn = no_penalty
    name: str = "Layer"
    config: Mapping[str, Any] = _EMPTY
    children: tuple[Layer, ...] = ()
    key: str | None = None
    child_inputs: ChildInputs | None = None
    input_bounds: tuple[float, float] | None = None
    input_dtype: Any = None
    structure: Hashable | None = None

    # A Layer is a static argument of `jax.jit`: equal layers reuse one compiled program.
    # Equal means the same object, or equal `structure`s (built-in layers whose config,
    # functions and children describe them fully, see `described`); anything else is
    # compared by identity, because its closures may differ in ways nothing can see.
    def __hash__(self) -> int:
        return id(self) if self.structure is None else hash(self.structure)

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Layer) and self.structure is not None
                                 and self.structure == other.structure)

    def __ne__(self, other: object) -> bool:
        return not self == other


# A Layer is a pytree without leaves (compared by identity), so a network passes through
# `jax.jit`, `vmap` and `eval_shape` as a static argument instead of failing on its functions.
jax.tree_util.register_static(Layer)


def described(layer: Layer, *functions: object, parts: tuple[Hashable, ...] = ()) -> Layer:
    """`layer` with its `structure`: kind, config, `key`, input declarations, the children's
    structures, `functions` (the callables its closures hold, e.g. initializers, compared
    by identity; None for a default) and `parts` (structures of other pieces, e.g. a
    recurrent cell's). Unchanged (compared by identity) when its config is not plain data
    or a child or part has no structure. Only a constructor whose closures hold nothing
    but what these name may call it: an equal structure means the same program."""
    children = tuple(child.structure for child in layer.children)
    if any(c is None for c in children) or any(p is None for p in parts):
        return layer
    try:
        config = hashable(dict(layer.config))
    except TypeError:
        return layer
    dtype = None if layer.input_dtype is None else str(jnp.dtype(layer.input_dtype))
    structure = (layer.name, config, layer.key, dtype, layer.input_bounds, children,
                 tuple(functions), parts)
    return layer._replace(structure=structure)


def with_key(layer: Layer, key: str) -> Layer:
    """`layer` stored under param key `key` in a combinator, its structure renamed too."""
    renamed = layer._replace(key=key)
    if layer.structure is None:
        return renamed
    assert isinstance(layer.structure, tuple)
    name, config, _, *rest = layer.structure
    return renamed._replace(structure=(name, config, key, *rest))


def init_shapes(net: Layer, input_shape: Shape, key: PRNGKey | None = None,
                ) -> tuple[Params, State]:
    """The shapes and dtypes of `net.init(key, input_shape)` without computing it: trees of
    `jax.ShapeDtypeStruct`, e.g. a checkpoint template. (`jax.eval_shape(net.init, key,
    shape)` cannot work: it traces the shape tuple too.)"""
    shape = check_input_shapes(net.name, input_shape)
    init_key = jax.random.key(0) if key is None else key
    result: tuple[Params, State] = jax.eval_shape(lambda k: net.init(k, shape), init_key)
    return result


def is_pair_shape(input_shape: object) -> bool:
    """True for the shape of a pair input `(x, mask)`: a tuple of shapes, not of ints."""
    return isinstance(input_shape, tuple | list) and len(input_shape) > 0 and all(
        isinstance(s, tuple | list) for s in input_shape)


def example_input(layer: Layer, input_shape: Any, dtype: DTypeLike | None = None,
                  ) -> Any:
    """An abstract input of `input_shape` for `layer`: of `dtype` when given, else of the
    layer's `input_dtype` (integer ids), else float32. For a pair shape `((T, F), (T,))`
    the pair `(x, mask)`: x as above, the mask bool."""
    chosen = dtype if dtype is not None else (
        layer.input_dtype if layer.input_dtype is not None else jnp.float32)
    if is_pair_shape(input_shape):
        first, *rest = input_shape
        return (jax.ShapeDtypeStruct(tuple(first), chosen),  # type: ignore[no-untyped-call]
                *(jax.ShapeDtypeStruct(tuple(s), jnp.bool_)  # type: ignore[no-untyped-call]
                  for s in rest))
    return jax.ShapeDtypeStruct(tuple(input_shape), chosen)  # type: ignore[no-untyped-call]


def check_input_shapes(name: str, input_shape: Any) -> Any:
    """`input_shape` for a layer that also takes the pair `(x, mask)`: one shape (checked
    as by `check_input_shape`, any rank) or a tuple of such shapes."""
    if is_pair_shape(input_shape):
        return tuple(check_input_shape(name, s, min_rank=0) for s in input_shape)
    return check_input_shape(name, input_shape, min_rank=0)


def check_input_shape(name: str, input_shape: Shape, min_rank: int = 1) -> Shape:
    """Validate `input_shape` (a tuple of positive ints, batch axis excluded)."""
    if isinstance(input_shape, tuple | list) and any(
            isinstance(d, jax.core.Tracer) for d in input_shape):
        raise LayerError(name, "input_shape is traced (jax.eval_shape(net.init, key, shape) "
                         "traces the shape too); use funcnn.init_shapes(net, shape), or "
                         "jax.eval_shape(lambda k: net.init(k, shape), key)")
    if is_pair_shape(input_shape):
        raise LayerError(name, f"takes one array, not the pair of shapes {input_shape!r} "
                         "(a pair (x, mask) goes to a layer that takes one, e.g. "
                         "MultiHeadAttention)")
    if not isinstance(input_shape, tuple | list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in input_shape
    ):
        raise LayerError(name, f"input_shape must be a tuple of ints, got {input_shape!r}")
    shape = tuple(input_shape)
    if len(shape) < min_rank:
        raise LayerError(name, f"expected an input shape of rank >= {min_rank}, got {shape}")
    if any(d <= 0 for d in shape):
        raise LayerError(name, f"input_shape must be positive, got {shape}")
    return shape


def positive_int(layer: str, label: str, value: object) -> int:
    """`value` if it is an int >= 1, else a ValueError naming the layer and `label`."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{layer}: {label} must be a positive int, got {value!r}")
    return value


def output_width(name: str, features: int | None, **renamed: int | None) -> int:
    """A layer's output width `features`, its first positional argument and one keyword
    name across layers. A value given by the 0.2 name (`n_out=`, `filters=`, `hidden=`,
    passed here as `renamed`) is taken with a `DeprecationWarning` until 0.3."""
    given = {old: value for old, value in renamed.items() if value is not None}
    if given:
        old, value = next(iter(given.items()))
        if features is not None or len(given) > 1:
            raise TypeError(f"{name}: the output width is given twice (features and {old}); "
                            "give it once, as features")
        warnings.warn(f"{name}({old}=...) is deprecated: the output width is `features`, the "
                      f"first argument of every layer ({old}= goes away in 0.3)",
                      DeprecationWarning, stacklevel=3)
        features = value
    if features is None:
        raise TypeError(f"{name}: missing the output width `features` (the first argument)")
    return positive_int(name, "features", features)


def check_param_dtype(name: str, dtype: DTypeLike) -> Any:
    """`dtype` resolved, or a ValueError unless it is a floating-point dtype."""
    try:
        resolved = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"{name}: dtype must be a floating-point dtype, got {dtype!r}") from None
    if not jnp.issubdtype(resolved, jnp.floating):
        raise ValueError(f"{name}: dtype must be a floating-point dtype, got {resolved}")
    return resolved


def check_float_input(name: str, x: Array) -> None:
    """Raise `LayerTypeError` unless `x` is a floating-point array."""
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise LayerTypeError(
            name,
            f"expected floating-point input, got {jnp.result_type(x)}; "
            "convert it first, e.g. x.astype(jnp.float32)",
        )


def parameter_free_init(name: str, check_shape: Callable[[Shape], None] | None = None,
                        ) -> InitFn:
    """The `init` of a layer without params or state: `({}, {})` for any input shape that
    `check_shape` (when given) accepts."""

    def init(key: PRNGKey, input_shape: Shape) -> tuple[Params, State]:
        del key
        shape = check_input_shape(name, input_shape, min_rank=0)
        if check_shape is not None:
            check_shape(shape)
        return {}, {}

    return init


def parameter_free(name: str, fn: Callable[[Array], Array], config: Mapping[str, Any],
                    check_shape: Callable[[Shape], None] | None = None, *,
                    determined_by: tuple[object, ...] | None = None) -> Layer:
    """A layer without params or state computing `y = fn(x)`; `check_shape` may reject
    an `input_shape` at init. Its structure (`described`) holds `fn` and `check_shape`
    by identity, or, for a built-in whose name and config already determine them (a
    closure made from the config), `determined_by`."""
    init = parameter_free_init(name, check_shape)

    def apply(
        params: Params,
        state: State,
        x: Array,
        *,
        key: PRNGKey | None = None,
        train: bool = False,
    ) -> tuple[Array, State]:
        del params, key, train
        return fn(jnp.asarray(x)), state

    layer = Layer(init, apply, no_penalty, name, MappingProxyType(dict(config)))
    return described(layer, *((fn, check_shape) if determined_by is None else determined_by))
