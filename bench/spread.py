"""How the ratios of several runs of ``bench/compare.py`` spread: one run's medians move with the host's
speed from one minute to the next (here by 30-50 %), so a target such as "at least 5x faster than TensorFlow"
is judged on many runs, not on one.

    for i in 1 2 3 4 5 6; do python bench/compare.py --batch 1 --json cold_$i.json; done
    python bench/spread.py cold_*.json
    python bench/spread.py --peer tensorflow --limit 0.2 cold_*.json steady_*.json
    python bench/spread.py --against tflite_xnnpack --peer tensorflow cold_*.json    # TF's time / XNNPACK's

Per case, batch, threads and mode (cold: each call after the other engines; steady: ``--block N``), and per
peer: how many runs, the range and median of the ratio (mobilenet_np / peer, below 1 = we are faster), and how
many runs are above ``--limit`` when one is given.
"""
import argparse
import json
import statistics
import sys


def spread(results, peer=None, limit=None, against=None):
    """Rows of (case, batch, threads, mode, peer, runs, low, median, high, above limit or None). The ratios are
    mobilenet_np / peer, or with ``against`` each engine's time over that engine's in the same run (such as
    TensorFlow's over TFLite XNNPACK's: how the peers compare with one another, which moves from host to host)."""
    groups = {}
    for r in results:
        mode = "cold" if r.get("block", 1) == 1 else f"steady ({r['block']})"
        ms = r["median_ms"]
        ratios = r["ratio"] if against is None else {n: t / ms[against] for n, t in ms.items()
                                                     if n != against and against in ms}
        for name, ratio in ratios.items():
            if peer is None or name == peer:
                groups.setdefault((r["case"], r["batch"], r["threads"], mode, name), []).append(ratio)
    rows = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3], k[4])):
        v = groups[key]
        above = None if limit is None else sum(x > limit for x in v)
        rows.append((*key, len(v), min(v), statistics.median(v), max(v), above))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="JSON files written by compare.py --json")
    p.add_argument("--peer", help="only this peer (tflite_xnnpack, onnxruntime, tensorflow, ...)")
    p.add_argument("--limit", type=float, help="count the runs whose ratio is above this")
    p.add_argument("--against", metavar="ENGINE",
                   help="each engine's time over ENGINE's (mobilenet_np, tflite_xnnpack, ...) instead of ours over the "
                        "peers': e.g. how TensorFlow's time relates to XNNPACK's on this host")
    args = p.parse_args(argv)
    results = []
    for name in args.files:
        with open(name) as f:
            results += json.load(f)
    print(f"{'case':<20}{'batch':>6}{'thr':>4}  {'mode':<11}{'peer':<22}{'runs':>5}{'low':>7}{'median':>8}{'high':>7}"
          + ("  above" if args.limit is not None else ""))
    for case, batch, threads, mode, peer, n, low, med, high, above in spread(results, args.peer, args.limit,
                                                                           args.against):
        print(f"{case:<20}{batch:>6}{threads:>4}  {mode:<11}{peer:<22}{n:>5}{low:>7.2f}{med:>8.3f}{high:>7.2f}"
              + (f"  {above} of {n}" if above is not None else ""))


if __name__ == "__main__":
    sys.exit(main())
