"""Per-token cross-entropy and accuracy over `(B, T, V)` with padding, bits, and a next-token
model trained through fit with `(N, T)` labels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn.losses import to_bits, token_crossentropy
from funcnn.metrics import token_accuracy


def _case() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = np.array([[0, 4, 2, -1], [1, 1, 1, 1], [-1, -1, -1, -1]], np.int32)
    return probs, labels


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_token_losses_equal_the_per_example_means_over_real_tokens(dtype: str) -> None:
    probs, labels = _case()
    expected_ce, expected_acc = [], []
    for b in range(3):
        real = [t for t in range(4) if labels[b, t] != -1]
        ces = [-np.log(np.clip(probs[b, t, labels[b, t]], 1e-7, 1 - 1e-7)) for t in real]
        hits = [float(np.argmax(probs[b, t]) == labels[b, t]) for t in real]
        expected_ce.append(np.mean(ces) if real else 0.0)
        expected_acc.append(np.mean(hits) if real else 0.0)
    tol = 2e-2 if dtype == "bfloat16" else 1e-6 if dtype == "float32" else 1e-12
    with jax.enable_x64(dtype == "float64"):
        p = jnp.asarray(probs).astype(dtype)
        ce = token_crossentropy(p, jnp.asarray(labels))
        acc = token_accuracy(p, jnp.asarray(labels))
        assert ce.shape == (3,) and ce.dtype == jnp.promote_types(dtype, jnp.float32)
        np.testing.assert_allclose(np.asarray(ce, np.float64), expected_ce, rtol=tol, atol=tol)
        if dtype != "bfloat16":  # bf16 rounding may reorder near-equal probabilities
            np.testing.assert_array_equal(np.asarray(acc, np.float64), expected_acc)
    np.testing.assert_allclose(to_bits(jnp.log(2.0) * 3), 3.0, rtol=1e-6)


def test_token_labels_are_checked() -> None:
    probs, labels = _case()
    with pytest.raises(ValueError,
                       match=r"label 5 is out of range for 5 classes \(padding is -1\)"):
        token_crossentropy(probs, np.where(labels == 4, 5, labels))
    with pytest.raises(ValueError, match=r"expected predictions \(B, T, ..., V\)"):
        token_crossentropy(probs[:, 0], labels[:, 0])
    with pytest.raises(TypeError, match="labels must be integers"):
        token_accuracy(probs, labels.astype(np.float32))
    # under jit a bad label cannot be checked: NaN, never another class
    out = jax.jit(token_crossentropy)(probs, np.where(labels == 4, 9, labels))
    assert np.isnan(out[0]) and np.isfinite(out[1])


def _next_char_data() -> tuple[np.ndarray, np.ndarray]:
    text = np.array([ord(c) - 97 for c in "abcdefgh" * 40], np.int32)  # 8 letters repeating
    windows = np.stack([text[i:i + 7] for i in range(0, len(text) - 8, 3)])
    return windows[:, :-1], windows[:, 1:]


def test_a_next_token_model_trains_through_fit_with_per_token_labels() -> None:
    x, y = _next_char_data()
    net = fn.serial(fn.Embedding(8, vocab=8), fn.LSTM(16), fn.Dense(8), fn.Softmax())
    params, state = net.init(jax.random.key(0), (6,))
    result = fn.fit(net, params, state, fn.optim.adam(0.03), token_crossentropy, x, y,
                    key=jax.random.key(0), epochs=15, batch_size=16, metric=token_accuracy,
                    validation_data=(x, y), progress=False)
    history = result.history
    assert to_bits(history.loss[0]) > 2.5  # about log2(8) = 3 bits at the start
    assert history.val_accuracy[-1] > 0.95 and history.loss[-1] < 0.2 * history.loss[0]
    bad = y.copy()
    bad[4, 2] = 8
    with pytest.raises(ValueError, match=r"fit: row 4 of y has labels outside 0..7 \(and -1"):
        fn.fit(net, params, state, fn.optim.adam(0.03), token_crossentropy, x, bad,
               key=jax.random.key(0), epochs=1, progress=False)
    padded = y.copy()
    padded[:, -2:] = -1  # padding is accepted, and ignored
    scored = fn.evaluate(net, result.params, result.state, token_crossentropy, x, padded,
                         metric=token_accuracy)
    assert np.isfinite(float(scored.loss)) and float(scored.accuracy) > 0.95
