"""Time one forward pass of mobilenet_np alone (no peers; the side-by-side benchmark is bench/compare.py).

    python bench/forward_time.py [WEIGHTS] [--size 128] [--batch 1] [--repeats 30]

Without WEIGHTS a V1 0.25 with random weights is timed (speed does not depend on the values).
Prints the median and the 10th/90th percentiles in milliseconds.
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
    args = p.parse_args()
    if args.weights:
        model = mnp.load(args.weights, engine=args.engine)
    else:
        from tests.helpers import random_weight_set
        ws = random_weight_set("v1", 0.25)
        model = mnp.Model(ws.architecture(), ws.variables, engine=args.engine)
    images = np.random.default_rng(0).uniform(0, 1, (args.batch, args.size, args.size, 3)).astype(np.float32)
    model.classify(images)  # compile / warm up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        model.classify(images)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    q = statistics.quantiles(times, n=10)
    print(f"{model!r} batch={args.batch} size={args.size}: median {statistics.median(times):.2f} ms "
          f"(p10 {q[0]:.2f}, p90 {q[-1]:.2f}) over {args.repeats} runs")


if __name__ == "__main__":
    main()
