"""MultiHeadAttention against a NumPy transcription of the formula (causal and padding
masks, dropout on the weights), the layer contract, and pairs `(x, mask)` through fit."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from layer_contract import DTYPES, ContractCase, run_contract

import funcnn as fn

# The key bias's gradient is zero by structure (softmax ignores a shift shared by all
# keys); its finite differences are rounding, about 1e-9 here, so the floor is raised.
FLOOR = 1e-4


def padded_pair(key: jax.Array, shapes: Any, dtype: str) -> tuple[jax.Array, jax.Array]:
    """`(x, mask)`: normal `x (B, T, F)`, and example b real in its first 1 + b % T steps."""
    (batch, t, features), _ = shapes
    x = jax.random.normal(key, (batch, t, features), jnp.float32).astype(dtype)
    lengths = 1 + jnp.arange(batch) % t
    return x, jnp.arange(t)[None, :] < lengths[:, None]


CASES = [
    ContractCase("attention", lambda: fn.MultiHeadAttention(4, heads=2), (3, 5), fd_floor=FLOOR),
    ContractCase("attention_causal", lambda: fn.MultiHeadAttention(
        6, heads=1, causal=True, w_l1=1e-2, w_l2=1e-2), (4, 3), fd_floor=FLOOR),
    ContractCase("attention_block", lambda: fn.residual(fn.serial(
        fn.LayerNorm(), fn.MultiHeadAttention(4, heads=2, causal=True))), (3, 4), fd_floor=FLOOR),
    ContractCase("attention_padding_mask", lambda: fn.MultiHeadAttention(4, heads=2),
                 ((3, 5), (3,)), padded_pair, fd_floor=FLOOR),
    ContractCase("attention_fused_kernel", lambda: fn.MultiHeadAttention(
        4, heads=2, causal=True, lowering="dot_product_attention"), ((3, 5), (3,)),
        padded_pair, fd_floor=FLOOR),
    ContractCase("masked_block", lambda: fn.serial(
        fn.residual(fn.serial(fn.keep_mask(fn.LayerNorm()),
                              fn.MultiHeadAttention(2, heads=1, causal=True))),
        fn.drop_mask(), fn.Dense(2)), ((3, 2), (3,)), padded_pair, fd_floor=FLOOR),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_contract(case: ContractCase, dtype: str) -> None:
    run_contract(case, dtype)


def numpy_attention(p: Any, x: np.ndarray, heads: int, mask: np.ndarray | None,
                    causal: bool) -> np.ndarray:
    """The formula, loop by loop: per example, head and query, softmax over allowed keys."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
    batch, t, _ = x.shape
    features = p["q"]["w"].shape[1]
    width = features // heads
    q, k, v = (x @ p[n]["w"] + p[n]["b"] for n in "qkv")
    out = np.zeros((batch, t, features))
    for b in range(batch):
        for h in range(heads):
            cols = slice(h * width, (h + 1) * width)
            for i in range(t):
                keys = [j for j in range(t) if (mask is None or mask[b, j])
                        and (not causal or j <= i)]
                if not keys:  # a padded query that sees no real key: no meaning
                    continue
                logits = np.array([q[b, i, cols] @ k[b, j, cols] for j in keys]) / np.sqrt(width)
                weights = np.exp(logits - logits.max())
                weights /= weights.sum()
                out[b, i, cols] = sum(w * v[b, j, cols] for w, j in zip(weights, keys, strict=True))
    return out @ p["o"]["w"] + p["o"]["b"]


