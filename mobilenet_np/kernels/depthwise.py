"""Depthwise KxK convolution: each channel convolved with its own kernel, NHWC input.

    y[n, i, j, c*M + m] = act( b[c*M + m] + sum_{ky, kx} x[n, i*s - top + ky, j*s - left + kx, c] * w[ky, kx, c, m] )

``w`` has TF's depthwise layout ``[K, K, C, M]`` (M = channel multiplier, 1 in MobileNet). Out-of-image taps
read zero; ``pads = (top, bottom, left, right)`` as in :mod:`mobilenet_np.kernels.padding`.
"""
import numpy as np
from numba import njit

from .padding import valid_columns

# the digest of the sibling modules compiled into this one's kernels (see cache_key.py)
COMPILED_IN = "83dfc2210427c521"


@njit(cache=True)
def depthwise_conv2d(x, w, bias, stride, pads, relu6):
    n, h, wd, cin = x.shape
    kh, kw, _, mult = w.shape
    top, bottom, left, right = pads
    oh = (h + top + bottom - kh) // stride + 1
    ow = (wd + left + right - kw) // stride + 1
    cout = cin * mult
    y = np.empty((n, oh, ow, cout), dtype=np.float32)
    # Row by row: for each kernel tap, add that tap's contribution to a whole output row at once; the
    # innermost loop runs over contiguous channels (vectorizable). Taps are summed in (ky, kx) order.
    for b in range(n):
        for i in range(oh):
            row = y[b, i]
            for j in range(ow):
                row[j, :] = bias
            for ky in range(kh):
                iy = i * stride - top + ky
                if iy < 0 or iy >= h:
                    continue
                src = x[b, iy]
                for kx in range(kw):
                    lo, hi = valid_columns(kx, stride, left, wd, ow)
                    if mult == 1:
                        wt = w[ky, kx, :, 0]
                        for j in range(lo, hi):
                            xs = src[j * stride - left + kx]
                            acc = row[j]
                            for c in range(cin):
                                acc[c] += xs[c] * wt[c]
                    else:
                        for j in range(lo, hi):
                            xs = src[j * stride - left + kx]
                            acc = row[j]
                            for c in range(cin):
                                for m in range(mult):
                                    acc[c * mult + m] += xs[c] * w[ky, kx, c, m]
            if relu6:
                for j in range(ow):
                    for c in range(cout):
                        row[j, c] = min(max(row[j, c], np.float32(0.0)), np.float32(6.0))
    return y


def depthwise_conv2d_numpy(x, w, bias, stride, pads, relu6):
    """NumPy twin of :func:`depthwise_conv2d`: zero-pad, then one multiply-add per kernel tap."""
    top, bottom, left, right = pads
    kh, kw, cin, mult = w.shape
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    oh = (xp.shape[1] - kh) // stride + 1
    ow = (xp.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], oh, ow, cin, mult), dtype=np.float32)
    for ky in range(kh):
        for kx in range(kw):
            window = xp[:, ky:ky + (oh - 1) * stride + 1:stride, kx:kx + (ow - 1) * stride + 1:stride, :]
            y += window[..., None] * w[ky, kx]
    y = y.reshape(x.shape[0], oh, ow, cin * mult) + bias
    return np.clip(y, 0, 6) if relu6 else y
