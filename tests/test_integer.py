"""The integer (uint8 per-tensor / int8 per-channel) path against TFLite, bit for bit.

What is proved here:

* the fixed-point primitives (SRDHM, RDBPOT, MBQM, QuantizeMultiplier) equal hand-derived values and an
  exact big-integer statement of their rounding rules;
* every integer Numba kernel equals its NumPy twin exactly on random shapes and parameters (hypothesis);
* for every fixture uint8 ``.tflite`` and every fixture photo, **every tensor** our :class:`IntegerModel` computes
  equals the one TFLite computes: ``rounding="reference"`` against the reference kernels
  (``OpResolverType.BUILTIN_REF``, the oracle) and ``rounding="xnnpack"`` against the default interpreter (XNNPACK
  delegate). A table (model, mode, tensors, elements, mismatches) is printed at the end of the module;
* an int8 per-channel model built here by TensorFlow's converter (Keras MobileNetV2 0.35/96, full-integer
  quantization, uint8 input/output) matches the same way, in both modes;
* a batch of 4 equals 4 batch-1 runs; float images in [0, 1] equal their 8-bit pixels; the float ``.tflite``
  runs through our float kernels within ``TOLERANCES["float_tflite_vs_tflite"]``; endpoint names are the slim ones.
"""
import functools
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import mobilenet_np as mnp
from mobilenet_np import architectures
from mobilenet_np.errors import InputError, UnsupportedFormatError
from mobilenet_np.integer import IntegerModel, load_integer, slim_endpoint_name
from mobilenet_np.kernels import KERNELS, fused
from mobilenet_np.kernels import integer_fixedpoint as FP
from mobilenet_np.kernels import integer_ops as IO
from mobilenet_np.testing import TOLERANCES, assert_close, fixtures_dir, missing_reason
from weights_tools.tflite import read_tflite

from .helpers import random_images

QUANT_FILES = [
    "models/mobilenet_v1_0.25_128_quant/mobilenet_v1_0.25_128_quant.tflite",
    "models/tflite/coral_mobilenet_v1_0.25_128_quant.tflite",
    "models/tflite/coral_mobilenet_v1_0.5_160_quant.tflite",
    "models/tflite/coral_mobilenet_v2_1.0_224_quant.tflite",
    "models/tflite/mobilenet_v1_0.25_224_quant.tflite",
]
FLOAT_FILE = "models/mobilenet_v1_0.25_224/mobilenet_v1_0.25_224.tflite"
SMALL = QUANT_FILES[0]
V2 = QUANT_FILES[3]
INT_KERNELS = [k for k in KERNELS if k.startswith("int_") or k == "requantize"]


def _path(rel):
    root = fixtures_dir()
    if root is None or not (root / rel).exists():
        pytest.skip(missing_reason(rel))
    return str(root / rel)


@functools.lru_cache(maxsize=None)
def _photos(size):
    """All fixture photos at ``size``, as the 8-bit images both sides get: round(255 * load_images(...))."""
    root = fixtures_dir()
    if root is None or not (root / "images").is_dir():
        pytest.skip(missing_reason("images"))
    paths = sorted(str(p) for p in (root / "images").iterdir() if p.suffix.lower() in (".jpg", ".bmp", ".png"))
    return np.round(mnp.load_images(paths, size) * 255.0).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _model(path, rounding="reference", engine="numba"):
    return load_integer(path, rounding, engine=engine)


def _interpreter(path, rounding):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    kwargs = {}
    if rounding == "reference":
        kwargs["experimental_op_resolver_type"] = litert.OpResolverType.BUILTIN_REF
    it = litert.Interpreter(model_path=path, experimental_preserve_all_tensors=True, **kwargs)
    it.allocate_tensors()
    return it


def _as_input(model, pixels):
    return pixels if model.input_tensor.dtype == np.uint8 else (pixels.astype(np.int16) - 128).astype(np.int8)


