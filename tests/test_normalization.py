"""Normalization layers: the layer contract per dtype, NumPy references of every layer's
output (BatchNorm in training and inference, its running statistics), dtype handling,
training a BatchNorm network with `fit`, and the errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from layer_contract import DTYPES, ContractCase, run_contract

import funcnn as fn
from funcnn.losses import categorical_crossentropy
from funcnn.nn.errors import LayerError, LayerTypeError
from funcnn.nn.normalization import BatchNorm, GroupNorm, LayerNorm, RMSNorm
from funcnn.optim import sgd

KEY = jax.random.key(0)

CASES = [
    ContractCase("batchnorm", lambda: BatchNorm(0.9), (3,), state_changes_in_training=True),
    ContractCase("batchnorm_channels_first_plain",
                 lambda: BatchNorm(axis=-3, use_scale=False, use_bias=False), (2, 2, 3),
                 state_changes_in_training=True),
    ContractCase("layernorm", LayerNorm, (2, 4)),
    ContractCase("groupnorm", lambda: GroupNorm(2, ndim=2), (3, 4)),
    ContractCase("rmsnorm", RMSNorm, (4,)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_contract(case: ContractCase, dtype: str) -> None:
    run_contract(case, dtype)


# --- NumPy references ---------------------------------------------------------------------


def np_batchnorm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, scale: np.ndarray,
                 bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def random_affine(c: int, seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {"scale": jnp.asarray(rng.uniform(0.5, 2.0, c), jnp.float32),
            "bias": jnp.asarray(rng.normal(size=c), jnp.float32)}


def test_batchnorm_training_inference_and_running_stats_after_three_steps() -> None:
    layer = BatchNorm(momentum=0.9, eps=1e-3)
    _, state = layer.init(KEY, (3,))
    params = random_affine(3)
    scale, bias = np.asarray(params["scale"], np.float64), np.asarray(params["bias"], np.float64)
    rng = np.random.default_rng(1)
    mean, var = np.zeros(3), np.ones(3)
    for step in range(3):
        x = (rng.normal(size=(6, 3)) * [1.0, 3.0, 0.5] + [2.0, -1.0, 0.0] + step)
        y, state = layer.apply(params, state, jnp.asarray(x, jnp.float32), train=True)
        np.testing.assert_allclose(y, np_batchnorm(x, x.mean(0), x.var(0), scale, bias, 1e-3),
                                   rtol=1e-4, atol=1e-5)
        mean = 0.9 * mean + 0.1 * x.mean(0)
        var = 0.9 * var + 0.1 * x.var(0)  # biased (ddof=0) batch variance
    np.testing.assert_allclose(state["mean"], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state["var"], var, rtol=1e-5)
    assert state["mean"].dtype == state["var"].dtype == jnp.float32
    x = rng.normal(size=(4, 3))
    y, after = layer.apply(params, state, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(y, np_batchnorm(x, mean, var, scale, bias, 1e-3), rtol=1e-4,
                               atol=1e-5)
    assert after is state
    single, _ = layer.apply(params, state, jnp.asarray(x[0], jnp.float32))
    np.testing.assert_allclose(single, y[0], rtol=1e-6)


def test_batchnorm_matches_pytorch_documented_formulas() -> None:
    """torch.nn.BatchNorm1d(momentum=0.1): `running = (1 - 0.1) * running + 0.1 * batch`,
    `running_var` from the unbiased variance; ours is momentum=0.9 with the biased one."""
    x = np.random.default_rng(2).normal(size=(5, 2)) * 2.0 + 1.0
    _, state = BatchNorm(momentum=0.9).init(KEY, (2,))
    y, state = BatchNorm(momentum=0.9, use_scale=False, use_bias=False).apply(
        {}, state, jnp.asarray(x, jnp.float32), train=True)
    torch_momentum = 0.1
    np.testing.assert_allclose(state["mean"], torch_momentum * x.mean(0), rtol=1e-5)
    n = x.shape[0]
    torch_running_var = (1 - torch_momentum) + torch_momentum * x.var(0, ddof=1)
    ours = (1 - torch_momentum) + torch_momentum * x.var(0, ddof=1) * (n - 1) / n
    np.testing.assert_allclose(state["var"], ours, rtol=1e-5)
    assert not np.allclose(state["var"], torch_running_var, rtol=1e-3)
    # the output normalizes with the biased variance, as torch does
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-4,
                               atol=1e-5)


def test_batchnorm_channels_first_axis() -> None:
    layer = BatchNorm(momentum=0.0, axis=-3)
    params, state = layer.init(KEY, (2, 3, 3))
    assert params["scale"].shape == state["mean"].shape == (2,)
    x = np.random.default_rng(3).normal(size=(4, 2, 3, 3)) + np.array([5.0, -5.0])[:, None, None]
    y, state = layer.apply(params, state, jnp.asarray(x, jnp.float32), train=True)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(state["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(state["var"], var, rtol=1e-5)
    expected = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_layernorm_matches_numpy() -> None:
    x = np.random.default_rng(4).normal(size=(3, 2, 5)) * 3 + 1
    params = random_affine(5)
    y, _ = LayerNorm(eps=1e-3).apply(params, {}, jnp.asarray(x, jnp.float32))
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(
        y, (x - mean) / np.sqrt(var + 1e-3) * np.asarray(params["scale"]) + np.asarray(
            params["bias"]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_groupnorm_matches_numpy(groups: int) -> None:
    x = np.random.default_rng(5).normal(size=(2, 3, 2, 4)) * 2 + np.arange(4)
    params = random_affine(4)
    layer = GroupNorm(groups, eps=1e-4)
    y, _ = layer.apply(params, {}, jnp.asarray(x, jnp.float32))
    g = x.reshape(2, 3, 2, groups, 4 // groups)
    mean, var = g.mean(axis=(1, 2, 4), keepdims=True), g.var(axis=(1, 2, 4), keepdims=True)
    expected = ((g - mean) / np.sqrt(var + 1e-4)).reshape(x.shape)
    expected = expected * np.asarray(params["scale"]) + np.asarray(params["bias"])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
    single, _ = layer.apply(params, {}, jnp.asarray(x[1], jnp.float32))
    np.testing.assert_allclose(single, y[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_scale", [True, False])
def test_rmsnorm_matches_numpy(use_scale: bool) -> None:
    x = np.random.default_rng(6).normal(size=(3, 4)) * 2 + 1
    scale = np.asarray(random_affine(4)["scale"]) if use_scale else np.ones(4)
    layer = RMSNorm(eps=1e-6, use_scale=use_scale)
    params = {"scale": jnp.asarray(scale)} if use_scale else {}
    assert set(layer.init(KEY, (4,))[0]) == set(params)
    y, _ = layer.apply(params, {}, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(y, x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6) * scale,
                               rtol=1e-5)


# --- dtypes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("param_dtype", ["float32", "bfloat16"])
def test_batchnorm_bfloat16_input_keeps_float32_state(param_dtype: str) -> None:
    layer = BatchNorm(0.9, dtype=param_dtype)
    params, state = layer.init(KEY, (3,))
    assert params["scale"].dtype == jnp.dtype(param_dtype)
    assert state["mean"].dtype == state["var"].dtype == jnp.float32
    x = (jax.random.normal(jax.random.key(1), (8, 3)) * 4 + 100).astype(jnp.bfloat16)
    y, new = jax.jit(lambda p, s, v: layer.apply(p, s, v, train=True))(params, state, x)
    assert y.dtype == jnp.bfloat16
    assert new["mean"].dtype == new["var"].dtype == jnp.float32
    x64 = np.asarray(x, np.float64)  # statistics of the bf16 values, taken in float32
    np.testing.assert_allclose(new["mean"], 0.1 * x64.mean(0), rtol=1e-5)
    np.testing.assert_allclose(new["var"], 0.9 + 0.1 * x64.var(0), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(y, np.float64),
                               (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-5), atol=4e-2)


@pytest.mark.parametrize("factory", [LayerNorm, RMSNorm, lambda: GroupNorm(2, ndim=1)],
                         ids=["layernorm", "rmsnorm", "groupnorm"])
def test_bfloat16_inputs_are_reduced_in_float32(factory) -> None:  # type: ignore[no-untyped-def]
    # large offset, small spread: a bf16 reduction would lose the spread entirely
    x = (jnp.arange(8, dtype=jnp.float32).reshape(2, 4) * 0.5 + 64).astype(jnp.bfloat16)
    layer = factory()
    params, _ = layer.init(KEY, (4,))
    y, _ = layer.apply(params, {}, x)
    reference, _ = layer.apply(params, {}, x.astype(jnp.float32))
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32), reference, atol=2e-2, rtol=1e-2)


def test_float64_layer_keeps_float64_state() -> None:
    with jax.enable_x64(True):
        layer = BatchNorm(0.5, dtype=jnp.float64)
        params, state = layer.init(KEY, (2,))
        assert params["bias"].dtype == state["var"].dtype == jnp.float64
        x = jnp.asarray([[1.0, 2.0], [1.0 + 1e-9, 4.0]], jnp.float64)
        y, new = layer.apply(params, state, x, train=True)
        assert y.dtype == new["mean"].dtype == jnp.float64
        np.testing.assert_allclose(new["var"], [0.5 + 0.5 * 0.25e-18, 0.5 + 0.5 * 1.0],
                                   rtol=1e-12)


def test_vmap_over_members_keeps_statistics_per_member() -> None:
    layer = BatchNorm(0.0)
    params, state = layer.init(KEY, (2,))
    xs = jax.random.normal(jax.random.key(2), (3, 4, 2)) * jnp.arange(1.0, 4.0)[:, None, None]
    _, states = jax.vmap(lambda v: layer.apply(params, state, v, train=True))(xs)
    np.testing.assert_allclose(states["var"], np.asarray(xs).var(axis=1), rtol=1e-5)


# --- training with fit --------------------------------------------------------------------


def np_net(params: dict, state: dict, x: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    s = jax.tree.map(lambda a: np.asarray(a, np.float64), state["1_batchnorm"])
    h = x @ p["0_dense"]["w"] + p["0_dense"]["b"]
    h = np.maximum(np_batchnorm(h, s["mean"], s["var"], p["1_batchnorm"]["scale"],
                                p["1_batchnorm"]["bias"]), 0.0)
    z = h @ p["3_dense"]["w"] + p["3_dense"]["b"]
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)  # type: ignore[no-any-return]


def test_batchnorm_network_trains_with_fit_and_infers_with_running_stats() -> None:
    net = fn.serial(fn.Dense(8, w_init=fn.initializers.glorot_uniform()), BatchNorm(0.8),
                    fn.ReLU(), fn.Dense(3), fn.Softmax())
    x, y = fn.datasets.spiral(jax.random.key(3), samples=8, classes=3)
    params, state = net.init(KEY, (2,))
    opt = sgd(0.5)
    result = fn.fit(net, params, state, opt, categorical_crossentropy, x, y, key=KEY, epochs=2,
                    batch_size=8, shuffle=False, progress=False)
    # replay: the same steps, the running statistics by hand from each step's params
    step = jax.jit(fn.make_train_step(net, opt, categorical_crossentropy))
    p, s, o = params, state, opt.init(params)
    mean, var = np.zeros(8), np.ones(8)
    xn = np.asarray(x, np.float64)
    for _ in range(2):
        for rows in np.split(np.arange(24), 3):
            h = xn[rows] @ np.asarray(p["0_dense"]["w"]) + np.asarray(p["0_dense"]["b"])
            mean, var = 0.8 * mean + 0.2 * h.mean(0), 0.8 * var + 0.2 * h.var(0)
            p, s, o, _ = step(p, s, o, x[rows], y[rows])
    bn = result.state["1_batchnorm"]
    assert bn["mean"].dtype == bn["var"].dtype == jnp.float32
    assert np.all(np.isfinite(bn["mean"])) and np.all(np.isfinite(bn["var"]))
    assert not np.allclose(bn["mean"], 0.0) and not np.allclose(bn["var"], 1.0)
    np.testing.assert_allclose(bn["mean"], mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn["var"], var, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn["var"], s["1_batchnorm"]["var"], rtol=1e-5)
    # inference uses the running statistics of result.state
    pred = fn.predict(net, result.params, result.state, x, batch_size=5)
    expected = np_net(result.params, result.state, xn)
    np.testing.assert_allclose(pred, expected, rtol=1e-4, atol=1e-6)
    evaluation = fn.evaluate(net, result.params, result.state, categorical_crossentropy, x, y)
    manual = -np.log(np.clip(expected[np.arange(24), np.asarray(y)], 1e-7, 1 - 1e-7)).mean()
    np.testing.assert_allclose(evaluation.loss, manual, rtol=1e-4)


# --- errors ---------------------------------------------------------------------------------


def test_batchnorm_training_needs_a_batch() -> None:
    layer = BatchNorm()
    params, state = layer.init(KEY, (3,))
    with pytest.raises(LayerError, match=r"BatchNorm: train=True needs a batch.*\(3,\)"):
        layer.apply(params, state, jnp.ones(3), train=True)
    with pytest.raises(LayerError, match="BatchNorm: train=True needs a batch"):
        layer.apply(params, state, jnp.ones((1, 3)), train=True)
    with pytest.raises(LayerError, match=r"serial\[1\]/BatchNorm: train=True needs a batch"):
        net = fn.serial(fn.Dense(3), BatchNorm())
        p, s = net.init(KEY, (2,))
        net.apply(p, s, jnp.ones(2), train=True)


@pytest.mark.parametrize(("make", "match"), [
    (lambda: BatchNorm(momentum=1.5), r"BatchNorm: momentum must be a number in \[0, 1\]"),
    (lambda: BatchNorm(axis=1), "BatchNorm: axis must be a negative int"),
    (lambda: BatchNorm(eps=0.0), "BatchNorm: eps must be a finite number > 0"),
    (lambda: LayerNorm(eps=float("nan")), "LayerNorm: eps must be a finite number > 0"),
    (lambda: LayerNorm(dtype=jnp.int32), "LayerNorm: dtype must be a floating-point dtype"),
    (lambda: RMSNorm(dtype="nonsense"), "RMSNorm: dtype must be a floating-point dtype"),
    (lambda: GroupNorm(0), "GroupNorm: groups must be a positive int"),
    (lambda: GroupNorm(2, ndim=0), "GroupNorm: ndim must be a positive int"),
])
def test_bad_arguments(make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_shapes_inputs_and_trees() -> None:
    with pytest.raises(LayerError, match="GroupNorm: 6 channels are not divisible by groups=4"):
        GroupNorm(4, ndim=1).init(KEY, (6,))
    with pytest.raises(LayerError, match=r"GroupNorm: 6 channels are not divisible by groups=4"):
        GroupNorm(4, ndim=1, use_scale=False, use_bias=False).apply({}, {}, jnp.ones((2, 6)))
    with pytest.raises(LayerError, match=r"GroupNorm\(ndim=3\) expects examples with 3 axes.*"
                       r"use ndim=1"):
        GroupNorm(2).init(KEY, (4,))
    with pytest.raises(LayerError, match=r"BatchNorm: axis=-3 needs examples with at least 3"):
        BatchNorm(axis=-3).init(KEY, (4, 4))
    layer = BatchNorm()
    params, state = layer.init(KEY, (3,))
    with pytest.raises(LayerError, match=r"BatchNorm: expected 3 features on axis -1, got "
                       r"shape \(2, 4\)"):
        layer.apply(params, state, jnp.ones((2, 4)))
    with pytest.raises(LayerTypeError, match="BatchNorm: expected floating-point input"):
        layer.apply(params, state, jnp.ones((2, 3), jnp.int32))
    with pytest.raises(LayerError, match=r"BatchNorm: expected state with keys \['mean', 'var'\]"):
        layer.apply(params, {}, jnp.ones((2, 3)))
    with pytest.raises(LayerError, match=r"LayerNorm: expected params with keys \['bias', "
                       r"'scale'\], got \['scale'\]"):
        LayerNorm().apply({"scale": jnp.ones(3)}, {}, jnp.ones((2, 3)))
    with pytest.raises(LayerError, match=r"BatchNorm: params\['bias'\] must have shape \(3,\), "
                       r"got \(2,\)"):
        layer.apply({"scale": jnp.ones(3), "bias": jnp.ones(2)}, state, jnp.ones((2, 3)))
    with pytest.raises(LayerError, match=r"RMSNorm: expected 4 features on axis -1"):
        RMSNorm().apply({"scale": jnp.ones(4)}, {}, jnp.ones((2, 3)))
    with pytest.raises(LayerError, match=r"LayerNorm: expected an input with at least 1 axes"):
        LayerNorm(use_scale=False, use_bias=False).apply({}, {}, jnp.ones(()))


def test_a_ragged_last_batch_is_its_own_step_so_no_padding_reaches_the_statistics() -> None:
    """10 samples in batches of 4: with layer state, the last 2 run as their own step; with
    momentum 0 the running statistics are exactly theirs (padding rows would shift them)."""
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    y = (np.arange(10) % 2).astype(np.int32)
    net = fn.serial(BatchNorm(momentum=0.0), fn.Dense(2), fn.Softmax())
    params, state = net.init(jax.random.key(0), (3,))
    result = fn.fit(net, params, state, fn.optim.sgd(0.1), fn.losses.categorical_crossentropy,
                    x, y, key=jax.random.key(0), epochs=1, batch_size=4, shuffle=False,
                    progress=False)
    stats = result.state["0_batchnorm"]
    np.testing.assert_allclose(stats["mean"], x[8:].mean(axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(stats["var"], x[8:].var(axis=0), rtol=1e-5, atol=1e-7)
    # the epoch's figures still average all 10 samples over 3 steps
    assert len(result.history.loss) == 1 and np.isfinite(result.history.loss[0])
