"""Global average pooling: the mean of each channel over the whole map.

    y[n, c] = (1 / (H W)) * sum_{i, j} x[n, i, j, c]

slim's ``AvgPool_1a`` (V1, a VALID pool whose window is the whole final map) and V2's ``global_pool`` both
compute exactly this for the published input sizes. The sum is accumulated in float64.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def global_avg_pool(x):
    n, h, w, c = x.shape
    y = np.empty((n, c), dtype=np.float32)
    acc = np.empty(c, dtype=np.float64)
    for b in range(n):
        acc[:] = 0.0
        for i in range(h):
            for j in range(w):
                for k in range(c):
                    acc[k] += x[b, i, j, k]
        for k in range(c):
            y[b, k] = acc[k] / (h * w)
    return y


def global_avg_pool_numpy(x):
    """NumPy twin of :func:`global_avg_pool`."""
    return x.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
