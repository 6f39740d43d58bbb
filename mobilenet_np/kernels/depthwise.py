"""Depthwise KxK convolution: each channel convolved with its own kernel, NHWC input.

    y[n, i, j, c*M + m] = act( b[c*M + m] + sum_{ky, kx} x[n, i*s - top + ky, j*s - left + kx, c] * w[ky, kx, c, m] )

``w`` has TF's depthwise layout ``[K, K, C, M]`` (M = channel multiplier, 1 in MobileNet). Out-of-image taps
read zero; ``pads = (top, bottom, left, right)`` as in :mod:`mobilenet_np.kernels.padding`.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def depthwise_conv2d(x, w, bias, stride, pads, relu6):
    n, h, wd, cin = x.shape
    kh, kw, _, mult = w.shape
    top, bottom, left, right = pads
    oh = (h + top + bottom - kh) // stride + 1
    ow = (wd + left + right - kw) // stride + 1
    cout = cin * mult
    y = np.empty((n, oh, ow, cout), dtype=np.float32)
    acc = np.empty(cout, dtype=np.float32)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                acc[:] = bias
                for ky in range(kh):
                    iy = i * stride - top + ky
                    if iy < 0 or iy >= h:
                        continue
                    for kx in range(kw):
                        ix = j * stride - left + kx
                        if ix < 0 or ix >= wd:
                            continue
                        for c in range(cin):
                            v = x[b, iy, ix, c]
                            for m in range(mult):
                                acc[c * mult + m] += v * w[ky, kx, c, m]
                for o in range(cout):
                    v = acc[o]
                    if relu6:
                        v = min(max(v, np.float32(0.0)), np.float32(6.0))
                    y[b, i, j, o] = v
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
