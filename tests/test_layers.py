"""The layer contract (DESIGN.md) for every layer in float32, float64 and bfloat16
(tests/layer_contract.py), plus each layer's own semantics."""

from __future__ import annotations

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from layer_contract import DTYPES, ContractCase, run_contract

import funcnn as fn

KEY = jax.random.key(0)

CASES = [
    ContractCase("dense", lambda: fn.Dense(4), (3,)),
    ContractCase("dense_no_bias", lambda: fn.Dense(4, use_bias=False), (3,)),
    # nonzero biases: the L1 penalty |b| has a kink at the book's zero init
    ContractCase("dense_regularized", lambda: fn.Dense(
        4, w_l1=1e-3, w_l2=5e-4, b_l1=1e-3, b_l2=5e-4, b_init=fn.initializers.constant(0.1)),
        (3,)),
    ContractCase("dense_glorot", lambda: fn.Dense(4, w_init=fn.initializers.glorot_uniform(),
                                                  b_init=fn.initializers.constant(0.1)), (3,)),
    ContractCase("dropout_inference", lambda: fn.Dropout(0.3), (6,)),
    ContractCase("relu", fn.ReLU, (6,)),
    ContractCase("leaky_relu", lambda: fn.LeakyReLU(0.1), (6,)),
    ContractCase("sigmoid", fn.Sigmoid, (6,)),
    ContractCase("tanh", fn.Tanh, (6,)),
    ContractCase("linear", fn.Linear, (6,)),
    ContractCase("step", fn.Step, (6,)),
    ContractCase("softmax", fn.Softmax, (6,)),
    ContractCase("log_softmax", fn.LogSoftmax, (6,)),
    ContractCase("flatten", fn.Flatten, (3, 4)),
    ContractCase("serial", lambda: fn.serial(
        fn.Flatten(), fn.Dense(8, b_init=fn.initializers.constant(0.1)), fn.Tanh(),
        fn.Dropout(0.5), fn.Dense(3), fn.Softmax()), (2, 3)),
    ContractCase("nested_serial", lambda: fn.serial(fn.serial(fn.Dense(5), fn.Sigmoid()),
                                                    fn.Dense(2)), (3,)),
]
CASE_DTYPES = list(itertools.product(CASES, DTYPES))


@pytest.mark.parametrize(("case", "dtype"), CASE_DTYPES,
                         ids=[f"{case.id}-{dtype}" for case, dtype in CASE_DTYPES])
def test_layer_contract(case: ContractCase, dtype: str) -> None:
    """Declared shape and dtype, jit == eager, vmap == batch, eval_shape, no retrace,
    gradients (finite differences in float64), state threading."""
    run_contract(case, dtype)


def test_dense_is_book_formula_and_book_init() -> None:
    layer = fn.Dense(64)
    params, state = layer.init(KEY, (2,))
    assert params["w"].shape == (2, 64) and params["b"].shape == (64,)
    np.testing.assert_array_equal(params["b"], 0.0)
    # 0.01 * N(0, 1): the std of 128 draws is close to 0.01
    assert 0.007 < float(jnp.std(params["w"])) < 0.013
    x = jnp.array([[1.0, 2.0], [-1.5, 0.5]])
    y, _ = layer.apply(params, state, x)
    np.testing.assert_allclose(y, np.asarray(x) @ np.asarray(params["w"]) + 0.0, rtol=1e-6)


def test_dense_penalty_is_the_books_sum() -> None:
    layer = fn.Dense(2, w_l1=0.1, w_l2=0.2, b_l1=0.3, b_l2=0.4)
    params = {"w": jnp.array([[1.0, -2.0], [3.0, 0.5]]), "b": jnp.array([-1.0, 2.0])}
    expected = 0.1 * 6.5 + 0.2 * (1 + 4 + 9 + 0.25) + 0.3 * 3.0 + 0.4 * 5.0
    np.testing.assert_allclose(layer.penalty(params), expected, rtol=1e-6)
    assert float(fn.Dense(2).penalty(params)) == 0.0


def test_serial_penalty_sums_layers() -> None:
    net = fn.serial(fn.Dense(3, w_l2=0.5), fn.ReLU(), fn.Dense(2, b_l1=2.0))
    params, _ = net.init(KEY, (4,))
    expected = 0.5 * jnp.sum(params["0_dense"]["w"] ** 2) + 2.0 * jnp.sum(
        jnp.abs(params["2_dense"]["b"]))
    np.testing.assert_allclose(net.penalty(params), expected, rtol=1e-6)


