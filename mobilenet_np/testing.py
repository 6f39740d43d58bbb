"""Where the real-model fixtures live, for tests, notebooks and benchmarks.

The fixtures (pretrained files and photos) are never part of the project. They are found at
``$MOBILENET_NP_FIXTURES`` or, by default, at ``../shared/fixtures`` beside the project checkout.
"""
import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def fixtures_dir():
    """The fixtures folder, or ``None`` when it is absent."""
    env = os.environ.get("MOBILENET_NP_FIXTURES")
    candidates = [Path(env)] if env else [_REPO_ROOT.parent / "shared" / "fixtures", Path.cwd().parent / "shared" / "fixtures"]
    for path in candidates:
        if path.is_dir():
            return path
    return None


def fixture_path(relative):
    """Path of one fixture file (relative to the fixtures folder), or ``None`` when it is not there."""
    root = fixtures_dir()
    if root is None:
        return None
    path = root / relative
    return path if path.exists() else None


def missing_reason(relative):
    """A sentence saying why a fixture-based check cannot run here."""
    root = fixtures_dir()
    if root is None:
        return ("real-model fixtures not found: set MOBILENET_NP_FIXTURES to the fixtures folder "
                "(default ../shared/fixtures beside the checkout)")
    return f"fixture {relative} not found under {root}"


# ---------------------------------------------------------------------------------------------------------
# Tolerances: the one place every numeric comparison (tests, notebooks, benchmarks) takes its limits from.
# ---------------------------------------------------------------------------------------------------------
TOLERANCES = {
    # Numba kernel vs its NumPy twin. Both compute in float32 but sum in different orders; a sum of at most
    # 9 * 64 products of O(1) values has a rounding error of a few 1e-7 relative, so 1e-5 (the bound
    # TensorFlow's own depthwise tests use against their NumPy reference) leaves a margin of ~10x.
    "kernel_vs_twin": dict(rtol=1e-5, atol=1e-5),
    # Whole model vs TensorFlow, logits. Issue 2 asks for max |d logits| <= 1e-4: float32 reorderings and
    # BN folding change results by ~1e-6 relative per layer over 28 layers on logits of magnitude ~10-20.
    "logits_vs_tf": dict(rtol=0.0, atol=1e-4),
    # Intermediate endpoints vs TensorFlow, relative to the tensor's largest value (activations reach 6).
    # Folding BN multiplies a kernel by gamma / sqrt(var + eps), up to ~100 for low-variance depthwise
    # channels, which scales the float32 rounding of that layer alike. Measured on the 2018 V1 0.25/224
    # graph, 13 photos: worst 2.8e-4 absolute (Conv2d_3_pointwise, values up to 6), i.e. 4.6e-5 of the
    # tensor's scale; 1e-4 of the scale leaves a margin of 2x.
    "endpoint_vs_tf": dict(rtol=0.0, atol=0.0, scaled_atol=1e-4),
    # Softmax probabilities vs Keras running the same weights (values in [0, 1]; measured 2e-8 on V1 0.5
    # and V2 0.35 with realistic random weights, so 1e-5 is loose but catches any real layout mistake,
    # which moves probabilities by 1e-2 or more).
    "probabilities_vs_keras": dict(rtol=0.0, atol=1e-5),
    # TF-built networks with *random* weights. These are less well conditioned than trained ones: rounding
    # errors grow ~1.3x per layer, and TF's own float32 logits differ from a float64 run of the same weights
    # by 1.1e-4 to 2.1e-4 (measured, V1 0.5 and V2 0.5/1.0), so no float32 implementation can promise 1e-4
    # against TF there. The bound is therefore relative to TF's own error, measured in the same test:
    # |ours - TF32| <= max(the trained-weights bound, factor * max|TF32 - TF64|), per tensor.
    "random_net_vs_tf": dict(factor=2.0),
    # Numba engine vs NumPy engine over the whole network (same weights, different summation order), and
    # folded vs unfolded batch norm. Errors are relative to the size of a tensor's terms, not of each element,
    # so the bound scales with max |expected| of the tensor ("scaled_atol"). Measured worst case (random
    # weights, 2 images): V1 0.25 7e-7 (engines) / 1.1e-6 (BN folding); V2 0.5/160 6.8e-5 / 1.0e-4 -- the V2
    # residual stream carries rounding errors through 17 blocks. 3e-4 leaves a margin of 3x over the worst.
    "engine_vs_engine": dict(rtol=0.0, atol=0.0, scaled_atol=3e-4),
    # Fake-quant ("quantops") model vs TensorFlow running the _quant frozen graph, per endpoint. Activations
    # lie on a grid of step `scale` (the layer's nudged act_quant scale), so differences count in steps; the
    # bound is the fraction of elements within one step (the target, 99.9 %). It is not slack: our
    # kernels reproduce TF 2.21's accumulation order (FMA chains, kernels/fma_conv.py) and its Rsqrt
    # (kernels/quant_fold.py), and measured 100 % identical on all 30 endpoints of 13 photos (x86-64 with FMA).
    # Plain multiply-then-add kernels flip single elements by one step; the flips cascade through the
    # network and leave only 94.8 % within one step at Conv2d_13_pointwise (measured), failing this bound.
    "fake_quant_vs_tf": dict(within_one_step=0.999),
    # Softmax of bit-identical fake-quant logits: ours sums exp in float64, TF's Eigen kernel in float32.
    # Measured max |diff| 1.2e-7 (about one float32 ulp of the largest probability); 1e-6 leaves 8x margin.
    "fake_quant_predictions_vs_tf": dict(rtol=0.0, atol=1e-6),
    # _quant checkpoint -> uint8 converter vs the official 2018 .tflite: how many of the 463,856 weights and
    # 3,737 int32 biases may differ (each by at most one step). Every scale and zero point must be identical.
    # Measured: recipe "tf1" (our reconstruction of the 2018 arithmetic) 11 weights, 0 biases; recipe "tf2"
    # (TF 2.21's Rsqrt and fake-quant, i.e. FakeQuantModel's weights) 143 weights, 1 bias -- the file was
    # made with 2018 TF, whose folding and rounding differ in the last ulp. Limits: measured + ~25 %.
    "converter_vs_tflite": {"tf1": dict(weights=14, biases=0), "tf2": dict(weights=180, biases=2)},
    # Integer (uint8 / int8) model vs the TFLite interpreter, every tensor: exact, 0 LSB. Integer arithmetic
    # leaves no rounding noise to allow for; measured 0 mismatches in 2.8e8 elements (5 uint8 files with 13
    # photos, an int8 file with 8 images; reference kernels and XNNPACK). A difference is a wrong formula.
    "integer_vs_tflite": dict(rtol=0.0, atol=0.0),
    # A float .tflite run by our float kernels vs TFLite's float kernels (XNNPACK and reference), per tensor,
    # relative to the tensor's largest value. Different summation orders in float32; measured worst 3.7e-5 of
    # the tensor's scale (Conv2d_13_pointwise, V1 0.25/224, 13 photos); 1e-4 leaves a margin of 2.7x.
    "float_tflite_vs_tflite": dict(rtol=0.0, atol=0.0, scaled_atol=1e-4),
}


