"""The benchmark scripts run end to end in their tiny modes and print sane tables.

Only the implementations available in funcnn's own environment take part (funcnn, the
book's NumPy code, hand-written JAX); no timing is asserted, only that the figures exist,
are positive, and that every implementation reaches the same accuracy.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def run_script(*args: str, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=BENCH, capture_output=True, text=True,
                          timeout=timeout, check=False)


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """Cells of the markdown table rows whose first cell starts with `first_cell`."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith(first_cell):
            rows.append(cells)
    return rows


def number(cell: str) -> float:
    return float(cell.rstrip("%"))


def test_peers_tiny_prints_agreeing_table() -> None:
    proc = run_script("peers.py", "--tiny", "--workloads", "W1,W2", "--repeats", "1",
                      "--peers", "funcnn,numpy,jax-loop,jax-fused")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "all accuracies agree: yes" in out
    sections = re.split(r"^## ", out, flags=re.M)[1:]
    assert [s[:2] for s in sections] == ["W1", "W2"]
    for section in sections:
        header = table_rows(section, "implementation")[0]
        names = ["funcnn fit", "numpy (book)", "jax step loop", "jax fused scan"]
        rows = {r[0]: dict(zip(header, r, strict=True)) for r in table_rows(section, "")
                if r[0] in names}
        assert sorted(rows) == sorted(names), section
        accuracies = []
        for row in rows.values():
            assert number(row["ms/step"]) >= number(row["best ms/step"]) > 0
            assert number(row["cpu ms/step"]) > 0
            assert number(row["s/epoch"]) > 0
            assert number(row["first run s"]) > 0
            assert 0 < number(row["of matmul limit"]) < 10_000
            acc_key = next(k for k in row if k.endswith(" acc"))
            accuracies.append(number(row[acc_key]))
        assert rows["funcnn fit"]["x funcnn"] == "1"
        assert all(0.0 <= a <= 1.0 for a in accuracies)
        assert max(accuracies) - min(accuracies) <= 0.05, section
        limit = re.search(r"matmul limit: ([\d.]+) MFLOP/step .* at ([\d.]+) GFLOP/s", section)
        assert limit is not None and float(limit.group(1)) > 0 and float(limit.group(2)) > 0
    # W1 tiny: 50 full-batch Adam steps on 300 spiral points learn more than chance (1/3).
    w1 = {r[0]: r for r in table_rows(sections[0], "")}
    assert number(w1["funcnn fit"][8]) > 0.4


def test_peers_tiny_new_workloads_print_agreeing_tables_with_a_share_of_peak() -> None:
    """W5-W7 (CNN, transformer, LSTM) at tiny sizes, funcnn against the hand-written loop:
    each table has both rows, positive timings, a share of peak from XLA's FLOP count, and
    metrics that agree within the workload's tolerance."""
    proc = run_script("peers.py", "--tiny", "--workloads", "W5,W6,W7", "--repeats", "1",
                      "--peers", "funcnn,jax-fused", timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sections = re.split(r"^## ", proc.stdout, flags=re.M)[1:]
    assert [s[:2] for s in sections] == ["W5", "W6", "W7"]
    for section, metric in zip(sections, ("test acc", "val loss", "val loss"), strict=True):
        header = table_rows(section, "implementation")[0]
        rows = {r[0]: dict(zip(header, r, strict=True)) for r in table_rows(section, "")
                if r[0] in ("funcnn fit", "jax fused scan")}
        assert sorted(rows) == ["funcnn fit", "jax fused scan"], section
        for row in rows.values():
            assert number(row["ms/step"]) >= number(row["best ms/step"]) > 0
            assert 0 < number(row["of peak"]) < 100
            assert "(!)" not in row[metric]
        flops = re.search(r"plain formulation: ([\d.]+) MFLOP", section)
        assert flops is not None and float(flops.group(1)) > 0
        assert f"{metric} agree within" in section
    # untrained transformer and LSTM start near ln(96) = 4.56 nats; 4 steps lower it
    for section in sections[1:]:
        loss = number({r[0]: r for r in table_rows(section, "")}["funcnn fit"][7])
        assert 2.0 < loss < 4.6


def test_sweep_compile_compiles_once_with_structural_keys() -> None:
    proc = run_script("sweep_compile.py", "--rates", "2", "--samples", "256")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r[0]: r for r in table_rows(proc.stdout, "")}
    assert rows["identity (anonymous optimizers)"][1] == "2"  # one program per rate
    assert rows["structure (funcnn)"][1] == "1"  # one for the sweep
    assert "final losses identical under both keys: yes" in proc.stdout


