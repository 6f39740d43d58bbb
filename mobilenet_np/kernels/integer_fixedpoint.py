"""Integer (TFLite uint8 / int8) arithmetic: fixed-point primitives and requantization, two rounding modes.

A quantized tensor holds integers ``q`` standing for real values ``r = s * (q - z)`` (scale ``s``, zero point
``z``; uint8 per-tensor models, or int8 with per-channel weight scales and weight zero point 0). A convolution
accumulates ``acc = bias + sum (q_w - z_w)(q_x - z_x)`` exactly in int32 and must then produce
``q_y = z_y + acc * M`` with the real multiplier ``M = s_x s_w / s_y`` (per output channel for int8 weights),
clamped to the fused activation's range. TFLite does that step in two different ways:

**rounding="reference"** — the built-in reference kernels (``OpResolverType.BUILTIN_REF``; the golden oracle),
gemmlowp fixed point, computed in double then integers only:

* ``QuantizeMultiplier(M)``: ``M = f * 2**e`` with ``f`` in [0.5, 1) (``frexp``); ``qm = round_half_away(f * 2**31)``
  (if that reaches ``2**31``: ``qm = 2**30``, ``e += 1``); ``e < -31`` gives ``(0, 0)``; ``shift = e``.
  ``M`` itself is computed in double, ``double(s_x) * double(s_w[c]) / double(s_y)``, for per-channel parameters
  (int8 convolutions, per-channel FULLY_CONNECTED), but as ``double(float32(s_x * s_w)) / double(s_y)`` for
  TFLite's legacy per-tensor parameters (uint8 convolutions, per-tensor FULLY_CONNECTED); see
  :func:`conv_multipliers`.
* ``SRDHM(a, b)`` (SaturatingRoundingDoublingHighMul): ``(a*b + (2**30 if a*b >= 0 else 1 - 2**30)) / 2**31``
  with C truncating division, i.e. ``round(a*b / 2**31)`` with ties toward +inf; ``SRDHM(-2**31, -2**31) = 2**31-1``.
* ``RDBPOT(x, e)`` (RoundingDivideByPOT): ``x / 2**e`` rounded to nearest, ties away from zero:
  ``(x >> e) + (1 if (x & (2**e-1)) > ((2**e-1) >> 1) + (x < 0) else 0)``.
* ``MBQM(x, qm, shift)`` (MultiplyByQuantizedMultiplier) ``= RDBPOT(SRDHM(x * 2**max(shift, 0), qm), max(-shift, 0))``
  — two roundings. Output: ``q_y = clamp(MBQM(acc, qm, shift) + z_y, act_min, act_max)``.
* Exception, measured: the reference interpreter's int8 **per-channel FULLY_CONNECTED** rounds once,
  ``(acc * qm + 2**(30 - shift)) >> (31 - shift)`` (round half up; 0 of 300,000 outputs differ, while the double
  rounding above differs in 39). Kernels take this as ``mode = 2`` (:data:`MODE_SINGLE_ROUNDING`).

**rounding="xnnpack"** — the default ``Interpreter`` hands uint8/int8 convolutions to the XNNPACK delegate,
which requantizes in float32 and rounds half to even:

* ``s = float32(float32(s_x * s_w) / s_y)`` (float32 arithmetic, per channel for int8 weights);
* ``v = float32(acc) * s`` (float32); ``v = clamp(v, act_min - z_y, act_max - z_y)``;
  ``q_y = rint(v) + z_y`` (round half to even).

The two agree except where ``acc * M`` lies within a rounding step of a half-integer, so outputs differ by at
most 1 LSB per layer (differences then propagate).

Activation ranges (``CalculateActivationRangeQuantized``): with ``Q(f) = z_y + round_half_away(float32(f / s_y))``
and the type's range [qmin, qmax] (uint8 [0, 255], int8 [-128, 127]): NONE [qmin, qmax]; RELU
[max(qmin, Q(0)), qmax]; RELU6 [max(qmin, Q(0)), min(qmax, Q(6))]; RELU_N1_TO_1 [max(qmin, Q(-1)), min(qmax, Q(1))].

Every Numba kernel here sits beside a NumPy twin ``*_numpy`` with the same signature (int64 arithmetic in NumPy,
with C's truncating division written out: ``>>`` alone floors negative numbers).
"""
import math

