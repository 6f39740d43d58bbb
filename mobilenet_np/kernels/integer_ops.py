"""Integer (TFLite uint8 / int8) pooling, residual ADD, MEAN, SOFTMAX, (de)quantization and PAD.

Each formula is TFLite's reference kernel (``OpResolverType.BUILTIN_REF``); ``/`` on integers is C's
truncating division and ``MBQM`` is :func:`~mobilenet_np.kernels.integer_fixedpoint.mbqm`.

* **AVERAGE_POOL_2D** (input and output share scale and zero point): per output, ``sum`` of the in-image
  inputs of the window and their ``count``; ``out = (sum + count/2) / count`` if ``sum > 0`` else
  ``(sum - count/2) / count`` (round half away from zero), clamped to the activation range.
* **ADD**: ``left_shift = 20``; with ``m = 2 max(s_a, s_b)`` (float32), multipliers
  ``QuantizeMultiplier(s_a / m)``, ``(s_b / m)`` and ``(m / (2**20 s_y))`` (double);
  ``a' = MBQM((a - z_a) * 2**20, qm_a, shift_a)``, ``b'`` likewise,
  ``out = clamp(MBQM(a' + b', qm_y, shift_y) + z_y, act_min, act_max)``.
* **MEAN** over axes (here: H and W of NHWC): ``(qm, shift) = QuantizeMultiplier(s_x / s_y)``; with ``N`` the
  number of averaged elements, ``k = min(floor(log2 N), 32, 31 + shift)``, ``qm' = (qm * 2**k) / N`` (int64),
  ``shift' = shift - k``; ``out = clamp(MBQM(sum(x) - N z_x, qm', shift') + z_y)``.

The XNNPACK delegate (``rounding="xnnpack"``) computes two of these differently:

* **ADD** (qu8/qs8 vadd): ``r_a = float32(s_a / s_y)``, ``r_b = float32(s_b / s_y)``; ``e`` = the binary exponent
  of ``max(r_a, r_b)`` (``max = 1.f * 2**e``), ``shift = 20 - e``; ``m_a = rint(r_a * 2**shift)``,
  ``m_b = rint(r_b * 2**shift)`` (integers below 2**21); ``acc = m_a (a - z_a) + m_b (b - z_b) + 2**(shift-1)``;
  ``out = clamp((acc >> shift) + z_y)`` (arithmetic shift: round half up).
* **MEAN** (qs8/qu8 reduce): ``scale = float32(float32(s_x / s_y) * float32(1 / N))``;
  ``out = clamp(rint(float32(sum(x) - N z_x) * scale) + z_y)``. (On the fixtures' data every tie-breaking variant
  of this formula gives the same bytes, so only its rounding-free part is confirmed.)
* **SOFTMAX** (β from the options; output scale 1/256): a float32 table ``T[255 - v] = expf(float32(-s_x β) v)``
  for ``v = 0..255``; per row ``mx = max q``, ``e_j = T[255 - mx + q_j]``, ``S = sum_j e_j`` accumulated in
  float32 in index order, ``inv = 1 / (S * s_y)`` (float32), ``p_j = e_j * inv``; uint8 output:
  ``int(p_j + 0.5f)`` (float32 add, then truncation); int8 output: ``round_half_away(p_j) + z_y``; clamp.
* **QUANTIZE** float -> int: ``q = clamp(round_half_away(float32(x / s)) + z)``; int -> int (requantize):
  ``q = clamp(MBQM(x - z_x, QuantizeMultiplier(s_x / s_y)) + z_y)``.
* **DEQUANTIZE**: ``x = float32(double(s) * (q - z))``.
* **PAD** (quantized): new entries hold the output zero point.
"""
import numpy as np
from numba import njit

from .integer_fixedpoint import mbqm, mbqm_numpy, quantize_multiplier, round_half_away

# the digest of the sibling modules compiled into this one's kernels (see cache_key.py)
COMPILED_IN = "13fc0d4c73442bbc"