def compare_with_tflite(model, interpreter, images):
    """Run ``images`` through our model as one batch and through TFLite one at a time; compare every op output
    (``TOLERANCES["integer_vs_tflite"]``: exact).

    The model's ``output`` and ``features`` (the fast executor, when the model runs on it) are compared too:
    they count as two more tensors.

    Returns ``(tensors per image, elements, mismatches, first mismatches)``.
    """
    values = model.run(images)
    fast = {model.output_tensor.index: model.output(images),
            model.feature_tensor.index: model._value(images, model.feature_tensor)}
    inp = interpreter.get_input_details()[0]["index"]
    outputs = [i for op in model.tflite.operators for i in op.outputs]
    elements = mismatches = 0
    first = []
    for k in range(len(images)):
        interpreter.set_tensor(inp, images[k:k + 1])
        interpreter.invoke()
        for i, v in fast.items():
            ref = interpreter.get_tensor(i)
            assert v[k:k + 1].shape == ref.shape and v.dtype == ref.dtype, model.endpoint_names[i]
            bad = int(np.count_nonzero(v[k:k + 1] != ref))
            elements += ref.size
            mismatches += bad
            if bad and len(first) < 5:
                first.append(f"image {k} {model.endpoint_names[i]} ({model.fast_path}): {bad} of {ref.size} differ")
        for i in outputs:
            ref = interpreter.get_tensor(i)
            ours = values[i][k:k + 1]
            assert ours.shape == ref.shape and ours.dtype == ref.dtype, model.endpoint_names[i]
            bad = int(np.count_nonzero(np.abs(ours.astype(np.float64) - ref) > TOLERANCES["integer_vs_tflite"]["atol"]))
            elements += ref.size
            mismatches += bad
            if bad and len(first) < 5:
                d = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
                first.append(f"image {k} {model.endpoint_names[i]}: {bad} of {ref.size} differ, max {d.max()} LSB")
    return len(outputs) + len(fast), elements, mismatches, first


@pytest.fixture(scope="module")
def report(request):
    rows = []
    yield rows
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if rows and reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line("Integer model vs TFLite, every op output of every image (0 LSB required):")
            reporter.write_line(f"  {'model':<44}{'mode':<11}{'images':>7}{'tensors':>9}{'elements':>13}"
                                f"{'mismatches':>12}")
            for r in rows:
                reporter.write_line(f"  {r[0]:<44}{r[1]:<11}{r[2]:>7}{r[3]:>9}{r[4]:>13,}{r[5]:>12}")


# ------------------------------------------------------------------------------------ fixed-point primitives
def test_fixed_point_by_hand():
    # SRDHM = round(a*b / 2**31), ties toward +inf; saturates only for (-2**31)^2.
    assert FP.srdhm(1 << 30, 1) == 1                 # 0.5 -> 1
    assert FP.srdhm(-(1 << 30), 1) == 0              # -0.5 -> 0
    assert FP.srdhm(1 << 30, 3) == 2                 # 1.5 -> 2
    assert FP.srdhm(-(1 << 30), 3) == -1             # -1.5 -> -1
    assert FP.srdhm(-(1 << 31), -(1 << 31)) == (1 << 31) - 1
    # RDBPOT = x / 2**e to nearest, ties away from zero.
    assert [FP.rdbpot(x, 1) for x in (3, -3, 1, -1)] == [2, -2, 1, -1]
    assert [FP.rdbpot(x, 2) for x in (5, -5, 6, -6, -2, 2)] == [1, -1, 2, -2, -1, 1]
    # QuantizeMultiplier: M = qm * 2**(shift - 31), qm in [2**30, 2**31).
    assert FP.quantize_multiplier(0.5) == (1 << 30, 0)
    assert FP.quantize_multiplier(1.0) == (1 << 30, 1)
    assert FP.quantize_multiplier(0.75) == (3 << 29, 0)
    assert FP.quantize_multiplier(2.0 ** -40) == (0, 0)
    assert FP.quantize_multiplier((1 - 2.0 ** -33) * 2.0 ** -3) == (1 << 30, -2)   # rounds up to 2**31
    # Double rounding: 8843 * M with M = 0.6603... / 32 -> SRDHM gives 5839.5 -> 5840, /32 = 182.5 -> 183,
    # although 8843 * M = 182.484; this is why the legacy float32 multiplier matters (see integer_fixedpoint).
    assert FP.mbqm(8843, 1418096896, -5) == 183
    assert FP.mbqm(8843, 1418096877, -5) == 182
    # Activation range of ReLU6 on scale 6/255, zero point 0: [0, 255]; on scale 0.1, zp 10: [10, 70].
    assert FP.activation_range("RELU6", 6 / 255, 0, np.uint8) == (0, 255)
    assert FP.activation_range("RELU6", 0.1, 10, np.uint8) == (10, 70)
    assert FP.activation_range("NONE", 0.1, -3, np.int8) == (-128, 127)


int32s = st.integers(-(1 << 31), (1 << 31) - 1)


