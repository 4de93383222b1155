"""Numbers to trust: decay rates near 1 as accurate as optax's, and NaN never masked.

The float64 references are the book's formulas in NumPy; NaN rules are checked against
`jax.nn` (activations) or a NumPy formula in which NaN propagates (losses, metrics).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import activations, losses, metrics, optim

# --- decay rates near 1 (RMSProp's rho, Adam's b1 and b2) ---
# The problems, the float64 reference and the optax counterparts are the benchmark's.

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
from optimizer_precision import (  # noqa: E402
    CASES,
    DECAY,
    EPS,
    book_float64,
    distances,
    problems,
    run_all,
)

NEAR_ONE = CASES


@pytest.mark.parametrize(("kind", "lr", "beta"), NEAR_ONE,
                         ids=[f"{k}-lr{lr}-beta{b}" for k, lr, b in NEAR_ONE])
def test_decay_rates_near_one_are_as_accurate_as_optax(kind: str, lr: float, beta: float,
                                                       ) -> None:
    """Max-abs distance from float64 after 100 steps, summed over 8 problems: one
    problem's distance is float32 rounding noise whose ratio to optax's swings between
    about 0.5 and 2.4 from problem to problem; a biased `1 - beta` adds up over them."""
    params, grads = problems()
    exact = book_float64(kind, lr, beta, params, grads)
    ours, theirs = distances(kind, lr, beta, params, grads)
    assert np.max(np.abs(exact - params)) > 0.1  # the runs went somewhere
    assert ours.sum() <= 1.5 * theirs.sum()


@pytest.mark.parametrize(("b1", "b2"), [(0.9, 1 - 1e-8), (1 - 1e-8, 0.999)])
def test_adam_with_a_decay_rate_that_float32_rounds_to_one(b1: float, b2: float) -> None:
    """float32(1 - 1e-8) is 1.0; `1 - b**t` taken from it would be 0 (a NaN step), but
    float32(1e-8) holds the complement to 6e-8 relative and gives the float64 run to 1e-5."""
    assert np.float32(1 - 1e-8) == 1.0
    params, grads = problems()
    exact = book_float64("adam", 0.02, b2, params, grads, b1=b1)
    ours = run_all(optim.adam(0.02, decay=DECAY, eps=EPS, b1=b1, b2=b2), params, grads)
    np.testing.assert_allclose(ours, exact, rtol=0, atol=1e-5)


PARAMS = {"w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.asarray([0.1, -0.2])}
GRADS = {"w": jnp.asarray([[0.3, -0.1], [0.2, 0.4]]), "b": jnp.asarray([1.0, -0.5])}


def test_a_decay_rate_is_held_as_its_complement_and_replaced_by_either_name() -> None:
    opt = optim.adam(0.05)
    state = opt.init(PARAMS)
    by_rate = optim.replace_hyperparams(state, b2=0.9999)
    by_complement = optim.replace_hyperparams(state, one_minus_b2=1e-4)
    assert by_rate.hyperparams["one_minus_b2"] == np.float32(1e-4)  # not 1 - float32(0.9999)
    assert "b2" not in by_rate.hyperparams  # one leaf per setting: nothing to fall out of step
    fresh = optim.adam(0.05, b2=0.9999).init(PARAMS)
    chex.assert_trees_all_equal(by_rate.hyperparams, fresh.hyperparams)
    chex.assert_trees_all_equal(by_complement.hyperparams, fresh.hyperparams)
    update = jax.jit(opt.update)
    chex.assert_trees_all_equal(update(GRADS, by_rate)[0], update(GRADS, fresh)[0])


def test_batched_and_traced_replacements_of_a_decay_rate() -> None:
    opt = optim.rmsprop(0.01)
    batched = jax.vmap(lambda _: opt.init(PARAMS))(jnp.arange(3))
    swept = optim.replace_hyperparams(batched, rho=np.asarray([0.5, 0.999, 0.9999]))
    np.testing.assert_array_equal(swept.hyperparams["one_minus_rho"],
                                  np.asarray([0.5, 1e-3, 1e-4], np.float32))
    traced = jax.vmap(lambda rho: optim.replace_hyperparams(opt.init(PARAMS), rho=rho))(
        jnp.asarray([0.5, 0.75]))
    np.testing.assert_array_equal(traced.hyperparams["one_minus_rho"], [0.5, 0.25])
    with pytest.raises(ValueError, match="rho and one_minus_rho were both given"):
        optim.replace_hyperparams(batched, rho=0.9, one_minus_rho=0.1)
    with pytest.raises(ValueError, match=r"one_minus_rho must be in \(0, 1\], got 0.0"):
        optim.replace_hyperparams(opt.init(PARAMS), one_minus_rho=0.0)
    with pytest.raises(ValueError, match=r"one_minus_rho must be in \(0, 1\], got 1.5"):
        optim.replace_hyperparams(opt.init(PARAMS), one_minus_rho=1.5)


# --- NaN: every activation, loss and metric, one table row each ---


def public_functions(module: ModuleType) -> list[str]:
    """The functions `module` itself defines and exports: each needs a row below."""
    return sorted(
        name for name, obj in vars(module).items()
        if callable(obj) and not name.startswith("_") and not inspect.isclass(obj)
        and getattr(obj, "__module__", None) == module.__name__
    )


NAN = np.nan


def nan_rows(classes: int) -> np.ndarray:
    """Rows with a NaN first, in the middle, last, everywhere; then a row with -inf, a
    plain one and one of zeros (relu's and step's kink)."""
    rng = np.random.default_rng(classes)
    x = rng.standard_normal((7, classes)).astype(np.float32)
    x[0, 0] = x[1, classes // 2] = x[2, -1] = NAN
    x[3] = NAN
    x[4, 1] = -np.inf
    x[6] = 0.0
    return x


ACTIVATION_REFERENCES: dict[str, Callable[[jax.Array], jax.Array]] = {
    "step": lambda x: jnp.heaviside(x, 0.0),
    "linear": lambda x: x,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "softmax": jax.nn.softmax,
    "log_softmax": jax.nn.log_softmax,
    "row_max": lambda x: jnp.max(x, axis=-1, keepdims=True),
    "row_sum": lambda x: jnp.sum(x, axis=-1, keepdims=True),
}


@pytest.mark.parametrize("classes", [3, 20])  # column by column, and one reduction
@pytest.mark.parametrize("name", public_functions(activations))
def test_activations_propagate_nan_as_jax_nn_does(name: str, classes: int) -> None:
    x = jnp.asarray(nan_rows(classes))
    out = jax.jit(getattr(activations, name))(x)
    expected = ACTIVATION_REFERENCES[name](x)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)  # NaN where jax has NaN
    assert np.isnan(np.asarray(out)).any()


def xlogy_rows(y: np.ndarray, log_p: np.ndarray) -> np.ndarray:
    """`-sum_c y_c log p_c` per row; a NaN anywhere in the row (y or log p) gives NaN."""
    return np.asarray(-(y * log_p).sum(axis=-1))


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return np.asarray(shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True)))


def np_clip(p: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(p, 1e-7, 1 - 1e-7))


CLASS_LOSSES: dict[str, tuple[bool, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    # name: (takes probabilities, float64 reference from one-hot labels)
    "categorical_crossentropy": (True, lambda p, y: xlogy_rows(y, np.log(np_clip(p)))),
    "softmax_categorical_crossentropy": (False, lambda z, y: xlogy_rows(y, np_log_softmax(z))),
    "softmax_cross_entropy": (False, lambda z, y: xlogy_rows(y, np_log_softmax(z))),
}

ELEMENTWISE_LOSSES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "binary_crossentropy": lambda p, y: np.mean(
        -(y * np.log(np_clip(p)) + (1 - y) * np.log(np_clip(1 - p))), axis=-1),
    "sigmoid_binary_cross_entropy": lambda z, y: np.mean(
        np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))), axis=-1),
    "mean_squared_error": lambda p, y: np.mean((p - y) ** 2, axis=-1),
    "mean_absolute_error": lambda p, y: np.mean(np.abs(p - y), axis=-1),
}

OTHER_LOSS_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "clipped_log": lambda p: np.log(np_clip(p)),  # per element
    "mean": lambda values: np.mean(values),  # a batch's data loss
    "to_bits": lambda nats: nats / np.log(2.0),  # per element
}

LOSS_VALIDATORS = {"is_concrete", "class_targets", "same_shape_targets",  # return no losses
                   "token_targets", "mean_over_tokens"}


def class_problem(classes: int, probabilities: bool) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """Predictions `(4, C)` with a NaN off the label (row 0), on the label (row 1), none
    (rows 2, 3); sparse labels; one-hot labels with a NaN off the label in row 3."""
    rng = np.random.default_rng(classes)
    z = rng.standard_normal((4, classes))
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True) if probabilities else z
    labels = np.asarray([1, 2, 0, 1])
    p[0, 0] = p[1, 2] = NAN
    one_hot = np.eye(classes)[labels]
    one_hot[3, 0] = NAN
    return p, labels, one_hot


def elementwise_problem(outputs: int, probabilities: bool) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets `(3, K)`: a NaN prediction in row 0, a NaN target in row
    1, none in row 2."""
    rng = np.random.default_rng(outputs)
    p = rng.uniform(0.05, 0.95, (3, outputs)) if probabilities else rng.normal(size=(3, outputs))
    y = rng.integers(0, 2, (3, outputs)).astype(np.float64)
    p[0, -1], y[1, 0] = NAN, NAN
    return p, y


