"""Why a call of mobilenet_np is slower in the side-by-side benchmark than in a loop of its own calls.

    python bench/cold_calls.py                         # V2 0.5/160 without top, 60 rounds
    python bench/cold_calls.py --case v1_025_224 --rounds 100 --json cold.json
    python bench/cold_calls.py --case v1_025_224 --stages        # also where the time goes, per fused stage
    python bench/cold_calls.py --case v1_025_224 --around        # also the Python around one call

In ``bench/compare.py`` every call of every engine follows one run of each of the others ("interleaved"), so
each starts from whatever state the others left. This tool times one image of ours after each of several
preludes, all interleaved round by round so that the host's drift hits every prelude alike:

* ``hot``: one pass of ours, i.e. a loop of our own calls;
* ``read 8 MB`` / ``write 8 MB``: random cache lines of an 8 MB buffer (4x the L2 of a core here), which
  evicts our weights and activations from L1/L2 and their page translations from the TLB;
* ``evict 400 MB``: one byte of every cache line of a 400 MB buffer (``--evict-mb``), more than this VM's
  share of the L3, so that our weights, activations and image come from memory;
* ``sleep 5 ms``: the core idles;
* ``peers``: one run each of TFLite, ONNX Runtime and TensorFlow (the benchmark's prelude);
* ``peers + spin 3 ms``: then 3 ms of a register-only loop;
* ``peers + other model``: then passes of V1 0.25/128 for ~1.5 ms (the same compiled kernels, other data);
* ``peers + 1 pass`` / ``peers + 2 passes``: then one or two untimed passes of ours.

Besides our time it prints a *probe*: a fixed chain of dependent multiply-adds with no memory traffic, run
right before our call. The probe sees the core's clock and sharing, nothing of caches, so when it slows down
the core itself is slower. With ``--stages`` our call is the fast executor's pass with its cycle counter on,
and a second table shows each fused stage's median cycles after each prelude: where the extra time lands.
With ``--around``, a last table sets the public call (``classify``, or ``features`` without top) and the
executor's against the bare compiled pass with every argument prepared, each right after the peers, their
order rotating: the medians of the per-round differences are what the Python and NumPy steps around the pass
cost in the benchmark (where the interpreter's own code and data start cold).
Needs the ``bench`` extra, like ``bench/compare.py``.
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
from mobilenet_np.kernels import fused  # noqa: E402

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


@numba.njit(cache=True)
def _touch_every_line(buf):
    for i in range(0, buf.size, 64):
        buf[i] += 1


def preludes(ours, x, peers, other, other_x, evict_mb=400):
    """``{name: callable}`` run before each timed call (see the module docstring)."""
    buf = np.zeros(8 << 20, np.uint8)
    lines = np.random.default_rng(0).permutation(buf.size // 64).astype(np.int64) * 64
    big = np.zeros(evict_mb << 20, np.uint8)

    def all_peers():
        for run in peers.values():
            run(x)

    return {
        "hot": lambda: ours(x),
        "read 8 MB": lambda: _touch(buf, lines, False),
        "write 8 MB": lambda: _touch(buf, lines, True),
        f"evict {evict_mb} MB": lambda: _touch_every_line(big),
        "sleep 5 ms": lambda: time.sleep(0.005),
        "peers": all_peers,
        "peers + spin 3 ms": lambda: (all_peers(), _for_ms(3, lambda: _probe_chain(2000, 1.0))),
        "peers + other model": lambda: (all_peers(), _for_ms(1.5, lambda: other(other_x))),
        "peers + 1 pass": lambda: (all_peers(), ours(x)),
        "peers + 2 passes": lambda: (all_peers(), ours(x), ours(x)),
    }


def measure(case, rounds, evict_mb=400, stages=False):
    """``(rows, stage names)``: one row per prelude, our median time, relative to "hot", and the probe's. With
    ``stages``, our call is ``executor.run`` with the cycle counter on, and each row also has ``stage_cycles``:
    the median cycles of every fused stage, in the order of the names (the last: the logits)."""
    ws, model, ours, x = compare.float_case(case)
    top = compare.CASES[case][4]
    peers = compare.float_peers(ws, model, 1, 1, top)
    _, other, _, other_x = compare.float_case("v1_025_128" if case != "v1_025_128" else "v2_050_160_notop", seed=1)
    before = preludes(ours, x, peers, other.features, other_x, evict_mb)
    executor = model.executor
    names = [" + ".join(n) for n in executor.plan(*x.shape[1:3]).names] + ["logits"]
    nstages = len(names)
    cycles = {name: [] for name in before}

    def call(name):
        if not stages:
            return ours(x)
        c = np.zeros(nstages, np.int64)
        executor.run(x, logits=top, cycles=c)
        cycles[name].append(c)

    for name, prelude in before.items():      # compile, load, warm every path once
        prelude()
        ours(x)
    times = {name: [] for name in before}
    probes = {name: [] for name in before}
    for _ in range(rounds):
        for name, prelude in before.items():
            prelude()
            probes[name].append(probe_us())
            t = time.perf_counter()
            call(name)
            times[name].append((time.perf_counter() - t) * 1e3)
    hot = statistics.median(times["hot"])
    rows = [{"prelude": name, "ms": statistics.median(times[name]), "vs_hot": statistics.median(times[name]) / hot,
             "probe_us": statistics.median(probes[name])} for name in before]
    if stages:
        for row in rows:
            row["stage_cycles"] = np.median(cycles[row["prelude"]], axis=0).tolist()
    return rows, names if stages else None


def around(case, rounds):
    """``[{"call", "ms", "minus_bare_us", "quartiles_us"}]``: the public call, the executor's and the bare
    compiled pass (all arguments and buffers prepared), each right after one run of each peer."""
    ws, model, ours, x = compare.float_case(case)
    top = compare.CASES[case][4]
    peers = compare.float_peers(ws, model, 1, 1, top)
    ex = model.executor
    plan = ex.plan(*x.shape[1:3])
    bufs = ex._new_buffers(plan, 1)
    head, out = (ex._head, np.empty((1, ex.num_classes), np.float32)) if top else (ex._no_head, ex._no_logits)
    args = (x, plan.stages, plan.tensors, plan.schedule, ex.params, ex.qparams, bufs[2], bufs[3], bufs[4],
            ex._no_ends, False, head, out, ex._no_cycles)
    calls = {f"model.{ours.__name__}": lambda: ours(x),
             f"executor.{ours.__name__}": lambda: getattr(ex, ours.__name__)(x),
             "bare compiled pass": lambda: fused.forward(*args)}
    names = list(calls)
    times = {name: [] for name in names}
    for name in names:
        calls[name]()
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            for run in peers.values():
                run(x)
            t = time.perf_counter()
            calls[name]()
            times[name].append((time.perf_counter() - t) * 1e3)
    bare = np.array(times[names[-1]])
    rows = []
    for name in names:
        d = (np.array(times[name]) - bare) * 1e3
        rows.append({"call": name, "ms": statistics.median(times[name]), "minus_bare_us": float(np.median(d)),
                     "quartiles_us": [float(np.percentile(d, 25)), float(np.percentile(d, 75))]})
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", default="v2_050_160_notop", choices=list(compare.CASES))
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--evict-mb", type=int, default=400, help="size of the buffer the 'evict' prelude writes")
    p.add_argument("--stages", action="store_true", help="time the executor's pass per fused stage")
    p.add_argument("--around", action="store_true", help="time the Python around a call (see above)")
    args = p.parse_args()
    compare.configure_tensorflow(1)
    rows, names = measure(args.case, args.rounds, args.evict_mb, args.stages)
    print(f"{args.case}, batch 1, 1 thread; medians of {args.rounds} interleaved rounds")
    print(f"{'prelude':<22}{'ours ms':>9}{'x hot':>7}{'probe us':>10}")
    for r in rows:
        print(f"{r['prelude']:<22}{r['ms']:>9.2f}{r['vs_hot']:>7.2f}{r['probe_us']:>10.1f}")
    if args.stages:
        print("\nthousands of cycles per stage (columns: the preludes above, in order)")
        for i, name in enumerate(names):
            print(f"{name[:40]:<41}" + "".join(f"{r['stage_cycles'][i] / 1e3:>7.0f}" for r in rows))
        print(f"{'whole pass':<41}" + "".join(f"{sum(r['stage_cycles']) / 1e3:>7.0f}" for r in rows))
    result = {"case": args.case, "rounds": args.rounds, "rows": rows, "stages": names}
    if args.around:
        result["around"] = around(args.case, args.rounds)
        print("\nafter the peers: each call, and its median difference to the bare pass in the same round")
        for r in result["around"]:
            q = r["quartiles_us"]
            print(f"{r['call']:<26}{r['ms']:>7.3f} ms  {r['minus_bare_us']:>+7.1f} us  (quartiles {q[0]:+.1f}, "
                  f"{q[1]:+.1f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