@settings(max_examples=200)
@given(a=int32s, b=int32s, x=st.integers(-(1 << 31), (1 << 31) - 1), e=st.integers(0, 31))
def test_fixed_point_matches_exact_integer_rules(a, b, x, e):
    exact_srdhm = (2 * a * b + (1 << 31)) // (1 << 32) if (a, b) != (-(1 << 31), -(1 << 31)) else (1 << 31) - 1
    assert FP.srdhm(a, b) == exact_srdhm == int(FP.srdhm_numpy(a, b))
    exact_rdbpot = x if e == 0 else (1 if x > 0 else -1) * ((abs(x) + (1 << (e - 1))) >> e)
    assert FP.rdbpot(x, e) == exact_rdbpot == int(FP.rdbpot_numpy(x, e))
    qm, shift = FP.quantize_multiplier(abs(b) / 2.0 ** 31 * 2.0 ** -(e % 8) + 1e-9)
    assert FP.mbqm(x >> 8, qm, shift) == int(FP.mbqm_numpy(x >> 8, qm, shift))


@functools.lru_cache(maxsize=None)
def _epilogues():
    """Compiled callers of the fast executor's integer epilogues (which have no Python wrapper)."""
    from numba import njit

    return (njit(lambda a, npx, c, prm, rec: fused.requant_run(a, 0, npx, c, prm, rec, 0)),
            njit(lambda buf, count, rec: fused.add_run(buf, 0, count, count, rec, 0)))


@settings(max_examples=80)
@given(seed=st.integers(0, 2 ** 31 - 1), channels=st.sampled_from([8, 16, 40]), pixels=st.integers(1, 9),
       lo=st.integers(-128, 0), zy=st.integers(-128, 255), wide=st.booleans())
def test_vector_requantization_and_add_match_the_scalar_formulas(seed, channels, pixels, lo, zy, wide):
    """The fast executor's vector reference requantization (``requant_run``, mode 0) and ADD (``add_run``) give,
    value for value, the scalar ``mbqm``/``add_one`` results: accumulators over the whole exact range (|acc| <
    2**24), multipliers of every size, shifts both ways; ADD inputs of uint8/int8 size, a count that is not a
    multiple of 16 or 8 (the tails). ``wide``: one shift too large for the int32 lanes (a left shift of 8-11, an
    ADD output shift of 4), so the int64 lanes run instead."""
    requant, add = _epilogues()
    rng = np.random.default_rng(seed)
    hi = lo + 255
    acc = rng.integers(-(1 << 24) + 1, 1 << 24, pixels * channels)
    qm = rng.integers(0, 1 << 31, channels)
    shift = rng.integers(-31, 8, channels)
    # channels 0-6 of pixel 0: zero, ties of SRDHM (x qm = -2**30, 2**30) and of RDBPOT (+-3 / 2), the
    # largest right shift, the extremes of the exact range
    acc[:7] = [0, -1, 1, 6, -6, (1 << 24) - 1, -(1 << 24) + 1]
    qm[:5] = 1 << 30
    shift[:7] = [0, 0, 0, -1, -1, -31, rng.integers(-31, 8)]
    if wide:
        shift[-1] = rng.integers(8, 12)
    record = fused.requant_record(0, zy, lo, hi, 0, qm, shift)
    assert record[6] == (not wide), "the loader's int32-lane flag"
    a = acc.astype(np.float32)
    requant(a, pixels, channels, np.zeros(16, np.float32), record)
    want = [min(max(FP.mbqm(int(v), int(qm[i % channels]), int(shift[i % channels])) + zy, lo), hi) - zy
            for i, v in enumerate(acc)]
    assert a.astype(np.int64).tolist() == want
    count = pixels * channels + 3
    da, db = rng.integers(-255, 256, count), rng.integers(-255, 256, count)
    qa, sa, qb, sb, qo, so = IO.add_params(*rng.uniform(0.005, 0.1, 3))
    da[:2], db[:2] = [255, -255], [255, -255]     # the largest sums
    if wide:
        so = 4      # the largest sums times 2**4 are past 2**31
    record = fused.add_record(0, zy, lo, hi, (qa, sa, qb, sb, qo, so))
    assert record[4] == (not wide), "the loader's int32-lane flag"
    buf = np.concatenate([da, db]).astype(np.float32)
    add(buf, count, record)
    want = [min(max(IO.add_one(int(x), int(y), qa, sa, qb, sb, qo, so, 20) + zy, lo), hi) - zy for x, y in zip(da, db)]
    assert buf[:count].astype(np.int64).tolist() == want


# ------------------------------------------------------------------------------------ kernels vs twins
def _requant_params(rng, channels, mode):
    scales = rng.uniform(2e-4, 3e-2, channels)
    qm, shift, fscale = FP.conv_multipliers(np.float32(0.02), scales.astype(np.float32), np.float32(0.05), channels,
                                            float32_product=bool(rng.integers(2)))
    return qm, shift, fscale


