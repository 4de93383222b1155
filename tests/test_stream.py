"""fit_stream: training from a stream of batches equals fit from arrays, resumes exactly,
and refuses bad streams naming the batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grain
import jax
import numpy as np
import pytest

import funcnn as fn
from funcnn.data import ArraySource
from funcnn.losses import categorical_crossentropy as cce
from funcnn.metrics import categorical_accuracy as acc
from funcnn.optim import adam, dynamic_loss_scale

N, FEATURES, BATCH = 203, 4, 32  # 7 batches an epoch, the last of 11 rows
RNG = np.random.default_rng(0)
Y = (np.arange(N) % 3).astype(np.int32)
X = (RNG.normal(size=(3, FEATURES))[Y] * 2 + RNG.normal(size=(N, FEATURES))).astype(np.float32)
KEY = jax.random.key(1)
NET = fn.serial(fn.Dense(16), fn.ReLU(), fn.Dropout(0.1), fn.Dense(3), fn.Softmax())
PARAMS, STATE = NET.init(jax.random.key(0), (FEATURES,))
OPT = adam(0.01, decay=1e-3)
# unroll=1: the same training as the default (unrolled 4 times for steps this small) in
# half the compilation time
ARGS: dict[str, Any] = dict(key=KEY, metric=acc, progress=False,
                            validation_data=(X[:50], Y[:50]), unroll=1)


def largest(a: Any, b: Any) -> float:
    return max(float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
               for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def same_history(a: fn.History, b: fn.History, tolerance: float = 1e-6) -> None:
    first, second = a.to_dict(), b.to_dict()
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_allclose(first[name], second[name], rtol=tolerance, atol=0,
                                   err_msg=name)


@pytest.fixture(scope="module")
def in_memory() -> fn.FitResult:
    return fn.fit(NET, PARAMS, STATE, OPT, cce, X, Y, batch_size=BATCH, epochs=3, **ARGS)


# ------------------------------------------------------------------ one semantics

@pytest.mark.parametrize("steps_per_call", [None, 3])
def test_array_source_trains_exactly_as_fit(in_memory: fn.FitResult,
                                            steps_per_call: int | None) -> None:
    """The same orders, dropout keys and padded last batch: params bit for bit. The
    epoch's loss sums may differ in the last float32 bit: XLA fuses the per-batch loss
    sum into the step differently in the two programs (gather in fit, stacked batch here)."""
    streamed = fn.fit_stream(NET, PARAMS, STATE, OPT, cce, ArraySource(X, Y, BATCH, key=KEY),
                             epochs=3, steps_per_call=steps_per_call, **ARGS)
    assert largest(in_memory.params, streamed.params) == 0.0
    assert largest(in_memory.opt_state, streamed.opt_state) == 0.0
    same_history(in_memory.history, streamed.history)
    assert streamed.position == fn.StreamPosition(3)
    assert streamed.input_times.produce_s > 0


def test_every_kind_of_stream_gives_the_same_training(in_memory: fn.FitResult) -> None:
    source = ArraySource(X, Y, BATCH, key=KEY)

    def one_shot() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for epoch in range(3):
            yield from source.batches(epoch)

    runs = {
        "factory": fn.fit_stream(NET, PARAMS, STATE, OPT, cce, source.batches, epochs=3,
                                 **ARGS),
        "generator": fn.fit_stream(NET, PARAMS, STATE, OPT, cce, one_shot(), epochs=3,
                                   steps_per_epoch=7, **ARGS),
    }
    for kind, run in runs.items():
        assert largest(in_memory.params, run.params) == 0.0, kind
    # a list is re-iterated each epoch (here: epoch 0's batches every epoch)
    listed = fn.fit_stream(NET, PARAMS, STATE, OPT, cce, list(source.batches(0)), epochs=2,
                           **ARGS)
    assert listed.history.epoch == [0, 1] and listed.history.loss[1] < listed.history.loss[0]
    with pytest.raises(ValueError, match=r"one-shot stream .* pass steps_per_epoch"):
        fn.fit_stream(NET, PARAMS, STATE, OPT, cce, one_shot(), epochs=1, **ARGS)


def test_network_with_state_runs_the_ragged_batch_as_its_own_step() -> None:
    """BatchNorm: the last batch of 11 rows trains as its own smaller step, as in fit. The
    running statistics agree to float32 rounding (XLA fuses their update differently in
    the two programs), the params bit for bit."""
    bn = fn.serial(fn.Dense(8, use_bias=False), fn.BatchNorm(0.9), fn.ReLU(), fn.Dense(3),
                   fn.Softmax())
    params, state = bn.init(jax.random.key(0), (FEATURES,))
    args = {**ARGS, "epochs": 2, "validation_data": None}
    alone = fn.fit(bn, params, state, OPT, cce, X, Y, batch_size=BATCH, **args)
    streamed = fn.fit_stream(bn, params, state, OPT, cce, ArraySource(X, Y, BATCH, key=KEY),
                             **args)
    assert largest(alone.params, streamed.params) == 0.0
    assert largest(alone.state, streamed.state) <= 1e-7
    same_history(alone.history, streamed.history)


def test_array_source_orders_and_process_parts() -> None:
    source = ArraySource(X, Y, BATCH, key=KEY)
    order = fn.data.epoch_orders(fn.data.key_seed(KEY), np.array([2]), N)[0]
    np.testing.assert_array_equal(source.order(2), order)
    batches = list(source.batches(2))
    assert source.batches_per_epoch == len(batches) == 7
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), Y[order])
    assert [len(b[1]) for b in source.batches(2, start=5)] == [32, 11]
    # two processes: each reads its half of every global batch; together they are one
    halves = [list(ArraySource(X, Y, BATCH, key=KEY, process_index=p, process_count=2)
                   .batches(2)) for p in range(2)]
    for whole, first, second in zip(batches, *halves, strict=True):
        np.testing.assert_array_equal(np.concatenate([first[0], second[0]]), whole[0])
    assert [len(b[1]) for b in halves[1][-2:]] == [16, 0]  # the last batch's 11 rows: p0
    in_order = [b[1] for b in ArraySource(X, Y, 50, shuffle=False).batches(0)]
    np.testing.assert_array_equal(np.concatenate(in_order), Y)


@pytest.mark.parametrize(("args", "message"), [
    ((X, Y[:10], 8), "same number of samples"),
    ((X, Y, 0), r"batch_size must be an int in \[1, 203\]"),
    ((X, Y, 8), "shuffle=True needs the key"),
    ((X, Y, 9), "must be a multiple of the 2 processes"),
    ((3.0, Y, 8), "x must be an array"),
])
def test_array_source_refuses_bad_arguments(args: tuple[Any, ...], message: str) -> None:
    kwargs: dict[str, Any] = {"process_count": 2, "process_index": 0}
    if args[2] == 9:
        kwargs["key"] = KEY
    with pytest.raises((ValueError, TypeError), match=message):
        ArraySource(*args, **kwargs)


def test_memmap_source_and_npy_directory(tmp_path: Path, in_memory: fn.FitResult) -> None:
    np.save(tmp_path / "x_train.npy", X)
    np.save(tmp_path / "y_train.npy", Y)
    arrays = fn.data.load_npy_directory(tmp_path)
    assert sorted(arrays) == ["x_train", "y_train"]
    assert isinstance(arrays["x_train"], np.memmap)
    streamed = fn.fit_stream(NET, PARAMS, STATE, OPT, cce,
                             ArraySource(arrays["x_train"], arrays["y_train"], BATCH, key=KEY),
                             epochs=3, **ARGS)
    assert largest(in_memory.params, streamed.params) == 0.0
    with pytest.raises(FileNotFoundError, match=r"has no y_train\.npy"):
        (tmp_path / "y_train.npy").unlink()
        fn.data.load_npy_directory(tmp_path)


# ------------------------------------------------------------------------ resuming

def test_stopped_mid_epoch_and_resumed_equals_uninterrupted(tmp_path: Path,
                                                            in_memory: fn.FitResult) -> None:
    source = ArraySource(X, Y, BATCH, key=KEY)
    first = fn.fit_stream(NET, PARAMS, STATE, OPT, cce, source, epochs=3, max_steps=10,
                          **ARGS)
    assert first.history.epoch == [0]
    assert (first.position.epoch, first.position.step, first.position.rows) == (1, 3, 96)
    # the position goes into a checkpoint's metadata with the model
    path = tmp_path / "stopped.safetensors"
    fn.save_checkpoint(path, {"params": first.params, "opt_state": first.opt_state},
                       metadata={"position": first.position.to_json()})
    tree, metadata = fn.load_checkpoint(path, {"params": PARAMS,
                                               "opt_state": OPT.init(PARAMS)})
    position = fn.StreamPosition.from_json(metadata["position"])
    assert position == first.position
    rest = fn.fit_stream(NET, tree["params"], STATE, OPT, cce, source, epochs=2,
                         resume=position, opt_state=tree["opt_state"], **ARGS)
    assert largest(in_memory.params, rest.params) == 0.0
    assert rest.history.epoch == [1, 2]
    joined = fn.History()
    for history in (first.history, rest.history):
        for i, epoch in enumerate(history.epoch):
            joined.append(epoch, {k: v[i] for k, v in history.to_dict().items()
                                  if k != "epoch" and v})
    same_history(in_memory.history, joined)


class Records:
    """A Grain data source over (X, Y); Grain checks a restored state by repr."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return X[index], Y[index]

    def __repr__(self) -> str:
        return f"Records({N})"