def test_dropout_drops_at_the_given_rate_and_scales_kept_units() -> None:
    layer = fn.Dropout(0.3)
    x = jnp.ones((200, 500))
    y, _ = layer.apply({}, {}, x, key=jax.random.key(3), train=True)
    dropped = float(jnp.mean(y == 0.0))
    # 100,000 Bernoulli(0.3) draws: std of the mean is 0.0014, so 0.01 is > 7 sigma
    assert abs(dropped - 0.3) < 0.01
    np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 1.0 / 0.7], rtol=1e-6)
    # inverted scaling keeps the expected activation
    assert abs(float(jnp.mean(y)) - 1.0) < 0.02


def test_dropout_is_identity_at_inference_and_deterministic_per_key() -> None:
    layer = fn.Dropout(0.5)
    x = jax.random.normal(KEY, (4, 10))
    np.testing.assert_array_equal(layer.apply({}, {}, x)[0], x)
    np.testing.assert_array_equal(layer.apply({}, {}, x, key=KEY, train=False)[0], x)
    a = layer.apply({}, {}, x, key=jax.random.key(7), train=True)[0]
    b = layer.apply({}, {}, x, key=jax.random.key(7), train=True)[0]
    c = layer.apply({}, {}, x, key=jax.random.key(8), train=True)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_dropout_without_key_in_training_is_a_clear_error() -> None:
    with pytest.raises(fn.LayerError, match=r"^Dropout: train=True needs a PRNG key"):
        fn.Dropout(0.1).apply({}, {}, jnp.ones(3), train=True)
    net = fn.serial(fn.Dense(3), fn.Dropout(0.1))
    params, state = net.init(KEY, (2,))
    with pytest.raises(fn.LayerError, match=r"^serial\[1\]/Dropout: train=True needs a PRNG"):
        net.apply(params, state, jnp.ones((4, 2)), train=True)


def test_serial_gives_children_distinct_folded_keys() -> None:
    net = fn.serial(fn.Dropout(0.5), fn.Dropout(0.5))
    x = jnp.ones((1000,))
    y, _ = net.apply({}, {}, x, key=KEY, train=True)
    first, _ = fn.Dropout(0.5).apply({}, {}, x, key=jax.random.fold_in(KEY, 0), train=True)
    mask = first != 0
    second, _ = fn.Dropout(0.5).apply({}, {}, first, key=jax.random.fold_in(KEY, 1), train=True)
    np.testing.assert_array_equal(y, second)
    assert 0 < int(jnp.sum(mask)) < 1000