conv_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12), cin=st.integers(1, 12),
    cout=st.integers(1, 12), k=st.sampled_from([1, 3]), stride=st.sampled_from([1, 2]), dil=st.sampled_from([1, 2]),
    same=st.booleans(), int8=st.booleans(), mode=st.sampled_from([0, 1, 2]), mult=st.sampled_from([1, 2]),
    seed=st.integers(0, 2 ** 31 - 1)))


@settings(max_examples=30)
@given(conv_cases)
def test_integer_conv_kernels_match_twins(c):
    rng = np.random.default_rng(c["seed"])
    dtype = np.int8 if c["int8"] else np.uint8
    lo, hi = FP.dtype_range(dtype)
    x = rng.integers(lo, hi + 1, (c["n"], c["h"], c["w"], c["cin"])).astype(dtype)
    zx = int(rng.integers(lo, hi + 1))
    k, s, d = c["k"], c["stride"], c["dil"]
    if c["same"]:
        pads = mnp.kernels.same_pads(c["h"], c["w"], d * (k - 1) + 1, s)
    else:
        pads = (0, 0, 0, 0)
    if c["h"] + pads[0] + pads[1] < d * (k - 1) + 1 or c["w"] + pads[2] + pads[3] < d * (k - 1) + 1:
        return
    act = sorted(rng.integers(lo, hi + 1, 2).tolist())
    zy = int(rng.integers(lo, hi + 1))
    w = rng.integers(-255, 256, (k, k, c["cin"], c["cout"])).astype(np.int32)
    bias = rng.integers(-20000, 20000, c["cout"]).astype(np.int32)
    qm, shift, fs = _requant_params(rng, c["cout"], c["mode"])
    args = (x, zx, w, bias, (s, s), (d, d), pads, qm, shift, fs, zy, act[0], act[1], c["mode"])
    fast, twin = KERNELS["int_conv2d"]
    got = fast(*args)
    assert np.array_equal(got, twin(*args))
    assert got.min() >= act[0] and got.max() <= act[1]
    cout = c["cin"] * c["mult"]
    wd = rng.integers(-255, 256, (k, k, cout)).astype(np.int32)
    bd = rng.integers(-20000, 20000, cout).astype(np.int32)
    qm, shift, fs = _requant_params(rng, cout, c["mode"])
    args = (x, zx, wd, bd, c["mult"], (s, s), (d, d), pads, qm, shift, fs, zy, act[0], act[1], c["mode"])
    fast, twin = KERNELS["int_depthwise_conv2d"]
    assert np.array_equal(fast(*args), twin(*args))


@settings(max_examples=30)
@given(conv_cases)
def test_integer_elementwise_kernels_match_twins(c):
    rng = np.random.default_rng(c["seed"])
    dtype = np.int8 if c["int8"] else np.uint8
    lo, hi = FP.dtype_range(dtype)
    shape = (c["n"], c["h"], c["w"], c["cin"])
    a = rng.integers(lo, hi + 1, shape).astype(dtype)
    b = rng.integers(lo, hi + 1, shape).astype(dtype)
    za, zb, zy = (int(v) for v in rng.integers(lo, hi + 1, 3))
    sa, sb, sy = (np.float32(v) for v in rng.uniform(0.05, 0.5, 3))

    def same(name, *args):
        fast, twin = KERNELS[name]
        got = fast(*args)
        assert np.array_equal(got, twin(*args)), name
        return got

    same("int_add", a, b, za, zb, IO.add_params(sa, sb, sy), 20, zy, lo, hi)
    same("int_add_xnnpack", a, b, za, zb, *IO.add_params_xnnpack(sa, sb, sy), zy, lo, hi)
    k = c["k"]
    pads = mnp.kernels.same_pads(c["h"], c["w"], k, c["stride"]) if c["same"] else (0, 0, 0, 0)
    if c["h"] >= k and c["w"] >= k:
        same("int_avg_pool", a, (k, k), (c["stride"], c["stride"]), pads, lo, hi)
    qm, shift = IO.mean_params(sa, sy, c["h"] * c["w"])
    same("int_mean_hw", a, za, qm, shift, IO.mean_scale_xnnpack(sa, sy, c["h"] * c["w"]), zy, lo, hi,
         c["mode"] % 2)
    logits = a.reshape(-1, c["cin"])
    softmax_args = (IO.softmax_table(sa, 1.0), np.float32(1 / 256), lo, dtype == np.uint8, lo, hi)
    probs = same("int_softmax", logits, *softmax_args)
    # the fast executor hands its softmax the logits as float32 q - z, and wants the output's own type: softmax
    # only sees differences, so the same bytes
    y = np.empty(logits.shape, dtype)
    assert IO.int_softmax_into((logits.astype(np.int64) - za).astype(np.float32), *softmax_args, y) is y
    assert np.array_equal(y, probs)
    qm, shift = FP.quantize_multiplier(float(sa) / float(sy))
    same("int_requantize", a, za, qm, shift, zy, lo, hi)
    f = same("int_dequantize", a, sa, za)
    same("int_quantize", f, sa, za, lo, hi)
    assert np.array_equal(KERNELS["int_quantize"][0](f, sa, za, lo, hi), a.astype(np.int32))   # round trip
    acc = rng.integers(-(1 << 24), 1 << 24, (5, c["cout"]))
    qm, shift, fs = _requant_params(rng, c["cout"], c["mode"])
    same("requantize", acc, qm, shift, fs, zy, lo, hi, c["mode"])


