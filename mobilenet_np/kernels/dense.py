"""The logits layer: a 1x1 convolution with biases applied to the pooled ``[N, C]`` feature vector.

    z[n, k] = b[k] + sum_c f[n, c] * w[c, k]

``w`` is ``[C, num_classes]`` (TF's ``[1, 1, C, num_classes]`` kernel without its unit axes). No batch norm,
no activation: the outputs are logits (class 0 is slim's "background").
"""
import numpy as np
from numba import njit


@njit(cache=True)
def logits(f, w, bias):
    n, c = f.shape
    k = w.shape[1]
    z = np.empty((n, k), dtype=np.float32)
    for b in range(n):
        row = z[b]
        row[:] = bias
        for i in range(c):
            v = f[b, i]
            for j in range(k):
                row[j] += v * w[i, j]
    return z


def logits_numpy(f, w, bias):
    """NumPy twin of :func:`logits`."""
    return (f @ w + bias).astype(np.float32)
