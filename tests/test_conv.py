"""Conv1D, Conv2D and ConvTranspose2D: the layer contract per dtype, both lowerings against
NumPy loops (strides, TF/JAX SAME padding, dilation, groups), the transposed conv as the
input gradient of a Conv2D, the default initializer and the errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from layer_contract import DTYPES, ContractCase, run_contract

from funcnn.initializers import constant
from funcnn.nn.conv import Conv1D, Conv2D, ConvTranspose2D
from funcnn.nn.conv_lowering import conv, same_padding
from funcnn.nn.errors import LayerError, LayerTypeError

LOWERINGS = ("lax", "slices")
BIAS = constant(0.1)  # nonzero biases: the L1 penalty |b| has a kink at zero

# few cases, each covering several options: every case compiles a dozen programs
CASES = [
    ContractCase("conv2d_strided_dilated_grouped_reg",
                 lambda: Conv2D(4, 2, strides=(2, 1), dilation=(1, 2), groups=2, b_init=BIAS,
                                w_l1=1e-3, w_l2=1e-3, b_l1=1e-3, b_l2=1e-3), (6, 6, 2)),
    ContractCase("conv1d_explicit_pad_lax",
                 lambda: Conv1D(3, 3, strides=2, padding=(1, 2), b_init=BIAS, lowering="lax"),
                 (6, 2)),
    ContractCase("conv_transpose2d", lambda: ConvTranspose2D(3, 2, strides=2, b_init=BIAS),
                 (3, 3, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_contract(case: ContractCase, dtype: str) -> None:
    run_contract(case, dtype)


def numpy_conv(x: np.ndarray, w: np.ndarray, strides: tuple[int, ...],
               pads: tuple[tuple[int, int], ...], dilation: tuple[int, ...],
               groups: int) -> np.ndarray:
    """Direct loops: y[b, o..., f] = sum x_pad[b, o*s + p*d, g*C/G + c] w[p, c, f]."""
    n = w.ndim - 2
    x = np.pad(x, ((0, 0), *pads, (0, 0)))
    kernel, (cg, cout) = w.shape[:n], w.shape[n:]
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True)]
    out = [(size - s_) // st + 1 for size, s_, st in zip(x.shape[1:-1], span, strides,
                                                         strict=True)]
    y = np.zeros((x.shape[0], *out, cout))
    og = cout // groups
    for pos in np.ndindex(*out):
        for taps in np.ndindex(*kernel):
            idx = tuple(o * s + t * d for o, s, t, d in zip(pos, strides, taps, dilation,
                                                            strict=True))
            for f in range(cout):
                g = f // og
                y[(slice(None), *pos, f)] += x[(slice(None), *idx, slice(g * cg, (g + 1) * cg))
                                               ] @ w[(*taps, slice(None), f)]
    return y


def _data(shape: tuple[int, ...], w_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal(shape), rng.standard_normal(w_shape)


def test_same_padding_is_tf_asymmetric_at_stride_2() -> None:
    # 6 with k=3, s=2: output 3, total pad (3-1)*2 + 3 - 6 = 1, all of it at the end
    assert same_padding(6, 3, 2) == (0, 1)
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(6, 4, 1) == (1, 2)
    assert same_padding(6, 3, 1, dilation=2) == (2, 2)
    assert same_padding(5, 1, 3) == (0, 0)


@pytest.mark.parametrize(("strides", "dilation", "groups", "padding", "pads"), [
    ((2, 2), (1, 1), 1, "SAME", ((0, 1), (0, 1))),  # asymmetric TF pad on 6x6
    ((1, 2), (2, 1), 1, "SAME", ((2, 2), (0, 1))),
    ((1, 1), (1, 1), 2, "VALID", ((0, 0), (0, 0))),
    ((2, 1), (1, 2), 2, ((1, 0), (2, 1)), ((1, 0), (2, 1))),
])
def test_conv2d_matches_numpy_loops(strides: tuple[int, int], dilation: tuple[int, int],
                                    groups: int, padding: object,
                                    pads: tuple[tuple[int, int], ...]) -> None:
    x, w = _data((2, 6, 6, 4), (3, 3, 4 // groups, 4))
    params = {"w": jnp.asarray(w, jnp.float32), "b": jnp.arange(4.0)}
    expected = numpy_conv(x, w, strides, pads, dilation, groups) + np.arange(4.0)
    for lowering in LOWERINGS:
        layer = Conv2D(4, 3, strides=strides, padding=padding,  # type: ignore[arg-type]
                       dilation=dilation, groups=groups, lowering=lowering)  # type: ignore[arg-type]
        y, _ = layer.apply(params, {}, jnp.asarray(x, jnp.float32))
        np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5,
                                   err_msg=lowering)


@pytest.mark.parametrize("lowering", LOWERINGS)
def test_conv1d_matches_numpy_loops_one_example(lowering: str) -> None:
    x, w = _data((7, 4), (3, 2, 6))
    layer = Conv1D(6, 3, strides=2, dilation=1, groups=2, use_bias=False,
                   lowering=lowering)  # type: ignore[arg-type]
    y, _ = layer.apply({"w": jnp.asarray(w, jnp.float32)}, {}, jnp.asarray(x, jnp.float32))
    expected = numpy_conv(x[None], w, (2,), (same_padding(7, 3, 2),), (1,), 2)[0]
    assert y.shape == (4, 6)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)


def test_lowerings_agree_in_float64() -> None:
    x, w = _data((2, 7, 5, 6), (3, 2, 2, 9))
    with jax.enable_x64(True):
        xs, ws = jnp.asarray(x), jnp.asarray(w)
        args = ((2, 1), ((1, 1), (0, 1)), (1, 2), 3)
        a = conv(xs, ws, *args, lowering="lax")  # type: ignore[arg-type]
        b = conv(xs, ws, *args, lowering="slices")  # type: ignore[arg-type]
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)


def numpy_conv_transpose(x: np.ndarray, w: np.ndarray, s: int, padding: str) -> np.ndarray:
    """Scatter loop: y_full[b, i*s + p, j*s + q] += x[b, i, j] @ w[p, q], cropped by the
    forward conv's TF padding `lo` to `n = H*s` (SAME) or kept whole (VALID)."""
    batch, h, wd, _ = x.shape
    k = w.shape[0]
    full = np.zeros((batch, (h - 1) * s + k, (wd - 1) * s + k, w.shape[-1]))
    for i, j, p, q in np.ndindex(h, wd, k, k):
        full[:, i * s + p, j * s + q] += x[:, i, j] @ w[p, q]
    if padding == "VALID":
        return full
    lo = max(k - s, 0) // 2
    out = np.zeros((batch, h * s, wd * s, w.shape[-1]))  # rows past the full map stay 0
    part = full[:, lo:lo + h * s, lo:lo + wd * s]
    out[:, :part.shape[1], :part.shape[2]] = part
    return out


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize(("k", "s"), [(3, 2), (2, 3), (4, 2)])
def test_conv_transpose_is_conv_input_gradient(padding: str, k: int, s: int) -> None:
    x, w = _data((2, 3, 4, 2), (k, k, 2, 3))
    xs, ws = jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32)
    n = (3 * s, 4 * s) if padding == "SAME" else (2 * s + k, 3 * s + k)
    forward = Conv2D(2, k, strides=s, padding=padding, use_bias=False)
    _, vjp = jax.vjp(lambda z: forward.apply({"w": jnp.swapaxes(ws, 2, 3)}, {}, z)[0],
                     jnp.zeros((2, *n, 3)))
    gradient = np.asarray(vjp(xs)[0])
    np.testing.assert_allclose(gradient, numpy_conv_transpose(x, w, s, padding), rtol=1e-5,
                               atol=1e-5)
    for lowering in LOWERINGS:
        layer = ConvTranspose2D(3, k, strides=s, padding=padding, use_bias=False,
                                lowering=lowering)  # type: ignore[arg-type]
        y, _ = layer.apply({"w": ws}, {}, xs)
        assert y.shape == (2, *n, 3)
        np.testing.assert_allclose(np.asarray(y), gradient, rtol=1e-5, atol=1e-5,
                                   err_msg=lowering)