def test_every_integer_kernel_is_checked_against_its_twin():
    """The registry's integer entries are exactly the ones the two hypothesis tests above exercise."""
    checked = {"int_conv2d", "int_depthwise_conv2d", "int_add", "int_add_xnnpack", "int_avg_pool", "int_mean_hw",
               "int_softmax", "int_requantize", "int_dequantize", "int_quantize", "requantize"}
    assert set(INT_KERNELS) == checked


def test_integer_kernels_by_hand():
    """Worked examples with multiplier exactly 1/2 (qm = 2**30, shift 0)."""
    half = (np.array([1 << 30], np.int32), np.array([0], np.int32), np.array([0.5], np.float32))
    x = np.array([[[[10], [20]], [[30], [40]]]], np.uint8)       # 2x2, one channel, zero point 10
    w = np.ones((1, 1, 1, 1), np.int32) * 3                       # 1x1 filter, already minus its zero point
    for fn in KERNELS["int_conv2d"]:
        # acc = 3 * (x - 10) + 1 = [1, 31, 61, 91]; half of it: 0.5 -> 1 (ties away), 15.5 -> 16, 30.5 -> 31,
        # 45.5 -> 46, plus the output zero point 5. XNNPACK mode rounds ties to even: 0, 16, 30, 46.
        y = fn(x, 10, w, np.array([1], np.int32), (1, 1), (1, 1), (0, 0, 0, 0), *half, 5, 0, 255, 0)
        assert y.reshape(-1).tolist() == [6, 21, 36, 51]
        y = fn(x, 10, w, np.array([1], np.int32), (1, 1), (1, 1), (0, 0, 0, 0), *half, 5, 0, 255, 1)
        assert y.reshape(-1).tolist() == [5, 21, 35, 51]
    for fn in KERNELS["int_avg_pool"]:
        # 3x3 SAME pool of the 2x2 map: every window sees all 4 values, sum 100, count 4 -> 25.
        assert fn(x, (3, 3), (1, 1), (1, 1, 1, 1), 0, 255).reshape(-1).tolist() == [25] * 4
        # 2x2 VALID with sum 101 over 4 -> 25.25 -> 25; sum 102 -> 25.5 -> 26 (half away from zero).
        assert fn(x + np.uint8(1) * np.array([[[[1], [0]], [[0], [0]]]], np.uint8), (2, 2), (1, 1), (0, 0, 0, 0),
                  0, 255).item() == 25
        assert fn(x + np.array([[[[1], [1]], [[0], [0]]]], np.uint8), (2, 2), (1, 1), (0, 0, 0, 0),
                  0, 255).item() == 26


# ------------------------------------------------------------------------------------ fixtures, bit for bit
@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
@pytest.mark.parametrize("rounding", ["reference", "xnnpack"])
@pytest.mark.parametrize("rel", QUANT_FILES)
def test_fixture_models_bit_exact(rel, rounding, report):
    path = _path(rel)
    model = _model(path, rounding)
    images = _photos(model.input_size)
    tensors, elements, mismatches, first = compare_with_tflite(model, _interpreter(path, rounding), images)
    report.append((os.path.basename(rel), rounding, len(images), tensors, elements, mismatches))
    assert mismatches == 0, "; ".join(first)
    assert tensors == len(model.tflite.operators) + 2
    assert model.fast_path == "fast executor"
    ops = [op.name for op in model.tflite.operators[model._chain.tail:]]
    assert ops == ["RESHAPE", "SOFTMAX"] and model._chain.softmax is not None    # output(): the softmax from
    #                                                                             the executor's logits


def _calibrated(tf, net, size):
    """Calibration images for ``net`` (built with ``weights=None``), after setting its BatchNorm statistics from
    them: ``weights=None`` leaves every BatchNorm at mean 0 / variance 1, so the activations shrink layer after
    layer (the converter then picks scales of ~1e-8 and the model tests nothing); one training-mode call with
    momentum 0 on the calibration images sets the moving statistics to batch statistics first."""
    calibration = random_images(8, size, size, seed=1) * 2.0 - 1.0
    for layer in net.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.0
    net(calibration, training=True)
    return calibration


