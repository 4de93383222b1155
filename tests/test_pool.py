"""Max/average window pools (1D, 2D) and global pools: the layer contract per dtype, both
lowerings against NumPy loops (incl. SAME padding, where the average counts real elements
only), and the errors."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from layer_contract import DTYPES, ContractCase, run_contract

from funcnn.nn.errors import LayerError, LayerTypeError
from funcnn.nn.pool import (
    AvgPool1D,
    AvgPool2D,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool1D,
    MaxPool2D,
)

LOWERINGS = ("reduce_window", "slices")

CASES = [
    ContractCase("maxpool2d_same_overlapping", lambda: MaxPool2D(3, 2, "SAME"), (6, 6, 2)),
    ContractCase("avgpool2d_same_reduce_window",
                 lambda: AvgPool2D((2, 3), (2, 2), "SAME", lowering="reduce_window"),
                 (5, 6, 2)),
    ContractCase("avgpool1d_explicit", lambda: AvgPool1D(3, 2, (1, 1)), (6, 2)),
    ContractCase("global_avg", GlobalAvgPool, (4, 3, 2)),
    ContractCase("maxpool2d_reshape_cropped", lambda: MaxPool2D(2, lowering="reshape"),
                 (5, 4, 2)),
    ContractCase("avgpool1d_reshape", lambda: AvgPool1D(3, lowering="reshape"), (7, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_contract(case: ContractCase, dtype: str) -> None:
    run_contract(case, dtype)


def numpy_pool(x: np.ndarray, kind: str, window: tuple[int, ...], strides: tuple[int, ...],
               pads: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Loops over output positions; each window keeps only in-range (real) elements."""
    spatial = x.shape[1:-1]
    out = [(n + lo + hi - k) // s + 1 for n, k, s, (lo, hi) in
           zip(spatial, window, strides, pads, strict=True)]
    y = np.zeros((x.shape[0], *out, x.shape[-1]))
    for pos in np.ndindex(*out):
        ranges = tuple(slice(max(o * s - lo, 0), min(o * s - lo + k, n)) for o, s, (lo, _), k, n
                       in zip(pos, strides, pads, window, spatial, strict=True))
        part = x[(slice(None), *ranges, slice(None))]
        axes = tuple(range(1, 1 + len(window)))
        y[(slice(None), *pos)] = part.max(axes) if kind == "max" else part.mean(axes)
    return y


@pytest.mark.parametrize("lowering", LOWERINGS)
@pytest.mark.parametrize(("kind", "window", "strides", "padding", "pads"), [
    ("max", (2, 2), None, "VALID", ((0, 0), (0, 0))),
    ("avg", (2, 2), None, "VALID", ((0, 0), (0, 0))),  # 7x6: the last row is dropped
    ("max", (3, 3), (2, 2), "SAME", ((1, 1), (0, 1))),  # 7 -> 4: pads (1, 1); 6 -> 3: (0, 1)
    ("avg", (3, 3), (2, 2), "SAME", ((1, 1), (0, 1))),
    ("avg", (2, 3), (1, 2), ((1, 0), (2, 1)), ((1, 0), (2, 1))),
])
def test_pool2d_matches_numpy_loops(lowering: str, kind: str, window: tuple[int, int],
                                    strides: tuple[int, int] | None, padding: object,
                                    pads: tuple[tuple[int, int], ...]) -> None:
    x = np.random.default_rng(0).standard_normal((2, 7, 6, 3))
    make = MaxPool2D if kind == "max" else AvgPool2D
    layer = make(window, strides, padding, lowering=lowering)  # type: ignore[arg-type]
    y, _ = layer.apply({}, {}, jnp.asarray(x, jnp.float32))
    expected = numpy_pool(x, kind, window, strides or window, pads)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lowering", LOWERINGS)
def test_pool1d_same_one_example(lowering: str) -> None:
    x = np.random.default_rng(1).standard_normal((7, 2))
    for make, kind in ((MaxPool1D, "max"), (AvgPool1D, "avg")):
        y, _ = make(2, 2, "same", lowering=lowering).apply(  # type: ignore[arg-type]
            {}, {}, jnp.asarray(x, jnp.float32))
        # 7 -> 4 with one padded element at the end; its window averages one real value
        expected = numpy_pool(x[None], kind, (2,), (2,), ((0, 1),))[0]
        assert y.shape == (4, 2)
        np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(y[-1]), x[-1], rtol=1e-6)


@pytest.mark.parametrize(("make", "kind", "window"), [
    (MaxPool2D, "max", (2, 2)), (AvgPool2D, "avg", (2, 3)), (MaxPool1D, "max", (3,)),
    (AvgPool1D, "avg", (2,))])
def test_reshape_lowering_matches_numpy_loops_and_cropping(make: Any, kind: str,
                                                           window: tuple[int, ...]) -> None:
    shape = (*(2, 7, 6)[:len(window) + 1], 3)  # 7 and 6 leave rows no window covers
    x = np.random.default_rng(3).standard_normal(shape)
    layer = make(window, lowering="reshape")
    y, _ = layer.apply({}, {}, jnp.asarray(x, jnp.float32))
    expected = numpy_pool(x, kind, window, window, ((0, 0),) * len(window))
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-6)


