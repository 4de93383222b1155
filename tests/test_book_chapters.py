"""The book's worked examples, chapters 2-9, recomputed with funcnn.

Numbers are the book's printed results; layers get the book's weights explicitly
(the book stores weights as (neurons, inputs), funcnn as (inputs, neurons): w = weights.T).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn import activations, losses, metrics
from funcnn.typing import Array, Params

# Chapter 2: one sample of four features, a layer of three neurons.
INPUTS = [1.0, 2.0, 3.0, 2.5]
WEIGHTS = [[0.2, 0.8, -0.5, 1.0], [0.5, -0.91, 0.26, -0.5], [-0.26, -0.27, 0.17, 0.87]]
BIASES = [2.0, 3.0, 0.5]
BATCH = [[1.0, 2.0, 3.0, 2.5], [2.0, 5.0, -1.0, 2.0], [-1.5, 2.7, 3.3, -0.8]]
LAYER1_OUT = [[4.8, 1.21, 2.385], [8.9, -1.81, 0.2], [1.41, 1.051, 0.026]]
# Chapter 2/3: a second layer stacked on the first.
WEIGHTS2 = [[0.1, -0.14, 0.5], [-0.5, 0.12, -0.33], [-0.44, 0.73, -0.13]]
BIASES2 = [-1.0, 2.0, -0.5]
LAYER2_OUT = [[0.5031, -1.04185, -2.03875], [0.2434, -2.7332, -5.7633],
              [-0.99314, 1.41254, -0.35655]]


def dense_params(weights: list[list[float]], biases: list[float]) -> Params:
    """funcnn Dense params from the book's (neurons, inputs) weights."""
    return {"w": jnp.asarray(weights, jnp.float32).T, "b": jnp.asarray(biases, jnp.float32)}


# --- chapter 2: neurons, layers, batches -------------------------------------------------

def test_ch2_a_single_neuron() -> None:
    weights, bias = [0.2, 0.8, -0.5, 1.0], 2.0
    by_hand = sum(x * w for x, w in zip(INPUTS, weights, strict=True)) + bias
    assert math.isclose(by_hand, 4.8)
    neuron = fn.Dense(1)
    params = {"w": jnp.asarray(weights)[:, None], "b": jnp.array([bias])}
    out, _ = neuron.apply(params, {}, jnp.asarray(INPUTS))
    assert out.shape == (1,)
    np.testing.assert_allclose(out, [4.8], rtol=1e-6)


def test_ch2_a_layer_of_three_neurons_on_one_sample() -> None:
    out, _ = fn.Dense(3).apply(dense_params(WEIGHTS, BIASES), {}, jnp.asarray(INPUTS))
    assert out.shape == (3,)
    np.testing.assert_allclose(out, [4.8, 1.21, 2.385], rtol=1e-6)
    # The book's np.dot(weights, inputs) + biases
    np.testing.assert_allclose(out, np.dot(WEIGHTS, INPUTS) + BIASES, rtol=1e-6)


def test_ch2_a_layer_on_a_batch_of_three_samples() -> None:
    out, _ = fn.Dense(3).apply(dense_params(WEIGHTS, BIASES), {}, jnp.asarray(BATCH))
    assert out.shape == (3, 3)
    np.testing.assert_allclose(out, LAYER1_OUT, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, np.dot(BATCH, np.array(WEIGHTS).T) + BIASES,
                               rtol=1e-5, atol=1e-6)


def test_ch2_ch3_two_stacked_layers() -> None:
    net = fn.serial(fn.Dense(3), fn.Dense(3))
    params = {"0_dense": dense_params(WEIGHTS, BIASES), "1_dense": dense_params(WEIGHTS2, BIASES2)}
    out, _ = net.apply(params, {}, jnp.asarray(BATCH))
    np.testing.assert_allclose(out, LAYER2_OUT, rtol=1e-5, atol=1e-5)
    # The same parameter tree is what init builds, shape for shape.
    fresh, _ = net.init(jax.random.key(0), (4,))
    assert jax.tree.map(jnp.shape, fresh) == jax.tree.map(jnp.shape, params)


# --- chapter 3: the book's initialisation -------------------------------------------------