@pytest.fixture(scope="module")
def calibrated_v2():
    """Keras MobileNetV2(alpha=0.35, 96x96, weights=None) and its calibration images (:func:`_calibrated`)."""
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(0)
    net = tf.keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None)
    return net, _calibrated(tf, net, 96)


def _full_integer(tf, net, calibration, io_type, path):
    """``net`` converted by TF to full-integer int8 (per-channel weights), inputs and outputs of ``io_type``."""
    converter = tf.lite.TFLiteConverter.from_keras_model(net)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i:i + 1]] for i in range(len(calibration)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = io_type
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
        path.write_bytes(converter.convert())
    return str(path)


@pytest.fixture(scope="module")
def int8_model(calibrated_v2, tmp_path_factory):
    """:func:`calibrated_v2` as full-integer int8 with uint8 input and output (a QUANTIZE to int8 first)."""
    import tensorflow as tf
    return _full_integer(tf, *calibrated_v2, tf.uint8,
                         tmp_path_factory.mktemp("int8") / "mobilenet_v2_0.35_96_int8.tflite")


@pytest.fixture(scope="module")
def int8_io_model(calibrated_v2, tmp_path_factory):
    """The same with int8 input and output: the fast executor's input stage reads int8 images."""
    import tensorflow as tf
    return _full_integer(tf, *calibrated_v2, tf.int8,
                         tmp_path_factory.mktemp("int8") / "mobilenet_v2_0.35_96_int8_io.tflite")


@pytest.fixture(scope="module")
def int8_v1_model(tmp_path_factory):
    """Keras MobileNet(alpha=0.25, 128x128, weights=None) with a 1000-way softmax layer on its pooled features,
    calibrated, as full-integer int8 with uint8 input and output. Its 256 features keep the logits' partial sums
    below 2**24 (V2's 1280 do not), so its logits and the SOFTMAX after them run on the fast path, without
    fixture files. (Keras's own top ends in a Reshape to a batch-sized shape, which TF converts to ops computing
    that shape.)"""
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(0)
    base = tf.keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3), weights=None, include_top=False,
                                           pooling="avg")
    net = tf.keras.Model(base.input, tf.keras.layers.Dense(1000, activation="softmax")(base.output))
    return _full_integer(tf, net, _calibrated(tf, net, 128), tf.uint8,
                         tmp_path_factory.mktemp("int8") / "mobilenet_v1_0.25_128_int8.tflite")


def _int8_images(size=96):
    pixels = np.round(random_images(4, size, size, seed=7) * 255.0).astype(np.uint8)
    root = fixtures_dir()
    if root is not None and (root / "images").is_dir():
        pixels = np.concatenate([_photos(size)[:4], pixels])
    return pixels


@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
def test_int8_per_channel_model(int8_model, report):
    from .test_tflite_reader import check_against_interpreter

    tfl = check_against_interpreter(int8_model)          # the reader on a per-channel file
    counts = tfl.op_counts()
    per_channel = [t for t in tfl.tensors if t.quantization.per_channel and t.dtype == np.int8]
    biases = [t for t in tfl.tensors if t.quantization.per_channel and t.dtype == np.int32]
    print(f"int8 model: {counts}; {len(per_channel)} per-channel int8 weight tensors "
          f"(quantized dims {sorted({t.quantization.quantized_dimension for t in per_channel})}), {len(biases)} "
          f"per-channel int32 biases; input {tfl.tensors[tfl.inputs[0]].type_name}, "
          f"output {tfl.tensors[tfl.outputs[0]].type_name}")
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"} <= set(counts)
    assert len(per_channel) == counts["CONV_2D"] + counts["DEPTHWISE_CONV_2D"] + counts["FULLY_CONNECTED"]
    assert not any(t.quantization.zero_point.any() for t in per_channel)       # symmetric weights: zp 0
    images = _int8_images()
    for rounding in ("reference", "xnnpack"):
        model = IntegerModel(tfl, rounding)
        assert model.fast_path == "fast executor"        # QUANTIZE uint8 -> int8 first, FULLY_CONNECTED logits
        tensors, elements, mismatches, first = compare_with_tflite(model, _interpreter(int8_model, rounding), images)
        report.append(("keras_mobilenet_v2_0.35_96_int8.tflite", rounding, len(images), tensors, elements, mismatches))
        assert mismatches == 0, "; ".join(first)
    twins = IntegerModel(tfl, "reference", engine="numpy").run(images[:2])
    fast = _model(int8_model).run(images[:2])
    assert all(np.array_equal(twins[i], fast[i]) for i in fast)


