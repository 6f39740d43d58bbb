"""Full KxK convolution (MobileNet's 3x3 stride-2 stem), NHWC input, HWIO kernel.

    y[n, i, j, o] = act( b[o] + sum_{ky, kx, c} x[n, i*s - top + ky, j*s - left + kx, c] * w[ky, kx, c, o] )

Taps that fall outside the image read zero (the padding ``pads = (top, bottom, left, right)``, from
:func:`mobilenet_np.kernels.padding.same_pads` for TF 'SAME'). ``act`` is ReLU6 when ``relu6`` is true,
otherwise identity. Output size per dimension: ``(n + before + after - k) // s + 1``.
"""
import numpy as np
from numba import njit

from .padding import valid_columns

# the digest of the sibling modules compiled into this one's kernels (see cache_key.py)
COMPILED_IN = "83dfc2210427c521"


@njit(cache=True)
def conv2d(x, w, bias, stride, pads, relu6):
    n, h, wd, cin = x.shape
    kh, kw, _, cout = w.shape
    top, bottom, left, right = pads
    oh = (h + top + bottom - kh) // stride + 1
    ow = (wd + left + right - kw) // stride + 1
    y = np.empty((n, oh, ow, cout), dtype=np.float32)
    # Row by row, tap by tap (summed in ky, kx, c order); the innermost loop runs over output channels.
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
                    wt = w[ky, kx]
                    for j in range(lo, hi):
                        xs = src[j * stride - left + kx]
                        acc = row[j]
                        for c in range(cin):
                            v = xs[c]
                            for o in range(cout):
                                acc[o] += v * wt[c, o]
            if relu6:
                for j in range(ow):
                    for o in range(cout):
                        row[j, o] = min(max(row[j, o], np.float32(0.0)), np.float32(6.0))
    return y


def conv2d_numpy(x, w, bias, stride, pads, relu6):
    """NumPy twin of :func:`conv2d`: zero-pad, gather the KxK windows, contract with ``einsum``."""
    top, bottom, left, right = pads
    kh, kw = w.shape[:2]
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    oh = (xp.shape[1] - kh) // stride + 1
    ow = (xp.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], oh, ow, w.shape[3]), dtype=np.float32)
    for ky in range(kh):
        for kx in range(kw):
            window = xp[:, ky:ky + (oh - 1) * stride + 1:stride, kx:kx + (ow - 1) * stride + 1:stride, :]
            y += np.einsum("nhwc,co->nhwo", window, w[ky, kx])
    y += bias
    return np.clip(y, 0, 6) if relu6 else y