def test_ch3_init_gives_nearly_uniform_softmax_outputs() -> None:
    """With 0.01*N(0,1) weights and zero biases, the book's first forward pass prints
    softmax rows of about [0.333, 0.333, 0.333]."""
    net = fn.serial(fn.Dense(3), fn.ReLU(), fn.Dense(3), fn.Softmax())
    params, _ = net.init(jax.random.key(0), (2,))
    assert params["0_dense"]["w"].shape == (2, 3)
    np.testing.assert_array_equal(params["0_dense"]["b"], np.zeros(3))
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, size=(300, 2)), jnp.float32)
    probs, _ = net.apply(params, {}, x)
    np.testing.assert_allclose(probs, np.full((300, 3), 1 / 3), atol=1e-3)
    np.testing.assert_allclose(probs.sum(axis=-1), np.ones(300), rtol=1e-6)


# --- chapter 4: activation functions ------------------------------------------------------

def test_ch4_relu_example() -> None:
    inputs = jnp.array([0.0, 2.0, -1.0, 3.3, -2.7, 1.1, 2.2, -100.0])
    out, _ = fn.ReLU().apply({}, {}, inputs)
    expected = np.array([0.0, 2.0, 0.0, 3.3, 0.0, 1.1, 2.2, 0.0], np.float32)
    np.testing.assert_array_equal(out, expected)


def test_ch4_softmax_of_the_first_layer_outputs() -> None:
    out, _ = fn.Softmax().apply({}, {}, jnp.array([4.8, 1.21, 2.385]))
    np.testing.assert_allclose(out, [0.89528266, 0.02470831, 0.08000903], rtol=1e-6)
    # The book's unstable first form, exp / sum exp, agrees on small values.
    exps = np.exp([4.8, 1.21, 2.385])
    np.testing.assert_allclose(out, exps / exps.sum(), rtol=1e-6)
    batch, _ = fn.Softmax().apply({}, {}, jnp.asarray(LAYER1_OUT))
    np.testing.assert_allclose(batch, [[8.95282664e-01, 2.47083068e-02, 8.00090293e-02],
                                       [9.99811129e-01, 2.23163963e-05, 1.66554348e-04],
                                       [5.13097164e-01, 3.58333899e-01, 1.28568936e-01]],
                               rtol=1e-5)


# --- chapter 5: loss and accuracy ---------------------------------------------------------

BOOK_PROBS = jnp.array([[0.7, 0.1, 0.2], [0.1, 0.5, 0.4], [0.02, 0.9, 0.08]])
BOOK_TARGETS = jnp.array([0, 1, 1])


def test_ch5_cross_entropy_of_one_sample() -> None:
    one_hot = jnp.array([1.0, 0.0, 0.0])
    loss = losses.categorical_crossentropy(jnp.array([0.7, 0.1, 0.2]), one_hot)
    np.testing.assert_allclose(loss, 0.35667494393873245, rtol=1e-6)  # -log(0.7)
    np.testing.assert_allclose(losses.categorical_crossentropy(jnp.array([0.5, 0.5]),
                                                               jnp.array(0)),
                               math.log(2), rtol=1e-6)


def test_ch5_cross_entropy_and_accuracy_of_a_batch() -> None:
    for targets in (BOOK_TARGETS, jax.nn.one_hot(BOOK_TARGETS, 3)):
        loss = losses.mean(losses.categorical_crossentropy(BOOK_PROBS, targets))
        np.testing.assert_allclose(loss, 0.38506088, rtol=1e-6)
    # Accuracy: the book's second example, argmax [0, 0, 1] against [0, 1, 1].
    softmax_outputs = jnp.array([[0.7, 0.2, 0.1], [0.5, 0.1, 0.4], [0.02, 0.9, 0.08]])
    accuracy = losses.mean(metrics.categorical_accuracy(softmax_outputs, BOOK_TARGETS))
    np.testing.assert_allclose(accuracy, 2 / 3, rtol=1e-7)
    np.testing.assert_allclose(losses.mean(metrics.categorical_accuracy(BOOK_PROBS,
                                                                        BOOK_TARGETS)), 1.0)


def test_ch5_log_of_zero_is_clipped() -> None:
    loss = losses.categorical_crossentropy(jnp.array([[0.0, 1.0, 0.0]]), jnp.array([0]))
    np.testing.assert_allclose(loss, [16.118095], rtol=1e-6)  # -log(1e-7), not inf


# --- chapters 7-8: derivatives ------------------------------------------------------------

