"""Recurrent layers: the layer contract per dtype; LSTM and GRU against NumPy loops over time
written from PyTorch's documented per-gate equations (gate orders i, f, g, o and r, z, n);
reverse and bidirectional alignment against the loop on the flipped sequence; dtypes,
defaults, penalties, the fused matmuls, training with `fit`, the summary and the errors."""

from __future__ import annotations

from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from layer_contract import DTYPES, ContractCase, run_contract

import funcnn as fn
from funcnn.losses import categorical_crossentropy
from funcnn.nn.errors import LayerError, LayerTypeError
from funcnn.nn.recurrent import GRU, LSTM, RNN, Bidirectional, resolve_lowering, scan_cell
from funcnn.nn.recurrent_cells import GRUCell, LSTMCell
from funcnn.optim import adam

KEY = jax.random.key(0)
T, F, H = 4, 3, 5

# An LSTM over whole sequences; a GRU both ways with the last outputs only (a reversed GRU,
# return-last and Bidirectional in one case). Each direction and mode of each cell is also
# checked against the NumPy loops below.
CASES = [
    ContractCase("lstm", lambda: LSTM(H), (T, F)),
    ContractCase("lstm_bptt_reverse", lambda: LSTM(H, lowering="bptt", reverse=True), (T, F)),
    ContractCase("bidirectional_gru_last",
                 lambda: Bidirectional(GRU(H, return_sequences=False)), (T, F)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_contract(case: ContractCase, dtype: str) -> None:
    run_contract(case, dtype)


# --- NumPy references: PyTorch's equations, one gate matrix at a time ----------------------


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def gate(params: dict, leaf: str, k: int, h: int) -> np.ndarray:  # type: ignore[type-arg]
    """Gate `k`'s block of a fused leaf, e.g. PyTorch's `W_if = w_x[:, h:2h].T`."""
    return np.asarray(params[leaf], np.float64)[..., k * h:(k + 1) * h]


def np_lstm(params: dict, x: np.ndarray) -> tuple[np.ndarray, tuple]:  # type: ignore[type-arg]
    """torch.nn.LSTM: i = σ(W_ii x + b_ii + W_hi h + b_hi), f, g = tanh(...), o likewise;
    c' = f c + i g, h' = o tanh(c'). Our single bias is b_i* + b_h*."""
    h_size = np.shape(params["w_h"])[0]
    w = {name: (gate(params, "w_x", k, h_size), gate(params, "w_h", k, h_size),
                gate(params, "b", k, h_size)) for k, name in enumerate("ifgo")}
    h = np.zeros((*x.shape[:-2], h_size))
    c = np.zeros_like(h)
    outputs = []
    for t in range(x.shape[-2]):
        pre = {n: x[..., t, :] @ wx + h @ wh + b for n, (wx, wh, b) in w.items()}
        i, f, o = sigmoid(pre["i"]), sigmoid(pre["f"]), sigmoid(pre["o"])
        c = f * c + i * np.tanh(pre["g"])
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=-2), (h, c)


def np_gru(params: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """torch.nn.GRU: r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h' = (1 - z) n + z h."""
    hs = np.shape(params["w_h"])[0]
    w = {name: [gate(params, leaf, k, hs) for leaf in ("w_x", "b_x", "w_h", "b_h")]
         for k, name in enumerate("rzn")}
    h = np.zeros((*x.shape[:-2], hs))
    outputs = []
    for t in range(x.shape[-2]):
        xt = x[..., t, :]
        r = sigmoid(xt @ w["r"][0] + w["r"][1] + h @ w["r"][2] + w["r"][3])
        z = sigmoid(xt @ w["z"][0] + w["z"][1] + h @ w["z"][2] + w["z"][3])
        n = np.tanh(xt @ w["n"][0] + w["n"][1] + r * (h @ w["n"][2] + w["n"][3]))
        h = (1 - z) * n + z * h
        outputs.append(h)
    return np.stack(outputs, axis=-2), h


def random_params(layer: fn.Layer, seed: int = 0) -> dict:  # type: ignore[type-arg]
    """The layer's params in float64 drawn from N(0, 0.5) (non-zero biases too)."""
    params, _ = fn.init_shapes(layer, (T, F))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: jnp.asarray(rng.normal(0, 0.5, a.shape), jnp.float64), params)


def sequences(seed: int = 1, batch: int = 5) -> np.ndarray:
    """A batch of 5 (as the contract's, whose compiled programs these calls then reuse)."""
    return np.random.default_rng(seed).normal(size=(batch, T, F))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_matches_numpy_loop_outputs_and_final_states(kind: str) -> None:
    with jax.enable_x64(True):
        layer, cell, ref = ((LSTM(H), LSTMCell(H), np_lstm) if kind == "lstm"
                            else (GRU(H), GRUCell(H), np_gru))
        params, x = random_params(layer), sequences()
        expected, final = ref(params, x)
        carry, hs = scan_cell(cell, params, jnp.asarray(x))
        np.testing.assert_allclose(hs, expected, rtol=1e-12, atol=1e-12)
        for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(final), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        y, _ = layer.apply(params, {}, jnp.asarray(x))
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
        last = RNN(cell, return_sequences=False)
        y_last, _ = last.apply(params, {}, jnp.asarray(x))
        np.testing.assert_allclose(y_last, expected[:, -1], rtol=1e-12, atol=1e-12)
        # one step of the cell as a function (carry, x_t) -> (carry, h_t)
        step_carry, h1 = cell(params, cell.zero_carry((5,), jnp.float64), jnp.asarray(x[:, 0]))
        np.testing.assert_allclose(h1, expected[:, 0], rtol=1e-12, atol=1e-12)
        # resuming from a carry continues the sequence
        _, rest = scan_cell(cell, params, jnp.asarray(x[:, 1:]), step_carry)
        np.testing.assert_allclose(rest, expected[:, 1:], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_reverse_is_the_loop_on_the_flipped_sequence_realigned(kind: str) -> None:
    with jax.enable_x64(True):
        make, ref = (LSTM, np_lstm) if kind == "lstm" else (GRU, np_gru)
        params, x = random_params(make(H)), sequences()
        flipped, _ = ref(params, x[:, ::-1])
        y, _ = make(H, reverse=True).apply(params, {}, jnp.asarray(x))
        np.testing.assert_allclose(y, flipped[:, ::-1], rtol=1e-12, atol=1e-12)
        last, _ = make(H, reverse=True, return_sequences=False).apply(params, {}, jnp.asarray(x))
        np.testing.assert_allclose(last, flipped[:, -1], rtol=1e-12, atol=1e-12)


def test_bidirectional_concatenates_forward_and_realigned_backward() -> None:
    with jax.enable_x64(True):
        layer = Bidirectional(LSTM(H), GRU(H))
        params = random_params(layer)
        assert set(params) == {"forward", "backward"}
        x = sequences()
        fwd, _ = np_lstm(params["forward"], x)
        bwd, _ = np_gru(params["backward"], x[:, ::-1])
        bwd = bwd[:, ::-1]  # output t has read x[t:], as PyTorch's backward direction
        y, _ = layer.apply(params, {}, jnp.asarray(x))
        assert y.shape == (5, T, 2 * H)
        np.testing.assert_allclose(y, np.concatenate([fwd, bwd], -1), rtol=1e-12, atol=1e-12)
        summed = Bidirectional(LSTM(H), GRU(H), merge="sum")
        np.testing.assert_allclose(summed.apply(params, {}, jnp.asarray(x))[0], fwd + bwd,
                                   rtol=1e-12, atol=1e-12)
        last = Bidirectional(LSTM(H, return_sequences=False), GRU(H, return_sequences=False))
        y_last, _ = last.apply(params, {}, jnp.asarray(x))  # PyTorch's h_n, both directions
        np.testing.assert_allclose(y_last, np.concatenate([fwd[:, -1], bwd[:, 0]], -1),
                                   rtol=1e-12, atol=1e-12)


def test_bidirectional_default_backward_has_its_own_params() -> None:
    params, _ = Bidirectional(LSTM(H)).init(KEY, (T, F))
    assert jax.tree.map(jnp.shape, params["forward"]) == jax.tree.map(jnp.shape,
                                                                      params["backward"])
    assert not np.allclose(params["forward"]["w_x"], params["backward"]["w_x"])


# --- dtypes, defaults, penalties, fused matmuls ---------------------------------------------


def test_dtypes_of_params_output_and_carry() -> None:
    x = jnp.asarray(sequences(), jnp.bfloat16)
    cell = LSTMCell(H, dtype=jnp.bfloat16)
    params = cell.init(KEY, F)
    assert {a.dtype for a in params.values()} == {jnp.dtype(jnp.bfloat16)}
    carry, hs = scan_cell(cell, params, x)
    assert hs.dtype == carry[0].dtype == carry[1].dtype == jnp.bfloat16
    promoted = jax.eval_shape(lambda p, v: scan_cell(cell, p, v), params,
                              jax.ShapeDtypeStruct(x.shape, jnp.float32))
    assert {a.dtype for a in jax.tree.leaves(promoted)} == {jnp.dtype(jnp.float32)}  # as Dense
    with jax.enable_x64(True):
        shapes, _ = fn.init_shapes(GRU(H, dtype=jnp.float64), (T, F))
        assert {a.dtype for a in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float64)}


def test_default_init_glorot_orthogonal_and_forget_bias() -> None:
    params = LSTMCell(H).init(KEY, F)
    assert {k: v.shape for k, v in params.items()} == {"w_x": (F, 4 * H), "w_h": (H, 4 * H),
                                                       "b": (4 * H,)}
    expected_b = np.zeros(4 * H)
    expected_b[H:2 * H] = 1.0  # the forget gate's slice
    np.testing.assert_array_equal(params["b"], expected_b)
    np.testing.assert_allclose(params["w_h"] @ params["w_h"].T, np.eye(H), atol=1e-5)
    assert np.abs(params["w_x"]).max() <= np.sqrt(6 / (F + 4 * H))
    shifted = LSTMCell(H, forget_bias=0.5, b_init=fn.initializers.constant(0.25)).init(KEY, F)
    np.testing.assert_array_equal(shifted["b"], np.where(expected_b, 0.75, 0.25))


def test_penalty_per_leaf() -> None:
    layer = LSTM(H, w_l2=0.1, recurrent_l1=0.2, b_l2=0.3)
    params, _ = layer.init(KEY, (T, F))
    expected = (0.1 * np.sum(np.square(params["w_x"])) + 0.2 * np.sum(np.abs(params["w_h"]))
                + 0.3 * np.sum(np.square(params["b"])))
    np.testing.assert_allclose(layer.penalty(params), expected, rtol=1e-6)
    bi = Bidirectional(GRU(H, b_l1=0.5))
    bparams, _ = bi.init(KEY, (T, F))
    expected = sum(0.5 * np.sum(np.abs(bparams[d][leaf]))
                   for d in ("forward", "backward") for leaf in ("b_x", "b_h"))
    np.testing.assert_allclose(bi.penalty(bparams), expected, rtol=1e-6)
    assert float(LSTM(H).penalty(params)) == 0.0


def count_dots(jaxpr: jax.extend.core.Jaxpr) -> tuple[int, list[int]]:
    """Matmuls outside any scan, and in each scan body (recursing through nested calls)."""
    outside, bodies = 0, []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            outside += 1
        elif eqn.primitive.name == "scan":
            inner, nested = count_dots(eqn.params["jaxpr"].jaxpr)
            bodies += [inner, *nested]
        else:
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                o, nested = count_dots(sub)
                outside, bodies = outside + o, bodies + nested
    return outside, bodies


@pytest.mark.parametrize("make", [LSTM, GRU])
@pytest.mark.parametrize(("lowering", "dots"), [("precomputed", (1, [1])),
                                                ("per_step", (0, [2]))])
def test_matmuls_of_each_lowering(make, lowering: str, dots: tuple) -> None:  # type: ignore[no-untyped-def,type-arg]
    """precomputed: one input matmul for all steps, one fused `h @ w_h` per step; per_step:
    `x_t @ w_x` and `h @ w_h` per step, each for all gates at once."""
    layer = make(H, lowering=lowering)
    params, _ = fn.init_shapes(layer, (T, F))
    jaxpr = jax.make_jaxpr(lambda p, v: layer.apply(p, {}, v)[0])(params, jnp.ones((2, T, F)))
    assert count_dots(jaxpr.jaxpr) == dots


def test_auto_lowering_on_cpu_is_bptt_for_long_lstm_sequences_and_per_step_otherwise() -> None:
    cpu = jax.default_backend() == "cpu"
    assert resolve_lowering("auto") == ("per_step" if cpu else "precomputed")
    assert resolve_lowering("auto", LSTMCell(H), 64) == ("bptt" if cpu else "precomputed")
    assert resolve_lowering("auto", LSTMCell(H), 20) == ("per_step" if cpu else "precomputed")
    assert resolve_lowering("auto", GRUCell(H), 64) == ("per_step" if cpu else "precomputed")
    assert resolve_lowering("precomputed") == "precomputed"


@pytest.mark.parametrize(("reverse", "return_sequences"),
                         [(False, True), (True, True), (True, False)])
def test_bptt_equals_autodiff_of_the_scan_in_values_and_gradients(
        reverse: bool, return_sequences: bool) -> None:
    """The hand-written backward pass against autodiff of the per-step scan, float64:
    gradients of params, inputs and the initial carry; one example and a batch."""
    with jax.enable_x64(True):
        cell = LSTMCell(H, dtype=jnp.float64)
        params, x = random_params(LSTM(H)), jnp.asarray(sequences(batch=3))
        carry = (jnp.asarray(sequences(2, 3)[:, 0, :1].repeat(H, 1)), jnp.full((3, H), 0.3))
        weights = jnp.asarray(np.random.default_rng(4).normal(size=(3, T, H)))

        def objective(lowering: str, single: bool) -> Any:
            layer = RNN(cell, reverse=reverse, return_sequences=return_sequences,
                        lowering=lowering)  # type: ignore[arg-type]

            def f(p: Any, v: Any, c: Any) -> Any:
                if single:
                    y, _ = layer.apply(p, {}, v[0])
                    return jnp.sum(y * (weights[0] if return_sequences else weights[0, 0]))
                _, hs = scan_cell(cell, p, v, c, reverse=reverse,
                                  lowering=lowering)  # type: ignore[arg-type]
                y, _ = layer.apply(p, {}, v)
                return jnp.sum(hs * weights) + jnp.sum(y * (weights if return_sequences
                                                            else weights[:, 0]))

            return jax.value_and_grad(f, argnums=(0, 1, 2))(params, x, carry)

        for single in (False, True):
            got, want = objective("bptt", single), objective("per_step", single)
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_precomputed_lowering_matches_numpy_loop(kind: str) -> None:
    with jax.enable_x64(True):
        make, ref = (LSTM, np_lstm) if kind == "lstm" else (GRU, np_gru)
        params, x = random_params(make(H)), sequences()
        expected, _ = ref(params, x[:, ::-1])
        y, _ = make(H, reverse=True, lowering="precomputed").apply(params, {}, jnp.asarray(x))
        np.testing.assert_allclose(y, expected[:, ::-1], rtol=1e-12, atol=1e-12)


# --- training, summary ----------------------------------------------------------------------


def test_lstm_network_trains_with_fit() -> None:
    """Three classes: which feature has the largest mean over time."""
    rng = np.random.default_rng(0)
    y = np.arange(24) % 3
    x = rng.normal(0, 1, (24, T, F)) + 1.5 * np.eye(F)[y][:, None, :]
    net = fn.serial(LSTM(8, return_sequences=False), fn.Dense(3), fn.Softmax())
    params, state = net.init(KEY, (T, F))
    result = fn.fit(net, params, state, adam(0.05), categorical_crossentropy,
                    x.astype(np.float32), y, key=KEY, epochs=8, batch_size=8, progress=False)
    loss = result.history.loss
    assert np.all(np.isfinite(loss)) and loss[-1] < 0.7 * loss[0], loss


def test_summary_rows() -> None:
    net = fn.serial(LSTM(8), Bidirectional(GRU(4, return_sequences=False)), fn.Dense(3))
    table = fn.summary_table(net, (T, F))
    assert "0_lstm" in table and "(None, 4, 8)" in table
    rows = fn.summary_rows(net, (T, F))[0]
    assert [(r.path, r.kind, r.n_params) for r in rows] == [
        ("0_lstm", "LSTM", 4 * 8 * (F + 8 + 1)),
        ("1_bidirectional/forward", "GRU", 3 * 4 * (8 + 4 + 2)),
        ("1_bidirectional/backward", "GRU", 3 * 4 * (8 + 4 + 2)),
        ("2_dense", "Dense", 8 * 3 + 3),
    ]


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda: LSTM(0), ValueError, "LSTMCell: features must be a positive int, got 0"),
    (lambda: GRU(2.5), ValueError, "GRUCell: features must be a positive int"),
    (lambda: LSTM(True), ValueError, "features must be a positive int"),
    (lambda: LSTM(4, dtype=jnp.int32), ValueError, "LSTMCell: dtype must be a floating"),
    (lambda: LSTM(4, w_l2=-1.0), ValueError, "LSTMCell: w_l2 must be a finite number >= 0"),
    (lambda: LSTM(4, forget_bias=float("nan")), ValueError, "forget_bias must be a finite"),
    (lambda: LSTM(4, w_init="glorot"), TypeError, "LSTMCell: w_init must be an initializer"),
    (lambda: LSTM(4, return_sequences=1), TypeError, "LSTM: return_sequences must be True"),
    (lambda: GRU(4, unroll=0), ValueError, "GRU: unroll must be a positive int"),
    (lambda: LSTM(4, lowering="fused"), ValueError, "LSTM: lowering must be one of"),
    (lambda: GRU(4, lowering="bptt"), ValueError, "GRU: lowering 'bptt' .* is for LSTMCell"),
    (lambda: RNN(fn.Dense(3)), TypeError, "RNN: expected a Cell"),
    (lambda: Bidirectional(fn.Dense(3)), TypeError, "forward_rnn must be an RNN layer .* Dense"),
    (lambda: Bidirectional(LSTM(4), merge="max"), ValueError, "merge must be one of"),
    (lambda: Bidirectional(LSTM(4, reverse=True)), ValueError, "forward_rnn has reverse=True"),
    (lambda: Bidirectional(LSTM(4), LSTM(4, return_sequences=False)), ValueError,
     "return_sequences=True but backward_rnn has False"),
])
def test_bad_arguments(make, error: type, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        make()


def test_bad_shapes_inputs_and_params() -> None:
    layer = LSTM(H)
    with pytest.raises(LayerError, match=r"LSTM: expected examples of shape \(T, F\).*"
                                         r"needs a feature axis"):
        layer.init(KEY, (T,))
    with pytest.raises(LayerError, match=r"LSTM: expected examples of shape \(T, F\)"):
        layer.init(KEY, (2, T, F))
    params, _ = layer.init(KEY, (T, F))
    with pytest.raises(LayerError, match=r"LSTM: expected a sequence \(T, F\) or a batch .*"
                                         r"got shape \(2, 2, 4, 3\)"):
        layer.apply(params, {}, jnp.ones((2, 2, T, F)))
    with pytest.raises(LayerError, match=r"LSTM: expected a sequence .* got shape \(3,\)"):
        layer.apply(params, {}, jnp.ones((F,)))
    with pytest.raises(LayerError, match=r"LSTM: expected 3 features on the last axis, got "
                                         r"shape \(2, 4, 7\)"):
        layer.apply(params, {}, jnp.ones((2, T, 7)))
    with pytest.raises(LayerError, match="LSTM: expected at least one time step"):
        layer.apply(params, {}, jnp.ones((2, 0, F)))
    with pytest.raises(LayerTypeError, match="LSTM: expected floating-point input, got int32"):
        layer.apply(params, {}, jnp.ones((2, T, F), jnp.int32))
    with pytest.raises(LayerError, match=r"LSTM: expected params with keys \['b', 'w_h', "
                                         r"'w_x'\], got \['w'\]"):
        layer.apply({"w": params["w_x"]}, {}, jnp.ones((T, F)))
    with pytest.raises(LayerError, match=r"LSTM: params\['w_h'\] must have shape \(5, 20\)"):
        layer.apply({**params, "w_h": params["w_h"][:2]}, {}, jnp.ones((T, F)))
    net = fn.serial(fn.Dense(F), Bidirectional(GRU(2)))
    net_params = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),
                              fn.init_shapes(net, (T, F))[0])
    net_params["1_bidirectional"]["forward"]["w_x"] = jnp.ones((4, 6))
    with pytest.raises(LayerError, match=r"serial\[1\]/Bidirectional\[forward\]/GRU: expected "
                                         r"4 features on the last axis, got shape \(4, 3\)"):
        net.apply(net_params, {}, jnp.ones((T, F)))
    with pytest.raises(LayerError, match=r"Bidirectional: expected params with keys"):
        Bidirectional(GRU(2)).apply({"forward": {}}, {}, jnp.ones((T, F)))
    cell = GRUCell(2)
    with pytest.raises(LayerError, match=r"GRUCell: expected an initial carry of shapes "
                                         r"\(2, 2\)"):
        scan_cell(cell, net_params["1_bidirectional"]["backward"], jnp.ones((2, T, F)),
                  jnp.zeros((3, 2)))
