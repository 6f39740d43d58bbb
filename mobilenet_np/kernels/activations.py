"""ReLU6 and softmax.

    relu6(x) = min(max(x, 0), 6)
    softmax(z)_k = exp(z_k - max z) / sum_j exp(z_j - max z)      (over the last axis; the shift avoids overflow)
"""
import numpy as np
from numba import njit


@njit(cache=True)
def relu6(x):
    xf = x.reshape(-1)
    y = np.empty(xf.size, dtype=np.float32)
    for i in range(xf.size):
        y[i] = min(max(xf[i], np.float32(0.0)), np.float32(6.0))
    return y.reshape(x.shape)


def relu6_numpy(x):
    """NumPy twin of :func:`relu6`."""
    return np.clip(x, 0, 6).astype(np.float32)


@njit(cache=True)
def softmax(z):
    rows, k = z.shape
    y = np.empty((rows, k), dtype=np.float32)
    for r in range(rows):
        m = z[r, 0]
        for j in range(1, k):
            m = max(m, z[r, j])
        total = 0.0
        for j in range(k):
            e = np.exp(np.float64(z[r, j] - m))
            y[r, j] = e
            total += e
        for j in range(k):
            y[r, j] = y[r, j] / total
    return y


def softmax_numpy(z):
    """NumPy twin of :func:`softmax` (2-D ``[N, K]``)."""
    e = np.exp((z - z.max(axis=-1, keepdims=True)).astype(np.float64))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
