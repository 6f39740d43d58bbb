"""Batch normalization with moving statistics (inference), and its folding into the preceding conv.

Per channel c, with ``k = gamma / sqrt(moving_variance + eps)``::

    y = gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta  =  x * k + (beta - moving_mean * k)

The right-hand form is how TF evaluates it (``tf.nn.batch_normalization``). Because a convolution is linear
in its kernel, ``BN(conv(x, w)) = conv(x, w * k) + (beta - moving_mean * k)``: :func:`fold_batch_norm`
scales each output channel of the kernel by ``k`` and returns the bias, done once at load time.
"""
import numpy as np
from numba import njit


def batch_norm_scale_offset(gamma, beta, moving_mean, moving_variance, eps):
    """``(k, beta - moving_mean * k)`` in float32 with ``k = gamma * rsqrt(moving_variance + eps)``."""
    k = (gamma.astype(np.float32) / np.sqrt(moving_variance.astype(np.float32) + np.float32(eps))).astype(np.float32)
    return k, (beta - moving_mean * k).astype(np.float32)


@njit(cache=True)
def batch_norm(x, gamma, beta, moving_mean, moving_variance, eps):
    c = x.shape[-1]
    scale = np.empty(c, dtype=np.float32)
    offset = np.empty(c, dtype=np.float32)
    for i in range(c):
        scale[i] = gamma[i] / np.sqrt(moving_variance[i] + np.float32(eps))
        offset[i] = beta[i] - moving_mean[i] * scale[i]
    xf = x.reshape(-1, c)
    y = np.empty(xf.shape, dtype=np.float32)
    for p in range(xf.shape[0]):
        for i in range(c):
            y[p, i] = xf[p, i] * scale[i] + offset[i]
    return y.reshape(x.shape)


def batch_norm_numpy(x, gamma, beta, moving_mean, moving_variance, eps):
    """NumPy twin of :func:`batch_norm` (channels last)."""
    scale, offset = batch_norm_scale_offset(gamma, beta, moving_mean, moving_variance, eps)
    return x * scale + offset


def fold_batch_norm(weights, gamma, beta, moving_mean, moving_variance, eps, depthwise=False):
    """Fold BN into a conv kernel: returns ``(weights * k, beta - moving_mean * k)``.

    ``weights`` is HWIO ``[K, K, C_in, C_out]`` (``k`` scales the last axis) or, with ``depthwise``,
    ``[K, K, C, M]`` (``k`` reshaped to ``[C, M]`` scales the last two axes: output channel ``c*M + m``).
    """
    k, bias = batch_norm_scale_offset(gamma, beta, moving_mean, moving_variance, eps)
    if depthwise:
        k = k.reshape(weights.shape[2], weights.shape[3])
    return (weights * k).astype(np.float32), bias