@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
def test_int8_input_model(int8_io_model, report):
    """An int8 input tensor (no QUANTIZE first): the fast executor's input stage reads the int8 images as they
    are. Every op output, ``output()`` and ``features()`` are TFLite's bytes, with both roundings."""
    for rounding in ("reference", "xnnpack"):
        model = _model(int8_io_model, rounding)
        images = _as_input(model, _int8_images())
        assert model.input_tensor.dtype == np.int8 and model.tflite.operators[0].name == "CONV_2D"
        assert model.fast_path == "fast executor"
        tensors, elements, mismatches, first = compare_with_tflite(model, _interpreter(int8_io_model, rounding),
                                                                   images)
        report.append(("the same, int8 input and output", rounding, len(images), tensors, elements, mismatches))
        assert mismatches == 0, "; ".join(first)


@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
def test_int8_softmax_on_the_fast_path(int8_v1_model, report):
    """``output()`` takes the int8 SOFTMAX straight from the fast executor's logits, then runs the QUANTIZE to
    uint8 after it on the per-op kernels: TFLite's bytes, with both roundings."""
    for rounding in ("reference", "xnnpack"):
        model = _model(int8_v1_model, rounding)
        tail = [op.name for op in model.tflite.operators[model._chain.tail:]]
        assert model.fast_path == "fast executor" and model._chain.logits is not None
        assert tail == ["SOFTMAX", "QUANTIZE"] and model._chain.softmax is not None
        assert model.tflite.tensors[model.tflite.operators[-2].outputs[0]].dtype == np.int8
        images = _int8_images(128)
        tensors, elements, mismatches, first = compare_with_tflite(model, _interpreter(int8_v1_model, rounding),
                                                                   images)
        report.append(("keras_mobilenet_v1_0.25_128_int8.tflite", rounding, len(images), tensors, elements,
                       mismatches))
        assert mismatches == 0, "; ".join(first)


# ------------------------------------------------------------------------------------ batch, inputs, API
def test_batch_of_four_equals_four_single_runs():
    for rel in (SMALL, V2):
        model = _model(_path(rel))
        images = _photos(model.input_size)[[0, 3, 6, 9]]
        batch = model.run(images)
        for k in range(4):
            single = model.run(images[k:k + 1])
            for i, v in single.items():
                assert np.array_equal(batch[i][k:k + 1], v), (rel, k, model.endpoint_names.get(i, i))


def test_numpy_twins_run_the_whole_model():
    path = _path(SMALL)
    images = _photos(128)[:2]
    for rounding in ("reference", "xnnpack"):
        fast = _model(path, rounding).run(images)
        slow = _model(path, rounding, "numpy").run(images)
        assert all(np.array_equal(fast[i], slow[i]) for i in fast)


def test_float_images_are_their_pixels():
    model = _model(_path(SMALL))
    pixels = _photos(128)[:3]
    floats = pixels.astype(np.float32) / np.float32(255.0)
    assert np.array_equal(model.quantize_input(floats), pixels)
    assert np.array_equal(model.output(floats), model.output(pixels))
    # "real": the input tensor's real values, q = round_half_away(r / scale) + zero point (scale 1/128, zp 128).
    real = (pixels.astype(np.float32) - 128) / 128
    real_model = load_integer(_path(SMALL), float_input="real")
    assert np.array_equal(real_model.quantize_input(real), pixels)
    # Quantizing the TF-Hub mapping 2x - 1 would instead give round(256 x): not the photo.
    assert not np.array_equal(real_model.quantize_input(2 * floats - 1), pixels)


def test_input_errors():
    model = _model(_path(SMALL))
    good = _photos(128)[:1]
    with pytest.raises(InputError, match="images\\[None\\]"):
        model.run(good[0])
    with pytest.raises(InputError, match="128x128x3"):
        model.run(_photos(160)[:1])
    with pytest.raises(InputError, match="uint8"):
        model.run(good.astype(np.int8))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        model.run(good.astype(np.float32))
    with pytest.raises(InputError, match="NaN"):
        model.run(np.full(good.shape, np.nan, np.float32))
    with pytest.raises(ValueError):
        load_integer(_path(SMALL), "ruy")


