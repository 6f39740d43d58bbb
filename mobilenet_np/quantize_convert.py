"""Integer (uint8) parameters from a quantization-aware ``_quant`` model: what the 2018 TFLite converter derived.

Per conv layer (SEMANTICS.md D.1/D.2; the rules marked *measured* were fitted to the official
``mobilenet_v1_0.25_128_quant.tflite`` and are checked against it by ``tests/test_quantize_convert.py``)::

    quantization params (toco's ChooseQuantizationParams, in double; the file stores float32 scales):
        scale = (max - min) / (qmax - qmin);  zero point from whichever end (min or max) has the smaller
        error, rounded half away and clamped to [qmin, qmax]
        weights: weights_quant range, narrow [1, 255];  activations: act_quant range, [0, 255]
    weights:  q_w = fake-quant grid index of the folded weights (+ qmin), TFLite layout
    bias:     int32, scale_b = float32(scale_in * scale_w) of the *double* scales   (measured: 28 of 28)
              q_b = round_half_away(b_fold / scale_b)
    requantization (TFLite computes it when it loads the model, from the stored float32 scales):
              M = scale_in * scale_w / scale_out in double;  M = f * 2**shift, f in [0.5, 1);
              multiplier = round_half_away(f * 2**31)  (2**31 -> 2**30 with shift + 1)
    fused ReLU6 clamp: [max(0, Q(0)), min(255, Q(6))],  Q(v) = zp_out + round_half_away(v / scale_out)
    model input: scale 1 / std, zero point round(mean)   (the official files: mean = std = 128)

How the folded weights are computed (``recipe``):

* ``"tf1"`` (default) -- the best reconstruction found of the 2018 arithmetic: ``m = gamma * (1 / sqrtf(var +
  eps))`` (correctly rounded float32 square root, then a division) and the fake-quant grid index computed as
  ``floor((clamp(w_fold) - nudged_min) * (1 / scale) + 0.5)`` in float32. Measured: 11 of 463,856 weights
  differ by one step from the official file, biases all identical. Not a confirmed reconstruction.
* ``"tf2"`` -- exactly the weights of :class:`~mobilenet_np.quantized.FakeQuantModel` (TF 2.21's ``Rsqrt``
  and ``FakeQuantWithMinMaxVars``): 143 weights and 1 bias differ by one step from the 2018 file.

Layouts are TFLite's: conv/pointwise/logits weights ``[C_out, KH, KW, C_in]`` (OHWI), depthwise
``[1, KH, KW, C]``. The result is a plain dict keyed by slim layer name (``"Conv2d_0"`` ...
``"Logits/Conv2d_1c_1x1"``), plus ``"input"``, ``"AvgPool_1a"`` (shares the last layer's output
quantization, as TFLite requires) and ``"Predictions"`` (softmax output: scale 1/256, zero point 0).
"""
import math

import numpy as np

from .errors import MobileNetError
from .kernels.fake_quant import nudge_full

TFLITE_OP = {"conv": "CONV_2D", "pointwise": "CONV_2D", "logits": "CONV_2D", "depthwise": "DEPTHWISE_CONV_2D"}
RECIPES = ("tf1", "tf2")


def round_half_away(v):
    """C ``std::round``: halves away from zero."""
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


def choose_quantization_params(lo, hi, narrow_range=False, num_bits=8):
    """``(scale as double, zero_point)`` as toco computed them (gemmlowp's ChooseQuantizationParams)."""
    qmin, qmax = (1 if narrow_range else 0), (1 << num_bits) - 1
    lo, hi = float(lo), float(hi)
    if lo == hi:
        return 0.0, 0
    scale = (hi - lo) / (qmax - qmin)
    from_min, from_max = qmin - lo / scale, qmax - hi / scale
    zero = from_min if abs(qmin) + abs(lo / scale) < abs(qmax) + abs(hi / scale) else from_max
    return scale, (qmin if zero < qmin else qmax if zero > qmax else round_half_away(zero))


def quantize_multiplier(real_multiplier):
    """TFLite's ``QuantizeMultiplier``: ``(int32 multiplier, shift)`` with ``M ~ multiplier * 2**(shift - 31)``."""
    if real_multiplier == 0.0:
        return 0, 0
    f, shift = math.frexp(real_multiplier)
    q = round_half_away(f * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q), int(shift)


def _to_tflite_layout(w, op):
    """TF HWIO (depthwise ``[K, K, C, 1]``) -> TFLite OHWI (depthwise ``[1, K, K, C]``)."""
    if op == "depthwise":
        return np.ascontiguousarray(w.reshape(1, w.shape[0], w.shape[1], w.shape[2] * w.shape[3]))
    return np.ascontiguousarray(np.transpose(w, (3, 0, 1, 2)))


