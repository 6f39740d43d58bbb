"""Pointwise (1x1) convolution: a matrix product over channels at every pixel.

    y[n, i, j, o] = act( b[o] + sum_c x[n, i, j, c] * w[c, o] )

``w`` is the ``[C_in, C_out]`` matrix (TF's ``[1, 1, C_in, C_out]`` kernel without its two unit axes).
Pointwise convolutions carry 80-95 % of MobileNet's multiply-adds.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def pointwise_conv2d(x, w, bias, relu6):
    n, h, wd, cin = x.shape
    cout = w.shape[1]
    pixels = n * h * wd
    xf = x.reshape(pixels, cin)
    y = np.empty((pixels, cout), dtype=np.float32)
    for p in range(pixels):
        acc = y[p]
        acc[:] = bias
        for c in range(cin):
            v = xf[p, c]
            for o in range(cout):
                acc[o] += v * w[c, o]
        if relu6:
            for o in range(cout):
                acc[o] = min(max(acc[o], np.float32(0.0)), np.float32(6.0))
    return y.reshape(n, h, wd, cout)


def pointwise_conv2d_numpy(x, w, bias, relu6):
    """NumPy twin of :func:`pointwise_conv2d`: one ``matmul``."""
    y = np.matmul(x, w) + bias
    return np.clip(y, 0, 6) if relu6 else y