def test_classify_features_and_endpoints_api():
    model = _model(_path(SMALL))
    images = _photos(128)[:13]
    probs = model.classify(images, batch_size=5)
    out = model.output(images)
    assert probs.shape == (13, 1001) and probs.dtype == np.float32 and out.dtype == np.uint8
    assert np.array_equal(probs, out.astype(np.float32) / 256)          # scale 1/256, zero point 0
    # Each probability is rounded to 1/256 on its own, so rows sum to 1 only within 1001 * 0.5/256.
    assert np.all(np.abs(probs.sum(axis=1) - 1) <= 1001 * 0.5 / 256)
    feats = model.features(images)
    ends = model.endpoints(images)
    pool = model.feature_tensor
    assert feats.shape == (13, 256)
    assert np.array_equal(feats, ((ends["AvgPool_1a"].astype(np.float64) - pool.zero_point) * pool.scale)
                          .astype(np.float32).reshape(13, -1))
    assert np.array_equal(ends["output"], out) and np.array_equal(ends["Predictions"], out)
    assert model.rounding == "reference" and "rounding='reference'" in repr(model)


@pytest.mark.parametrize("rel, family, alpha", [(SMALL, "v1", 0.25), (V2, "v2", 1.0)])
def test_endpoint_names_are_slim_names(rel, family, alpha):
    model = _model(_path(rel))
    ends = model.endpoints(_photos(model.input_size)[:1])
    arch = architectures.build(family, alpha, 1001)
    layers = arch.all_layers()
    slim = ({l.name for l in layers if l.op != "logits"} | {l.block for l in layers if l.ends_block}
            | {arch.feature_endpoint, "Logits", "Predictions"})
    assert slim <= set(ends), sorted(slim - set(ends))
    assert set(ends) - slim == {"Logits/Conv2d_1c_1x1", "output"}
    for layer in layers[:-1]:                  # shapes follow the architecture table (depth rules)
        assert ends[layer.name].shape[-1] == layer.out_channels, layer.name
    if family == "v2":
        # residual blocks are the ADD outputs; other blocks alias their project tensor
        assert ends["expanded_conv_4"] is not ends["expanded_conv_4/project"]
        assert ends["expanded_conv_3"] is ends["expanded_conv_3/project"]


def test_slim_endpoint_name_rules():
    assert slim_endpoint_name("MobilenetV1/MobilenetV1/Conv2d_3_depthwise/Relu6") == "Conv2d_3_depthwise"
    assert slim_endpoint_name("MobilenetV2/expanded_conv_4/project/add_fold;MobilenetV2/x/Conv2D_Fold") == \
        "expanded_conv_4/project"
    assert slim_endpoint_name("MobilenetV2/expanded_conv_4/add", "ADD") == "expanded_conv_4"
    assert slim_endpoint_name("MobilenetV2/Logits/AvgPool", "AVERAGE_POOL_2D", "MobilenetV2") == "global_pool"
    assert slim_endpoint_name("MobilenetV1/Logits/AvgPool_1a/AvgPool", "AVERAGE_POOL_2D") == "AvgPool_1a"
    assert slim_endpoint_name("MobilenetV1/Logits/SpatialSqueeze", "RESHAPE") == "Logits"
    assert slim_endpoint_name("MobilenetV1/Predictions/Reshape_1", "SOFTMAX") == "Predictions"
    assert slim_endpoint_name("model/block_1_expand_relu/Relu6") is None


def test_unsupported_op_and_bad_wiring_are_named():
    tfl = read_tflite(_path(SMALL))
    tfl.operators[-1].name = "LOGISTIC"
    with pytest.raises(UnsupportedFormatError, match="LOGISTIC"):
        IntegerModel(tfl)
    tfl = read_tflite(_path(SMALL))
    tfl.operators[1].inputs = (tfl.operators[1].inputs[1],) + tfl.operators[1].inputs[1:]   # reads its filter
    with pytest.raises(UnsupportedFormatError, match=r"operator 1 \(DEPTHWISE_CONV_2D\) reads tensor"):
        IntegerModel(tfl)
    tfl = read_tflite(_path(SMALL))
    tfl.operators[0].options = {}                                                          # options missing
    with pytest.raises(UnsupportedFormatError, match=r"operator 0 \(CONV_2D\) cannot be prepared"):
        IntegerModel(tfl)


@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
def test_float_tflite_runs_on_the_float_kernels():
    path = _path(FLOAT_FILE)
    model = _model(path)
    images = (_photos(224)[:3].astype(np.float32) / 255.0) * 2 - 1     # this file takes real values in [-1, 1]
    values = model.run(images)
    it = _interpreter(path, "xnnpack")
    inp = it.get_input_details()[0]["index"]
    for k in range(len(images)):
        it.set_tensor(inp, images[k:k + 1])
        it.invoke()
        for op in model.tflite.operators:
            i = op.outputs[0]
            assert_close(values[i][k:k + 1], it.get_tensor(i), "float_tflite_vs_tflite", model.endpoint_names[i])
    assert TOLERANCES["float_tflite_vs_tflite"]["scaled_atol"] <= 1e-4