def test_default_init_is_he_normal_over_fan_in_per_group() -> None:
    params, _ = Conv2D(64, 3, groups=2).init(jax.random.key(0), (5, 5, 32))
    assert params["w"].shape == (3, 3, 16, 64) and params["b"].shape == (64,)
    std = float(jnp.std(params["w"]))
    assert abs(std / np.sqrt(2 / (3 * 3 * 16)) - 1) < 0.05
    np.testing.assert_array_equal(np.asarray(params["b"]), 0.0)


def test_dtype_argument_and_promotion() -> None:
    layer = Conv2D(3, 2, dtype=jnp.bfloat16)
    params, _ = layer.init(jax.random.key(0), (4, 4, 2))
    assert {a.dtype for a in jax.tree.leaves(params)} == {jnp.dtype(jnp.bfloat16)}
    assert layer.apply(params, {}, jnp.ones((4, 4, 2), jnp.bfloat16))[0].dtype == jnp.bfloat16
    assert layer.apply(params, {}, jnp.ones((4, 4, 2), jnp.float32))[0].dtype == jnp.float32


def test_config_is_json_friendly() -> None:
    layer = Conv2D(4, (3, 1), strides=2, padding=((1, 0), (0, 0)), w_l2=1e-4)
    assert layer.name == "Conv2D"
    assert dict(layer.config) == {
        "features": 4, "kernel_size": [3, 1], "strides": [2, 2],
        "padding": [[1, 0], [0, 0]], "dilation": [1, 1], "groups": 1, "use_bias": True,
        "w_l1": 0.0, "w_l2": 1e-4, "b_l1": 0.0, "b_l2": 0.0, "dtype": "float32",
        "lowering": "auto"}
    assert Conv1D(2, 3, padding="same").config["padding"] == "SAME"