def f32(x: np.ndarray) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def token_problem(classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities `(3, 2, C)`, labels `(3, 2)`: a NaN in a real token of row 0, a NaN in
    the padded token of row 1 (ignored, as padding is), none in row 2."""
    rng = np.random.default_rng(classes)
    z = rng.standard_normal((3, 2, classes))
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    labels = np.asarray([[1, 0], [2, -1], [0, 1]])
    p[0, 1, 2] = p[1, 1, 0] = NAN
    return p, labels


@pytest.mark.parametrize("size", [3, 20])  # classes: column by column, and one reduction
@pytest.mark.parametrize("name", sorted(set(public_functions(losses)) - LOSS_VALIDATORS))
def test_losses_are_nan_for_every_example_holding_a_nan(name: str, size: int) -> None:
    loss = jax.jit(getattr(losses, name))
    if name in CLASS_LOSSES:
        probabilities, reference = CLASS_LOSSES[name]
        p, labels, one_hot = class_problem(size, probabilities)
        expected_sparse = reference(p, np.eye(size)[labels])
        np.testing.assert_allclose(loss(f32(p), jnp.asarray(labels)), expected_sparse, rtol=2e-5)
        np.testing.assert_allclose(loss(f32(p), f32(one_hot)), reference(p, one_hot), rtol=2e-5)
        assert np.isnan(expected_sparse).tolist() == [True, True, False, False]
    elif name in ELEMENTWISE_LOSSES:
        p, y = elementwise_problem(size, probabilities=name == "binary_crossentropy")
        expected = ELEMENTWISE_LOSSES[name](p, y)
        np.testing.assert_allclose(loss(f32(p), f32(y)), expected, rtol=2e-5)
        assert np.isnan(expected).tolist() == [True, True, False]
    elif name == "token_crossentropy":
        p, labels = token_problem(size)
        out = np.asarray(loss(f32(p), jnp.asarray(labels)))
        assert np.isnan(out).tolist() == [True, False, False]
        np.testing.assert_allclose(out[1], -np.log(p[1, 0, 2]), rtol=2e-5)
    else:
        values = np.asarray([[0.25, NAN, 0.5], [0.5, 0.125, 0.75]])
        np.testing.assert_allclose(loss(f32(values)), OTHER_LOSS_FUNCTIONS[name](values),
                                   rtol=1e-6)


def np_first_argmax(x: np.ndarray) -> np.ndarray:
    """np.argmax, but -1 for rows holding a NaN (the documented rule)."""
    return np.where(np.isnan(x).any(axis=-1), -1, np.argmax(np.nan_to_num(x), axis=-1))


def nan_where(invalid: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return np.where(invalid, NAN, scores)


def np_categorical_accuracy(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    invalid = np.isnan(p).any(axis=-1) | np.isnan(y).any(axis=-1)
    return nan_where(invalid, np_first_argmax(p) == np_first_argmax(y))


ELEMENTWISE_METRICS: dict[str, tuple[Callable[..., Any], Callable[..., np.ndarray]]] = {
    "binary_accuracy": (metrics.binary_accuracy, lambda p, y: np.mean(
        nan_where(np.isnan(p) | np.isnan(y), (p > 0.5) == (y > 0.5)), axis=-1)),
    "regression_accuracy": (
        lambda p, y: metrics.regression_accuracy(p, y, precision=0.25),
        lambda p, y: np.mean(nan_where(np.isnan(p - y), np.abs(p - y) < 0.25), axis=-1)),
}


@pytest.mark.parametrize("size", [3, 20])
@pytest.mark.parametrize("name", public_functions(metrics))
def test_metrics_are_nan_and_class_picks_minus_one_for_nan(name: str, size: int) -> None:
    if name == "categorical_accuracy":
        p, labels, one_hot = class_problem(size, probabilities=True)
        accuracy = jax.jit(metrics.categorical_accuracy)
        np.testing.assert_array_equal(accuracy(f32(p), jnp.asarray(labels)),
                                      np_categorical_accuracy(p, np.eye(size)[labels]))
        expected = np_categorical_accuracy(p, one_hot)
        np.testing.assert_array_equal(accuracy(f32(p), f32(one_hot)), expected)
        assert np.isnan(expected).tolist() == [True, True, False, True]
    elif name in ELEMENTWISE_METRICS:
        metric, reference = ELEMENTWISE_METRICS[name]
        p, y = elementwise_problem(size, probabilities=True)
        np.testing.assert_allclose(jax.jit(metric)(f32(p), f32(y)), reference(p, y), rtol=1e-6)
        assert np.isnan(reference(p, y)).tolist() == [True, True, False]
        if name == "regression_accuracy":  # a NaN tolerance would count every example wrong
            with pytest.raises(ValueError, match="regression_accuracy: precision is NaN"):
                metrics.regression_accuracy(f32(p), f32(y), precision=NAN)
    elif name == "first_argmax":
        x = nan_rows(size)
        picks = jax.jit(metrics.first_argmax)(x)
        np.testing.assert_array_equal(picks, np_first_argmax(x))
        assert picks.tolist()[:4] == [-1, -1, -1, -1]
    elif name == "token_accuracy":
        p, labels = token_problem(size)
        out = np.asarray(jax.jit(metrics.token_accuracy)(f32(p), jnp.asarray(labels)))
        assert np.isnan(out).tolist() == [True, False, False]
        assert out[1] == float(np.argmax(p[1, 0]) == 2)
    elif name == "threshold_classes":
        x = nan_rows(size)
        np.testing.assert_array_equal(jax.jit(metrics.threshold_classes)(x),
                                      np.where(np.isnan(x), -1, x > 0.5))
    else:
        assert name == "regression_precision", f"add a NaN row for metrics.{name}"
        with pytest.raises(ValueError, match="regression_precision: the targets' std is nan"):
            metrics.regression_precision(np.asarray([[1.0], [NAN], [2.0]]))
