"""bench/compare.py still runs: its peers agree with mobilenet_np before anything is timed, and the profile
lists every fused stage; bench/cold_calls.py times every prelude and the Python around a call; bench/spread.py sums up several runs. Random
weights (no fixtures), few repeats: these check the tools, not the speed."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "bench")


def run(*args, tool="compare.py"):
    return subprocess.run([sys.executable, os.path.join(BENCH, tool), *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def test_peers_agree_and_ratios_are_reported(tmp_path):
    pytest.importorskip("onnxruntime", reason="the bench extra (onnx, onnxruntime) is not installed")
    out = tmp_path / "bench.json"
    # compare.py exits non-zero if any peer's output differs from ours by more than 1e-3
    r = run("--cases", "v2_050_160_notop", "--batch", "1", "--repeats", "2", "--block", "2", "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    [result] = json.loads(out.read_text())
    assert (result["case"], result["batch"], result["threads"], result["block"]) == ("v2_050_160_notop", 1, 1, 2)
    assert set(result["ratio"]) == {"tflite_xnnpack", "onnxruntime", "tensorflow"}
    assert all(0 < v < float("inf") for v in result["median_ms"].values())


def test_profile_lists_every_stage():
    r = run("--profile", "v2_050_160_notop", "--repeats", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    fast = r.stdout[r.stdout.index("fast executor"):]
    # V2: the stem, 17 inverted-residual blocks (16 of them with an expansion), Conv_1, the pool
    for stage in ["Conv ", "expanded_conv/depthwise + expanded_conv/project", "expanded_conv_1/expand",
                  "expanded_conv_16/depthwise + expanded_conv_16/project", "Conv_1", "pool", "logits"]:
        assert stage in fast, stage
    assert fast.count("/expand ") == 16


def test_cold_calls_times_every_prelude(tmp_path):
    pytest.importorskip("onnxruntime", reason="the bench extra (onnx, onnxruntime) is not installed")
    out = tmp_path / "cold.json"
    r = run("--rounds", "2", "--evict-mb", "16", "--stages", "--around", "--json", out, tool="cold_calls.py")
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [row["prelude"] for row in rows] == [
        "hot", "read 8 MB", "write 8 MB", "evict 16 MB", "sleep 5 ms", "peers", "peers + spin 3 ms",
        "peers + other model", "peers + 1 pass", "peers + 2 passes"]
    assert rows[0]["vs_hot"] == 1.0
    assert all(row["ms"] > 0 and row["probe_us"] > 0 for row in rows)
    # --stages: every fused stage of V2 (stem, 17 blocks, 16 expansions, Conv_1, pool) and the logits, timed
    assert result["stages"][0] == "input" and result["stages"][-2:] == ["pool", "logits"]
    assert len(result["stages"]) == 1 + 1 + 17 + 16 + 1 + 1 + 1
    assert all(len(row["stage_cycles"]) == len(result["stages"]) for row in rows)
    assert all(c > 0 for row in rows for c in row["stage_cycles"][:-1])   # no top: the logits stage is 0
    assert "whole pass" in r.stdout
    # --around: the public call, the executor's, and the bare pass (its own difference 0)
    assert [row["call"] for row in result["around"]] == [
        "model.features", "executor.features", "bare compiled pass"]
    assert result["around"][-1]["minus_bare_us"] == 0 and all(row["ms"] > 0 for row in result["around"])


def test_interleaved_rotates_the_order_and_times_blocks():
    spec = importlib.util.spec_from_file_location("bench_compare", os.path.join(BENCH, "compare.py"))
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    calls = []
    runners = {name: (lambda x, name=name: calls.append(name)) for name in "abc"}
    medians = compare.interleaved(runners, None, repeats=3, warmup=1)
    assert calls[3:] == list("abc" "bca" "cab")    # after one warm-up call each: every engine follows each other
    assert set(medians) == set("abc")
    calls.clear()
    compare.interleaved(runners, None, repeats=2, warmup=0, block=3)
    assert calls == list("aaabbbccc" "bbbcccaaa")


def test_spread_summarizes_runs(tmp_path):
    """bench/spread.py over three hand-made runs: counts, range, median and runs above the limit per mode."""
    def result(block, tf, xnn):     # ours takes 1 ms, so each peer's time is 1 / its ratio
        return {"case": "v1_025_224", "batch": 1, "threads": 1, "block": block,
                "median_ms": {"mobilenet_np": 1.0, "tensorflow": 1 / tf, "tflite_xnnpack": 1 / xnn},
                "ratio": {"tensorflow": tf, "tflite_xnnpack": xnn}}
    for i, (tf, xnn) in enumerate([(0.18, 0.70), (0.24, 0.75), (0.19, 0.68)]):
        (tmp_path / f"cold_{i}.json").write_text(json.dumps([result(1, tf, xnn)]))
    (tmp_path / "steady.json").write_text(json.dumps([result(5, 0.15, 0.66)]))
    files = sorted(str(p) for p in tmp_path.glob("*.json"))
    r = run("--peer", "tensorflow", "--limit", "0.2", *files, tool="spread.py")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3        # the header, cold and steady for the one peer
    assert lines[1].split() == ["v1_025_224", "1", "1", "cold", "tensorflow", "3", "0.18", "0.190", "0.24",
                                "1", "of", "3"]
    assert lines[2].split() == ["v1_025_224", "1", "1", "steady", "(5)", "tensorflow", "1", "0.15", "0.150",
                                "0.15", "0", "of", "1"]
    r = run(*files, tool="spread.py")     # every peer, no limit
    assert [line.split()[4 if "cold" in line else 5] for line in r.stdout.splitlines()[1:]] == [
        "tensorflow", "tflite_xnnpack", "tensorflow", "tflite_xnnpack"]
    # TF's time over XNNPACK's: 0.70/0.18, 0.75/0.24, 0.68/0.19 = 3.89, 3.125 (3.1250000000000004 in floats: "3.13"),
    # 3.58 (median 3.579)
    r = run("--against", "tflite_xnnpack", "--peer", "tensorflow", *files, tool="spread.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[1].split() == ["v1_025_224", "1", "1", "cold", "tensorflow", "3", "3.13", "3.579",
                                                "3.89"]
