"""The fake-quant ("quantops") path against TensorFlow 2.21.

* ``FakeQuantWithMinMaxVars``: TF's own named boundary cases and random ranges, bit for bit;
* TF's accumulation order (FMA chains) and its ``Rsqrt``, which make the whole network reproducible;
* the real ``mobilenet_v1_0.25_128_quant`` release: TF runs its frozen graph on the 13 fixture photos and every
  folded weight, fake-quantized weight and fake-quantized activation is compared, loading our side from the
  checkpoint and from the frozen graph (``pytest -s`` prints the parity table).

Expected values come from TensorFlow at test time or from hand derivation, never from our code.
"""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import mobilenet_np as mnp
from mobilenet_np import architectures
from mobilenet_np import kernels as K
from mobilenet_np.errors import MobileNetError, UnsupportedFormatError, VariableMismatchError, WeightsError
from mobilenet_np.kernels.quant_fold import RSQRT_MATCHES_TF, fold_batch_norm_quant, rsqrt_like_tf
from mobilenet_np.quantized import HUB_V3_INPUT_RANGE, FakeQuantModel, load_fake_quant
from mobilenet_np.testing import TOLERANCES, assert_close, fixture_path, fixtures_dir, missing_reason

from .helpers import random_images, random_weight_set

tf = pytest.importorskip("tensorflow")

QUANT_DIR = "models/mobilenet_v1_0.25_128_quant/"
FROZEN = QUANT_DIR + "mobilenet_v1_0.25_128_quant_frozen.pb"
CHECKPOINT = QUANT_DIR + "mobilenet_v1_0.25_128_quant.ckpt.index"
V1_LAYERS = ["Conv2d_0"] + [f"Conv2d_{i}_{part}" for i in range(1, 14) for part in ("depthwise", "pointwise")]


def tf_fake_quant(x, lo, hi, num_bits, narrow_range):
    return tf.quantization.fake_quant_with_min_max_vars(
        np.asarray(x, np.float32), np.float32(lo), np.float32(hi), num_bits=num_bits,
        narrow_range=narrow_range).numpy()


def both_engines(x, lo, hi, num_bits, narrow_range):
    return K.fake_quant(x, lo, hi, num_bits, narrow_range), K.fake_quant_numpy(x, lo, hi, num_bits, narrow_range)


# ------------------------------------------------------------------------------------------ FakeQuant op
# TF's own table (tensorflow/compiler/tests/fake_quant_ops_test.py): (min, max, num_bits, narrow_range) and the
# nudged range and step those tests derive by hand.
NAMED_CASES = {
    "8bit_no_scaling_no_nudging": (0.0, 255.0, 8, False, 0.0, 255.0, 1.0),
    "8bit_scaling_nudging_down": (0.5, 128.0, 8, False, 0.0, 127.5, 0.5),
    "8bit_scaling_nudging_up": (-128.0, -0.5, 8, False, -127.5, 0.0, 0.5),
    "8bit_scaling_nudging_between": (-0.1, 127.4, 8, False, 0.0, 127.5, 0.5),
    "8bit_narrow_no_scaling_no_nudging": (0.0, 254.0, 8, True, 0.0, 254.0, 1.0),
    "8bit_narrow_nudging_down": (0.1, 127.1, 8, True, 0.0, 127.0, 0.5),
    "8bit_narrow_nudging_up": (-127.1, -0.1, 8, True, -127.0, 0.0, 0.5),
    "8bit_narrow_nudging_between": (-0.1, 126.9, 8, True, 0.0, 127.0, 0.5),
    "7bit_no_scaling_no_nudging": (0.0, 127.0, 7, False, 0.0, 127.0, 1.0),
    "7bit_scaling_nudging_down": (0.5, 64.0, 7, False, 0.0, 63.5, 0.5),
    "7bit_scaling_nudging_up": (-64.0, -0.5, 7, False, -63.5, 0.0, 0.5),
    "7bit_scaling_nudging_between": (-0.1, 63.4, 7, False, 0.0, 63.5, 0.5),
    "7bit_narrow_no_scaling_no_nudging": (0.0, 126.0, 7, True, 0.0, 126.0, 1.0),
    "7bit_narrow_nudging_down": (0.1, 63.1, 7, True, 0.0, 63.0, 0.5),
    "7bit_narrow_nudging_up": (-63.1, -0.1, 7, True, -63.0, 0.0, 0.5),
    "7bit_narrow_nudging_between": (-0.1, 62.9, 7, True, 0.0, 63.0, 0.5),
}


