"""FSDP-style sharding (`fit(..., shard_params="data")`, `funcnn.sharding`): the per-leaf
rule here, in-process; training, placement, the compiled collectives and checkpoints
across device counts on 8 CPU devices in one subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec
from test_parallel import ROOT, cpu_env

import funcnn as fn
from funcnn import parallel, sharding
from funcnn.losses import categorical_crossentropy
from funcnn.optim import adam

P = PartitionSpec


# ------------------------------------------------------------------- the rule, in-process

def test_param_spec_splits_the_largest_divisible_axis() -> None:
    assert param_spec_of((16, 64), 8) == P(None, "data")     # 64 > 16, both divisible
    assert param_spec_of((1024, 3), 8) == P("data", None)    # 3 does not divide
    assert param_spec_of((64, 1024), 8) == P(None, "data")
    assert param_spec_of((1024,), 8) == P("data")
    assert param_spec_of((2, 3, 5, 40), 8) == P(None, None, None, "data")
    # ties: the first of the equally large divisible axes
    assert param_spec_of((32, 32), 8) == P("data", None)
    assert param_spec_of((8, 48, 48), 4) == P(None, "data", None)
    # the largest axis does not divide: the largest one that does
    assert param_spec_of((12, 102), 4) == P("data", None)
    assert param_spec_of((102, 12), 4) == P(None, "data")


def test_param_spec_keeps_small_scalar_and_indivisible_leaves_replicated() -> None:
    assert param_spec_of((64,), 8) == P()                    # 64 < MIN_SHARDED_SIZE
    assert param_spec_of((1023,), 1) == P()                  # one element short
    assert param_spec_of((1024,), 1) == P("data")            # at the minimum
    assert param_spec_of((), 8) == P()                       # Adam's count, a hyper-parameter
    assert param_spec_of((3, 341), 8) == P()                 # 1023 elements
    assert param_spec_of((3, 345), 8) == P()                 # 1035, no axis divisible by 8
    assert param_spec_of((0, 2048), 8) == P()                # empty
    # the threshold is an argument
    assert sharding.param_spec((64,), 8, "data", min_size=64) == P("data")
    assert sharding.param_spec((16, 64), 8, "data", min_size=2048) == P()
    assert sharding.MIN_SHARDED_SIZE == 1024
    with pytest.raises(ValueError, match="param_spec: axis_size must be an int >= 1, got 0"):
        sharding.param_spec((8,), 0, "data")


def param_spec_of(shape: tuple[int, ...], ways: int) -> PartitionSpec:
    return sharding.param_spec(shape, ways, "data")


def test_param_shardings_and_templates_follow_the_rule_on_a_mesh() -> None:
    mesh = parallel.data_mesh()
    tree = {"w": np.zeros((16, 64), np.float32), "b": np.zeros(64, np.float32), "n": 3}
    specs = jax.tree.map(lambda s: s.spec, parallel.param_shardings(tree, mesh, "data"))
    assert specs == {"w": P(None, "data"), "b": P(), "n": P()}
    template = parallel.sharded_template(tree, mesh, "data")
    assert template["w"].shape == (16, 64) and template["w"].dtype == np.float32
    assert template["w"].sharding.spec == P(None, "data")
    assert template["n"].shape == () and template["n"].sharding.spec == P()
    placed = parallel.shard_tree(tree, mesh, "data")
    np.testing.assert_array_equal(placed["w"], tree["w"])
    again = parallel.shard_tree(placed, mesh, "data")   # device arrays: fresh buffers too
    assert again["w"].unsafe_buffer_pointer() != placed["w"].unsafe_buffer_pointer()
    keys = parallel.shard_tree({"key": jax.random.key(3)}, mesh, "data")
    np.testing.assert_array_equal(jax.random.normal(keys["key"], (3,)),
                                  jax.random.normal(jax.random.key(3), (3,)))
    # abstract trees too: a checkpoint template from shapes alone
    params, _ = fn.init_shapes(fn.serial(fn.Dense(64)), (16,))
    abstract = parallel.sharded_template(
        {"params": params, "opt_state": jax.eval_shape(adam().init, params)}, mesh, "data")
    assert abstract["params"]["0_dense"]["w"].sharding.spec == P(None, "data")
    assert abstract["opt_state"].mu["0_dense"]["w"].sharding.spec == P(None, "data")
    assert abstract["opt_state"].count.sharding.spec == P()
    with pytest.raises(ValueError, match=r"param_shardings: shard_params='model' is not an "
                                         r"axis of the mesh \(its axes are \('data',\)\)"):
        parallel.param_shardings(tree, mesh, "model")


def test_fit_ensemble_refuses_shard_params() -> None:
    from funcnn.training.ensemble import fit_ensemble
    with pytest.raises(ValueError, match="fit_ensemble: shard_params='data' is not supported"):
        fit_ensemble(fn.serial(fn.Dense(1)), {}, {}, adam(), categorical_crossentropy,
                     np.ones((2, 1), np.float32), np.zeros(2, np.int32),
                     keys=jax.random.split(jax.random.key(0), 2), epochs=1,
                     mesh=parallel.data_mesh(), shard_params="data")


def test_shard_params_needs_a_mesh_with_that_axis() -> None:
    net = fn.serial(fn.Dense(3), fn.Softmax())
    params, state = net.init(jax.random.key(0), (2,))
    x, y = np.ones((4, 2), np.float32), np.zeros(4, np.int32)
    args = {"key": jax.random.key(1), "epochs": 1, "progress": False}
    with pytest.raises(ValueError, match=r"fit: shard_params='data' needs a mesh to split "
                                         r"params over, e\.g\. mesh=funcnn\.parallel"):
        fn.fit(net, params, state, adam(), categorical_crossentropy, x, y, shard_params="data",
               **args)
    two_axes = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    with pytest.raises(ValueError, match=r"fit: shard_params='fsdp' is not an axis of the mesh "
                                         r"\(its axes are \('data', 'model'\)\)"):
        fn.fit(net, params, state, adam(), categorical_crossentropy, x, y, mesh=two_axes,
               shard_params="fsdp", **args)
    with pytest.raises(TypeError, match="fit: shard_params must be a mesh axis name"):
        fn.fit(net, params, state, adam(), categorical_crossentropy, x, y, mesh=two_axes,
               shard_params=0, **args)  # type: ignore[arg-type]


# ------------------------------------------------------------ 8 devices, in a subprocess

EIGHT_DEVICES = textwrap.dedent("""
    import json, re, tempfile, pathlib
    import jax, numpy as np
    import funcnn as fn
    from funcnn import parallel
    from funcnn.losses import categorical_crossentropy as cce
    from funcnn.metrics import categorical_accuracy as acc
    from funcnn.optim import adam
    from funcnn.training.epochs import epoch_inputs, key_seed
    from funcnn.training.fit import owned_copy, prepare_fit
    from funcnn.training.loop import run_epochs_jit
    from funcnn.tree import path_to_str

    def largest(a, b):
        return max(jax.tree.leaves(jax.tree.map(
            lambda u, v: float(np.max(np.abs(np.asarray(u) - np.asarray(v)))), a, b)))

    def by_path(tree, f):
        return {path_to_str(k): f(a) for k, a in jax.tree_util.tree_leaves_with_path(tree)}

    def fraction(a):  # the largest share of a leaf that one device holds
        return max(s.data.size for s in a.addressable_shards) / a.size

    def spec(a):  # the PartitionSpec as strings, without trailing Nones
        names = [str(axis) for axis in a.sharding.spec]
        while names and names[-1] == "None":
            names.pop()
        return names

    def device0_bytes(tree):
        return sum(s.data.nbytes for a in jax.tree.leaves(tree) for s in a.addressable_shards
                   if s.device == jax.devices()[0])

    rng = np.random.default_rng(0)
    y = (np.arange(80) % 3).astype(np.int32)
    x = (rng.normal(size=(3, 64))[y] + rng.normal(size=(80, 64))).astype(np.float32)
    x_val, y_val = x[64:], y[64:]
    x, y = x[:64], y[:64]
    # w: 64x16 and 1024x3 split on their rows, 16x1024 on its columns, BatchNorm's params
    # and running statistics (1024,) split; the biases of 16 and 3 replicated. No bias
    # before BatchNorm: its gradient is zero by structure, and Adam turns that zero's
    # rounding into whole steps.
    net = fn.serial(fn.Dense(16), fn.ReLU(), fn.Dense(1024, use_bias=False),
                    fn.BatchNorm(0.9), fn.ReLU(), fn.Dense(3), fn.Softmax())
    params, state = net.init(jax.random.key(0), (64,))
    opt = adam(0.002)  # at 0.01 Adam grows the sums' rounding in 64x1024's w to 1.1e-5
    args = dict(key=jax.random.key(1), epochs=3, batch_size=16, metric=acc, progress=False,
                validation_data=(x_val, y_val), unroll=1)
    mesh = parallel.data_mesh()
    out = {"devices": jax.device_count()}
    whole = fn.fit(net, params, state, opt, cce, x, y, mesh=mesh, **args)
    split = fn.fit(net, params, state, opt, cce, x, y, mesh=mesh, shard_params="data", **args)
    out["params"] = largest(whole.params, split.params)
    out["state"] = largest(whole.state, split.state)
    out["opt_state"] = largest(whole.opt_state, split.opt_state)
    out["history"] = largest(whole.history.to_dict(), split.history.to_dict())
    out["history_keys"] = sorted(split.history.to_dict())
    model = {"params": split.params, "state": split.state, "opt_state": split.opt_state}
    out["fraction"] = by_path(model, fraction)
    out["spec"] = by_path(model, spec)
    gathered = parallel.unshard(split.params)
    out["unshard"] = [largest(gathered, split.params),
                      all(a.sharding.is_fully_replicated for a in jax.tree.leaves(gathered))]
    out["bytes_device0"] = [device0_bytes((r.params, r.state, r.opt_state))
                            for r in (whole, split)]
    # the same run streamed batch by batch (fit_stream over ArraySource), sharded too
    streamed = fn.fit_stream(net, params, state, opt, cce,
                             fn.data.ArraySource(x, y, 16, key=args["key"]), mesh=mesh,
                             shard_params="data", **{k: v for k, v in args.items()
                                                     if k != "batch_size"})
    out["stream"] = max(largest(split.params, streamed.params),
                        largest(split.history.to_dict(), streamed.history.to_dict()))
    out["stream_fraction"] = fraction(streamed.opt_state.mu["2_dense"]["w"])

    # the program `split` ran: the collectives XLA inserted
    prep = prepare_fit("fit", net, cce, opt, acc, x, y, epochs=3, initial_epoch=0,
                       batch_size=16, validation_data=(x_val, y_val),
                       validation_batch_size=None, shuffle=True, unroll=1, mesh=mesh,
                       template=(params, state), shard_params="data")
    cfg = prep.cfg._replace(rollback=False)  # as fit runs it
    placed = [owned_copy(cfg, t) for t in (params, state, opt.init(params))]
    hlo = run_epochs_jit.lower(
        cfg, *placed, prep.x, prep.y, prep.x_val, prep.y_val,
        parallel.replicate(args["key"], mesh),
        *epoch_inputs(cfg, np.arange(3, dtype=np.int32), np.ones(3, bool),
                      key_seed(args["key"]), 64)
    ).compile().as_text()
    out["collectives"] = {op: len(re.findall(r"= [^=]*? " + op + r"(-start)?\\(", hlo))
                          for op in ("all-gather", "reduce-scatter", "all-reduce",
                                     "all-to-all", "collective-permute")}
    out["gathered_shapes"] = sorted(set(re.findall(
        r"= f32\\[([\\d,]+)\\]\\{[^}]*\\} all-gather(?:-start)?\\(", hlo)))
    out["arrays_in_program"] = {shape: hlo.count(f"f32[{shape}]")
                                for shape in ("16,1024", "16,128", "1024,3", "128,3", "1024")}

    # a checkpoint of the 8-way result, restored on 1 device and on a 4-device mesh
    path = pathlib.Path(tempfile.mkdtemp()) / "fsdp.safetensors"
    fn.save_checkpoint(path, model)
    plain = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), model)
    one, _ = fn.load_checkpoint(path, plain)
    mesh4 = parallel.data_mesh(jax.devices()[:4])
    four, _ = fn.load_checkpoint(path, parallel.sharded_template(model, mesh4, "data"))
    out["restored_one"] = largest(model, one)
    out["restored_four"] = largest(model, four)
    out["one_devices"] = sorted({len(a.sharding.device_set) for a in jax.tree.leaves(one)})
    out["four_fraction"] = by_path(four, fraction)
    out["four_spec"] = by_path(four, spec)
    more = dict(args, epochs=1, validation_data=None)
    on_four = fn.fit(net, four["params"], four["state"], opt, cce, x, y, mesh=mesh4,
                     shard_params="data", opt_state=four["opt_state"], initial_epoch=3, **more)
    out["continued_loss"] = on_four.history.loss
    out["loss"] = split.history.loss
    out["continued_fraction"] = fraction(on_four.params["2_dense"]["w"])
    out["continued_devices"] = len(on_four.params["2_dense"]["w"].sharding.device_set)
    print(json.dumps(out))