def max_difference(actual, expected, name=""):
    """``(max |actual - expected|, index of the maximum)``; raises on a shape mismatch."""
    import numpy as np

    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} != expected {expected.shape}")
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    if diff.size == 0:
        return 0.0, ()
    index = np.unravel_index(np.argmax(diff), diff.shape)
    return float(diff[index]), tuple(int(i) for i in index)


def assert_close(actual, expected, kind, name=""):
    """Assert ``|actual - expected| <= atol + scaled_atol * max|expected| + rtol * |expected|`` elementwise, with
    the tolerances of ``kind``; the failure
    message names the tensor, the worst index and both values."""
    import numpy as np

    tol = TOLERANCES[kind]
    actual, expected = np.asarray(actual), np.asarray(expected)
    worst, index = max_difference(actual, expected, name)
    if not np.all(np.isfinite(actual)):
        raise AssertionError(f"{name}: non-finite values in the result")
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    limit = tol["atol"] + tol.get("scaled_atol", 0.0) * scale + tol["rtol"] * np.abs(expected.astype(np.float64))
    excess = np.abs(actual.astype(np.float64) - expected) - limit
    if np.any(excess > 0):
        bad = np.unravel_index(np.argmax(excess), excess.shape)
        raise AssertionError(
            f"{name}: {int(np.sum(excess > 0))} of {excess.size} elements out of tolerance {tol}; worst at "
            f"index {tuple(int(i) for i in bad)}: got {actual[bad]!r}, expected {expected[bad]!r}; "
            f"max |diff| {worst:.3g} at {index}")
    return worst