import numpy as np
from numba import njit

ROUNDING_MODES = ("reference", "xnnpack")
MODE_REFERENCE, MODE_XNNPACK = 0, 1
#: Internal mode of the reference interpreter's int8 per-channel FULLY_CONNECTED (see module doc).
MODE_SINGLE_ROUNDING = 2

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
_RANGES = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127), np.dtype(np.int16): (-32768, 32767)}


def rounding_code(rounding):
    """The integer code the kernels take for ``rounding`` ``"reference"`` or ``"xnnpack"``."""
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")
    return ROUNDING_MODES.index(rounding)


def dtype_range(dtype):
    """``(qmin, qmax)`` of an integer tensor type."""
    return _RANGES[np.dtype(dtype)]


def round_half_away(x):
    """C ``round()``: to nearest, ties away from zero (exact for float32/float64 inputs)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_multiplier(real_multiplier):
    """TFLite ``QuantizeMultiplier``: ``(qm, shift)`` with ``real ~= qm * 2**(shift - 31)``, qm in [2**30, 2**31)."""
    m = float(real_multiplier)
    if m == 0.0:
        return 0, 0
    f, e = math.frexp(m)
    q = f * (1 << 31)
    qm = int(math.copysign(math.floor(abs(q) + 0.5), q))
    if qm == (1 << 31):
        qm //= 2
        e += 1
    if e < -31:
        return 0, 0
    return qm, e


def activation_range(activation, scale, zero_point, dtype):
    """``(act_min, act_max)`` of a fused activation on an output of ``scale``/``zero_point`` (see module doc)."""
    qmin, qmax = dtype_range(dtype)
    scale = np.float32(scale)

    def q(f):
        return int(zero_point) + int(round_half_away(np.float32(np.float32(f) / scale)))

    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, q(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise ValueError(f"fused activation {activation} has no integer form")


# ------------------------------------------------------------------------------------- scalar primitives
@njit(cache=True)
def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul of two int32 values (see module doc)."""
    if a == b and a == -2147483648:
        return np.int64(2147483647)
    p = np.int64(a) * np.int64(b)
    s = p + (np.int64(1073741824) if p >= 0 else np.int64(1 - 1073741824))
    if s >= 0:
        return s >> 31
    return -((-s) >> 31)


@njit(cache=True)
def rdbpot(x, exponent):
    """RoundingDivideByPOT: ``x / 2**exponent``, to nearest, ties away from zero."""
    x = np.int64(x)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@njit(cache=True)
def mbqm(x, qm, shift):
    """MultiplyByQuantizedMultiplier: ``RDBPOT(SRDHM(x * 2**left, qm), right)`` (double rounding)."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rdbpot(srdhm(np.int64(x) << left, qm), right)


@njit(cache=True)
def requantize_one(acc, qm, shift, fscale, zero_point, act_min, act_max, mode):
    """One accumulator to an output integer: ``mode`` 0 = reference fixed point (MBQM), 1 = XNNPACK float,
    2 = single rounding (reference int8 per-channel FULLY_CONNECTED)."""
    if mode == 0:
        v = mbqm(acc, qm, shift) + zero_point
        return min(max(v, act_min), act_max)
    if mode == 2:
        v = ((np.int64(acc) * qm + (np.int64(1) << (30 - shift))) >> (31 - shift)) + zero_point
        return min(max(v, act_min), act_max)
    f = xnnpack_centered(np.float32(acc), fscale, np.float32(act_min - zero_point), np.float32(act_max - zero_point))
    return np.int64(f) + zero_point


@njit(cache=True)
def xnnpack_centered(acc, fscale, lo, hi):
    """XNNPACK's requantization before its zero point is added, all float32: ``rint(clamp(acc * fscale, lo, hi))``
    with ``lo = act_min - z_y``, ``hi = act_max - z_y`` (round half to even)."""
    return np.rint(min(max(acc * fscale, lo), hi))


# NumPy twins of the primitives (elementwise, broadcasting, int64).
def srdhm_numpy(a, b):
    """NumPy twin of :func:`srdhm` (arrays)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    p = a * b
    s = p + np.where(p >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), np.int64(INT32_MAX), q)