def test_ch7_numerical_derivative_approximates_the_analytic_one() -> None:
    def f(x: float | Array) -> float | Array:
        return 2 * x**2

    delta = 1e-4
    forward_difference = (f(1.0 + delta) - f(1.0)) / delta  # the book's approximation
    assert math.isclose(forward_difference, 4.0002, rel_tol=1e-6)
    with jax.enable_x64(True):
        np.testing.assert_allclose(jax.grad(f)(jnp.float64(1.0)), 4.0)
        check = fn.check_gradients(lambda p: jnp.sum(f(p)), jnp.array([1.0, -0.5, 3.0]))
        assert check.max_error < 1e-8


# --- chapter 9: backpropagation -----------------------------------------------------------

def test_ch9_a_single_relu_neuron_and_one_optimisation_step() -> None:
    """x = [1, -2, 3], w = [-3, -1, 2], b = 1: output relu(6) = 6; d/dx = w, d/dw = x,
    d/db = 1; one step w -= 0.001 dw, b -= 0.001 db gives output 5.985."""
    neuron = fn.serial(fn.Dense(1), fn.ReLU())
    params = {"0_dense": {"w": jnp.array([[-3.0], [-1.0], [2.0]]), "b": jnp.array([1.0])}}
    x = jnp.array([1.0, -2.0, 3.0])

    def output(p: Params, inputs: Array) -> Array:
        y, _ = neuron.apply(p, {}, inputs)
        return y[0]

    np.testing.assert_allclose(output(params, x), 6.0)
    dparams, dx = jax.grad(output, argnums=(0, 1))(params, x)
    np.testing.assert_allclose(dx, [-3.0, -1.0, 2.0])
    np.testing.assert_allclose(dparams["0_dense"]["w"], [[1.0], [-2.0], [3.0]])
    np.testing.assert_allclose(dparams["0_dense"]["b"], [1.0])
    stepped = jax.tree.map(lambda p, g: p - 0.001 * g, params, dparams)
    np.testing.assert_allclose(stepped["0_dense"]["w"][:, 0], [-3.001, -0.998, 1.997],
                               rtol=1e-6)
    np.testing.assert_allclose(output(stepped, x), 5.985, rtol=1e-6)


def test_ch9_dense_backward_book_example() -> None:
    """dinputs = dvalues @ W^T, dweights = X^T @ dvalues, dbiases = sum(dvalues, axis=0)."""
    layer = fn.Dense(3)
    params = dense_params(WEIGHTS, BIASES)
    x = jnp.asarray(BATCH)
    dvalues = jnp.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0]])
    _, vjp = jax.vjp(lambda p, v: layer.apply(p, {}, v)[0], params, x)
    dparams, dinputs = vjp(dvalues)
    np.testing.assert_allclose(dinputs, [[0.44, -0.38, -0.07, 1.37],
                                         [0.88, -0.76, -0.14, 2.74],
                                         [1.32, -1.14, -0.21, 4.11]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dparams["w"], [[0.5, 0.5, 0.5], [20.1, 20.1, 20.1],
                                              [10.9, 10.9, 10.9], [4.1, 4.1, 4.1]], rtol=1e-6)
    np.testing.assert_allclose(dparams["b"], [6.0, 6.0, 6.0])
    # The general formulas, on random upstream gradients.
    g = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3)), jnp.float32)
    dparams, dinputs = vjp(g)
    w = np.asarray(params["w"], np.float64)
    np.testing.assert_allclose(dinputs, np.asarray(g) @ w.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dparams["w"], np.asarray(x).T @ np.asarray(g), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(dparams["b"], np.asarray(g).sum(axis=0), rtol=1e-5, atol=1e-6)


def test_ch9_relu_backward_is_a_mask() -> None:
    z = jnp.array([[1.0, 2.0, -3.0, -4.0], [2.0, -7.0, -1.0, 3.0], [-1.0, 2.0, 5.0, -1.0]])
    dvalues = jnp.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]])
    _, vjp = jax.vjp(activations.relu, z)
    (drelu,) = vjp(dvalues)
    np.testing.assert_array_equal(drelu, [[1, 2, 0, 0], [5, 0, 0, 8], [0, 10, 11, 0]])