def _tf1_folded(model, layer, variables):
    """``(grid index q - qmin, b_fold)`` with the 2018 arithmetic (see the module docstring)."""
    f32 = np.float32
    prefix = f"{model.architecture.scope}/{layer.name}/"
    w = np.asarray(variables[prefix + ("depthwise_weights" if layer.op == "depthwise" else "weights")], f32)
    if layer.batch_norm:
        g, b, mean, var = (np.asarray(variables[prefix + "BatchNorm/" + k], f32)
                           for k in ("gamma", "beta", "moving_mean", "moving_variance"))
        m = (g * (f32(1.0) / np.sqrt((var + f32(model.architecture.batch_norm_epsilon)).astype(f32)))).astype(f32)
        w = (w * (m.reshape(w.shape[2], w.shape[3]) if layer.op == "depthwise" else m)).astype(f32)
        bias = (b - mean * m).astype(f32)
    else:
        bias = np.asarray(variables[prefix + "biases"], f32)
    lo, hi = model.quant_ranges[layer.name]["weights_quant"]
    nudged_min, nudged_max, scale, _, _ = nudge_full(lo, hi, model.num_bits, model.weights_narrow_range)
    clamped = np.maximum(np.minimum(w, nudged_max), nudged_min)
    index = np.floor((clamped - nudged_min) * (f32(1.0) / scale) + f32(0.5)).astype(np.int64)
    return index, bias


def integer_parameters(model, variables=None, input_mean=128.0, input_std=128.0, recipe="tf1"):
    """The uint8 model's parameters from a :class:`~mobilenet_np.quantized.FakeQuantModel` (module docstring).

    ``variables`` (the model's source variables) are needed for ``recipe="tf1"``, which refolds batch norm.
    """
    if recipe not in RECIPES:
        raise MobileNetError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    if recipe == "tf1" and variables is None:
        raise MobileNetError('recipe="tf1" refolds batch norm and needs the model\'s variables')
    f32 = np.float32
    arch = model.architecture
    in_scale_d, in_zp = 1.0 / float(input_std), round_half_away(float(input_mean))
    out = {"input": {"scale": f32(in_scale_d), "zero_point": in_zp}}
    scale_in_d, zp_in = in_scale_d, in_zp
    qmin_w = 1 if model.weights_narrow_range else 0
    for layer in arch.all_layers():
        name = layer.name
        ranges = model.quant_ranges[name]
        scale_w_d, zp_w = choose_quantization_params(*ranges["weights_quant"], model.weights_narrow_range)
        scale_out_d, zp_out = choose_quantization_params(*ranges["act_quant"], False)
        if recipe == "tf1":
            index, b_fold = _tf1_folded(model, layer, variables)
        else:
            _, _, tf_scale, _, tf_zp = nudge_full(*ranges["weights_quant"], model.num_bits, model.weights_narrow_range)
            index = np.rint(model.quantized_weights(name) / tf_scale).astype(np.int64) + tf_zp - qmin_w
            b_fold = model.folded[name][1]
        q_w = index + qmin_w
        if q_w.min() < qmin_w or q_w.max() > 255:
            raise MobileNetError(f"{name}: quantized weights outside [{qmin_w}, 255]")
        bias_scale = f32(scale_in_d * scale_w_d)
        q_b = np.array([round_half_away(float(b) / float(bias_scale)) for b in b_fold], np.int64)
        if np.abs(q_b).max(initial=0) >= 2**31:
            raise MobileNetError(f"{name}: a bias does not fit in int32")
        s_in, s_w, s_out = f32(scale_in_d), f32(scale_w_d), f32(scale_out_d)
        multiplier, shift = quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
        if layer.relu6:
            act_min = max(0, zp_out + round_half_away(float(f32(0.0) / s_out)))
            act_max = min(255, zp_out + round_half_away(float(f32(6.0) / s_out)))
        else:
            act_min, act_max = 0, 255
        out[name] = {
            "op": TFLITE_OP[layer.op], "stride": layer.stride,
            "weights": _to_tflite_layout(q_w.astype(np.uint8), layer.op),
            "weights_scale": s_w, "weights_zero_point": zp_w,
            "bias": q_b.astype(np.int32), "bias_scale": bias_scale,
            "input_scale": s_in, "input_zero_point": zp_in,
            "output_scale": s_out, "output_zero_point": zp_out,
            "multiplier": multiplier, "shift": shift, "act_min": act_min, "act_max": act_max,
        }
        if layer is arch.layers[-1]:
            out[arch.feature_endpoint] = {"scale": s_out, "zero_point": zp_out}
        if layer.op != "logits":
            scale_in_d, zp_in = scale_out_d, zp_out
    out["Predictions"] = {"scale": f32(1.0 / 256.0), "zero_point": 0}
    return out


def convert_quant_weights(path, input_mean=128.0, input_std=128.0, recipe="tf1", **kw):
    """:func:`integer_parameters` of the ``_quant`` model at ``path`` (checkpoint, frozen graph or our HDF5)."""
    from . import read_weights
    from .quantized import FakeQuantModel

    weights = read_weights(path)
    model = FakeQuantModel(weights.architecture(), weights.variables, weights=weights, **kw)
    return integer_parameters(model, weights.variables, input_mean, input_std, recipe)