@pytest.mark.parametrize(("make", "match"), [
    (lambda: Conv2D(0, 3), "Conv2D: features must be a positive int, got 0"),
    (lambda: Conv2D(3, (3,)), r"Conv2D: kernel_size must be a positive int or a tuple of 2"),
    (lambda: Conv2D(3, 3, strides=0), "Conv2D: strides must be"),
    (lambda: Conv1D(3, 3, dilation=(1, 1)), "Conv1D: dilation must be"),
    (lambda: Conv2D(3, 3, padding="FULL"), "Conv2D: padding must be"),
    (lambda: Conv2D(3, 3, padding=((1, -1), (0, 0))), "Conv2D: padding must be"),
    (lambda: Conv2D(3, 3, groups=2), "Conv2D: features=3 is not divisible by groups=2"),
    (lambda: Conv2D(4, 3, groups=True), "Conv2D: groups must be a positive int"),
    (lambda: Conv2D(3, 3, w_l2=-1.0), "Conv2D: w_l2 must be a finite number >= 0"),
    (lambda: Conv2D(3, 3, use_bias=False, b_l1=0.1), "b_l1/b_l2 given but use_bias=False"),
    (lambda: Conv2D(3, 3, lowering="fft"), "Conv2D: lowering must be one of"),  # type: ignore[arg-type]
    (lambda: ConvTranspose2D(3, 3, padding=((1, 1), (1, 1))),  # type: ignore[arg-type]
     "ConvTranspose2D: padding must be \"SAME\", \"VALID\", got"),
])
def test_bad_arguments_name_the_argument(make: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()  # type: ignore[operator]


def test_init_errors() -> None:
    key = jax.random.key(0)
    with pytest.raises(LayerError, match=r"Conv2D: expected one example of shape \(H, W, C\)"):
        Conv2D(3, 3).init(key, (2, 6, 6, 2))
    with pytest.raises(LayerError, match="Conv1D: expected one example of shape"):
        Conv1D(3, 3).init(key, (6, 6, 2))
    with pytest.raises(LayerError, match="3 input channels are not divisible by groups=2"):
        Conv2D(4, 3, groups=2).init(key, (6, 6, 3))
    with pytest.raises(LayerError, match=r"Conv2D: window \(5, 5\).*does not fit"):
        Conv2D(2, 5, padding="VALID").init(key, (3, 3, 1))


def test_apply_errors() -> None:
    layer = Conv2D(3, 3)
    params, _ = layer.init(jax.random.key(0), (6, 6, 2))
    with pytest.raises(LayerError, match=r"Conv2D: expected input \(B, H, W, C\) or one "
                                         r"example \(H, W, C\), got shape \(6, 2\)"):
        layer.apply(params, {}, jnp.ones((6, 2)))
    with pytest.raises(LayerError, match=r"Conv2D: expected 2 input channels .*got 3"):
        layer.apply(params, {}, jnp.ones((1, 6, 6, 3)))
    with pytest.raises(LayerTypeError, match="Conv2D: expected floating-point input"):
        layer.apply(params, {}, jnp.ones((6, 6, 2), jnp.int32))
    with pytest.raises(LayerError, match=r"expected params with keys \['b', 'w'\]"):
        layer.apply({"w": params["w"]}, {}, jnp.ones((6, 6, 2)))
    with pytest.raises(LayerError, match=r"params\['w'\] has shape \(2, 3, 2, 3\)"):
        layer.apply({**params, "w": jnp.ones((2, 3, 2, 3))}, {}, jnp.ones((6, 6, 2)))
    with pytest.raises(LayerError, match=r"params\['b'\] has shape \(4,\)"):
        layer.apply({**params, "b": jnp.ones(4)}, {}, jnp.ones((6, 6, 2)))
    with pytest.raises(LayerError, match="ConvTranspose2D: expected 2 input channels"):
        t = ConvTranspose2D(3, 2)
        t.apply(t.init(jax.random.key(0), (3, 3, 2))[0], {}, jnp.ones((3, 3, 4)))