@pytest.mark.parametrize("causal", [False, True])
def test_equals_the_formula_with_padding_and_causal_masks(causal: bool) -> None:
    with jax.enable_x64(True):
        layer = fn.MultiHeadAttention(6, heads=2, causal=causal, dtype=jnp.float64)
        params, _ = layer.init(jax.random.key(0), ((5, 3), (5,)))
        x = np.random.default_rng(0).normal(size=(3, 5, 3))
        mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]], bool)
        got, _ = layer.apply(params, {}, (jnp.asarray(x), jnp.asarray(mask)))
        expected = numpy_attention(params, x, 2, mask, causal)
        # padded queries give finite outputs of no meaning; compare the real ones
        np.testing.assert_allclose(np.asarray(got)[mask], expected[mask], rtol=1e-12, atol=1e-12)
        assert np.isfinite(np.asarray(got)).all()
        unmasked, _ = layer.apply(params, {}, jnp.asarray(x))
        np.testing.assert_allclose(unmasked, numpy_attention(params, x, 2, None, causal),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lowering", ["einsum", "dot_product_attention"])
def test_both_lowerings_equal_the_formula_in_float32(lowering: str) -> None:
    layer = fn.MultiHeadAttention(6, heads=3, causal=True, lowering=lowering)
    params, _ = layer.init(jax.random.key(0), ((5, 4), (5,)))
    x = np.random.default_rng(1).normal(size=(3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    got, _ = layer.apply(params, {}, (jnp.asarray(x), jnp.asarray(mask)))
    expected = numpy_attention(params, x.astype(np.float64), 3, mask, True)
    np.testing.assert_allclose(np.asarray(got)[mask], expected[mask], rtol=2e-5, atol=2e-6)
    assert fn.layer_spec(layer)["config"]["lowering"] == lowering
    with pytest.raises(ValueError, match="lowering must be one of"):
        fn.MultiHeadAttention(6, heads=3, lowering="flash")


def test_dropout_drops_attention_weights_in_training_only() -> None:
    layer = fn.MultiHeadAttention(4, heads=2, dropout=0.5)
    params, _ = layer.init(jax.random.key(0), (6, 4))
    x = jax.random.normal(jax.random.key(1), (2, 6, 4))
    plain = fn.MultiHeadAttention(4, heads=2)
    np.testing.assert_array_equal(layer.apply(params, {}, x)[0], plain.apply(params, {}, x)[0])
    a = layer.apply(params, {}, x, key=jax.random.key(2), train=True)[0]
    b = layer.apply(params, {}, x, key=jax.random.key(3), train=True)[0]
    assert not np.allclose(a, b) and not np.allclose(a, plain.apply(params, {}, x)[0])
    # the dropout path with rate -> 0 is the plain one, through either lowering
    tiny = fn.MultiHeadAttention(4, heads=2, dropout=1e-9)
    fused = fn.MultiHeadAttention(4, heads=2, lowering="dot_product_attention")
    for reference in (plain, fused):
        np.testing.assert_allclose(
            tiny.apply(params, {}, x, key=jax.random.key(2), train=True)[0],
            reference.apply(params, {}, x)[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(fn.LayerError, match="needs a PRNG key"):
        layer.apply(params, {}, x, train=True)


def test_attention_errors_name_what_is_wrong() -> None:
    layer = fn.MultiHeadAttention(4, heads=2)
    params, _ = layer.init(jax.random.key(0), (3, 5))
    x = jnp.ones((2, 3, 5))
    with pytest.raises(fn.LayerTypeError, match="the mask must be bool"):
        layer.apply(params, {}, (x, jnp.ones((2, 3), jnp.int32)))
    with pytest.raises(fn.LayerError, match=r"the mask has shape \(2, 4\); .* must be \(2, 3\)"):
        layer.apply(params, {}, (x, jnp.ones((2, 4), bool)))
    with pytest.raises(fn.LayerError, match="expected 5 features, got 4"):
        layer.apply(params, {}, jnp.ones((2, 3, 4)))
    with pytest.raises(fn.LayerError, match=r"expects examples \(T, F\)"):
        layer.init(jax.random.key(0), (5,))
    with pytest.raises(ValueError, match="features 5 must be a multiple of heads 2"):
        fn.MultiHeadAttention(5, heads=2)
    with pytest.raises(fn.LayerError, match="takes one array, not the pair"):
        fn.Dense(3).init(jax.random.key(0), ((3, 5), (3,)))
    with pytest.raises(fn.LayerError, match=r"drop_mask: expects the pair \(x, mask\)"):
        fn.drop_mask().apply({}, {}, x)


def _padded_sequences() -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Sequences of 2-6 real steps (zeros after); the label is the sign of step 0."""
    rng = np.random.default_rng(0)
    n, t = 64, 6
    mask = np.arange(t)[None, :] < rng.integers(2, t + 1, size=n)[:, None]
    x = np.where(mask[..., None], rng.normal(size=(n, t, 4)), 0.0).astype(np.float32)
    return (x, mask), (x[:, 0, 0] > 0).astype(np.int32)


def test_pairs_train_through_fit_and_score_through_evaluate_and_predict() -> None:
    (x, mask), y = _padded_sequences()
    net = fn.serial(
        fn.residual(fn.serial(fn.keep_mask(fn.LayerNorm()), fn.MultiHeadAttention(4, heads=2))),
        fn.drop_mask(), fn.Flatten(), fn.Dense(2), fn.Softmax())
    params, state = net.init(jax.random.key(0), ((6, 4), (6,)))
    rows, _ = fn.summary_rows(net, ((6, 4), (6,)))
    assert [r.path for r in rows][:2] == ["0_residual/0_serial/0_keep_mask/0_layernorm",
                                          "0_residual/0_serial/1_multiheadattention"]
    result = fn.fit(net, params, state, fn.optim.adam(0.01), fn.losses.categorical_crossentropy,
                    (x, mask), y, key=jax.random.key(0), epochs=15, batch_size=16,
                    validation_data=((x, mask), y), metric=fn.metrics.categorical_accuracy,
                    progress=False)
    assert result.history.loss[-1] < 0.5 * result.history.loss[0]
    scored = fn.evaluate(net, result.params, result.state, fn.losses.categorical_crossentropy,
                         (x, mask), y, metric=fn.metrics.categorical_accuracy, batch_size=24)
    assert float(scored.accuracy) == pytest.approx(result.history.val_accuracy[-1])
    assert fn.predict(net, result.params, result.state, (x, mask)).shape == (64, 2)
    with pytest.raises(TypeError, match=r"the mask of the pair \(x, mask\) must be bool"):
        fn.predict(net, result.params, result.state, (x, mask.astype(np.int32)))
    with pytest.raises(ValueError, match="x has 64 samples but its mask has 10"):
        fn.predict(net, result.params, result.state, (x, mask[:10]))


def test_the_penalty_covers_the_four_weights_not_the_biases() -> None:
    layer = fn.MultiHeadAttention(4, heads=2, w_l1=0.1, w_l2=0.01)
    params, _ = layer.init(jax.random.key(0), (3, 5))
    params = jax.tree.map(lambda a: a + 0.5, params)  # nonzero biases
    ws = [np.asarray(params[n]["w"], np.float64) for n in "qkvo"]
    expected = sum(0.1 * np.abs(w).sum() + 0.01 * (w ** 2).sum() for w in ws)
    assert float(layer.penalty(params)) == pytest.approx(expected, rel=1e-6)
