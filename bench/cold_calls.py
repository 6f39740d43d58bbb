"""Why a call of mobilenet_np is slower in the side-by-side benchmark than in a loop of its own calls.

    python bench/cold_calls.py                         # V2 0.5/160 without top, 60 rounds
    python bench/cold_calls.py --case v1_025_224 --rounds 100 --json cold.json

In ``bench/compare.py`` every call of every engine follows one run of each of the others ("interleaved"), so
each starts from whatever state the others left. This tool times one image of ours after each of several
preludes, all interleaved round by round so that the host's drift hits every prelude alike:

* ``hot``: one pass of ours, i.e. a loop of our own calls;
* ``read 8 MB`` / ``write 8 MB``: random cache lines of an 8 MB buffer (4x the L2 of a core here), which
  evicts our weights and activations from L1/L2 and their page translations from the TLB;
* ``sleep 5 ms``: the core idles;
* ``peers``: one run each of TFLite, ONNX Runtime and TensorFlow (the benchmark's prelude);
* ``peers + spin 3 ms``: then 3 ms of a register-only loop;
* ``peers + other model``: then passes of V1 0.25/128 for ~1.5 ms (the same compiled kernels, other data);
* ``peers + 1 pass`` / ``peers + 2 passes``: then one or two untimed passes of ours.

Besides our time it prints a *probe*: a fixed chain of dependent multiply-adds with no memory traffic, run
right before our call. The probe sees the core's clock and sharing, nothing of caches, so when it slows down
the core itself is slower. Needs the ``bench`` extra, like ``bench/compare.py``.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import compare  # noqa: E402  (bench/compare.py: the cases and the peers)

PROBE_STEPS = 4000   # a multiply, then an add, each waiting for the last: ~7 cycles a step, ~14 µs here


@numba.njit(cache=True)
def _probe_chain(n, s):
    """``s <- s * 0.999999 + 1`` n times: each step waits for the last (no fastmath: no reordering, no FMA)."""
    for _ in range(n):
        s = s * 0.999999 + 1.0
    return s


@numba.njit(cache=True)
def _touch(buf, lines, write):
    """Read (or increment) one byte of each cache line listed in ``lines``."""
    s = 0
    for i in lines:
        if write:
            buf[i] += 1
        else:
            s += buf[i]
    return s


def probe_us():
    t = time.perf_counter()
    _probe_chain(PROBE_STEPS, 1.0)
    return (time.perf_counter() - t) * 1e6


def _for_ms(ms, step):
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        step()


def preludes(ours, x, peers, other, other_x):
    """``{name: callable}`` run before each timed call (see the module docstring)."""
    buf = np.zeros(8 << 20, np.uint8)
    lines = np.random.default_rng(0).permutation(buf.size // 64).astype(np.int64) * 64

    def all_peers():
        for run in peers.values():
            run(x)

    return {
        "hot": lambda: ours(x),
        "read 8 MB": lambda: _touch(buf, lines, False),
        "write 8 MB": lambda: _touch(buf, lines, True),
        "sleep 5 ms": lambda: time.sleep(0.005),
        "peers": all_peers,
        "peers + spin 3 ms": lambda: (all_peers(), _for_ms(3, lambda: _probe_chain(2000, 1.0))),
        "peers + other model": lambda: (all_peers(), _for_ms(1.5, lambda: other(other_x))),
        "peers + 1 pass": lambda: (all_peers(), ours(x)),
        "peers + 2 passes": lambda: (all_peers(), ours(x), ours(x)),
    }


def measure(case, rounds):
    ws, model, ours, x = compare.float_case(case)
    peers = compare.float_peers(ws, model, 1, 1, compare.CASES[case][4])
    _, other, _, other_x = compare.float_case("v1_025_128" if case != "v1_025_128" else "v2_050_160_notop", seed=1)
    before = preludes(ours, x, peers, other.features, other_x)
    for prelude in before.values():      # compile, load, warm every path once
        prelude()
        ours(x)
    times = {name: [] for name in before}
    probes = {name: [] for name in before}
    for _ in range(rounds):
        for name, prelude in before.items():
            prelude()
            probes[name].append(probe_us())
            t = time.perf_counter()
            ours(x)
            times[name].append((time.perf_counter() - t) * 1e3)
    hot = statistics.median(times["hot"])
    return [{"prelude": name, "ms": statistics.median(times[name]), "vs_hot": statistics.median(times[name]) / hot,
             "probe_us": statistics.median(probes[name])} for name in before]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", default="v2_050_160_notop", choices=list(compare.CASES))
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    compare.configure_tensorflow(1)
    rows = measure(args.case, args.rounds)
    print(f"{args.case}, batch 1, 1 thread; medians of {args.rounds} interleaved rounds")
    print(f"{'prelude':<22}{'ours ms':>9}{'x hot':>7}{'probe us':>10}")
    for r in rows:
        print(f"{r['prelude']:<22}{r['ms']:>9.2f}{r['vs_hot']:>7.2f}{r['probe_us']:>10.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"case": args.case, "rounds": args.rounds, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