def rdbpot_numpy(x, exponent):
    """NumPy twin of :func:`rdbpot` (arrays; ``exponent`` may be an array)."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def mbqm_numpy(x, qm, shift):
    """NumPy twin of :func:`mbqm` (arrays; ``qm``/``shift`` broadcast, e.g. per channel on the last axis)."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rdbpot_numpy(srdhm_numpy(np.asarray(x, np.int64) << left, qm), right)


def requantize_numpy_values(acc, qm, shift, fscale, zero_point, act_min, act_max, mode):
    """NumPy twin of :func:`requantize_one` on arrays (per-channel parameters broadcast on the last axis)."""
    if mode == MODE_REFERENCE:
        v = mbqm_numpy(acc, qm, shift) + zero_point
        return np.clip(v, act_min, act_max)
    if mode == MODE_SINGLE_ROUNDING:
        shift = np.asarray(shift, np.int64)
        v = ((np.asarray(acc, np.int64) * np.asarray(qm, np.int64) + (np.int64(1) << (30 - shift)))
             >> (31 - shift)) + zero_point
        return np.clip(v, act_min, act_max)
    f = np.asarray(acc).astype(np.float32) * np.asarray(fscale, np.float32)
    f = np.clip(f, np.float32(act_min - zero_point), np.float32(act_max - zero_point))
    return np.rint(f).astype(np.int64) + zero_point


# ------------------------------------------------------------------------------------- array kernels
@njit(cache=True)
def requantize(acc, qm, shift, fscale, zero_point, act_min, act_max, mode):
    """``acc`` int32/int64 ``[M, C]`` -> int32 ``[M, C]``: per-channel ``qm[c]``, ``shift[c]``, ``fscale[c]``."""
    m, c = acc.shape
    y = np.empty((m, c), dtype=np.int32)
    for i in range(m):
        for k in range(c):
            y[i, k] = requantize_one(acc[i, k], qm[k], shift[k], fscale[k], zero_point, act_min, act_max, mode)
    return y


def requantize_numpy(acc, qm, shift, fscale, zero_point, act_min, act_max, mode):
    """NumPy twin of :func:`requantize`."""
    return requantize_numpy_values(acc, qm, shift, fscale, zero_point, act_min, act_max, mode).astype(np.int32)


def conv_multipliers(input_scale, filter_scales, output_scale, channels, float32_product=False):
    """Per-output-channel ``(qm, shift, fscale)`` of a conv/FC layer, both rounding modes.

    Reference: ``qm``/``shift`` = ``QuantizeMultiplier(M)`` with, as TFLite's ``Prepare`` computes it,
    ``M = double(s_x) * double(s_w[c]) / double(s_y)`` for the per-channel parameters (int8 convolutions,
    per-channel FULLY_CONNECTED), but ``M = double(float32(s_x * s_w)) / double(s_y)`` — the product rounded to
    float32 first — for the legacy per-tensor parameters (``float32_product=True``: uint8 CONV_2D and
    DEPTHWISE_CONV_2D, per-tensor FULLY_CONNECTED). The two can differ in the last bits of ``qm`` and so,
    rarely, by 1 LSB in an output (seen on ``mobilenet_v1_0.25_224_quant.tflite``).
    XNNPACK: ``fscale = float32(float32(s_x * s_w[c]) / s_y)``. A per-tensor ``filter_scales`` of one entry is
    repeated for every channel.
    """
    ws = np.asarray(filter_scales, np.float32).reshape(-1)
    if ws.size == 1:
        ws = np.repeat(ws, channels)
    qm = np.empty(channels, np.int32)
    shift = np.empty(channels, np.int32)
    for c in range(channels):
        if float32_product:
            product = float(np.float32(np.float32(input_scale) * ws[c]))
        else:
            product = float(np.float32(input_scale)) * float(ws[c])
        qm[c], shift[c] = quantize_multiplier(product / float(np.float32(output_scale)))
    fscale = (np.float32(input_scale) * ws).astype(np.float32) / np.float32(output_scale)
    return qm, shift, fscale.astype(np.float32)