@pytest.mark.parametrize(
    ("rate", "message"),
    [(1.0, r"rate must be in \[0, 1\), got 1.0"), (-0.1, r"got -0.1"), ("0.5", r"got '0.5'")],
)
def test_dropout_rejects_bad_rates(rate: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fn.Dropout(rate)  # type: ignore[arg-type]


def test_flatten_merges_trailing_axes_and_checks_rank() -> None:
    layer = fn.Flatten()
    x = jnp.arange(2 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(layer.apply({}, {}, x)[0], np.arange(24).reshape(2, 12))
    np.testing.assert_array_equal(layer.apply({}, {}, x[0])[0], np.arange(12))
    with pytest.raises(fn.LayerError, match=r"use Flatten\(ndim=3\)"):
        layer.init(KEY, (28, 28, 1))


def test_serial_param_keys_are_stable_and_readable() -> None:
    net = fn.serial(fn.Dense(64), fn.ReLU(), fn.Dense(3), fn.Softmax())
    params, state = net.init(KEY, (2,))
    assert sorted(params) == ["0_dense", "2_dense"]
    assert state == {}
    assert sorted(params["0_dense"]) == ["b", "w"]
    named = fn.serial(fn.named("hidden", fn.Dense(4)), fn.ReLU(), fn.named("out", fn.Dense(2)))
    named_params, _ = named.init(KEY, (3,))
    assert sorted(named_params) == ["hidden", "out"]


def test_same_key_same_params_and_different_keys_differ() -> None:
    net = fn.serial(fn.Dense(8), fn.ReLU(), fn.Dense(3))
    a, _ = net.init(KEY, (2,))
    b, _ = net.init(KEY, (2,))
    c, _ = net.init(jax.random.key(1), (2,))
    chex.assert_trees_all_equal(a, b)
    assert not np.array_equal(np.asarray(a["0_dense"]["w"]), np.asarray(c["0_dense"]["w"]))
    # the two Dense layers get different keys
    assert not np.allclose(np.asarray(a["0_dense"]["w"])[:, :3], np.asarray(a["2_dense"]["w"])[:2])


def test_wrong_feature_size_names_the_layer_path() -> None:
    net = fn.serial(fn.Flatten(), fn.Dense(100), fn.ReLU(), fn.Dense(10))
    params, state = net.init(KEY, (28, 28))
    bad = {**params, "3_dense": fn.Dense(10).init(KEY, (50,))[0]}
    with pytest.raises(fn.LayerError, match=r"^serial\[3\]/Dense: expected last dimension 50, "
                                            r"got 100$"):
        net.apply(bad, state, jnp.ones((2, 28, 28)))
    with pytest.raises(fn.LayerError, match=r"^serial\[1\]/Dense: expected last dimension 784, "
                                            r"got 100$"):
        net.apply(params, state, jnp.ones((2, 10, 10)))


def test_nested_errors_name_the_whole_path() -> None:
    net = fn.serial(fn.ReLU(), fn.serial(fn.Dense(3), fn.Dense(2)))
    params, state = net.init(KEY, (4,))
    with pytest.raises(fn.LayerError, match=r"^serial\[1\]/serial\[0\]/Dense: expected last "
                                            r"dimension 4, got 5$"):
        net.apply(params, state, jnp.ones((2, 5)))


def test_wrong_rank_and_non_float_inputs_are_clear_errors() -> None:
    net = fn.serial(fn.Dense(3))
    params, state = net.init(KEY, (4,))
    with pytest.raises(fn.LayerError, match=r"serial\[0\]/Dense: expected last dimension 4, "
                                            r"got a scalar"):
        net.apply(params, state, jnp.float32(1.0))
    with pytest.raises(fn.LayerTypeError, match=r"^serial\[0\]/Dense: expected floating-point "
                                                r"input, got int32"):
        net.apply(params, state, jnp.ones((2, 4), jnp.int32))
    with pytest.raises(fn.LayerError, match=r"^serial\[0\]/Dense: expected an input shape of "
                                            r"rank >= 1, got \(\)"):
        net.init(KEY, ())
    with pytest.raises(fn.LayerError, match=r"input_shape must be a tuple of ints"):
        fn.Dense(3).init(KEY, (4.0,))  # type: ignore[arg-type]


def test_mismatched_param_trees_are_clear_errors() -> None:
    net = fn.serial(fn.Dense(3), fn.ReLU(), fn.Dense(2))
    params, state = net.init(KEY, (4,))
    with pytest.raises(fn.LayerError, match=r"^serial: unexpected keys \['9_dense'\]"):
        net.apply({**params, "9_dense": params["0_dense"]}, state, jnp.ones(4))
    with pytest.raises(fn.LayerError, match=r"^serial\[2\]/Dense: expected params with keys "
                                            r"\['b', 'w'\], got \[\]"):
        net.apply({"0_dense": params["0_dense"]}, state, jnp.ones(4))


def test_constructor_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match=r"Dense: features must be a positive int, got 0"):
        fn.Dense(0)
    with pytest.raises(ValueError, match=r"Dense: w_l2 must be a finite number >= 0, got -1"):
        fn.Dense(3, w_l2=-1)
    with pytest.raises(TypeError, match=r"serial: argument 1 is a function, not a Layer"):
        fn.serial(fn.Dense(3), fn.ReLU)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"serial: duplicate layer keys \['a'\]"):
        fn.serial(fn.named("a", fn.Dense(3)), fn.named("a", fn.Dense(3)))
    with pytest.raises(ValueError, match=r"named: name must be a non-empty string"):
        fn.named("a/b", fn.Dense(3))


def test_float64_params_and_inputs_stay_float64() -> None:
    with jax.enable_x64(True):
        net = fn.serial(fn.Dense(4, dtype=jnp.float64), fn.Tanh(), fn.Dense(2, dtype=jnp.float64),
                        fn.Softmax())
        params, state = net.init(KEY, (3,))
        y, _ = net.apply(params, state, jnp.ones((2, 3), jnp.float64))
        assert y.dtype == jnp.float64
        np.testing.assert_allclose(jnp.sum(y, axis=-1), 1.0, rtol=1e-12)


def test_summary_lists_paths_shapes_and_params() -> None:
    net = fn.serial(fn.Dense(64), fn.ReLU(), fn.Dense(3), fn.Softmax())
    lines: list[str] = []
    fn.summary(net, (2,), print_fn=lines.append)
    text = lines[0]
    rows = [line.split() for line in text.splitlines()]
    assert ["0_dense", "Dense", "(None,", "64)", "192"] in rows
    assert ["1_relu", "ReLU", "(None,", "64)", "0"] in rows
    assert ["2_dense", "Dense", "(None,", "3)", "195"] in rows
    assert text.splitlines()[-1] == "total params: 387"
    params, _ = net.init(KEY, (2,))
    assert fn.count_params(params) == 387


def test_summary_of_nested_network_uses_nested_paths() -> None:
    net = fn.serial(fn.Flatten(), fn.named("body", fn.serial(fn.Dense(16), fn.ReLU())),
                    fn.Dense(10))
    text = fn.summary_table(net, (28, 28))
    assert "body/0_dense" in text and "body/1_relu" in text
    assert "total params: 12,730" in text  # 784*16+16 + 16*10+10