def test_auto_lowering_reshapes_non_overlapping_valid_pools_on_cpu() -> None:
    from funcnn.nn.pool import reshape_applies

    assert reshape_applies((2, 2), (2, 2), ((0, 0), (0, 0)))
    assert not reshape_applies((3, 3), (2, 2), ((0, 0), (0, 0)))
    assert not reshape_applies((2, 2), (2, 2), ((0, 1), (0, 0)))
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 2))

    def grad(lowering: str) -> jax.Array:
        layer = MaxPool2D(2, lowering=lowering)  # type: ignore[arg-type]
        return jax.grad(lambda v: jnp.sum(layer.apply({}, {}, v)[0] ** 2))(x)

    # without ties every lowering sends the gradient to the same element
    np.testing.assert_allclose(np.asarray(grad("auto")), np.asarray(grad("reduce_window")),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="lowering 'reshape' needs strides equal to the "
                                         "window and padding 'VALID'"):
        MaxPool2D(3, 2, lowering="reshape")
    with pytest.raises(ValueError, match="lowering 'reshape' needs"):
        MaxPool2D(2, padding="SAME", lowering="reshape")


def test_max_gradient_lowerings_agree_without_ties() -> None:
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 2))

    def grad(lowering: str) -> jax.Array:
        layer = MaxPool2D(3, 2, "SAME", lowering=lowering)  # type: ignore[arg-type]
        return jax.grad(lambda v: jnp.sum(layer.apply({}, {}, v)[0] ** 2))(x)

    np.testing.assert_allclose(np.asarray(grad("slices")), np.asarray(grad("reduce_window")),
                               rtol=1e-6)


def test_global_pools() -> None:
    x = np.random.default_rng(2).standard_normal((3, 4, 5, 2))
    avg, _ = GlobalAvgPool().apply({}, {}, jnp.asarray(x))
    mx, _ = GlobalMaxPool().apply({}, {}, jnp.asarray(x[0]))
    np.testing.assert_allclose(np.asarray(avg), x.mean((1, 2)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(mx), x[0].max((0, 1)), rtol=1e-6)
    one_d, _ = GlobalAvgPool(ndim=1).apply({}, {}, jnp.asarray(x[:, 0]))
    np.testing.assert_allclose(np.asarray(one_d), x[:, 0].mean(1), rtol=1e-5)


def test_config_and_default_strides() -> None:
    layer = MaxPool2D(3)
    assert layer.name == "MaxPool2D"
    assert dict(layer.config) == {"window": [3, 3], "strides": [3, 3], "padding": "VALID",
                                  "lowering": "auto"}
    assert dict(AvgPool1D(2, padding=(0, 1)).config)["padding"] == [[0, 1]]
    assert dict(GlobalAvgPool().config) == {"ndim": 2}


@pytest.mark.parametrize(("make", "match"), [
    (lambda: MaxPool2D(0), "MaxPool2D: window must be a positive int or a tuple of 2"),
    (lambda: AvgPool2D(2, (2, 2, 2)), "AvgPool2D: strides must be"),
    (lambda: MaxPool1D(2, padding="FULL"), "MaxPool1D: padding must be"),
    (lambda: AvgPool1D(2, padding=(-1, 0)), "AvgPool1D: padding must be"),
    (lambda: MaxPool2D(2, lowering="fast"), "MaxPool2D: lowering must be"),  # type: ignore[arg-type]
    (lambda: GlobalMaxPool(ndim=0), "GlobalMaxPool: ndim must be a positive int"),
])
def test_bad_arguments_name_the_argument(make: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()  # type: ignore[operator]


def test_shape_and_dtype_errors() -> None:
    key = jax.random.key(0)
    with pytest.raises(LayerError, match=r"MaxPool2D: expected one example of shape \(H, W, C\)"):
        MaxPool2D().init(key, (6, 2))
    with pytest.raises(LayerError, match=r"AvgPool2D: window \(4, 4\).*does not fit"):
        AvgPool2D(4).init(key, (3, 3, 1))
    with pytest.raises(LayerError, match=r"use GlobalAvgPool\(ndim=1\)"):
        GlobalAvgPool().init(key, (6, 2))
    with pytest.raises(LayerError, match=r"MaxPool1D: expected input \(B, W, C\) or one "
                                         r"example \(W, C\), got shape \(2, 3, 4, 5\)"):
        MaxPool1D().apply({}, {}, jnp.ones((2, 3, 4, 5)))
    with pytest.raises(LayerError, match="GlobalMaxPool: expected 2 spatial axes"):
        GlobalMaxPool().apply({}, {}, jnp.ones((4, 2)))
    with pytest.raises(LayerTypeError, match="AvgPool2D: expected floating-point input"):
        AvgPool2D().apply({}, {}, jnp.ones((4, 4, 2), jnp.int32))