def grain_loader() -> grain.DataLoader:
    sampler = grain.samplers.IndexSampler(N, shuffle=True, seed=3, num_epochs=None,
                                          shard_options=grain.sharding.NoSharding())
    return grain.DataLoader(data_source=Records(), sampler=sampler, worker_count=0,
                            operations=[grain.transforms.Batch(BATCH, drop_remainder=True)])


def test_grain_loader_trains_and_resumes_from_its_saved_state() -> None:
    args = {**ARGS, "steps_per_epoch": 6}
    whole = fn.fit_stream(NET, PARAMS, STATE, OPT, cce, grain_loader(), epochs=3, **args)
    assert whole.history.accuracy[-1] > 0.8  # three well separated classes
    first = fn.fit_stream(NET, PARAMS, STATE, OPT, cce, grain_loader(), epochs=3,
                          max_steps=8, **args)
    assert isinstance(first.position.source_state, bytes)  # Grain's own JSON state
    position = fn.StreamPosition.from_json(json.loads(json.dumps(first.position.to_json())))
    assert json.loads(position.source_state)["last_seen_indices"] == {"0": 8 * BATCH - 1}
    rest = fn.fit_stream(NET, first.params, first.state, OPT, cce, grain_loader(), epochs=2,
                         resume=position, opt_state=first.opt_state, **args)
    assert largest(whole.params, rest.params) == 0.0
    assert first.history.loss + rest.history.loss == whole.history.loss


