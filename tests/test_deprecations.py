"""The 0.1 names kept for one release (CHANGELOG.md, 0.2.0): the moved module paths
forward to their new homes with a DeprecationWarning, and the old call forms of
`make_train_step` and `predict_classes` warn and give the new forms' results."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import types
import warnings
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn._moved import MOVED_MODULES

# Names each 0.1 module had, and the module that holds them now.
OLD_NAMES: dict[str, dict[str, str]] = {
    "funcnn.layers": {
        "Dense": "funcnn.nn.dense", "Layer": "funcnn.nn.layer", "ReLU": "funcnn.nn.activation",
        "Flatten": "funcnn.nn.reshape", "Dropout": "funcnn.nn.dropout",
        "check_input_shape": "funcnn.nn.layer", "no_penalty": "funcnn.nn.layer",
        "is_last_axis_softmax": "funcnn.nn.activation",
    },
    "funcnn.combinators": {
        "serial": "funcnn.nn.combinators", "named": "funcnn.nn.combinators",
        "output_shape": "funcnn.nn.combinators", "child_keys": "funcnn.nn.combinators",
        "summary": "funcnn.nn.summary", "summary_table": "funcnn.nn.summary",
    },
    "funcnn.errors": {"LayerError": "funcnn.nn.errors", "LayerTypeError": "funcnn.nn.errors"},
    "funcnn.train": {
        "fit": "funcnn.training.fit", "FitResult": "funcnn.training.fit",
        "NonFiniteLossError": "funcnn.training.fit", "prepare_fit": "funcnn.training.fit",
        "make_train_step": "funcnn.training.step", "StepMetrics": "funcnn.training.step",
        "softmax_output_body": "funcnn.training.step",
        "current_learning_rate": "funcnn.training.loop", "run_epochs": "funcnn.training.loop",
        "TrainConfig": "funcnn.training.config", "auto_unroll": "funcnn.training.epochs",
    },
    "funcnn.inference": {
        "evaluate": "funcnn.training.inference", "predict": "funcnn.training.inference",
        "predict_classes": "funcnn.training.inference",
        "Evaluation": "funcnn.training.inference", "check_data": "funcnn.training.batching",
        "batch_plan": "funcnn.training.batching",
    },
    "funcnn.history": {"History": "funcnn.training.history",
                       "EarlyStopping": "funcnn.training.history",
                       "Callback": "funcnn.training.history"},
    "funcnn.ensemble": {"fit_ensemble": "funcnn.training.ensemble",
                        "init_ensemble": "funcnn.training.ensemble",
                        "predict_ensemble": "funcnn.training.ensemble",
                        "evaluate_ensemble": "funcnn.training.ensemble",
                        "EnsembleResult": "funcnn.training.ensemble"},
    "funcnn.epochs": {"epoch_orders": "funcnn.training.epochs",
                      "key_seed": "funcnn.training.epochs",
                      "auto_unroll": "funcnn.training.epochs"},
    "funcnn.progress": {"ProgressBar": "funcnn.training.progress"},
}


@pytest.fixture(autouse=True)
def fresh_old_paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test imports the old paths anew (an import is cached, and binds the name on
    `funcnn`, after which a second access would not warn)."""
    for old in MOVED_MODULES:
        monkeypatch.delitem(sys.modules, old, raising=False)
        name = old.rpartition(".")[2]
        if name in vars(fn):  # (getattr would import it: funcnn's __getattr__)
            monkeypatch.delattr(fn, name)
    yield
    for old in MOVED_MODULES:  # what this test imported (monkeypatch puts back what was there)
        sys.modules.pop(old, None)
        vars(fn).pop(old.rpartition(".")[2], None)


def import_old(old: str) -> types.ModuleType:
    new = MOVED_MODULES[old]
    with pytest.warns(DeprecationWarning, match=rf"{re.escape(old)} moved to {re.escape(new)}"):
        return importlib.import_module(old)


def test_no_alias_leads_into_the_command() -> None:
    """The library never imports funcnn.cli, not even through a string in an alias."""
    assert not [new for new in MOVED_MODULES.values() if new.startswith("funcnn.cli")]
    for old in ("funcnn.commands", "funcnn.demo", "funcnn.model_spec", "funcnn.plots",
                "funcnn.dataset_splits"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)


def test_every_moved_module_has_examples() -> None:
    assert set(OLD_NAMES) == set(MOVED_MODULES)
    for new in MOVED_MODULES.values():
        importlib.import_module(new)


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_an_old_module_path_warns_and_forwards(old: str) -> None:
    module = import_old(old)
    new = importlib.import_module(MOVED_MODULES[old])
    for name, home in OLD_NAMES[old].items():
        assert getattr(module, name) is getattr(importlib.import_module(home), name), name
    for name in getattr(new, "__all__", ()):
        assert getattr(module, name) is getattr(new, name), name
    with pytest.raises(AttributeError, match=re.escape(MOVED_MODULES[old])):
        _ = module.no_such_name


def test_old_names_are_the_new_objects() -> None:
    layers, train, ensemble = (import_old(m) for m in
                               ("funcnn.layers", "funcnn.train", "funcnn.ensemble"))
    assert layers.Dense is fn.Dense and layers.serial is fn.serial
    assert train.fit is fn.fit and train.make_train_step is fn.make_train_step
    assert ensemble.fit_ensemble is fn.fit_ensemble
    unroll = train.auto_unroll(32, 1000)
    assert isinstance(unroll, int) and unroll >= 1


def test_from_import_of_an_old_path_warns() -> None:
    with pytest.warns(DeprecationWarning, match=r"funcnn\.history moved to "
                                                r"funcnn\.training\.history"):
        from funcnn.history import History
    assert History is fn.History