@pytest.mark.parametrize("case", list(NAMED_CASES))
def test_named_boundary_cases(case):
    lo, hi, bits, narrow, nudged_lo, nudged_hi, step = NAMED_CASES[case]
    got_lo, got_hi, got_step = K.nudge(lo, hi, bits, narrow)
    np.testing.assert_allclose([got_lo, got_hi, got_step], [nudged_lo, nudged_hi, step], rtol=1e-6, atol=1e-6)
    # TF's probe points: below the range, around the first step, around the top, above the range.
    x = np.array([nudged_lo - step, nudged_lo - 0.01, nudged_lo, nudged_lo + 0.01, nudged_lo + step - 0.01,
                  nudged_lo + step, nudged_lo + step + 0.01, nudged_hi - 0.01, nudged_hi, nudged_hi + 0.01,
                  nudged_hi + step], np.float32)
    expected = tf_fake_quant(x, lo, hi, bits, narrow)
    hand = np.array([nudged_lo] * 4 + [nudged_lo + step] * 3 + [nudged_hi] * 4, np.float32)
    np.testing.assert_allclose(expected, hand, rtol=1e-3, atol=1e-5)   # TF's own check of its table
    for got in both_engines(x, lo, hi, bits, narrow):
        assert np.array_equal(got, expected), f"{case}: {got} != TF {expected}"


def test_hub_input_ranges_by_hand():
    # SEMANTICS.md C.5: [-1, 1] has zp_from_min = 127.49999 -> zero point 127; the hub v3 range
    # [-1.0005, 1.0005] gives exactly 127.5 -> 128 (round half away from zero), so -1 stays representable.
    assert K.fake_quant_numpy(np.float32([-1.0]), -1.0, 1.0, 8, False)[0] == np.float32(-127 * np.float32(2 / 255))
    lo, hi, step = K.nudge(*HUB_V3_INPUT_RANGE)
    np.testing.assert_allclose([lo, hi, step], [-128 * 2.001 / 255, 127 * 2.001 / 255, 2.001 / 255], rtol=1e-6)


def test_special_ranges_follow_tf():
    x = np.linspace(-3, 3, 13).astype(np.float32)
    for got in both_engines(x, 0.0, 0.0, 8, False):             # TF special-cases min == max == 0
        assert np.array_equal(got, np.zeros_like(x))
    expected = tf_fake_quant(x, 1.0, 1.0, 8, False)              # scale 0: TF returns NaN; so do we
    for got in both_engines(x, 1.0, 1.0, 8, False):
        assert np.array_equal(got, expected, equal_nan=True)
    for bits in (1, 17):
        with pytest.raises(tf.errors.InvalidArgumentError):
            tf_fake_quant(x, -1.0, 1.0, bits, False)
        for fn in (K.fake_quant, K.fake_quant_numpy):
            with pytest.raises(ValueError, match="num_bits"):
                fn(x, -1.0, 1.0, bits, False)


@st.composite
def quant_problems(draw):
    bits = draw(st.integers(2, 16))
    narrow = draw(st.booleans())
    kind = draw(st.sampled_from(["straddles_zero", "positive", "negative", "activation"]))
    a = draw(st.floats(1e-3, 50.0))
    b = draw(st.floats(1e-3, 50.0))
    lo, hi = {"straddles_zero": (-a, b), "positive": (min(a, b), max(a, b) + 1e-3),
              "negative": (-max(a, b) - 1e-3, -min(a, b)), "activation": (0.0, b)}[kind]
    n = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    span = max(abs(lo), abs(hi))
    x = rng.uniform(-1.3 * span, 1.3 * span, n).astype(np.float32)
    # Put a third of the points exactly on grid points and on half-way points, where rounding decides.
    nudged_lo, _, step = K.nudge(lo, hi, bits, narrow)
    k = rng.integers(0, 2**bits, n).astype(np.float32)
    sel = rng.integers(0, 3, n)
    x = np.where(sel == 1, nudged_lo + k * step, np.where(sel == 2, nudged_lo + (k + 0.5) * step, x))
    return x.astype(np.float32), np.float32(lo), np.float32(hi), bits, narrow


