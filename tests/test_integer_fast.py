"""The integer models on the fast executor (:mod:`mobilenet_np.integer_executor`).

That the fast path gives TFLite's bytes on every fixture file, both roundings, is checked with the rest of the
integer model in ``test_integer.py`` (``compare_with_tflite`` compares ``output`` and ``features`` too). Here:

* the premise, by hand: float32 multiply-adds of integers are exact while every partial sum stays below 2**24,
  and the fused kernels then return the exact integer sums, in whatever order they add them; one step past the
  bound, they do not (so the loader's bound is needed, and this test can fail);
* a model whose partial sums could pass 2**24 is refused by the fast path, which says why, and still runs;
* threads (the model's own, or Python threads sharing it) and batches give the same bytes as one image at a
  time; nothing is written outside the arena.
"""
import numpy as np
import pytest

import mobilenet_np as mnp
from mobilenet_np import executor as EX
from mobilenet_np.integer import IntegerModel
from mobilenet_np.integer_executor import EXACT_LIMIT
from weights_tools.tflite import read_tflite

from .test_fused import check_arena_bounds
from .test_integer import QUANT_FILES, SMALL, V2, _path, _photos


def test_float32_sums_of_integers_are_exact_below_two_to_the_24():
    rng = np.random.default_rng(0)
    n, cin, cout = 37, 64, 24
    x = rng.integers(-255, 256, (1, 1, n, cin)).astype(np.float32)
    w = rng.integers(-255, 256, (cin, cout)).astype(np.float32)
    # the largest bias that keeps |b| + sum |x w| < 2**24 for every output
    worst = (np.abs(x.reshape(n, cin)).astype(np.int64) @ np.abs(w).astype(np.int64)).max()
    b = np.full(cout, EXACT_LIMIT - 1 - worst, np.float32)
    exact = x.reshape(n, cin).astype(np.int64) @ w.astype(np.int64) + b.astype(np.int64)
    got = EX.fused_pointwise(x, w, b, relu6=False).reshape(n, cout)
    assert np.array_equal(got.astype(np.int64), exact)
    # one past the bound: 2**24 + 1 is not a float32, so an odd sum above 2**24 comes out wrong
    x1 = np.zeros((1, 1, 1, 8), np.float32)
    x1[..., 0] = 1.0
    w1 = np.zeros((8, 8), np.float32)
    w1[0, :] = 1.0
    b1 = np.full(8, EXACT_LIMIT, np.float32)
    got1 = EX.fused_pointwise(x1, w1, b1, relu6=False)
    assert int(got1[0, 0, 0, 0]) != EXACT_LIMIT + 1


def test_exactness_bound_is_checked_and_the_model_still_runs():
    path = _path(SMALL)
    tfl = read_tflite(path)
    op = tfl.operators[2]                        # Conv2d_1_pointwise
    bias = tfl.tensors[op.inputs[2]]
    bias.data = bias.data.copy()
    bias.data[3] = EXACT_LIMIT                   # one bias at 2**24: partial sums may leave the exact range
    model = IntegerModel(tfl, "xnnpack")
    assert model.fast_path.startswith("per-op kernels: operator 2 (CONV_2D): partial sums up to")
    assert "2**24" in model.fast_path
    images = _photos(model.input_size)[:2]
    ops = IntegerModel(tfl, "xnnpack", engine="ops")
    assert np.array_equal(model.output(images), ops.output(images))


@pytest.mark.parametrize("rel", [SMALL, V2])
def test_threads_and_batches_give_the_same_bytes(rel):
    path = _path(rel)
    tfl = read_tflite(path)
    one = IntegerModel(tfl, "xnnpack")
    two = IntegerModel(tfl, "xnnpack", threads=2)
    images = _photos(one.input_size)[:5]
    singles = np.concatenate([one.output(images[k:k + 1]) for k in range(len(images))])
    assert np.array_equal(one.output(images), singles)
    assert np.array_equal(two.output(images), singles)
    assert np.array_equal(two.features(images), one.features(images))
    # one model shared by several Python threads at once (each call in its own arena)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda k: one.output(images[k:k + 1]), list(range(len(images))) * 3))
    assert np.array_equal(np.concatenate(got), np.concatenate([singles] * 3))


def test_every_fixture_file_runs_on_the_fast_path():
    for rel in QUANT_FILES:
        model = IntegerModel(read_tflite(_path(rel)), "reference")
        assert model.fast_path == "fast executor", (rel, model.fast_path)
        assert IntegerModel(read_tflite(_path(rel)), "reference", engine="ops").fast_path.startswith("off")


def test_no_writes_outside_the_arena():
    model = IntegerModel(read_tflite(_path(V2)), "reference")
    check_arena_bounds(model._executor, np.ascontiguousarray(_photos(model.input_size)[:2], np.float32), False)


def test_load_passes_threads_and_engine():
    path = _path(SMALL)
    fast = mnp.load(path, rounding="xnnpack", threads=2)
    ops = mnp.load(path, rounding="xnnpack", engine="layers")
    assert fast.fast_path == "fast executor" and fast._executor.threads == 2
    assert ops.fast_path.startswith("off")
    images = _photos(fast.input_size)[:3]
    assert np.array_equal(fast.output(images), ops.output(images))