def test_ch9_softmax_jacobian() -> None:
    """d softmax / d z = diag(s) - s s^T; the book's example s = [0.7, 0.1, 0.2]."""
    s = np.array([0.7, 0.1, 0.2])
    z = jnp.log(jnp.asarray(s, jnp.float32))  # softmax(log s) = s
    np.testing.assert_allclose(activations.softmax(z), s, rtol=1e-6)
    jacobian = jax.jacfwd(activations.softmax)(z)
    np.testing.assert_allclose(jacobian, [[0.21, -0.07, -0.14], [-0.07, 0.09, -0.02],
                                          [-0.14, -0.02, 0.16]], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(jacobian, np.diagflat(s) - np.outer(s, s), rtol=1e-5,
                               atol=1e-7)


def softmax_cce(logits: Array, targets: Array) -> Array:
    probs, _ = fn.Softmax().apply({}, {}, logits)
    return losses.mean(losses.categorical_crossentropy(probs, targets))


def test_ch9_combined_softmax_cross_entropy_gradient_book_example() -> None:
    """d loss / d z = (p - y_onehot) / N; the book's printed dinputs."""
    z = jnp.log(BOOK_PROBS)
    expected = [[-0.1, 0.03333333, 0.06666667], [0.03333333, -0.16666667, 0.13333333],
                [0.00666667, -0.03333333, 0.02666667]]
    grad = jax.grad(softmax_cce)(z, BOOK_TARGETS)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)
    one_hot_grad = jax.grad(softmax_cce)(z, jax.nn.one_hot(BOOK_TARGETS, 3))
    np.testing.assert_allclose(one_hot_grad, expected, rtol=1e-5, atol=1e-7)
    # The book's separate path: CCE backward -y/p/N, then the softmax Jacobian per sample.
    dprobs = -np.eye(3)[np.asarray(BOOK_TARGETS)] / np.asarray(BOOK_PROBS, np.float64) / 3
    p = np.asarray(BOOK_PROBS, np.float64)
    separate = np.stack([(np.diagflat(s) - np.outer(s, s)) @ d for s, d in zip(p, dprobs,
                                                                             strict=True)])
    np.testing.assert_allclose(separate, expected, rtol=1e-6, atol=1e-8)


def test_ch9_combined_gradient_on_random_logits() -> None:
    rng = np.random.default_rng(2)
    z = jnp.asarray(rng.normal(scale=2.0, size=(16, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 5, size=16), jnp.int32)
    grad = jax.jit(jax.grad(softmax_cce))(z, y)
    p = np.asarray(activations.softmax(z), np.float64)
    assert p.min() > 1e-7 and p.max() < 1 - 1e-7  # away from the clip
    np.testing.assert_allclose(grad, (p - np.eye(5)[np.asarray(y)]) / 16, rtol=1e-4, atol=1e-7)


def test_ch9_whole_network_backward_matches_the_books_manual_backprop() -> None:
    """Dense-ReLU-Dense-softmax-CCE: jax.grad against the book's layer-by-layer backward."""
    net = fn.serial(fn.Dense(8, b_init=fn.initializers.constant(0.05)), fn.ReLU(),
                    fn.Dense(3), fn.Softmax())
    params, _ = net.init(jax.random.key(3), (2,))
    params = jax.tree.map(lambda p: p * 20.0, params)  # weights ~0.2: a non-trivial softmax
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.uniform(-1, 1, size=(30, 2)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, size=30), jnp.int32)

    def loss(p: Params) -> Array:
        probs, _ = net.apply(p, {}, x)
        return losses.mean(losses.categorical_crossentropy(probs, y))

    grads = jax.jit(jax.grad(loss))(params)

    w1, b1 = (np.asarray(params["0_dense"][k], np.float64) for k in ("w", "b"))
    w2, b2 = (np.asarray(params["2_dense"][k], np.float64) for k in ("w", "b"))
    xs = np.asarray(x, np.float64)
    z1 = xs @ w1 + b1
    a1 = np.maximum(z1, 0)
    z2 = a1 @ w2 + b2
    e = np.exp(z2 - z2.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    dz2 = (probs - np.eye(3)[np.asarray(y)]) / len(xs)
    da1 = dz2 @ w2.T
    dz1 = da1 * (z1 > 0)
    expected = {"0_dense": {"w": xs.T @ dz1, "b": dz1.sum(axis=0)},
                "2_dense": {"w": a1.T @ dz2, "b": dz2.sum(axis=0)}}
    for layer in expected:
        for leaf in ("w", "b"):
            ref = expected[layer][leaf]
            np.testing.assert_allclose(grads[layer][leaf], ref, rtol=1e-4,
                                       atol=1e-5 * np.abs(ref).max(), err_msg=f"{layer}/{leaf}")