@settings(max_examples=60)
@given(quant_problems())
def test_fake_quant_bit_identical_to_tf(problem):
    x, lo, hi, bits, narrow = problem
    expected = tf_fake_quant(x, lo, hi, bits, narrow)
    kernel, twin = both_engines(x.reshape(-1, 1), lo, hi, bits, narrow)
    for name, got in (("numba", kernel.reshape(-1)), ("numpy", twin.reshape(-1))):
        bad = np.flatnonzero(got != expected)
        assert bad.size == 0, (f"{name}: {bad.size} of {x.size} differ (bits={bits}, narrow={narrow}, "
                               f"range [{lo!r}, {hi!r}]); first x={x[bad[0]]!r}: {got[bad[0]]!r} vs TF "
                               f"{expected[bad[0]]!r}")


# ------------------------------------------------------------------------------ TF's summation order
@pytest.mark.skipif(os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0",
                    reason="the FMA order is oneDNN's; TF's Eigen kernels sum 3x3 and depthwise convs differently")
@settings(max_examples=25)
@given(st.fixed_dictionaries(dict(n=st.integers(1, 2), h=st.integers(1, 12), w=st.integers(1, 12),
                                  cin=st.integers(1, 40), cout=st.integers(1, 40), stride=st.sampled_from([1, 2]),
                                  seed=st.integers(0, 2**31 - 1))))
def test_fma_kernels_match_tf_and_twins(s):
    rng = np.random.default_rng(s["seed"])
    x = rng.standard_normal((s["n"], s["h"], s["w"], s["cin"])).astype(np.float32)
    w3 = rng.standard_normal((3, 3, s["cin"], s["cout"])).astype(np.float32)
    wd = rng.standard_normal((3, 3, s["cin"], 1)).astype(np.float32)
    w1 = rng.standard_normal((s["cin"], s["cout"])).astype(np.float32)
    pads = K.same_pads(s["h"], s["w"], 3, s["stride"])
    cases = {
        "conv2d_fma": ((x, w3, s["stride"], pads), tf.nn.conv2d(x, w3, s["stride"], "SAME")),
        "depthwise_conv2d_fma": ((x, wd, s["stride"], pads),
                                 tf.nn.depthwise_conv2d(x, wd, [1, s["stride"], s["stride"], 1], "SAME")),
        "pointwise_conv2d_fma": ((x, w1), tf.nn.conv2d(x, w1[None, None], 1, "SAME")),
        "avg_pool_sequential": ((x,), tf.nn.avg_pool2d(x, [s["h"], s["w"]], 1, "VALID")[:, 0, 0, :]),
    }
    for name, (args, expected) in cases.items():
        kernel, twin = K.KERNELS[name]
        got = kernel(*args)
        assert np.array_equal(got, expected.numpy()), (
            f"{name}: {int(np.sum(got != expected.numpy()))} of {got.size} differ from TF; max |diff| "
            f"{np.abs(got - expected.numpy()).max():.3g}")
        assert np.array_equal(twin(*args), got), f"{name}: NumPy twin differs from the Numba kernel"


@pytest.mark.skipif(not RSQRT_MATCHES_TF, reason="TF's Rsqrt is reproduced on x86-64 only")
def test_rsqrt_like_tf_is_tf():
    rng = np.random.default_rng(7)
    a = np.exp(rng.uniform(-20, 20, 20011)).astype(np.float32)
    a[:6] = [0.0, np.inf, 1e-40, 1.0, 4.0, 1e-3]
    for n in (a.size, 7, 8, 9, 16, 27):     # whole 8-float packets and a scalar tail
        got, expected = rsqrt_like_tf(a[:n]), tf.math.rsqrt(a[:n]).numpy()
        assert np.array_equal(got, expected), f"length {n}: {int(np.sum(got != expected))} differ"
    with np.errstate(divide="ignore"):
        exact = (1.0 / np.sqrt(a.astype(np.float64))).astype(np.float32)
    # Why the emulation is needed: TF's Rsqrt is not correctly rounded.
    assert np.mean(exact != tf.math.rsqrt(a).numpy()) > 0.1


