"""The book's clipping: clipped values forward, the book's (never zeroed) gradient backward."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn.losses import clipped_log


def test_clipped_log_value_is_clipped_and_gradient_is_one_over_clipped() -> None:
    p = jnp.array([0.0, 1e-9, 0.5, 1.0])
    # in float32, 1 - 1e-7 rounds to 1 - 2**-23
    np.testing.assert_allclose(clipped_log(p), np.log([1e-7, 1e-7, 0.5, 1 - 1e-7]), rtol=1e-6,
                               atol=3e-8)
    grad = jax.vmap(jax.grad(clipped_log))(p)
    np.testing.assert_allclose(grad, [1e7, 1e7, 2.0, 1 / (1 - 1e-7)], rtol=1e-6)


def test_softmax_cce_gradient_is_p_minus_y_even_when_saturated() -> None:
    # the true class has probability ~e^-30 < 1e-7: the clip is active, yet the book's
    # combined gradient (p - y) / N must still flow back
    logits = jnp.array([[30.0, 0.0, 0.0], [0.0, 2.0, 1.0]])
    labels = jnp.array([1, 1])

    def loss(z):  # type: ignore[no-untyped-def]
        return fn.losses.categorical_crossentropy(fn.activations.softmax(z), labels).mean()

    probs = fn.activations.softmax(logits)
    expected = (probs - fn.data.one_hot(labels, 3)) / 2
    np.testing.assert_allclose(jax.grad(loss)(logits)[1], expected[1], rtol=1e-5)
    saturated = jax.grad(loss)(logits)[0]
    assert float(jnp.abs(saturated).max()) > 1e-8  # not zeroed by the clip
    assert float(saturated[0]) > 0 > float(saturated[1])  # pushes towards the true class


def test_bce_gradient_uses_clipped_values_like_the_book() -> None:
    p = jnp.array([[0.0, 0.3]])
    y = jnp.array([[1.0, 0.0]])
    grad = jax.grad(lambda q: fn.losses.binary_crossentropy(q, y).sum())(p)
    clipped = np.clip(np.asarray(p), 1e-7, 1 - 1e-7)
    book = -(np.asarray(y) / clipped - (1 - np.asarray(y)) / (1 - clipped)) / 2
    np.testing.assert_allclose(grad, book, rtol=1e-5)


def test_adagrad_recovers_from_its_large_first_steps_on_the_spiral() -> None:
    x, y = fn.datasets.spiral(jax.random.key(0), samples=100, classes=3)
    net = fn.serial(fn.Dense(64), fn.ReLU(), fn.Dense(3), fn.Softmax())
    params, state = net.init(jax.random.key(1), (2,))
    result = fn.fit(net, params, state, fn.optim.adagrad(1.0, decay=1e-4),
                    fn.losses.categorical_crossentropy, x, y, key=jax.random.key(2),
                    epochs=300, metric=fn.metrics.categorical_accuracy, progress=False)
    # the first steps saturate the softmax (loss ~10); with the book's gradient it recovers
    assert max(result.history.loss[:5]) > 5.0
    assert result.history.loss[-1] < 1.0
    assert result.history.accuracy[-1] > 0.5