def test_loss_scaling_figures_survive_a_resume() -> None:
    scaled = dynamic_loss_scale(OPT, 2.0 ** 127, period=4)  # overflows first: skipped steps
    source = ArraySource(X, Y, BATCH, key=KEY)
    whole = fn.fit_stream(NET, PARAMS, STATE, scaled, cce, source, epochs=2, **ARGS)
    first = fn.fit_stream(NET, PARAMS, STATE, scaled, cce, source, epochs=2, max_steps=9,
                          **ARGS)
    rest = fn.fit_stream(NET, first.params, first.state, scaled, cce, source, epochs=1,
                         resume=first.position, opt_state=first.opt_state, **ARGS)
    assert first.position.skipped_before == whole.history.skipped_steps[0] > 0
    assert whole.history.skipped_steps == first.history.skipped_steps + \
        rest.history.skipped_steps
    assert whole.history.loss_scale == first.history.loss_scale + rest.history.loss_scale


# -------------------------------------------------------------------- bad streams

def batch(rows: slice, features: int = FEATURES) -> tuple[np.ndarray, np.ndarray]:
    return X[rows, :features], Y[rows]


@pytest.mark.parametrize(("stream", "message"), [
    ([batch(slice(0, 32)), batch(slice(32, 64), 3)],
     r"batch 1 of epoch 0 has x examples \(3,\) \(float32\), y examples \(\) \(int32\), but "
     r"the first batch had x examples \(4,\)"),
    ([batch(slice(0, 32)), (X[32:64], Y[32:63])], "batch 1 of epoch 0 has x of 32 rows but y "
     "of 31 rows"),
    ([], r"the stream ended before its first batch \(epoch 0\)"),
    ([batch(slice(0, 16)), batch(slice(16, 48))], "batch 1 of epoch 0 has 32 rows, more than "
     "the first batch's 16"),
    ([batch(slice(0, 32)), X[32:64]], r"batch 1 of epoch 0 is not a pair \(x, y\)"),
    ([(X[:32].astype(np.int32), Y[:32])], "x must be floating-point"),
])
def test_bad_streams_are_refused_naming_the_batch(stream: list[Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        fn.fit_stream(NET, PARAMS, STATE, OPT, cce, stream, epochs=1, **ARGS)


@pytest.mark.parametrize(("bad", "message"), [
    ("nan", "batch 2 of epoch 0: row 5 of x is not finite"),
    ("label", r"batch 2 of epoch 0: label y\[7\] is outside 0..2"),
])
def test_bad_values_are_found_when_the_batch_arrives(bad: str, message: str) -> None:
    """Checked on the device inside the compiled call: the bad batch does not train, and
    the error holds the model trained on the batches before it."""
    batches = [batch(slice(32 * i, 32 * i + 32)) for i in range(4)]
    x2, y2 = batches[2][0].copy(), batches[2][1].copy()
    if bad == "nan":
        x2[5, 1] = np.nan
    else:
        y2[7] = 3
    batches[2] = (x2, y2)
    with pytest.raises(fn.BadBatchError, match=message) as caught:
        fn.fit_stream(NET, PARAMS, STATE, OPT, cce, batches, epochs=1, **ARGS)
    before = fn.fit_stream(NET, PARAMS, STATE, OPT, cce, batches[:2], epochs=1,
                           steps_per_call=4, **ARGS)  # the program of the first call
    assert largest(caught.value.result.params, before.params) == 0.0


def test_argument_errors() -> None:
    source = ArraySource(X, Y, BATCH, key=KEY)
    for name in ("steps_per_epoch", "max_steps", "steps_per_call"):
        with pytest.raises(ValueError, match=f"fit_stream: {name} must be a positive int"):
            fn.fit_stream(NET, PARAMS, STATE, OPT, cce, source, epochs=1, **{name: 0}, **ARGS)
    with pytest.raises(TypeError, match="data must be an iterable of"):
        fn.fit_stream(NET, PARAMS, STATE, OPT, cce, 3, epochs=1, **ARGS)
    with pytest.raises(TypeError, match="resume must be a StreamPosition"):
        fn.fit_stream(NET, PARAMS, STATE, OPT, cce, source, epochs=1, resume=(1, 2), **ARGS)


def test_one_device_mesh_and_a_diverging_run(in_memory: fn.FitResult) -> None:
    on_mesh = fn.fit_stream(NET, PARAMS, STATE, OPT, cce, ArraySource(X, Y, BATCH, key=KEY),
                            epochs=3, mesh=fn.parallel.data_mesh(), **ARGS)
    assert largest(in_memory.params, on_mesh.params) <= 1e-6
    huge = [batch(slice(0, 32)), (X[32:64] * 1e30, Y[32:64])]  # finite input, loss overflows
    with pytest.raises(fn.NonFiniteLossError, match="non-finite in epoch 1") as caught:
        fn.fit_stream(NET, PARAMS, STATE, adam(0.01), cce, huge, epochs=2, **ARGS)
    one = fn.fit_stream(NET, PARAMS, STATE, adam(0.01), cce, huge, epochs=1, **ARGS)
    assert largest(caught.value.result.params, one.params) == 0.0  # epoch 0's end


@pytest.mark.parametrize("dtype", ["float64", "mixed_bfloat16"])
def test_every_dtype_path_streams_as_fit(dtype: str) -> None:
    """float64 params (x64 on; float32 batches are cast to float64 as they are read) and a
    bfloat16 compute policy over float32 masters train exactly as fit."""
    with jax.enable_x64(dtype == "float64"):
        net = fn.mixed_precision(NET, dtype) if dtype.startswith("mixed") else NET
        params = jax.tree.map(lambda a: a.astype(dtype), PARAMS) if dtype == "float64" \
            else PARAMS
        args = {**ARGS, "epochs": 1, "validation_data": None}
        alone = fn.fit(net, params, STATE, OPT, cce, X, Y, batch_size=BATCH, **args)
        streamed = fn.fit_stream(net, params, STATE, OPT, cce,
                                 ArraySource(X, Y, BATCH, key=KEY), **args)
        assert {leaf.dtype for leaf in jax.tree.leaves(streamed.params)} == \
            {np.dtype(np.float64 if dtype == "float64" else np.float32)}
        assert largest(alone.params, streamed.params) == 0.0
        same_history(alone.history, streamed.history)


def test_pairs_of_x_and_mask_stream() -> None:
    """x as the pair (x, mask): each array of the pair is read, stacked and padded."""
    x3 = np.repeat(X[:, None, :2], 3, axis=1)
    mask = np.ones(x3.shape[:2], bool)
    net = fn.serial(fn.keep_mask(fn.Dense(8)), fn.drop_mask(), fn.Flatten(), fn.Dense(3),
                    fn.Softmax())
    params, state = net.init(jax.random.key(0), ((3, 2), (3,)))
    args = {**ARGS, "epochs": 1, "validation_data": None}
    alone = fn.fit(net, params, state, OPT, cce, (x3, mask), Y, batch_size=BATCH, **args)
    streamed = fn.fit_stream(net, params, state, OPT, cce,
                             ArraySource((x3, mask), Y, BATCH, key=KEY), **args)
    assert largest(alone.params, streamed.params) == 0.0