def test_an_old_module_as_an_attribute_warns() -> None:
    with pytest.warns(DeprecationWarning, match=r"funcnn\.ensemble moved to "
                                                r"funcnn\.training\.ensemble"):
        ensemble = fn.ensemble
    assert ensemble.predict_ensemble is fn.predict_ensemble
    with pytest.raises(AttributeError, match="no attribute 'no_such_module'"):
        _ = fn.no_such_module


def _tiny_problem() -> tuple[fn.Layer, dict[str, object], dict[str, object], jax.Array,
                             jax.Array]:
    net = fn.serial(fn.Dense(4), fn.ReLU(), fn.Dense(3), fn.Softmax())
    params, state = net.init(jax.random.key(0), (2,))
    x = jax.random.normal(jax.random.key(1), (8, 2))
    y = jnp.arange(8) % 3
    return net, params, state, x, y


def test_make_train_step_in_the_old_order_warns_and_steps_the_same() -> None:
    net, params, state, x, y = _tiny_problem()
    optimizer = fn.optim.sgd(0.5)
    loss, metric = fn.losses.categorical_crossentropy, fn.metrics.categorical_accuracy
    new_step = fn.make_train_step(net, optimizer, loss, metric=metric)
    with pytest.warns(DeprecationWarning, match=r"make_train_step\(net, optimizer, loss"):
        old_step = fn.make_train_step(net, loss, optimizer, metric=metric)  # type: ignore[arg-type]
    opt_state = optimizer.init(params)
    new = new_step(params, state, opt_state, x, y)
    old = old_step(params, state, opt_state, x, y)
    np.testing.assert_allclose(new[3].loss, old[3].loss, rtol=1e-6)
    np.testing.assert_allclose(new[3].accuracy, old[3].accuracy)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new[0], old[0])
    assert not jnp.allclose(new[0]["0_dense"]["w"], params["0_dense"]["w"])  # it stepped


def test_predict_classes_of_outputs_warns_and_gives_classes_from_outputs() -> None:
    outputs = jnp.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.3, 0.3, 0.4]])
    with pytest.warns(DeprecationWarning, match=r"classes_from_outputs\(outputs"):
        old = fn.predict_classes(outputs)
    np.testing.assert_array_equal(old, fn.classes_from_outputs(outputs))
    np.testing.assert_array_equal(old, [1, 0, 2])
    one_output = jnp.array([[0.2], [0.4], [0.9]])
    with pytest.warns(DeprecationWarning, match="classes_from_outputs"):
        old_threshold = fn.predict_classes(one_output, 0.3)  # type: ignore[arg-type]
    np.testing.assert_array_equal(old_threshold, fn.classes_from_outputs(one_output, 0.3))
    np.testing.assert_array_equal(old_threshold, [[0], [1], [1]])


def test_predict_classes_takes_the_model_like_predict() -> None:
    net, params, state, x, _ = _tiny_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        classes = fn.predict_classes(net, params, state, x)
        batched = fn.predict_classes(net, params, state, x, batch_size=3)
        thresholded = fn.predict_classes(net, params, state, x, threshold=0.4)
    outputs = fn.predict(net, params, state, x)
    np.testing.assert_array_equal(classes, fn.classes_from_outputs(outputs))
    np.testing.assert_array_equal(batched, classes)
    np.testing.assert_array_equal(thresholded, fn.classes_from_outputs(outputs, 0.4))
    assert classes.shape == (8,)
    with pytest.raises(TypeError, match="classes_from_outputs"):
        fn.predict_classes(net, params)  # type: ignore[arg-type]


def test_dense_n_out_is_the_deprecated_name_of_features() -> None:
    with pytest.warns(DeprecationWarning, match=r"Dense\(n_out=\.\.\.\) is deprecated: the "
                      r"output width is `features`") as caught:
        old = fn.Dense(n_out=3)
    assert caught[0].filename == __file__  # the warning points at the caller
    assert old.config["features"] == 3
    assert fn.init_shapes(old, (2,))[0]["w"].shape == (2, 3)
    with pytest.raises(TypeError, match="output width is given twice"):
        fn.Dense(3, n_out=3)
    with pytest.raises(TypeError, match="missing the output width `features`"):
        fn.Dense()


WIDTH_CASES = [  # constructor, its other required arguments, an input shape
    (fn.Dense, {}, (3,)), (fn.Conv1D, {"kernel_size": 3}, (6, 2)),
    (fn.Conv2D, {"kernel_size": 3}, (6, 6, 2)), (fn.ConvTranspose2D, {"kernel_size": 2}, (3, 3, 2)),
    (fn.LSTM, {}, (4, 3)), (fn.GRU, {}, (4, 3)), (fn.Embedding, {"vocab": 9}, (4,)),
    (fn.MultiHeadAttention, {"heads": 1}, (4, 3)),
]


@pytest.mark.parametrize(("constructor", "others", "shape"), WIDTH_CASES,
                         ids=[c[0].__name__ for c in WIDTH_CASES])
def test_output_width_is_the_first_argument_features_of_every_layer(
        constructor: Any, others: dict[str, int], shape: tuple[int, ...]) -> None:
    first = next(iter(inspect.signature(constructor).parameters.values()))
    assert (first.name, first.kind) == ("features", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for layer in (constructor(5, **others), constructor(features=5, **others)):
        params, state = fn.init_shapes(layer, shape)
        assert fn.nn.output_shape(layer, params, state, shape)[-1] == 5
        assert fn.layer_spec(layer)["config"]["features"] == 5


def test_embedding_and_attention_take_their_other_size_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        fn.Embedding(96, 64)  # type: ignore[misc]
    with pytest.raises(TypeError):
        fn.MultiHeadAttention(4, 128)  # type: ignore[misc]
