"""Depthwise KxK convolution: each channel convolved with its own kernel, NHWC input.

    y[n, i, j, c*M + m] = act( b[c*M + m] + sum_{ky, kx} x[n, i*s - top + ky, j*s - left + kx, c] * w[ky, kx, c, m] )

``w`` has TF's depthwise layout ``[K, K, C, M]`` (M = channel multiplier, 1 in MobileNet). Out-of-image taps
read zero; ``pads = (top, bottom, left, right)`` as in :mod:`mobilenet_np.kernels.padding`.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def _valid_columns(kx, stride, left, width, out_width):
    """Output columns ``j`` whose tap ``ix = j*stride - left + kx`` lies inside ``[0, width)``."""
    lo = max(0, (left - kx + stride - 1) // stride)
    hi = min(out_width, (width - 1 + left - kx) // stride + 1)
    return lo, hi


@njit(cache=True)
def depthwise_conv2d(x, w, bias, stride, pads, relu6):
    n, h, wd, cin = x.shape
    kh, kw, _, mult = w.shape
    top, bottom, left, right = pads
    oh = (h + top + bottom - kh) // stride + 1
    ow = (wd + left + right - kw) // stride + 1
    cout = cin * mult
    y = np.empty((n, oh, ow, cout), dtype=np.float32)
    tiled = np.empty((kh, kw, ow * cin), dtype=np.float32)  # w[ky, kx, :, 0] repeated for every column
    if mult == 1 and stride == 1:
        for ky in range(kh):
            for kx in range(kw):
                for j in range(ow):
                    tiled[ky, kx, j * cin:(j + 1) * cin] = w[ky, kx, :, 0]
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
                    lo, hi = _valid_columns(kx, stride, left, wd, ow)
                    if mult == 1 and stride == 1:
                        # Stride 1: the taps of a row are one contiguous run of (column, channel) values,
                        # so the row update is a single flat multiply-add against the tiled weights.
                        flat_out = row.reshape(ow * cout)
                        flat_in = src.reshape(wd * cin)
                        wt = tiled[ky, kx]
                        start_in = (lo - left + kx) * cin
                        for t in range(lo * cin, hi * cin):
                            flat_out[t] += flat_in[start_in + t - lo * cin] * wt[t]
                    elif mult == 1:
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