# ---------------------------------------------------------------------------------- errors and grid facts
def _quant_variables(weights, rng):
    """Random but plausible fake-quant ranges for every V1 layer (what contrib.quantize would store)."""
    arch = weights.architecture()
    out = dict(weights.variables)
    for layer in arch.all_layers():
        ctx = f"MobilenetV1/{layer.name}" if layer.op == "logits" else f"MobilenetV1/MobilenetV1/{layer.name}"
        out[f"{ctx}/weights_quant/min"] = np.float32(-rng.uniform(0.5, 3))
        out[f"{ctx}/weights_quant/max"] = np.float32(rng.uniform(0.5, 3))
        lo = -rng.uniform(5, 10) if layer.op == "logits" else 0.0
        out[f"{ctx}/act_quant/min"] = np.float32(lo)
        out[f"{ctx}/act_quant/max"] = np.float32(rng.uniform(4, 6.0) if layer.op != "logits" else 12.0)
    return arch, out


def test_every_endpoint_lies_on_its_grid():
    """Hand-derivable facts, no TF: each activation is (q - zero_point) * scale with q in [0, 255], and every
    fake-quantized weight is on its narrow [1, 255] grid."""
    weights = random_weight_set("v1", 0.25, seed=3)
    arch, variables = _quant_variables(weights, np.random.default_rng(0))
    model = FakeQuantModel(arch, variables)
    ends = model.endpoints(random_images(2, 64, 64, seed=1))
    for name in V1_LAYERS + ["Logits"]:
        lo, hi, scale, zp = model.activation_quant(name)
        q = ends[name] / np.float32(scale) + zp
        assert np.all(np.abs(q - np.round(q)) < 1e-3) and q.min() > -0.5 and q.max() < 255.5, name
        assert np.all(ends[name] >= lo) and np.all(ends[name] <= hi), name
    assert np.all(ends["Conv2d_5_pointwise"] >= 0)                              # ReLU6 then a [0, max] grid
    lo, hi = model.quant_ranges["Conv2d_3_depthwise"]["weights_quant"]
    nlo, _, step = K.nudge(lo, hi, 8, True)
    qw = (model.quantized_weights("Conv2d_3_depthwise") - nlo) / step
    assert np.all(np.abs(qw - np.round(qw)) < 1e-3) and qw.min() > -0.5 and qw.max() < 254.5
    np.testing.assert_allclose(ends["AvgPool_1a"][:, 0, 0], ends["Conv2d_13_pointwise"].mean(axis=(1, 2)),
                               rtol=1e-6, atol=1e-6)                              # no fake-quant after the pool


def test_missing_ranges_are_named():
    weights = random_weight_set("v1", 0.25)
    arch = weights.architecture()
    with pytest.raises(VariableMismatchError, match="not a quantization-aware") as info:
        FakeQuantModel(arch, weights.variables)
    assert "MobilenetV1/MobilenetV1/Conv2d_0/act_quant/min" in info.value.missing
    _, variables = _quant_variables(weights, np.random.default_rng(0))
    del variables["MobilenetV1/MobilenetV1/Conv2d_7_pointwise/act_quant/min"]
    with pytest.raises(VariableMismatchError, match=r"Conv2d_7_pointwise.*act_quant/min") as info:
        FakeQuantModel(arch, variables)
    assert info.value.missing == ["MobilenetV1/MobilenetV1/Conv2d_7_pointwise/act_quant/min"]