# ------------------------------------------------------------------------------------ AVERAGE_POOL_2D
@njit(cache=True)
def int_avg_pool(x, filter_hw, strides, pads, act_min, act_max):
    n, h, w, c = x.shape
    fh, fw = filter_hw
    sh, sw = strides
    top, bottom, left, right = pads
    oh = (h + top + bottom - fh) // sh + 1
    ow = (w + left + right - fw) // sw + 1
    y = np.empty((n, oh, ow, c), dtype=np.int32)
    acc = np.empty(c, dtype=np.int64)
    for b in range(n):
        for i in range(oh):
            y0 = max(0, i * sh - top)
            y1 = min(h, i * sh - top + fh)
            for j in range(ow):
                x0 = max(0, j * sw - left)
                x1 = min(w, j * sw - left + fw)
                acc[:] = 0
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        for k in range(c):
                            acc[k] += x[b, iy, ix, k]
                count = (y1 - y0) * (x1 - x0)
                for k in range(c):
                    y[b, i, j, k] = min(max(rounded_mean(acc[k], count), act_min), act_max)
    return y


@njit(cache=True)
def rounded_mean(s, count):
    """AVERAGE_POOL_2D's mean of ``count`` integers from their sum ``s``: to nearest, ties away from zero."""
    half = count // 2
    if s > 0:
        return (s + half) // count
    return -((-s + half) // count)


def int_avg_pool_numpy(x, filter_hw, strides, pads, act_min, act_max):
    """NumPy twin of :func:`int_avg_pool`."""
    fh, fw = filter_hw
    sh, sw = strides
    top, bottom, left, right = pads
    n, h, w, c = x.shape
    oh = (h + top + bottom - fh) // sh + 1
    ow = (w + left + right - fw) // sw + 1
    y = np.empty((n, oh, ow, c), np.int32)
    xi = x.astype(np.int64)
    for i in range(oh):
        y0, y1 = max(0, i * sh - top), min(h, i * sh - top + fh)
        for j in range(ow):
            x0, x1 = max(0, j * sw - left), min(w, j * sw - left + fw)
            s = xi[:, y0:y1, x0:x1, :].sum(axis=(1, 2))
            y[:, i, j, :] = np.clip(rounded_mean_numpy(s, (y1 - y0) * (x1 - x0)), act_min, act_max)
    return y


def rounded_mean_numpy(sums, count):
    """AVERAGE_POOL_2D's integer mean of ``count`` values from their int64 ``sums``: to nearest, ties away from
    zero (C's truncating division)."""
    return np.where(sums > 0, (sums + count // 2) // count, -((-sums + count // 2) // count))


# ------------------------------------------------------------------------------------ ADD
ADD_LEFT_SHIFT = 20     # TFLite's uint8/int8 ADD scales both inputs by 2**20 before rescaling them


def add_params(scale_a, scale_b, scale_out, left_shift=ADD_LEFT_SHIFT):
    """``(qm_a, shift_a, qm_b, shift_b, qm_out, shift_out)`` of TFLite's uint8/int8 ADD (see module doc)."""
    twice_max = float(np.float32(2.0) * max(np.float32(scale_a), np.float32(scale_b)))
    qa, sa = quantize_multiplier(float(np.float32(scale_a)) / twice_max)
    qb, sb = quantize_multiplier(float(np.float32(scale_b)) / twice_max)
    qo, so = quantize_multiplier(twice_max / (float(1 << left_shift) * float(np.float32(scale_out))))
    return qa, sa, qb, sb, qo, so


@njit(cache=True)
def add_one(da, db, qa, sa, qb, sb, qo, so, left_shift):
    """Reference ADD of one pair of zero-point-free inputs ``da = a - z_a``, ``db = b - z_b``: the output
    before its zero point and clamp."""
    va = mbqm(np.int64(da) << left_shift, qa, sa)
    vb = mbqm(np.int64(db) << left_shift, qb, sb)
    return mbqm(va + vb, qo, so)


@njit(cache=True)
def int_add(a, b, a_zp, b_zp, params, left_shift, out_zp, act_min, act_max):
    qa, sa, qb, sb, qo, so = params
    af = a.reshape(-1)
    bf = b.reshape(-1)
    y = np.empty(af.size, dtype=np.int32)
    for i in range(af.size):
        v = add_one(np.int64(af[i]) - a_zp, np.int64(bf[i]) - b_zp, qa, sa, qb, sb, qo, so, left_shift) + out_zp
        y[i] = min(max(v, act_min), act_max)
    return y.reshape(a.shape)


def int_add_numpy(a, b, a_zp, b_zp, params, left_shift, out_zp, act_min, act_max):
    """NumPy twin of :func:`int_add`."""
    qa, sa, qb, sb, qo, so = params
    va = mbqm_numpy((a.astype(np.int64) - a_zp) << left_shift, qa, sa)
    vb = mbqm_numpy((b.astype(np.int64) - b_zp) << left_shift, qb, sb)
    return np.clip(mbqm_numpy(va + vb, qo, so) + out_zp, act_min, act_max).astype(np.int32)


def add_params_xnnpack(scale_a, scale_b, scale_out):
    """``(m_a, m_b, shift)`` of XNNPACK's quantized ADD (see module doc)."""
    ra = np.float32(np.float32(scale_a) / np.float32(scale_out))
    rb = np.float32(np.float32(scale_b) / np.float32(scale_out))
    exponent = np.frexp(max(ra, rb))[1] - 1
    shift = int(20 - exponent)
    if not 12 <= shift <= 30:
        raise ValueError(f"ADD scale ratio {max(ra, rb)} outside XNNPACK's range [2**-10, 2**8)")
    ma = int(np.rint(np.float64(ra) * 2.0 ** shift))
    mb = int(np.rint(np.float64(rb) * 2.0 ** shift))
    return ma, mb, shift


@njit(cache=True)
def add_xnnpack_one(da, db, a_mult, b_mult, shift):
    """XNNPACK's ADD of one pair of zero-point-free inputs: the output before its zero point and clamp."""
    return (a_mult * np.int64(da) + b_mult * np.int64(db) + (np.int64(1) << (shift - 1))) >> shift


@njit(cache=True)
def int_add_xnnpack(a, b, a_zp, b_zp, a_mult, b_mult, shift, out_zp, act_min, act_max):
    af = a.reshape(-1)
    bf = b.reshape(-1)
    y = np.empty(af.size, dtype=np.int32)
    for i in range(af.size):
        v = add_xnnpack_one(np.int64(af[i]) - a_zp, np.int64(bf[i]) - b_zp, a_mult, b_mult, shift) + out_zp
        y[i] = min(max(v, act_min), act_max)
    return y.reshape(a.shape)


def int_add_xnnpack_numpy(a, b, a_zp, b_zp, a_mult, b_mult, shift, out_zp, act_min, act_max):
    """NumPy twin of :func:`int_add_xnnpack`."""
    acc = a_mult * (a.astype(np.int64) - a_zp) + b_mult * (b.astype(np.int64) - b_zp) + (1 << (shift - 1))
    return np.clip((acc >> shift) + out_zp, act_min, act_max).astype(np.int32)


# ------------------------------------------------------------------------------------ MEAN
def mean_params(scale_in, scale_out, count):
    """``(qm', shift')`` of TFLite's reference quantized MEAN over ``count`` elements (see module doc)."""
    qm, shift = quantize_multiplier(float(np.float32(scale_in)) / float(np.float32(scale_out)))
    k = min(int(count).bit_length() - 1, 32, 31 + shift)
    return int((qm << k) // count), shift - k


def mean_scale_xnnpack(scale_in, scale_out, count):
    """XNNPACK's float32 MEAN scale ``float32(s_x / s_y) * float32(1 / N)``."""
    ratio = np.float32(np.float32(scale_in) / np.float32(scale_out))
    return np.float32(ratio * np.float32(np.float32(1.0) / np.float32(count)))


@njit(cache=True)
def int_mean_hw(x, x_zp, qm, shift, fscale, out_zp, act_min, act_max, mode):
    """MEAN of NHWC ``x`` over H and W -> int32 ``[N, C]``; ``mode`` 0 = reference, 1 = XNNPACK."""
    n, h, w, c = x.shape
    y = np.empty((n, c), dtype=np.int32)
    acc = np.empty(c, dtype=np.int64)
    count = h * w
    for b in range(n):
        acc[:] = 0
        for i in range(h):
            for j in range(w):
                for k in range(c):
                    acc[k] += x[b, i, j, k]
        for k in range(c):
            y[b, k] = min(max(mean_from_sum(acc[k] - count * x_zp, qm, shift, fscale, mode) + out_zp, act_min),
                          act_max)
    return y


@njit(cache=True)
def mean_from_sum(s, qm, shift, fscale, mode):
    """MEAN's output before its zero point and clamp, from the sum ``s`` of ``x - z_x`` (mode 0 reference,
    1 XNNPACK)."""
    if mode == 0:
        return mbqm(s, qm, shift)
    return np.int64(np.rint(np.float32(s) * fscale))


def int_mean_hw_numpy(x, x_zp, qm, shift, fscale, out_zp, act_min, act_max, mode):
    """NumPy twin of :func:`int_mean_hw`."""
    count = x.shape[1] * x.shape[2]
    s = x.astype(np.int64).sum(axis=(1, 2)) - count * x_zp
    return mean_from_sums_numpy(s, qm, shift, fscale, out_zp, act_min, act_max, mode).astype(np.int32)


def mean_from_sums_numpy(sums, qm, shift, fscale, out_zp, act_min, act_max, mode):
    """MEAN's output from the int64 ``sums`` of ``x - z_x`` (see the module doc)."""
    if mode == 0:
        v = mbqm_numpy(sums, qm, shift) + out_zp
    else:
        v = np.rint(sums.astype(np.float32) * np.float32(fscale)).astype(np.int64) + out_zp
    return np.clip(v, act_min, act_max)


# ------------------------------------------------------------------------------------ SOFTMAX
def softmax_table(input_scale, beta):
    """TFLite's float32 table ``T[255 - v] = expf(float32(-s_x * beta) * v)``, v = 0..255."""
    s = np.float32(-np.float32(input_scale) * np.float32(beta))
    v = np.arange(256, dtype=np.float32)
    arg = (s * v).astype(np.float32)
    e = np.exp(arg.astype(np.float64)).astype(np.float32)   # = correctly rounded expf (glibc's expf is exact
    return np.ascontiguousarray(e[::-1])                     # to < 1 ulp; see design D.7)


@njit(cache=True)
def int_softmax_into(x, table, out_scale, out_zp, uint8_output, qmin, qmax, y):
    """TFLite's integer SOFTMAX of the rows of ``x`` [rows, k] into ``y`` (any integer type): with ``m`` the row's
    maximum, ``p_j = T[255 - (m - x_j)] / (float32 sum of the row's T[...]) / s_y``, rounded (uint8 output:
    ``(int)(p + 0.5f)``; int8: half away from zero, plus ``z_y``) and clamped to ``[qmin, qmax]``.

    ``x`` holds integers of any type, also as float32: only the differences ``m - x_j`` are used, so the fast
    executor's ``q - z`` (the logits less their zero point) gives the same bytes as ``q`` itself.
    """
    rows, k = x.shape
    for r in range(rows):
        mx = np.int64(x[r, 0])
        for j in range(1, k):
            mx = max(mx, np.int64(x[r, j]))
        base = 255 - mx
        total = np.float32(0.0)
        for j in range(k):
            total += table[base + np.int64(x[r, j])]
        inv = np.float32(1.0) / (total * out_scale)
        for j in range(k):
            p = table[base + np.int64(x[r, j])] * inv
            if uint8_output:
                q = np.int64(p + np.float32(0.5))
            else:
                q = np.int64(np.floor(np.float64(p) + 0.5)) + out_zp
            y[r, j] = min(max(q, qmin), qmax)
    return y


@njit(cache=True)
def int_softmax(x, table, out_scale, out_zp, uint8_output, qmin, qmax):
    """:func:`int_softmax_into` a new int32 array."""
    return int_softmax_into(x, table, out_scale, out_zp, uint8_output, qmin, qmax,
                            np.empty(x.shape, dtype=np.int32))


def int_softmax_numpy(x, table, out_scale, out_zp, uint8_output, qmin, qmax):
    """NumPy twin of :func:`int_softmax` (the float32 row sum is accumulated in order with ``np.cumsum``)."""
    xi = x.astype(np.int64)
    e = table[255 - xi.max(axis=1, keepdims=True) + xi]
    total = np.cumsum(e, axis=1, dtype=np.float32)[:, -1:]
    inv = np.float32(1.0) / (total * np.float32(out_scale))
    p = (e * inv).astype(np.float32)
    if uint8_output:
        q = (p + np.float32(0.5)).astype(np.float32).astype(np.int64)
    else:
        q = np.floor(p.astype(np.float64) + 0.5).astype(np.int64) + out_zp
    return np.clip(q, qmin, qmax).astype(np.int32)


# ------------------------------------------------------------------------------------ (DE)QUANTIZE, PAD
@njit(cache=True)
def int_quantize(x, scale, zero_point, qmin, qmax):
    """float32 -> int32 values of the quantized type."""
    xf = x.reshape(-1)
    y = np.empty(xf.size, dtype=np.int32)
    for i in range(xf.size):
        v = np.float32(xf[i] / scale)
        r = np.floor(np.abs(np.float64(v)) + 0.5)
        q = np.int64(r if v >= 0 else -r) + zero_point
        y[i] = min(max(q, qmin), qmax)
    return y.reshape(x.shape)


def int_quantize_numpy(x, scale, zero_point, qmin, qmax):
    """NumPy twin of :func:`int_quantize`."""
    v = (x.astype(np.float32) / np.float32(scale)).astype(np.float32)
    return np.clip(round_half_away(v).astype(np.int64) + zero_point, qmin, qmax).astype(np.int32)


@njit(cache=True)
def int_requantize(x, x_zp, qm, shift, out_zp, qmin, qmax):
    """Integer -> integer QUANTIZE (rescale and shift the zero point)."""
    xf = x.reshape(-1)
    y = np.empty(xf.size, dtype=np.int32)
    for i in range(xf.size):
        v = mbqm(np.int64(xf[i]) - x_zp, qm, shift) + out_zp
        y[i] = min(max(v, qmin), qmax)
    return y.reshape(x.shape)


def int_requantize_numpy(x, x_zp, qm, shift, out_zp, qmin, qmax):
    """NumPy twin of :func:`int_requantize`."""
    v = mbqm_numpy(x.astype(np.int64) - x_zp, qm, shift) + out_zp
    return np.clip(v, qmin, qmax).astype(np.int32)


@njit(cache=True)
def int_dequantize(x, scale, zero_point):
    xf = x.reshape(-1)
    y = np.empty(xf.size, dtype=np.float32)
    s = np.float64(scale)
    for i in range(xf.size):
        y[i] = np.float32(s * (np.int64(xf[i]) - zero_point))
    return y.reshape(x.shape)


def int_dequantize_numpy(x, scale, zero_point):
    """NumPy twin of :func:`int_dequantize`."""
    return (np.float64(scale) * (x.astype(np.int64) - zero_point)).astype(np.float32)


def int_pad_numpy(x, paddings, value):
    """PAD with a constant (the output zero point for quantized tensors); ``paddings`` is ``[rank, 2]``."""
    return np.pad(x, [(int(a), int(b)) for a, b in paddings], constant_values=value)
