"""Ensembles and sweeps: tree_stack/tree_unstack, init_ensemble, fit_ensemble against K
separate `fit` calls, per-member hyper-parameters, divergence, predict/evaluate."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.optim import adam, learning_rate, replace_hyperparams
from funcnn.training.ensemble import (
    _run_ensemble_jit,
    evaluate_ensemble,
    fit_ensemble,
    init_ensemble,
    predict_ensemble,
)
from funcnn.tree import tree_stack, tree_unstack

K = 3
KEYS = jax.random.split(jax.random.key(7), K)
RATES = np.array([0.01, 0.03, 0.1], np.float32)
DECAYS = np.array([0.0, 1e-2, 1e-1], np.float32)


def blobs(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3).astype(np.int32)
    x = (rng.normal(size=(3, 2))[y] * 2 + rng.normal(size=(n, 2))).astype(np.float32)
    return x, y


def dropout_net() -> fn.Layer:
    return fn.serial(fn.Dense(8, w_l2=1e-3), fn.ReLU(), fn.Dropout(0.2), fn.Dense(3),
                     fn.Softmax())


NET = dropout_net()
X, Y = blobs()
X_VAL, Y_VAL = blobs(12, seed=1)
OPT = adam(0.05)
FIT_ARGS = {"epochs": 3, "batch_size": 16, "metric": categorical_accuracy, "progress": False,
            "validation_data": (X_VAL, Y_VAL)}


# --------------------------------------------------------------------------- trees

def test_tree_stack_and_unstack_are_inverse() -> None:
    trees = [{"a": jnp.full((2,), float(i)), "b": {"c": jnp.int32(i)}} for i in range(3)]
    stacked = tree_stack(trees)
    np.testing.assert_array_equal(stacked["a"], [[0, 0], [1, 1], [2, 2]])
    np.testing.assert_array_equal(stacked["b"]["c"], [0, 1, 2])
    assert stacked["b"]["c"].dtype == jnp.int32
    for original, back in zip(trees, tree_unstack(stacked), strict=True):
        chex.assert_trees_all_equal(original, back)
    assert tree_unstack({}, size=4) == [{}, {}, {}, {}]


def test_tree_stack_rejects_mismatches() -> None:
    with pytest.raises(ValueError, match="got no trees"):
        tree_stack([])
    with pytest.raises(TypeError, match="expected a sequence of pytrees"):
        tree_stack({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tree 1 has structure"):
        tree_stack([{"a": jnp.zeros(2)}, {"b": jnp.zeros(2)}])
    with pytest.raises(ValueError, match=r"leaf 'x/w' of tree 1 has shape \(3,\)"):
        tree_stack([{"x": {"w": jnp.zeros(2)}}, {"x": {"w": jnp.zeros(3)}}])
    with pytest.raises(ValueError, match="dtype int32"):
        tree_stack([{"w": jnp.zeros(2)}, {"w": jnp.zeros(2, jnp.int32)}])


def test_tree_unstack_rejects_ragged_or_scalar_leaves() -> None:
    with pytest.raises(ValueError, match=r"leaf 'b' has leading size 2, but leaf 'a' has 3"):
        tree_unstack({"a": jnp.zeros(3), "b": jnp.zeros(2)})
    with pytest.raises(ValueError, match="leaf 'a' is a scalar"):
        tree_unstack({"a": jnp.float32(1)})
    with pytest.raises(ValueError, match="no leaves, so its size is unknown"):
        tree_unstack({})
    with pytest.raises(ValueError, match=r"leaf 'a' has leading size 3, but expected 2"):
        tree_unstack({"a": jnp.zeros(3)}, size=2)


# ---------------------------------------------------------------------- ensembles

def test_init_ensemble_equals_one_init_per_key() -> None:
    params, state = init_ensemble(NET, KEYS, (2,))
    assert params["0_dense"]["w"].shape == (K, 2, 8)
    for k, member in enumerate(tree_unstack(params)):
        chex.assert_trees_all_equal(member, NET.init(KEYS[k], (2,))[0])
    assert state == {}


def test_fit_ensemble_equals_separate_fits_with_own_keys_and_hyperparams() -> None:
    params, state = init_ensemble(NET, KEYS, (2,))
    result = fit_ensemble(NET, params, state, OPT, categorical_crossentropy, X, Y, keys=KEYS,
                          hyperparams={"learning_rate": RATES, "decay": DECAYS}, **FIT_ARGS)
    assert result.diverged == [None] * K
    members = result.members()
    for k in range(K):
        member_params = jax.tree.map(lambda leaf, k=k: leaf[k], params)
        opt_state = replace_hyperparams(OPT.init(member_params), learning_rate=RATES[k],
                                        decay=DECAYS[k])
        alone = fn.fit(NET, member_params, {}, OPT, categorical_crossentropy, X, Y, key=KEYS[k],
                       opt_state=opt_state, **FIT_ARGS)
        chex.assert_trees_all_close(members[k].params, alone.params, atol=1e-5, rtol=1e-5)
        chex.assert_trees_all_close(members[k].opt_state, alone.opt_state, atol=1e-5, rtol=1e-5)
        got, want = members[k].history.to_dict(), alone.history.to_dict()
        assert got["epoch"] == want["epoch"] == [0, 1, 2]
        for name in ("loss", "reg_loss", "accuracy", "learning_rate", "val_loss",
                     "val_accuracy"):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
    # each member's own rate and decay: lr_t = lr / (1 + decay * t) after 9 updates
    np.testing.assert_allclose([float(learning_rate(m.opt_state)) for m in members],
                               RATES / (1 + DECAYS * 9), rtol=1e-6)
    # members differ: own keys give own data order and dropout masks
    assert not np.allclose(members[0].params["0_dense"]["w"], members[1].params["0_dense"]["w"])


def test_a_diverging_member_stops_while_the_others_train_on() -> None:
    params, state = init_ensemble(NET, KEYS, (2,))
    fit_ensemble(NET, params, state, OPT, categorical_crossentropy, X, Y, keys=KEYS,
                 **FIT_ARGS)
    compiled = _run_ensemble_jit._cache_size()
    # member 1's weights jump to ~1e30 in its first step, so its L2 penalty overflows
    rates = np.array([0.01, 1e30, 0.01], np.float32)
    result = fit_ensemble(NET, params, state, OPT, categorical_crossentropy, X, Y,
                          keys=jax.random.split(jax.random.key(99), K),
                          hyperparams={"learning_rate": rates}, **FIT_ARGS)
    assert _run_ensemble_jit._cache_size() == compiled  # new keys and rates: no recompile
    assert result.diverged == [None, 0, None]
    assert [len(h.loss) for h in result.histories] == [3, 0, 3]
    # rolled back to before the bad epoch: the initial parameters and optimizer state
    chex.assert_trees_all_equal(result.members()[1].params,
                                jax.tree.map(lambda leaf: leaf[1], params))
    np.testing.assert_array_equal(result.opt_state.count, [9, 0, 9])
    assert all(np.isfinite(h.loss).all() for h in result.histories)


def test_predict_and_evaluate_ensemble_match_each_member() -> None:
    net = NET  # dropout is off in inference mode
    params, state = init_ensemble(net, KEYS, (2,))
    outputs = predict_ensemble(net, params, state, X, batch_size=16, reduce="none")
    assert outputs.shape == (K, 40, 3)
    members = [fn.predict(net, p, {}, X) for p in tree_unstack(params)]
    np.testing.assert_allclose(outputs, np.stack(members), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(predict_ensemble(net, params, state, X), np.mean(members, axis=0),
                               rtol=1e-6, atol=1e-7)
    scores = evaluate_ensemble(net, params, state, categorical_crossentropy, X, Y,
                               metric=categorical_accuracy)
    for k, p in enumerate(tree_unstack(params)):
        alone = fn.evaluate(net, p, {}, categorical_crossentropy, X, Y,
                            metric=categorical_accuracy)
        np.testing.assert_allclose(scores.loss[k], alone.loss, rtol=1e-6)
        np.testing.assert_allclose(scores.accuracy[k], alone.accuracy, rtol=1e-6)


def test_ensemble_errors_name_the_problem() -> None:
    params, state = init_ensemble(NET, KEYS, (2,))
    call = {"keys": KEYS, "epochs": 1, "progress": False}
    with pytest.raises(ValueError, match=r"keys must hold K >= 1 PRNG keys.*shape \(\)"):
        init_ensemble(NET, jax.random.key(0), (2,))
    with pytest.raises(TypeError, match="keys must be a jax array"):
        init_ensemble(NET, [1, 2], (2,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fit_ensemble \(params\): leaf '0_dense/b' has leading "
                                         r"size 3, but expected 2"):
        fit_ensemble(NET, params, state, OPT, categorical_crossentropy, X, Y,
                     **{**call, "keys": KEYS[:2]})
    with pytest.raises(ValueError, match=r"hyperparams\['learning_rate'\] needs one value per "
                                         r"member, shape \(3,\); got shape \(\)"):
        fit_ensemble(NET, params, state, OPT, categorical_crossentropy, X, Y,
                     hyperparams={"learning_rate": 0.1}, **call)
    with pytest.raises(ValueError, match="fit_ensemble: hyperparams: learning_rate must be"):
        fit_ensemble(NET, params, state, OPT, categorical_crossentropy, X, Y,
                     hyperparams={"learning_rate": np.array([0.1, -1.0, 0.1])}, **call)
    with pytest.raises(ValueError, match="fit_ensemble: hyperparams: this state has no "
                                         "hyper-parameter 'momentum'"):
        fit_ensemble(NET, params, state, OPT, categorical_crossentropy, X, Y,
                     hyperparams={"momentum": np.zeros(3)}, **call)
    with pytest.raises(ValueError, match="fit_ensemble: epochs must be an int >= 0"):
        fit_ensemble(NET, params, state, OPT, categorical_crossentropy, X, Y,
                     **{**call, "epochs": -1})
    with pytest.raises(ValueError, match="reduce must be 'mean' or 'none', got 'max'"):
        predict_ensemble(NET, params, state, X, reduce="max")