def test_bad_ranges_and_options_raise():
    weights = random_weight_set("v1", 0.25)
    arch, variables = _quant_variables(weights, np.random.default_rng(0))
    bad = dict(variables, **{"MobilenetV1/MobilenetV1/Conv2d_2_depthwise/weights_quant/min": np.float32(9.0)})
    with pytest.raises(WeightsError, match="Conv2d_2_depthwise/weights_quant: min 9.0 is above max"):
        FakeQuantModel(arch, bad)
    bad = dict(variables, **{"MobilenetV1/Logits/Conv2d_1c_1x1/act_quant/max": np.float32(np.nan)})
    with pytest.raises(WeightsError, match="Logits/Conv2d_1c_1x1/act_quant.*not finite"):
        FakeQuantModel(arch, bad)
    with pytest.raises(MobileNetError, match="input_range"):
        FakeQuantModel(arch, variables, input_range=(1.0, -1.0))
    v2 = random_weight_set("v2", 0.5)
    with pytest.raises(UnsupportedFormatError, match="V1 only"):
        FakeQuantModel(v2.architecture(), v2.variables)


# ------------------------------------------------------------------------------ the real _quant release
@pytest.fixture(scope="module")
def release():
    for rel in (FROZEN, CHECKPOINT):
        if fixture_path(rel) is None:
            pytest.skip(missing_reason(rel))
    root = fixtures_dir()
    if not (root / "images").is_dir():
        pytest.skip(missing_reason("images"))
    paths = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in (".jpg", ".bmp"))
    images = mnp.load_images(paths, 128)
    return dict(names=[p.name for p in paths], images=images, tf=_run_tf(fixture_path(FROZEN), images),
                models={"checkpoint": load_fake_quant(fixture_path(CHECKPOINT)),
                        "frozen graph": load_fake_quant(fixture_path(FROZEN))})


def _import_graph(pb, input_map=None):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    tf.compat.v1.import_graph_def(graph_def, name="", input_map=input_map)


def _tf_fetches(graph):
    body = "MobilenetV1/MobilenetV1/"
    fetches = {name: f"{body}{name}/act_quant/FakeQuantWithMinMaxVars:0" for name in V1_LAYERS}
    fetches.update({"AvgPool_1a": "MobilenetV1/Logits/AvgPool_1a/AvgPool:0",
                    "Logits": "MobilenetV1/Logits/SpatialSqueeze:0",
                    "Predictions": "MobilenetV1/Predictions/Reshape_1:0",
                    "Logits/weights_quant": "MobilenetV1/Logits/Conv2d_1c_1x1/weights_quant/FakeQuantWithMinMaxVars:0"})
    for name in V1_LAYERS:
        fetches[f"{name}/mul_fold"] = f"{body}{name}/mul_fold:0"
        fetches[f"{name}/bias_fold"] = f"{body}{name}/BatchNorm_Fold/bias:0"
        fetches[f"{name}/weights_quant"] = f"{body}{name}/weights_quant/FakeQuantWithMinMaxVars:0"
    return {k: graph.get_tensor_by_name(v) for k, v in fetches.items()}


