"""Time one forward pass of mobilenet_np alone (no peers; the side-by-side benchmark is bench/compare.py).

    python bench/forward_time.py [WEIGHTS] [--size 128] [--batch 1] [--repeats 30] [--threads 1,2]

Without WEIGHTS a V1 0.25 with random weights is timed (speed does not depend on the values).
Prints the median and the 10th/90th percentiles in milliseconds. With several ``--threads`` counts, one model
per count is timed, their calls interleaved (an A/B in one process), and each median is also given as a ratio
of the first one's (above 1: faster).
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

import mobilenet_np as mnp  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("weights", nargs="?")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--engine", default="numba")
    p.add_argument("--threads", default="1", help="thread counts, comma-separated (one model each)")
    args = p.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    if args.weights:
        models = [mnp.load(args.weights, engine=args.engine, threads=t) for t in counts]
    else:
        from tests.helpers import random_weight_set
        ws = random_weight_set("v1", 0.25)
        models = [mnp.Model(ws.architecture(), ws.variables, engine=args.engine, threads=t) for t in counts]
    images = np.random.default_rng(0).uniform(0, 1, (args.batch, args.size, args.size, 3)).astype(np.float32)
    times = [[] for _ in models]
    for model in models:
        model.classify(images)  # compile / warm up
    for r in range(args.repeats):
        order = range(len(models)) if r % 2 == 0 else reversed(range(len(models)))
        for i in order:
            t = time.perf_counter()
            models[i].classify(images)
            times[i].append((time.perf_counter() - t) * 1e3)
    first = statistics.median(times[0])
    for model, count, ts in zip(models, counts, times):
        q = statistics.quantiles(ts, n=10)
        median = statistics.median(ts)
        print(f"{model!r} batch={args.batch} size={args.size} threads={count}: median {median:.3f} ms "
              f"(p10 {q[0]:.3f}, p90 {q[-1]:.3f}) over {args.repeats} runs"
              + (f", {first / median:.2f}x the first" if len(models) > 1 else ""))


if __name__ == "__main__":
    main()