def test_train_mlp_tiny_prints_table() -> None:
    proc = run_script("train_mlp.py", "--tiny", "--repeats", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = table_rows(proc.stdout, "W")
    assert [(r[0].split()[0], r[1]) for r in rows] == [
        (w, impl) for w in ("W2", "W1")
        for impl in ("funcnn fit", "jax step loop")]
    for r in rows:
        seconds, ms_step, ratio, first, acc = (number(c) for c in r[2:7])
        assert seconds > 0 and ms_step > 0 and first > 0 and math.isfinite(ratio)
        assert 0.0 <= acc <= 1.0
    for w in ("W2", "W1"):
        accs = [number(r[6]) for r in rows if r[0].startswith(w)]
        assert max(accs) - min(accs) <= 0.03


@pytest.mark.parametrize(("args", "message"), [
    (("--workloads", "W9"), "unknown workload or peer 'W9'"),
    (("--peers", "caffe"), "unknown workload or peer 'caffe'"),
    (("--repeats", "0"), "--repeats must be >= 1, got 0"),
    (("--tiny", "--quick"), "not allowed with argument"),
])
def test_peers_rejects_bad_arguments(args: tuple[str, ...], message: str) -> None:
    proc = run_script("peers.py", *args, timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_cold_start_tiny_prints_a_row_per_setting() -> None:
    proc = run_script("cold_start.py", "--workload", "W2", "--mode", "tiny", "--repeats", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r[0]: r for r in table_rows(proc.stdout, "") if r[0] and r[0] != "setting"
            and not r[0].startswith("-")}
    assert sorted(rows) == sorted(["numpy (book)", "funcnn, no cache",
                                   "funcnn, first process (fills the cache)",
                                   "funcnn, later processes (cache filled)"])
    for row in rows.values():
        processes, total, best, imported = int(row[1]), *(number(c) for c in row[2:5])
        assert processes == 1 and total >= best > 0 and imported > 0


def test_ensembles_tiny_prints_a_row_per_case() -> None:
    proc = run_script("ensembles.py", "--tiny", "--repeats", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = table_rows(proc.stdout, "2")
    assert [r[1] for r in rows] == ["20 full-batch epochs", "4 epochs of batches of 32"]
    for row in rows:
        ensemble, separate = (number(cell.split(" s")[0]) for cell in row[2:4])
        assert ensemble > 0 and separate > 0


def test_check_cost_quick_prints_a_row_per_case() -> None:
    done = run_script("check_cost.py", "--quick", "--repeats", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = table_rows(done.stdout, "spiral") + table_rows(done.stdout, "digits")
    assert [(r[0].split()[0], r[1]) for r in rows] == [
        ("spiral", "host"), ("spiral", "device"), ("digits", "host"), ("digits", "device")]
    assert all(number(cell) >= 0 for r in rows for cell in r[2:])


def test_optimizer_precision_prints_funcnn_against_optax() -> None:
    done = run_script("optimizer_precision.py", "--problems", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {(r[0], r[1], r[2]): r for r in table_rows(done.stdout, "rmsprop")
            + table_rows(done.stdout, "adam")}
    assert len(rows) == 6
    for (kind, _, _), row in rows.items():
        ratio = number(row[5])
        assert ratio > 0 and (ratio < 1.5 if kind == "rmsprop" else ratio < 1.0), row


def test_rnn_lowering_quick_prints_every_lowering_per_case() -> None:
    done = run_script("rnn_lowering.py", "--quick", "--steps", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = table_rows(done.stdout, "LSTM") + table_rows(done.stdout, "GRU")
    assert [r[:2] for r in rows] == [["LSTM", "32x20x8x64"], ["GRU", "32x20x8x64"]]
    lstm, gru = rows  # "scan / plain" ms per step for each lowering, all positive
    assert len(lstm) == len(gru) == 5 and gru[4] == "-"  # bptt is for LSTMs only
    for cells in (lstm[2:], gru[2:4]):
        assert all(number(v) > 0 for cell in cells for v in cell.split(" / "))


def test_stream_w2_tiny_trains_fits_params_from_a_memmap_and_reports_input_shares(
        tmp_path: Path) -> None:
    """stream_w2.py --tiny: the four variants' figures, ArraySource's params (memmap and
    in memory) equal to fit's bit for bit with the same epoch loss, Grain's accuracy within
    its tolerance, and the input pipelines timed alone."""
    import importlib.util
    import json

    out = tmp_path / "stream.json"
    done = run_script("stream_w2.py", "--tiny", "--repeats", "1", "--json", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    memmap, in_memory = ("fit_stream, ArraySource over memmap",
                         "fit_stream, ArraySource in memory")
    assert report["params_max_abs_diff"] == {memmap: 0.0, in_memory: 0.0}
    assert report["params_equal"] is True
    assert "params equal to fit's: bit for bit" in done.stdout
    names = ["fit, in memory", memmap, in_memory]
    if importlib.util.find_spec("grain") is not None:
        names.append("fit_stream, Grain DataLoader over memmap")
    variants = report["variants"]
    assert sorted(variants) == sorted(names)
    fit = variants["fit, in memory"]
    assert fit["ratio"] == 1.0 and fit["produce_share"] is None
    for name in names:
        v = variants[name]
        assert v["median_s"] >= v["best_s"] > 0 and v["first_s"] > 0, name
        assert 0.0 <= v["accuracy"] <= 1.0 and math.isfinite(v["loss"])
        if name != "fit, in memory":
            assert v["produce_share"] > 0.0 and v["wait_share"] >= 0.0, name
            assert v["ratio"] == v["median_s"] / fit["median_s"]
    for name in (memmap, in_memory):  # the same batches: the same loss, the same accuracy
        assert abs(variants[name]["loss"] - fit["loss"]) <= 1e-6
        assert variants[name]["accuracy"] == fit["accuracy"]
    assert report["target_met"] == (variants[memmap]["ratio"] <= 1.10)
    assert re.search(r"target \(memmap-streamed epoch <= 1.1 x fit's\): (met|missed)",
                     done.stdout)
    assert "accuracies agree" in done.stdout
    rows = table_rows(done.stdout.split("## Input pipelines")[0], "fit")
    assert [r[0] for r in rows] == names
    alone = report["input_alone"]
    assert alone["ArraySource.batches, memmap (x[rows] per batch)"]["records"] == 2048
    assert all(v["us_per_record"] > 0 and v["us_per_batch"] > 0 for v in alone.values())
    assert "+ jax.device_put of each chunk (place_chunk)" in alone
    if len(names) == 4:
        assert any(k.startswith("  part: IndexSampler") for k in alone)
