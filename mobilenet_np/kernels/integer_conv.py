"""Integer CONV_2D and DEPTHWISE_CONV_2D (TFLite uint8 per-tensor and int8 per-channel), NHWC.

Full convolution, for each output ``(n, i, j, o)``::

    acc = bias[o] + sum_{ky, kx, c : tap inside the image} (x[n, i*sh - top + ky*dh, j*sw - left + kx*dw, c] - x_zp)
                                                            * w[ky, kx, c, o]
    y[n, i, j, o] = requantize(acc, o)        (integer_fixedpoint: MBQM or XNNPACK float, + zero point, clamp)

Depthwise (depth multiplier ``M``, output channel ``o = c*M + m``)::

    acc = bias[o] + sum_{ky, kx : inside} (x[n, i*sh - top + ky*dh, j*sw - left + kx*dw, c] - x_zp) * w[ky, kx, o]

``w`` is the filter **with its zero point already subtracted** (int32): TFLite stores conv filters as OHWI
``[C_out, KH, KW, C_in]`` and depthwise filters as ``[1, KH, KW, C*M]``; ``w_conv = transpose(q_w - z_w)`` to
HWIO and ``w_dw = (q_w - z_w)[0]``, done once at load time. Taps outside the image are skipped, which is the
same as padding the input with its zero point. Accumulation is exact: int32 in the Numba kernels (no overflow
for MobileNet sizes: ``|acc| <= 255 * 255 * KH*KW*C_in + |bias|``, under 2**31 for ``C_in*KH*KW < 33,000``), and
float64 (exact below 2**53) or int64 in the NumPy twins. ``pads = (top, bottom, left, right)``; the output size
per dimension is ``(n + before + after - dilation*(k-1) - 1) // stride + 1``. Both kernels return int32 arrays
whose values already lie in the output type's range.
"""
import numpy as np
from numba import njit

from .integer_fixedpoint import requantize_numpy_values, requantize_one

# the digest of the sibling modules compiled into this one's kernels (see cache_key.py)
COMPILED_IN = "13fc0d4c73442bbc"


def _out_size(n, before, after, k, stride, dilation):
    return (n + before + after - dilation * (k - 1) - 1) // stride + 1


@njit(cache=True)
def int_conv2d(x, x_zp, w, bias, strides, dilations, pads, qm, shift, fscale, out_zp, act_min, act_max, mode):
    n, h, wd, cin = x.shape
    kh, kw, _, cout = w.shape
    sh, sw = strides
    dh, dw = dilations
    top, bottom, left, right = pads
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    y = np.empty((n, oh, ow, cout), dtype=np.int32)
    acc = np.empty((ow, cout), dtype=np.int32)
    xs = np.empty(cin, dtype=np.int32)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                acc[j, :] = bias
            for ky in range(kh):
                iy = i * sh - top + ky * dh
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    wt = w[ky, kx]
                    for j in range(ow):
                        ix = j * sw - left + kx * dw
                        if ix < 0 or ix >= wd:
                            continue
                        for c in range(cin):
                            xs[c] = np.int32(x[b, iy, ix, c]) - np.int32(x_zp)
                        a = acc[j]
                        for c in range(cin):
                            v = xs[c]
                            if v == 0:
                                continue
                            wc = wt[c]
                            for o in range(cout):
                                a[o] += v * wc[o]
            for j in range(ow):
                for o in range(cout):
                    y[b, i, j, o] = requantize_one(acc[j, o], qm[o], shift[o], fscale[o], out_zp, act_min, act_max,
                                                   mode)
    return y


def int_conv2d_numpy(x, x_zp, w, bias, strides, dilations, pads, qm, shift, fscale, out_zp, act_min, act_max, mode):
    """NumPy twin of :func:`int_conv2d`: pad with the zero point, then one exact float64 matmul per tap."""
    top, bottom, left, right = pads
    sh, sw = strides
    dh, dw = dilations
    kh, kw, cin, cout = w.shape
    xc = np.pad(x.astype(np.float64) - x_zp, ((0, 0), (top, bottom), (left, right), (0, 0)))
    oh = _out_size(x.shape[1], top, bottom, kh, sh, dh)
    ow = _out_size(x.shape[2], left, right, kw, sw, dw)
    acc = np.zeros((x.shape[0], oh, ow, cout), np.float64)
    wf = w.astype(np.float64)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            window = xc[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]
            acc += window @ wf[ky, kx]
    acc = acc.astype(np.int64) + bias
    return requantize_numpy_values(acc, qm, shift, fscale, out_zp, act_min, act_max, mode).astype(np.int32)


@njit(cache=True)
def int_depthwise_conv2d(x, x_zp, w, bias, depth_multiplier, strides, dilations, pads, qm, shift, fscale, out_zp,
                         act_min, act_max, mode):
    n, h, wd, cin = x.shape
    kh, kw, cout = w.shape
    mult = depth_multiplier
    sh, sw = strides
    dh, dw = dilations
    top, bottom, left, right = pads
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    y = np.empty((n, oh, ow, cout), dtype=np.int32)
    acc = np.empty((ow, cout), dtype=np.int32)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                acc[j, :] = bias
            for ky in range(kh):
                iy = i * sh - top + ky * dh
                if iy < 0 or iy >= h:
                    continue
                src = x[b, iy]
                for kx in range(kw):
                    wt = w[ky, kx]
                    for j in range(ow):
                        ix = j * sw - left + kx * dw
                        if ix < 0 or ix >= wd:
                            continue
                        px = src[ix]
                        a = acc[j]
                        if mult == 1:
                            for c in range(cin):
                                a[c] += (np.int32(px[c]) - np.int32(x_zp)) * wt[c]
                        else:
                            for c in range(cin):
                                v = np.int32(px[c]) - np.int32(x_zp)
                                for m in range(mult):
                                    a[c * mult + m] += v * wt[c * mult + m]
            for j in range(ow):
                for o in range(cout):
                    y[b, i, j, o] = requantize_one(acc[j, o], qm[o], shift[o], fscale[o], out_zp, act_min, act_max,
                                                   mode)
    return y


def int_depthwise_conv2d_numpy(x, x_zp, w, bias, depth_multiplier, strides, dilations, pads, qm, shift, fscale,
                               out_zp, act_min, act_max, mode):
    """NumPy twin of :func:`int_depthwise_conv2d`: pad with the zero point, repeat channels ``M`` times, sum taps."""
    top, bottom, left, right = pads
    sh, sw = strides
    dh, dw = dilations
    kh, kw, cout = w.shape
    xc = np.pad(x.astype(np.int64) - x_zp, ((0, 0), (top, bottom), (left, right), (0, 0)))
    if depth_multiplier > 1:
        xc = np.repeat(xc, depth_multiplier, axis=3)
    oh = _out_size(x.shape[1], top, bottom, kh, sh, dh)
    ow = _out_size(x.shape[2], left, right, kw, sw, dw)
    acc = np.zeros((x.shape[0], oh, ow, cout), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            acc += xc[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :] * w[ky, kx].astype(np.int64)
    acc += bias
    return requantize_numpy_values(acc, qm, shift, fscale, out_zp, act_min, act_max, mode).astype(np.int32)
