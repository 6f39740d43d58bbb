"""The fast executor: its kernels against the NumPy twins on random shapes, and the whole fused forward pass
against the layer-by-layer path (random weights, odd sizes, batches, threads, endpoints)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

from mobilenet_np import kernels as K
from mobilenet_np import executor as E
from mobilenet_np.kernels import fused
from mobilenet_np.kernels.simd import load_row16, run_offsets
from mobilenet_np.errors import InputError
from mobilenet_np.model import Model
from mobilenet_np.testing import assert_close

from .helpers import random_images, random_weight_set

shapes = st.fixed_dictionaries(dict(
    n=st.integers(1, 4), h=st.integers(1, 19), w=st.integers(1, 19),
    cin=st.integers(1, 64), cout=st.integers(1, 64), stride=st.sampled_from([1, 2]),
    relu6=st.booleans(), seed=st.integers(0, 2**31 - 1)))


def _random(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@given(shapes, st.booleans())
def test_gemm_pointwise_matches_twin(s, residual):
    rng = np.random.default_rng(s["seed"])
    x = _random(rng, s["n"], s["h"], s["w"], s["cin"])
    w = _random(rng, s["cin"], s["cout"], scale=0.3)
    b = _random(rng, s["cout"])
    r = _random(rng, s["n"], s["h"], s["w"], s["cout"]) if residual else None
    expected = K.pointwise_conv2d_numpy(x, w, b, s["relu6"]) + (r if residual else 0)
    assert_close(E.fused_pointwise(x, w, b, s["relu6"], r), expected, "kernel_vs_twin", "fused pointwise")


@given(shapes, st.sampled_from([1, 3]))
def test_gemm_conv_matches_twin(s, kernel):
    rng = np.random.default_rng(s["seed"])
    x = _random(rng, s["n"], s["h"], s["w"], min(s["cin"], 8))
    w = _random(rng, kernel, kernel, x.shape[3], s["cout"], scale=0.5)
    b = _random(rng, s["cout"])
    pads = K.same_pads(s["h"], s["w"], kernel, s["stride"])
    got = E.fused_conv(x, w, b, s["stride"], s["relu6"])
    assert_close(got, K.conv2d_numpy(x, w, b, s["stride"], pads, s["relu6"]), "kernel_vs_twin", "fused conv")
    assert got.shape[1:3] == (-(-s["h"] // s["stride"]), -(-s["w"] // s["stride"]))


@given(shapes)
def test_dw_row_matches_twin(s):
    rng = np.random.default_rng(s["seed"])
    x = _random(rng, s["n"], s["h"], s["w"], s["cin"])
    w = _random(rng, 3, 3, s["cin"], 1)
    b = _random(rng, s["cin"])
    pads = K.same_pads(s["h"], s["w"], 3, s["stride"])
    assert_close(E.fused_depthwise(x, w, b, s["stride"], s["relu6"]),
                 K.depthwise_conv2d_numpy(x, w, b, s["stride"], pads, s["relu6"]), "kernel_vs_twin", "fused depthwise")


@pytest.mark.parametrize("width", [16, 17, 31, 40, 112])
def test_depthwise_of_8_channels_two_pixels_per_vector_is_exact(width):
    # 8 channels at stride 1 go two pixels per vector (fused._dw_pairs); the same 8 channels inside a 16-channel
    # tensor go one pixel per vector: each channel's sum is the same operations in the same order, so the same
    # bytes
    rng = np.random.default_rng(width)
    x, w, b = _random(rng, 2, 5, width, 16), _random(rng, 3, 3, 16, 1), _random(rng, 16)
    eight = E.fused_depthwise(x[..., :8], w[:, :, :8], b[:8], 1, True)
    sixteen = E.fused_depthwise(x, w, b, 1, True)
    assert np.array_equal(eight, sixteen[..., :8])
    pads = K.same_pads(5, width, 3, 1)
    assert_close(eight, K.depthwise_conv2d_numpy(x[..., :8], w[:, :, :8], b[:8], 1, pads, True), "kernel_vs_twin",
                 "fused depthwise")


@given(st.integers(1, 6), st.integers(1, 80), st.integers(1, 300), st.integers(0, 2**31 - 1))
def test_dense_matches_twin(n, cin, cout, seed):
    rng = np.random.default_rng(seed)
    f, w, b = _random(rng, n, cin), _random(rng, cin, cout, scale=0.3), _random(rng, cout)
    assert_close(E.fused_dense(f, w, b), K.logits_numpy(f, w, b), "kernel_vs_twin", "fused dense")


@given(st.integers(1, 5), st.sampled_from([8, 64, 256, 1280]), st.integers(1, 1100), st.integers(0, 2**31 - 1))
@settings(max_examples=25)
def test_dense_reads_integer_weights_as_int16_to_the_same_bytes(n, cin, cout, seed):
    """Integer weights (the integer models' logits, q_w - z_w) can stream in as int16: the same products and sums
    as from float32, so the same bytes, down to the int16 range's ends. Batches of 4 or more take the GEMM, on
    the float32 weights, either way."""
    rng = np.random.default_rng(seed)
    f = rng.integers(-255, 256, (n, cin)).astype(np.float32)
    w = rng.integers(-255, 256, (cin, cout)).astype(np.float32)
    w[0, 0], w[-1, -1] = 32767, -32768
    b = rng.integers(-(1 << 20), 1 << 20, cout).astype(np.float32)
    assert np.array_equal(E.fused_dense(f, w, b, int16=True), E.fused_dense(f, w, b))
    with pytest.raises(ValueError, match="int16"):
        E.as_int16_pairs(np.array([0.5, 1.0], np.float32))


@pytest.mark.parametrize("cin", [fused.WIDE_PANEL_MAX_K, fused.WIDE_PANEL_MAX_K + 1, 300])
def test_gemm_with_many_inputs_matches_twin(cin):
    # past WIDE_PANEL_MAX_K inputs the GEMM uses 32-wide blocks; 200 outputs = 3 x 64 + 8 or 6 x 32 + 8
    rng = np.random.default_rng(cin)
    x, w, b = _random(rng, 2, 3, 5, cin), _random(rng, cin, 200, scale=0.1), _random(rng, 200)
    assert_close(E.fused_pointwise(x, w, b, True), K.pointwise_conv2d_numpy(x, w, b, True), "kernel_vs_twin",
                 "fused pointwise")
    f = _random(rng, 1, cin)
    assert_close(E.fused_dense(f, w, b), K.logits_numpy(f, w, b), "kernel_vs_twin", "fused dense")


@pytest.mark.parametrize("cin", [8, 16])
def test_stationary_blocks_sum_exactly_like_the_tiles(cin):
    """With 8 or 16 inputs in one run the GEMM keeps narrow blocks' weights in registers
    (fused._gemm_stationary: 16 and 8 channels, and 32 with 8 inputs); the same inputs given as two runs of
    half the length take the register tiles, with the same sums in the same order: the bytes must agree, for
    every mix of 64/32/16/8-wide blocks, odd pixel counts, several output rows, ReLU6 and the residual."""
    rng = np.random.default_rng(cin)
    for cout in (8, 16, 24, 32, 40, 48, 56, 96, 104, 120):
        prm, (w_off, b_off) = E._params(E.pack_gemm(_random(rng, cin, cout, scale=0.5)), _random(rng, cout))
        for npx, rowpx in ((1, 1), (7, 7), (17, 17), (80, 40)):
            src = _random(rng, npx * cin + E.ALIGN)
            residual = _random(rng, npx * cout)
            for relu6 in (False, True):
                for res in (False, True):
                    outs = []
                    for nseg, seglen in ((1, cin), (2, cin // 2)):
                        out = np.concatenate([np.full(4, np.nan, np.float32), residual, np.full(4, np.nan, np.float32)])
                        side = (0, prm.size + 64) if nseg == 2 else (0, 0)   # a hint, even past the end
                        fused.gemm(src, 0, cin // 2, 0, nseg, seglen, cin, npx, prm, w_off, b_off, cout, relu6,
                                   out, 4, cout, rowpx, rowpx * cout, res, 4, cout, *side)
                        outs.append(out)
                    assert np.array_equal(outs[0], outs[1], equal_nan=True), (cin, cout, npx, relu6, res)
                    assert not np.isnan(outs[0][4:-4]).any() and np.isnan(outs[0][[0, 3, -4, -1]]).all()


@pytest.mark.parametrize("cout", [8, 16, 32, 64, 120])
def test_unrolled_reduction_sums_exactly_like_single_steps(cout):
    """The tiled GEMM takes its reduction fused.GEMM_UNROLL steps a trip and the rest one at a time: 24 inputs as
    one run (3 whole trips), as two runs of 12 (a trip and 4 single steps each) and as three runs of 8 (whole
    trips, or all single steps if GEMM_UNROLL > 8) are the same sums in the same order, so the bytes agree, for
    every block width and an odd pixel count."""
    rng = np.random.default_rng(cout)
    k, npx = 24, 13
    prm, (w_off, b_off) = E._params(E.pack_gemm(_random(rng, k, cout, scale=0.5)), _random(rng, cout))
    src = _random(rng, npx * k + E.ALIGN)
    outs = []
    for nseg in (1, 2, 3):
        seglen = k // nseg
        out = np.full(npx * cout, np.nan, np.float32)
        fused.gemm(src, 0, seglen, 2 * seglen, nseg, seglen, k, npx, prm, w_off, b_off, cout, True,
                   out, 0, cout, npx, npx * cout, False, 0, cout, 0, 0)
        outs.append(out)
    assert not np.isnan(outs[0]).any()
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2]), cout


def test_fitted_tile_repeats_the_fewest_pixels():
    assert [int(fused.fitted_tile(n, 8, 4, 7)) for n in (56, 49, 30, 25, 12, 4, 13, 1)] == [8, 7, 6, 5, 6, 4, 7, 4]
    assert [int(fused.fitted_tile(n, 4, 4, 6)) for n in (196, 49, 25, 30, 36, 7)] == [4, 5, 5, 6, 4, 4]


@pytest.mark.parametrize("kin, cout", [(24, 96), (200, 32)])    # 64 + 32 wide blocks; 32 wide past 160 inputs
def test_tiles_fitted_to_the_pixel_count_sum_like_the_usual_ones(kin, cout):
    """49, 30 or 25 pixels go in tiles of 7 or 5 where those fit better (fused.fitted_tile), the same pixels
    among 56 in the usual tiles of 8 and 4: each pixel's sum is the same steps in the same order, so the bytes
    agree."""
    rng = np.random.default_rng(kin)
    prm, (w_off, b_off) = E._params(E.pack_gemm(_random(rng, kin, cout, scale=0.5)), _random(rng, cout))
    src = _random(rng, 56 * kin + E.ALIGN)
    full = np.full(56 * cout, np.nan, np.float32)
    fused.gemm(src, 0, 0, 0, 1, kin, kin, 56, prm, w_off, b_off, cout, True, full, 0, cout, 56, 56 * cout, False,
               0, cout, 0, 0)
    for npx in (49, 30, 25):
        out = np.full(npx * cout, np.nan, np.float32)
        fused.gemm(src, 0, 0, 0, 1, kin, kin, npx, prm, w_off, b_off, cout, True, out, 0, cout, 7, 7 * cout,
                   False, 0, cout, 0, 0)
        assert np.array_equal(out, full[:npx * cout]), (kin, cout, npx)


def test_gemm_packing_walks_blocks_in_kernel_order():
    assert E.gemm_blocks(8, 16) == [(0, 8)]
    if fused.WIDE:
        assert E.gemm_blocks(120, 160) == [(0, 64), (64, 32), (96, 16), (112, 8)]
        assert E.gemm_blocks(120, 161) == [(0, 32), (32, 32), (64, 32), (96, 16), (112, 8)]
    else:
        assert E.gemm_blocks(40, 300) == [(0, 16), (16, 16), (32, 8)]
    w = np.arange(3 * 24, dtype=np.float32).reshape(3, 24)
    # block 0 (16 wide) row-major, then block 1 (8 wide)
    assert np.array_equal(E.pack_gemm(w), np.concatenate([w[:, :16].ravel(), w[:, 16:].ravel()]))


# ------------------------------------------------------------------------------------------ whole network
def _pair(family, alpha, num_classes=1001, seed=0):
    ws = random_weight_set(family, alpha, num_classes=num_classes, seed=seed)
    return (Model(ws.architecture(), ws.variables, weights=ws),
            Model(ws.architecture(), ws.variables, weights=ws, engine="layers"))


def _free_buffers(executor):
    """Every buffer set the executor keeps for reuse, over all its plans and thread counts."""
    return [bufs for plan in executor._plans.values() for free in plan.free.values() for bufs in free]


@pytest.mark.parametrize("family,alpha,n,size", [
    ("v1", 0.25, 2, (64, 96)), ("v1", 0.25, 1, (128, 128)), ("v1", 0.25, 1, (50, 67)),   # 67: odd, left pad 1
    ("v1", 0.3, 3, (37, 45)),                                                            # 0.3: channels 9, 19, ...
    ("v2", 0.5, 2, (65, 33)), ("v2", 0.35, 1, (96, 96)), ("v2", 1.0, 1, (33, 50)),
    ("v2", 0.5, 1, (80, 72)),                  # 20x18 maps of 96 channels: a step makes all their rows
    ("v1", 0.25, 1, (112, 112)), ("v2", 0.35, 1, (160, 160))])   # whole 14x14, 7x7 / 10x10, 5x5 maps
def test_executor_matches_layer_by_layer_path(family, alpha, n, size):
    fast, layers = _pair(family, alpha)
    assert fast.executor is not None and layers.executor is None
    images = random_images(n, *size, seed=4)
    got, expected = fast.endpoints(images), layers.endpoints(images)
    assert list(got) == list(expected)
    for name in expected:
        assert_close(got[name], expected[name], "engine_vs_engine", name)
    assert_close(fast.classify(images), expected["Logits"], "engine_vs_engine", "classify")
    assert_close(fast.features(images), expected[fast.architecture.feature_endpoint][:, 0, 0], "engine_vs_engine",
                 "features")


@njit(cache=False)   # (not cached: a cache here would not notice edits to fused.py, compiled into it)
def _map_depthwise(a, t, h, ow, c, prm, relu6, dst, group):
    """A whole map's depthwise layer (input tensor 1 of ``t``, weights [9, c] at prm[0], biases after them) into
    ``dst`` [h, ow, c]: by fused._dw_map_block in groups of ``group`` pixels, or with group 0 by fused.dw_row
    row by row (the path it replaces for whole small maps)."""
    for cb in range(0, c, 16):
        brow = load_row16(prm, 9 * c + cb, 1)
        if group == 7:
            fused._dw_map_block(a, t, 1, -1, cb, h, ow, prm, cb, c, brow, run_offsets(0, 0, 7), relu6, dst, cb, c)
        elif group == 5:
            fused._dw_map_block(a, t, 1, -1, cb, h, ow, prm, cb, c, brow, run_offsets(0, 0, 5), relu6, dst, cb, c)
    if group == 0:
        for y in range(h):
            fused.dw_row(a, fused._padded_row(t, 1, y - 1), fused._padded_row(t, 1, y), fused._padded_row(t, 1, y + 1),
                         c, 1, ow, prm, 0, 9 * c, relu6, dst, y * ow * c, c)


@pytest.mark.parametrize("h,ow,c", [(14, 14, 128), (7, 7, 256), (3, 14, 16), (10, 10, 48), (5, 5, 96),
                                    (2, 35, 32)])
def test_small_maps_take_their_depthwise_in_pixel_groups_with_the_same_sums(h, ow, c):
    """A whole small map (14x14 and 7x7 at 224 pixels, 10x10 and 5x5 at 160) takes its depthwise layer one
    block of 16 channels at a time over all rows, in groups of 7 or 5 pixels (fused._dw_map_block): the same
    bytes as fused.dw_row row by row, the zero rows above and below included, with and without ReLU6. (The
    executor takes this path with AVX-512 only; the sums must agree in an AVX2 build all the same.)"""
    assert [fused.map_group(w) for w in (14, 7, 28, 10, 5, 35, 16, 8, 12, 56)] == [7, 7, 7, 5, 5, 7, 0, 0, 0, 0]
    group = fused.map_group(ow)
    rng = np.random.default_rng(ow * c)
    rowlen = (ow + 2) * c
    t = np.zeros((2, fused.T_NCOLS), np.int64)     # tensor 0: the shared zero row; tensor 1: the bordered input
    t[0, fused.T_BASE], t[0, fused.T_ROWLEN] = 0, rowlen
    t[1, [fused.T_BASE, fused.T_RING, fused.T_ROWLEN, fused.T_BORDER, fused.T_H, fused.T_W, fused.T_C]] = (
        rowlen, h, rowlen, 1, h, ow, c)
    a = np.zeros((h + 1) * rowlen, np.float32)
    a[rowlen:] = _random(rng, h * rowlen)
    for y in range(h):                              # zero borders, as the executor keeps them
        a[rowlen * (1 + y):][:c] = 0
        a[rowlen * (1 + y) + (ow + 1) * c:][:c] = 0
    prm = np.concatenate([_random(rng, 9 * c, scale=0.5), _random(rng, c)])
    for relu6 in (True, False):
        got, expected = np.zeros(h * ow * c, np.float32), np.zeros(h * ow * c, np.float32)
        _map_depthwise(a, t, h, ow, c, prm, relu6, got, group)
        _map_depthwise(a, t, h, ow, c, prm, relu6, expected, 0)
        assert np.array_equal(got, expected), f"{h}x{ow}x{c}, relu6={relu6}"
        assert np.abs(expected).max() > 0


@pytest.mark.parametrize("classes,n,size", [(1001, 11, 32), (10, 5, 40), (17, 3, 33)])
def test_logits_come_out_unpadded_in_runs_the_arena_holds(classes, n, size):
    """The pass writes the logits layer's rows, padded to whole vectors, into the arena, as many images
    at a time as it holds, and copies the real classes out (fused._logits_stage): at 32x32 V1 0.25's arena
    holds 10 rows of 1008, so 11 images take two runs. Each image's logits must be those of a call of its own
    (same bytes), and the layer-by-layer path's. (An integer model's, requantized in the arena before they are
    copied out, are checked by test_integer_fast's arena test and its comparisons with TFLite.)"""
    fast, layers = _pair("v1", 0.25, num_classes=classes)
    images = random_images(n, size, size, seed=3)
    per_run = fast.executor.plan(size, size).arena_size // fast.executor._head[3]
    assert fast.executor._head[3] > classes and (per_run < n) == (classes == 1001)
    got = fast.classify(images)
    assert got.shape == (n, classes) and got.flags.c_contiguous
    alone = np.concatenate([fast.classify(images[i:i + 1]) for i in range(n)])
    assert np.array_equal(got, alone)
    assert_close(got, layers.classify(images), "engine_vs_engine", f"classify, {n} images, {classes} classes")
    features, logits, _ = fast.executor.run(images, logits=True)
    assert np.array_equal(logits, got) and np.array_equal(features, fast.features(images))
    from_features = fast.endpoints(images)["Logits"]      # executor.logits(), from the pooled features
    assert from_features.flags.c_contiguous and np.array_equal(from_features, got)


def test_planar_stem_sums_exactly_like_the_gemm():
    """V1 0.25's stem (3 -> 8 channels, stride 2) reads its input planar, 16 pixels per vector
    (fused._stem_planar_row); it must give the GEMM's bytes, left padding 0 or 1, tail tiles overlapping."""
    fast, _ = _pair("v1", 0.25)
    layer, w, bias, _ = fast._steps[0]
    for size in ((64, 96), (50, 67), (33, 41)):
        plan = fast.executor.plan(*size)
        planar = plan.tensors[1, fused.T_PLANE] > 0          # tensor 1: the input image
        assert planar == (fused.WIDE and -(-size[1] // 2) >= 16), size
        images = random_images(2, *size, seed=9)
        expected = E.fused_conv(images * np.float32(2.0) - np.float32(1.0), w, bias, 2, True)
        assert np.array_equal(fast.endpoints(images)["Conv2d_0"], expected), size


@pytest.mark.parametrize("ow", [15, 16, 17, 40, 80])
def test_stem_tiles_sum_exactly_like_the_gemm(ow):
    """fused.stem_row (16-pixel tiles, one pointer per input row) walks the packed blocks of every channel
    count in 16s a stem can have (16 to 80; 64 + 16, 32 + 16, ...) and must give the GEMM's bytes, the last
    tile overlapping the one before; other stems (8 channels left over, rows narrower than a tile) stay with
    the GEMM."""
    rng = np.random.default_rng(ow)
    rowlen = (2 * ow + 2) * 3
    src = np.concatenate([_random(rng, 3 * rowlen), np.zeros(E.ALIGN, np.float32)])
    seg = [r * rowlen for r in range(3)]
    for cout in range(8, 88, 8):
        assert fused.stem_tiles_fit(cout, ow) == (fused.WIDE and cout % 16 == 0 and ow >= 16), (cout, ow)
        if not fused.stem_tiles_fit(cout, ow):
            continue
        prm, (w_off, b_off) = E._params(E.pack_gemm(_random(rng, 27, cout, scale=0.5)), _random(rng, cout))
        for relu6 in (False, True):
            got, expected = (np.full(ow * cout + 8, np.nan, np.float32) for _ in range(2))
            fused.stem_row(src, *seg, ow, prm, w_off, b_off, cout, relu6, got, 8)
            fused.gemm(src, *seg, 3, 9, 6, ow, prm, w_off, b_off, cout, relu6, expected, 8, cout, ow, 0, False, 0, 0,
                       0, 0)
            assert np.array_equal(got, expected, equal_nan=True), (ow, cout, relu6)
            assert not np.isnan(got[8:]).any() and np.isnan(got[:8]).all(), (ow, cout)


def test_classify_features_and_endpoints_agree_exactly():
    """Recording endpoints changes where rows are copied, not how they are computed."""
    fast, _ = _pair("v2", 0.5)
    images = random_images(3, 70, 58, seed=5)
    ends = fast.endpoints(images)
    assert np.array_equal(fast.classify(images), ends["Logits"])
    assert np.array_equal(fast.features(images), ends["global_pool"][:, 0, 0])
    assert np.array_equal(fast.classify(images[1:2])[0], ends["Logits"][1])     # batch independence


def test_threads_give_identical_results():
    fast, _ = _pair("v1", 0.25)
    images = random_images(5, 96, 80, seed=6)
    one = fast.classify(images)
    fast.threads = 2
    assert fast.executor.threads == 2
    assert np.array_equal(fast.classify(images), one)
    with pytest.raises(ValueError):
        fast.threads = 0


def test_calls_from_several_python_threads_run_at_once_and_agree(monkeypatch):
    """Python threads sharing one model (a web server's pool, Dask's threaded workers) each get an arena of
    their own, so their calls run at the same time (the pass releases the GIL) and give the bytes of calls made
    one after another. The compiled pass is wrapped in a two-party barrier: two calls must be inside it at
    once, which calls behind one lock never are (the barrier would time out)."""
    import itertools
    import threading
    from concurrent.futures import ThreadPoolExecutor

    fast, _ = _pair("v1", 0.25)
    images = [random_images(3, 64, 72, seed=s) for s in range(8)]
    expected = [fast.classify(x) for x in images]
    real = fused.forward
    meet = threading.Barrier(2, timeout=20)
    entrants, met = itertools.count(), []

    def forward(*args):
        if next(entrants) < 2:          # the first two calls (next() on a count is atomic)
            met.append(meet.wait())     # raises BrokenBarrierError if the other call cannot come in meanwhile
        return real(*args)

    monkeypatch.setattr(fused, "forward", forward)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(fast.classify, images))
    assert sorted(met) == [0, 1]
    for g, e in zip(got, expected):
        assert np.array_equal(g, e)
    assert 2 <= len(_free_buffers(fast.executor)) <= 4       # arenas are kept for reuse, at most one per caller


def check_arena_bounds(ex, images, record):
    """Run ``images`` through executor ``ex`` with guard zones around the arena and the outputs: nothing may be
    written outside them, nor to the parameters. The arena starts full of NaN (what tensors sharing its memory
    leave behind): the outputs must be those of a fresh zeroed arena, so no border or zero row is read before
    it is zeroed. With a logits layer, the pass also writes its padded rows into the arena (in runs of as many
    images as it holds; the arena given is exactly the plan's size) and the real classes to the logits array."""
    n = len(images)
    plan = ex.plan(images.shape[1], images.shape[2], record)
    guard = 4096
    arena = np.full(plan.arena_size + 2 * guard, 7.0, np.float32)
    inner = arena[guard:guard + plan.arena_size]
    inner[:] = np.nan
    acc = np.zeros(plan.features, np.float64)
    pooled = np.full(n * plan.features + guard, 7.0, np.float32)
    ends = np.full(max(n * plan.ends_size, 1) + guard, 7.0, np.float32)
    head, classes = (ex._no_head, 0) if ex._head is None else (ex._head, ex.num_classes)
    logits = np.full(n * classes + guard, 7.0, np.float32)
    params, qparams = ex.params.copy(), None if ex.qparams is None else ex.qparams.copy()
    fused.forward(images, plan.stages, plan.tensors, plan.schedule, ex.params, ex.qparams, inner, acc, pooled, ends,
                  record, head, logits[:n * classes].reshape(n, classes), np.zeros(0, np.int64))
    assert np.all(arena[:guard] == 7.0) and np.all(arena[-guard:] == 7.0)
    assert np.all(pooled[n * plan.features:] == 7.0)
    assert np.all(ends[max(n * plan.ends_size, 1):] == 7.0)
    assert np.all(logits[n * classes:] == 7.0)
    # (bit for bit: the integer models' int16 weights, read as float32, may look like NaN)
    assert ex.params.tobytes() == params.tobytes() and (qparams is None or np.array_equal(ex.qparams, qparams))
    if record:
        assert not np.any(ends[:n * plan.ends_size] == 7.0)   # every endpoint value written
    fresh, fresh_logits, _ = ex._call(images, plan, head, record, None)
    assert np.array_equal(pooled[:n * plan.features], fresh)
    assert fresh_logits.shape == (n, classes) and np.array_equal(logits[:n * classes].reshape(n, classes), fresh_logits)


def test_no_writes_outside_the_arena_and_parameters_unchanged():
    fast, _ = _pair("v2", 0.35)
    images = np.ascontiguousarray(random_images(2, 45, 61, seed=7))
    for record in (False, True):
        check_arena_bounds(fast.executor, images, record)


def _side_ranges(stages):
    return [(k, int(stages[k, fused.PF0]), int(stages[k, fused.PF1])) for k in range(len(stages))
            if stages[k, fused.PF1] > stages[k, fused.PF0]]


def test_side_prefetch_takes_the_logits_weights_into_l2_only_where_they_fit(monkeypatch):
    """The last stages prefetch the logits' weights (executor.side_prefetch): V1 0.25's 256 x 1008 floats
    (1,032,192 bytes) are at most half of a 2 MiB L2, not of a 1 MiB one; the ranges run back to back over the
    last GEMM stages, each at most one cache line per SIDE_STEPS_PER_LINE steps of its GEMM (256 multiply-adds
    each); an integer model's int16 copy is half as long. A hint: the outputs keep every byte."""
    monkeypatch.setattr(E, "L2_BYTES", 2 << 20)
    fast, _ = _pair("v1", 0.25)
    ex = fast.executor
    w, _, cin, cout, _, _ = (int(v) for v in ex._head)
    plan = ex.plan(224, 224)
    st, t = plan.stages, plan.tensors
    ranges = _side_ranges(st)
    assert [r[0] for r in ranges] == list(range(ranges[0][0], len(st) - 1))     # the last stages, pool aside
    assert ranges[0][1] == w and ranges[-1][2] == w + cin * cout
    assert all(a[2] == b[1] for a, b in zip(ranges, ranges[1:]))
    for k, lo, hi in ranges:
        out, inp = st[k, fused.TOUT], st[k, fused.TIN]
        steps = t[out, fused.T_H] * t[out, fused.T_W] * t[inp, fused.T_C] * t[out, fused.T_C] // 256
        assert (hi - lo) // 16 <= steps // E.SIDE_STEPS_PER_LINE, (k, lo, hi, steps)
    stage_list = ex._stages(224, 224, False)[0]
    rows = [row.copy() for row in st]
    for row in rows:
        row[fused.PF0] = row[fused.PF1] = 0
    E.side_prefetch(rows, stage_list, np.array([w, 0, cin, cout, -1, 2 * 1000], np.int64), 2 << 20)
    assert min(r[fused.PF0] for r in rows if r[fused.PF1] > r[fused.PF0]) == 1000
    assert max(r[fused.PF1] for r in rows) == 1000 + cin * cout // 2
    for l2 in (1 << 20, 0):
        for row in rows:
            row[fused.PF0] = row[fused.PF1] = 0
        E.side_prefetch(rows, stage_list, ex._head, l2)
        assert not _side_ranges(np.stack(rows)), l2
    images = random_images(2, 224, 224, seed=3)
    with_side = fast.classify(images)
    plan.stages[:, fused.PF1] = plan.stages[:, fused.PF0]
    assert np.array_equal(fast.classify(images), with_side)


@pytest.mark.parametrize("lo,hi,h", [(160, 160 + 16 * 4032, 14), (0, 1000, 7), (32, 48, 5), (0, 0, 3)])
def test_side_range_shares_cover_the_range_once(lo, hi, h):
    """A stage made a row (or a few rows) at a time prefetches its side range in shares that follow one another
    without a gap or an overlap, whole cache lines but the last; made in one step, the whole range; with
    side=False, nothing."""
    st = np.zeros((1, fused.NCOLS), np.int64)
    st[0, fused.PF0], st[0, fused.PF1], st[0, fused.TOUT] = lo, hi, 1
    t = np.zeros((2, fused.T_NCOLS), np.int64)
    t[1, fused.T_H] = h
    for rows in (1, 2, 3):
        at = lo
        for i in range(0, h, rows):
            sp, sp_end = fused._side_range(st, 0, t, i, min(rows, h - i), True)
            assert sp == at and sp_end >= sp and (sp - lo) % 16 == 0, (rows, i, sp, sp_end)
            at = sp_end
        assert at == hi
    assert fused._side_range(st, 0, t, 0, h, True) == (lo, hi)
    sp, sp_end = fused._side_range(st, 0, t, 2 % h, 1, False)
    assert sp == sp_end


@pytest.mark.parametrize("entries,expected", [
    ([("1", "Data", "48K"), ("1", "Instruction", "32K"), ("2", "Unified", "2048K"), ("3", "Unified", "480M")],
     2 << 20),
    ([("1", "Data", "32K"), ("2", "Unified", "1M")], 1 << 20),
    ([("2", "Unified", "262144")], 262144),
    ([("1", "Data", "32K")], 0),                 # no L2 listed
    ([("2", "Unified", "lots")], 0),             # sizes that do not parse
    ([("2", "Unified", "")], 0),
    ([("2", "Unified", "-1K")], 0),
    ([], 0),                                     # no cache folder at all (another system)
])
def test_l2_size_read_from_sysfs(tmp_path, entries, expected):
    for i, (level, kind, size) in enumerate(entries):
        d = tmp_path / f"index{i}"
        d.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (d / name).write_text(value + "\n")
    assert E.l2_cache_bytes(str(tmp_path)) == expected


def test_schedule_keeps_few_rows_and_makes_every_row_once():
    fast, _ = _pair("v1", 0.25)
    plan = fast.executor.plan(224, 224)
    stages, tensors, schedule = plan.stages, plan.tensors, plan.schedule
    for k, stage in enumerate(stages):
        steps = schedule[schedule[:, 0] == k]
        rows = np.concatenate([np.arange(i, i + r) for _, i, r in steps])
        height = tensors[stage[fused.TIN], fused.T_H] if stage[fused.OP] == fused.ST_POOL else \
            tensors[stage[fused.TOUT], fused.T_H]
        assert np.array_equal(rows, np.arange(height)), k
    # large maps live in rings of a few rows (a map read whole by a small layer's one-step GEMM is kept whole)
    big = [t for t in tensors[1:] if t[fused.T_H] > 28]
    assert big and all(t[fused.T_RING] <= 4 for t in big)
    assert plan.arena_size * 4 < 0.5e6            # V1 0.25/224: its tensors alone add up to 1.1 MB


@pytest.mark.parametrize("family, alpha", [("v1", 0.25), ("v2", 0.35)])   # planar input rows (V1 0.25), NHWC
def test_the_input_stage_catches_every_value_out_of_range(family, alpha):
    fast, _ = _pair(family, alpha)
    images = random_images(1, 37, 45, seed=3)    # rows of 135 values: 8 vectors of 16, then 7 one by one
    edges = images.copy()
    edges[0, 0, 0, 0], edges[0, -1, -1, -1] = 0.0, 1.0
    edges[0, 3, 4, 1], edges[0, 36, 44, 0] = -0.0, -0.0     # -0.0 >= 0: in a vector and in the tail
    fast.features(edges)                          # both ends of [0, 1] are valid
    above_one = np.nextafter(np.float32(1), np.float32(2))
    for value in (np.nan, np.inf, -np.inf, above_one, np.float32(-1e-30)):
        for y, x, c in [(0, 0, 0), (5, 20, 1), (17, 42, 0), (36, 43, 2), (36, 44, 2)]:   # in vectors and the tail
            bad = images.copy()
            bad[0, y, x, c] = value
            with pytest.raises(InputError):
                fast.features(bad)


def test_the_input_map_scale_must_be_a_power_of_two():
    """The input stage maps with one multiply-add (simd.store_affine), the values of a multiply and an add only
    when the product is exact: an executor with another scale is refused, not silently rounded differently."""
    fast, _ = _pair("v1", 0.25)
    fast.features(random_images(1, 32, 32))
    steps = fast._steps

    class ThirdScale(E.FastExecutor):
        def _input_transform(self):
            return (1.5, -1.0, 0.0, 1.0)

    with pytest.raises(ValueError, match="power of two"):
        ThirdScale(fast.architecture, steps)


@pytest.mark.parametrize("family, alpha, grouped", [
    # 20x20 stages of V2 0.5 (96 channels: 38,400 floats a map) from block 4 on; block 3's depthwise would
    # read its whole 40x40x96 input (153,600) and stays row by row
    ("v2", 0.5, ["expanded_conv_4/expand", "expanded_conv_4/depthwise", "expanded_conv_5/expand",
                 "expanded_conv_5/depthwise", "expanded_conv_6/expand"]),
    ("v2", 1.0, []),                            # 192 channels: 76,800 floats
    ("v1", 0.25, ["Conv2d_5_depthwise"])])      # 64 channels; Conv2d_4 reads 40x40x32 (51,200)
def test_maps_up_to_20x20_are_made_whole_when_narrow(family, alpha, grouped):
    fast, _ = _pair(family, alpha)
    plan = fast.executor.plan(160, 160)
    for k, names in enumerate(plan.names):
        h = plan.tensors[plan.stages[k, fused.TOUT], fused.T_H] if plan.stages[k, fused.TOUT] >= 0 else 0
        if names[0] in grouped:
            assert h == 20 and plan.stages[k, fused.GROUP] == 20, names
        elif h * plan.tensors[plan.stages[k, fused.TOUT], fused.T_W] > 256:
            assert plan.stages[k, fused.GROUP] == 1, names      # larger maps: a row per step
        elif plan.stages[k, fused.TOUT] >= 0 and plan.stages[k, fused.OP] != fused.ST_INPUT:
            assert plan.stages[k, fused.GROUP] == h, names      # up to 256 pixels: always whole


def test_parameters_and_arenas_start_on_a_cache_line():
    # every kernel offset is a multiple of 16 floats, so with these on 64-byte boundaries every vector load is
    # aligned (NumPy alone gave 16-, 32- and 48-byte offsets, and vectors straddling two lines)
    for shape in [(5,), (1000,), (3, 33344), (300000,)]:
        assert E.aligned_zeros(shape).ctypes.data % 64 == 0 and E.aligned_zeros(shape).shape == shape
    fast, _ = _pair("v2", 0.35)
    fast.features(random_images(1, 45, 61, seed=1))
    assert fast.executor.params.ctypes.data % 64 == 0
    for arena, _, first, _, _ in _free_buffers(fast.executor):
        assert arena.ctypes.data % 64 == 0 and arena.shape[1] % E.ALIGN == 0 and first.ctypes.data % 64 == 0


def test_assign_offsets_by_hand():
    # the 4-float buffer first, at 0; the third meets it in time (step 1), so it goes above it, at 4; the
    # second meets only the third (steps 2-3), so it fits below it, at 0; 6 floats in all
    assert E.assign_offsets([4, 2, 2], [(0, 1), (2, 3), (1, 2)]) == ([0, 0, 4], 6)
    assert E.assign_offsets([3, 3], [(0, 0), (1, 1)]) == ([0, 0], 3)            # never live together: shared
    assert E.assign_offsets([], []) == ([], 0)


@pytest.mark.parametrize("family, alpha, size", [("v1", 0.25, 224), ("v2", 0.5, 160)])
def test_tensors_live_at_the_same_time_never_share_memory(family, alpha, size):
    fast, _ = _pair(family, alpha)
    plan = fast.executor.plan(size, size)
    stages, tensors, schedule = plan.stages, plan.tensors, plan.schedule
    steps = {}    # tensor -> schedule steps that write or read it, from the stage table itself
    for q, k in enumerate(schedule[:, 0]):
        for col in (fused.TIN, fused.TOUT, fused.TRES):
            if stages[k, col] >= 0:
                steps.setdefault(int(stages[k, col]), []).append(q)
    spans = {ti: (min(v), max(v)) for ti, v in steps.items()}
    ends = {ti: tensors[ti, fused.T_BASE] + tensors[ti, fused.T_RING] * tensors[ti, fused.T_ROWLEN] for ti in spans}
    scratch = stages[0, fused.SCRATCH]
    total = 0
    for a in spans:
        assert tensors[a, fused.T_BASE] >= tensors[0, fused.T_ROWLEN] or a == 1   # past the zero row (input: in it)
        assert ends[a] <= scratch
        total += ends[a] - tensors[a, fused.T_BASE]
        for b in spans:
            overlap = tensors[a, fused.T_BASE] < ends[b] and tensors[b, fused.T_BASE] < ends[a]
            if a != b and overlap:
                assert spans[a][1] < spans[b][0] or spans[b][1] < spans[a][0], (a, b)
    assert plan.arena_size < 0.5 * total      # sharing is what makes the arena small


def test_engines_and_models_the_executor_does_not_serve():
    ws = random_weight_set("v1", 0.25)
    assert Model(ws.architecture(), ws.variables, engine="numpy").executor is None
    assert Model(ws.architecture(), ws.variables, fold_batch_norm=False).executor is None
    with pytest.raises(ValueError, match="engine"):
        Model(ws.architecture(), ws.variables, engine="fast")
    headless = random_weight_set("v1", 0.25, num_classes=0)
    model = Model(headless.architecture(), headless.variables)
    assert model.executor is not None
    assert model.features(random_images(1, 40, 40)).shape == (1, 256)


@given(st.integers(1, 3), st.integers(1, 40), st.integers(1, 40), st.integers(1, 80), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_stem_kernel_matches_twin(n, h, w, cout, relu6, seed):
    rng = np.random.default_rng(seed)
    x = _random(rng, n, h, w, 3)
    k = _random(rng, 3, 3, 3, cout, scale=0.5)
    b = _random(rng, cout)
    pads = K.same_pads(h, w, 3, 2)
    assert_close(E.fused_conv(x, k, b, 2, relu6), K.conv2d_numpy(x, k, b, 2, pads, relu6), "kernel_vs_twin", "stem")