""")


SPLIT = {  # leaf path -> the rule's PartitionSpec on the 8-way mesh, as strings
    "params/0_dense/w": ["data"], "params/0_dense/b": [], "params/2_dense/w": ["None", "data"],
    "params/3_batchnorm/bias": ["data"], "params/3_batchnorm/scale": ["data"],
    "params/5_dense/w": ["data"], "params/5_dense/b": [],
    "state/3_batchnorm/mean": ["data"], "state/3_batchnorm/var": ["data"],
}


def test_sharded_fit_on_eight_devices_equals_replicated_and_restores_on_four() -> None:
    done = subprocess.run([sys.executable, "-c", EIGHT_DEVICES], env=cpu_env(8), cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8
    # the same training as with replicated params, to the order of float sums
    for name in ("params", "state", "opt_state", "history", "stream"):
        assert out[name] <= 1e-5, (name, out[name])
    assert out["stream_fraction"] == 1 / 8
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(out["history_keys"])
    # placement: each device holds 1/8 of a split leaf, all of a small one; the moments
    # are split like their params, the scalars (count, hyper-parameters) replicated
    fraction, spec = out["fraction"], out["spec"]
    for path, expected in SPLIT.items():
        assert spec[path] == expected, (path, spec[path])
        assert fraction[path] == (0.125 if expected else 1.0), (path, fraction[path])
        if path.startswith("params/"):
            for moment in ("mu", "nu"):
                name = path.replace("params/", f"opt_state/{moment}/")
                assert spec[name] == expected and fraction[name] == fraction[path], name
    scalars = [p for p in spec if p.startswith(("opt_state/count", "opt_state/hyperparams"))]
    assert len(scalars) == 6 and all(spec[p] == [] and fraction[p] == 1.0 for p in scalars)
    assert out["unshard"] == [0.0, True]  # gathered whole on every device, values kept
    # bytes of params + moments (3 x 22,547 floats) + statistics (2,048) + 6 scalars on
    # device 0: replicated all of them; split 1/8 of the 22,528 and 2,048 in split leaves
    whole, split = out["bytes_device0"]
    assert whole == 4 * (3 * 22_547 + 2_048) + 4 * 6 == 278_780, whole
    assert split == 4 * (3 * (19 + 22_528 // 8) + 2_048 // 8) + 4 * 6 == 35_068, split
    # what XLA made of the annotations: all-gathers and all-reduces (no reduce-scatter on
    # XLA:CPU). It gathers the first layer's 64x16 weight whole for its product (FSDP's
    # gather; its gradient is all-reduced and sliced), but for the 16x1024 weight, split
    # by columns, it gathers the 16-row batch's 16x16 activations instead and multiplies
    # by the weight's slice: no device ever holds a whole 16x1024 or 1024x3 weight, their
    # gradient or moments, only 16x128 and 128x3 slices
    collectives = out["collectives"]
    assert collectives["all-gather"] > 0 and collectives["all-reduce"] > 0, collectives
    assert {"64,16", "16,16"} <= set(out["gathered_shapes"]), out["gathered_shapes"]
    arrays = out["arrays_in_program"]
    assert arrays["16,1024"] == arrays["1024,3"] == arrays["1024"] == 0, arrays
    assert arrays["16,128"] > 0 and arrays["128,3"] > 0, arrays
    # the checkpoint of the 8-way result restores exactly on 1 device and on 4 (4-way split)
    assert out["restored_one"] == 0.0 and out["restored_four"] == 0.0
    assert out["one_devices"] == [1]
    for path, expected in SPLIT.items():
        assert out["four_spec"][path] == expected
        assert out["four_fraction"][path] == (0.25 if expected else 1.0)
    # and training goes on from the 4-device restore: a fourth epoch's loss near the third's
    # (a fresh start would give about the first epoch's)
    (continued,) = out["continued_loss"]
    first, _, third = out["loss"]
    assert np.isfinite(continued) and continued < 2 * third < first / 10, out
    assert out["continued_fraction"] == 0.25 and out["continued_devices"] == 4