def _run_tf(pb, images01, input_range=None):
    """TF runs the released graph on ``2x - 1`` (optionally fake-quantized first, as hub v3 modules do)."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 128, 128, 3])
        fed = x * 2.0 - 1.0
        if input_range is not None:
            fed = tf.quantization.fake_quant_with_min_max_vars(fed, *input_range, num_bits=8, narrow_range=False)
        _import_graph(pb, {"input:0": fed})
        fetches = _tf_fetches(graph)
    with tf.compat.v1.Session(graph=graph) as sess:
        return sess.run(fetches, {x: images01})


def parity_table(model, ours, theirs):
    """``{endpoint: (max |diff| in steps, fraction equal, fraction within one step)}``."""
    rows = {}
    for name in V1_LAYERS + ["AvgPool_1a", "Logits"]:
        step = model.activation_quant(name)[2]
        diff = np.abs(ours[name].astype(np.float64) - theirs[name]) / step
        rows[name] = (float(diff.max()), float(np.mean(diff == 0)), float(np.mean(diff <= 1 + 1e-6)))
    return rows


@pytest.mark.parametrize("source", ["checkpoint", "frozen graph"])
def test_release_parity_with_tf(release, source):
    model, theirs = release["models"][source], release["tf"]
    ours = model.endpoints(release["images"])
    rows = parity_table(model, ours, theirs)
    agree = int(np.sum(ours["Logits"].argmax(1) == theirs["Logits"].argmax(1)))
    print(f"\nfake-quant V1 0.25/128 loaded from the {source}, vs TF 2.21 on {len(release['names'])} photos")
    print(f"  {'endpoint':<22}{'max |d| (steps)':>16}{'% equal':>10}{'% <= 1 step':>13}")
    for name, (worst, equal, within) in rows.items():
        print(f"  {name:<22}{worst:>16.3g}{100 * equal:>10.3f}{100 * within:>13.3f}")
    print(f"  argmax identical on {agree} of {len(release['names'])} photos")
    assert agree == len(release["names"]), "top-1 class differs from TF"
    bound = TOLERANCES["fake_quant_vs_tf"]["within_one_step"]
    for name, (worst, equal, within) in rows.items():
        assert within >= bound, f"{name}: only {100 * within:.3f} % within one step of TF (max {worst:g} steps)"
    assert_close(ours["Predictions"], theirs["Predictions"], "fake_quant_predictions_vs_tf", "Predictions")


def test_checkpoint_and_frozen_graph_give_the_same_model(release):
    a, b = release["models"]["checkpoint"], release["models"]["frozen graph"]
    assert a.quant_ranges == b.quant_ranges
    for name in a.folded:
        assert np.array_equal(a.quantized_weights(name), b.quantized_weights(name)), name
        assert all(np.array_equal(u, v) for u, v in zip(a.folded[name], b.folded[name])), name
    images = release["images"][:3]
    ea, eb = a.endpoints(images), b.endpoints(images)
    assert all(np.array_equal(ea[k], eb[k]) for k in ea)


def test_folded_and_quantized_weights_are_tf_bit_for_bit(release):
    theirs = release["tf"]
    for source, model in release["models"].items():
        for name in V1_LAYERS:
            w_fold, b_fold = model.folded[name]
            assert np.array_equal(w_fold, theirs[f"{name}/mul_fold"]), f"{source}: {name} mul_fold"
            assert np.array_equal(b_fold, theirs[f"{name}/bias_fold"]), f"{source}: {name} BatchNorm_Fold/bias"
            assert np.array_equal(model.quantized_weights(name), theirs[f"{name}/weights_quant"]), \
                f"{source}: {name} weights_quant"
        assert np.array_equal(model.quantized_weights("Logits/Conv2d_1c_1x1"), theirs["Logits/weights_quant"])
    # What TF's Rsqrt emulation buys: with a correctly rounded 1/sqrt some folded weights would round to a
    # neighbouring grid point (18 of 209,050 measured).
    weights = mnp.read_weights(fixture_path(CHECKPOINT))
    model = release["models"]["checkpoint"]
    flipped = 0
    for name in V1_LAYERS:
        p = f"MobilenetV1/{name}/"
        w = weights.variables[p + ("depthwise_weights" if "depthwise" in name else "weights")]
        g, v = (weights.variables[p + "BatchNorm/" + k] for k in ("gamma", "moving_variance"))
        k_exact = (g / np.sqrt(v.astype(np.float64) + np.float32(1e-3))).astype(np.float32)
        w_exact = w * (k_exact.reshape(-1, 1) if "depthwise" in name else k_exact)
        lo, hi = model.quant_ranges[name]["weights_quant"]
        flipped += int(np.sum(K.fake_quant(w_exact, lo, hi, 8, True) != theirs[f"{name}/weights_quant"]))
    print(f"\nfake-quantized weights off by one step with a correctly rounded rsqrt instead of TF's: {flipped}")


@pytest.mark.skipif(not RSQRT_MATCHES_TF, reason="bit-exact layers need TF's x86-64 kernels")
def test_each_layer_on_tf_input_is_tf_bit_for_bit(release):
    """Teacher forcing: every layer run on TF's own input reproduces TF's fake-quantized output exactly, so the
    end-to-end agreement is not a lucky cancellation."""
    model, theirs = release["models"]["frozen graph"], release["tf"]
    x = model._map_input(release["images"])
    for step in model._steps[:-1]:
        name = step[0].name
        got = model._conv(step, x)
        bad = int(np.sum(got != theirs[name]))
        assert bad == 0, f"{name}: {bad} of {got.size} elements differ from TF on TF's own input"
        x = theirs[name]
    pooled = K.avg_pool_sequential(theirs["Conv2d_13_pointwise"])
    assert np.array_equal(pooled, theirs["AvgPool_1a"][:, 0, 0])
    assert np.array_equal(model._logits(pooled), theirs["Logits"])


def test_numpy_engine_and_hdf5_give_the_same_model(release, tmp_path):
    images = release["images"][:2]
    reference = release["models"]["checkpoint"].endpoints(images)
    path = tmp_path / "quant.h5"
    mnp.save_hdf5(mnp.read_weights(fixture_path(CHECKPOINT)), path)
    for model in (load_fake_quant(path), load_fake_quant(fixture_path(FROZEN), engine="numpy")):
        ends = model.endpoints(images)
        for name in V1_LAYERS + ["AvgPool_1a", "Logits"]:
            assert np.array_equal(ends[name], reference[name]), f"{model.engine}: {name}"
    assert np.array_equal(model.classify(images), reference["Logits"])
    assert np.array_equal(model.features(images), reference["AvgPool_1a"][:, 0, 0])


def test_input_fake_quant_matches_tf(release):
    """The hub v3 option: fake-quantize the [-1, 1] image with the widened range, then the same network."""
    pb = fixture_path(FROZEN)
    images = release["images"][:4]
    theirs = _run_tf(pb, images, HUB_V3_INPUT_RANGE)
    model = load_fake_quant(pb, input_range=HUB_V3_INPUT_RANGE)
    ours = model.endpoints(images)
    for name in V1_LAYERS + ["AvgPool_1a", "Logits"]:
        assert np.array_equal(ours[name], theirs[name]), name
    # By hand: step = 2.001/255, zero point 128, nudged minimum -128 steps = -1.00442. Black (-1) lies 0.56 steps
    # above it and rounds to -127 steps = -0.99658; white (+1) to +127 steps: the widened range treats the two
    # ends of the image symmetrically.
    ends = model._map_input(np.stack([np.zeros((32, 32, 3), np.float32), np.ones((32, 32, 3), np.float32)]))
    np.testing.assert_allclose(ends[0], -127 * 2.001 / 255, rtol=1e-6)
    np.testing.assert_allclose(ends[1], 127 * 2.001 / 255, rtol=1e-6)
    assert not np.array_equal(ours["Conv2d_0"], release["models"]["frozen graph"].endpoints(images)["Conv2d_0"])


def test_float_weights_are_refused(release):
    pb = fixture_path("models/mobilenet_v1_0.25_128_2017/frozen_graph.pb")
    if pb is None:
        pytest.skip(missing_reason("models/mobilenet_v1_0.25_128_2017/frozen_graph.pb"))
    with pytest.raises(VariableMismatchError, match="act_quant/min"):
        load_fake_quant(pb)


def test_fold_matches_float_batch_norm_identity():
    """The contrib.quantize fold is the usual BN identity: conv(x, w*m) + (beta - mean*m) == BN(conv(x, w))."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 6, 6, 5)).astype(np.float32)
    w = rng.standard_normal((3, 3, 5, 1)).astype(np.float32)
    g, b, m = (rng.standard_normal(5).astype(np.float32) for _ in range(3))
    v = rng.uniform(0.1, 2, 5).astype(np.float32)
    wf, bf, _ = fold_batch_norm_quant(w, g, b, m, v, 1e-3, depthwise=True)
    pads = K.same_pads(6, 6, 3, 1)
    folded = K.depthwise_conv2d_fma(x, wf, 1, pads) + bf
    conv = K.depthwise_conv2d_fma(x, w, 1, pads).astype(np.float64)
    expected = g * (conv - m) / np.sqrt(v.astype(np.float64) + 1e-3) + b
    assert_close(folded, expected, "kernel_vs_twin", "folded depthwise")
    assert architectures.BATCH_NORM_EPSILON == 1e-3
