"""Convolutions and average pooling in TensorFlow's own float32 accumulation order (for bit-exact fake quant).

A fake-quantized network is only as reproducible as the sums that feed its rounding: a sum that is one ulp off
can land on the other side of a grid boundary, change an activation by a whole step, and the change spreads
through the following layers. So the fake-quant model (:mod:`mobilenet_np.quantized`) does not use the
general kernels (which sum in whatever order is fastest) but these, which reproduce the exact order of TF
2.21's CPU kernels (oneDNN on x86-64)::

    conv / depthwise / pointwise / logits, per output element:
        acc = 0
        for ky, for kx  (taps inside the image only), for c  (input channels ascending):
            acc = fma(x[.., iy, ix, c], w[ky, kx, c, o], acc)        one rounding per step (fused multiply-add)
    avg pool (whole map):   acc = 0;  for i, for j:  acc = acc + x[i, j]  (float32);   y = acc / (H * W)

No bias inside: TF adds the folded bias as a separate ``Add`` (``add_fold``) / ``BiasAdd``. This rule matched
TF 2.21 bit for bit on every conv, depthwise, pointwise, logits and AvgPool tensor of the real V1 0.25/128
quant graph on 13 photos (tests/test_fake_quant.py); a plain multiply-then-add chain matches only 15-75 %.
The same held for random shapes, strides and channel counts, and for AVG_POOL windows of 3x3 to 10x10 (TF
divides the float32 sum; multiplying by 1/(H W) instead would differ for non-power-of-two windows). It
describes oneDNN on x86-64 CPUs with FMA; ``tf.reduce_mean`` (V2's global pool) sums differently.

The Numba kernels use a real fused multiply-add (``llvm.fma``). The NumPy twins emulate it in float64: the
product of two float32 is exact there, and rounding the float64 sum to float32 differs from a true FMA only if
the sum's float64 rounding lands exactly on a float32 tie -- too rare to ever have been observed here.
"""
import numpy as np
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def fma32(typingctx, a, b, c):
    """``a * b + c`` with a single rounding to float32 (LLVM ``llvm.fma.f32``; an FMA instruction on x86)."""
    if not all(isinstance(t, types.Float) and t.bitwidth == 32 for t in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float32(types.float32, types.float32, types.float32), codegen


def _fma_numpy(a, b, acc):
    """Twin of :func:`fma32` on arrays: exact float64 product, float64 sum, one rounding to float32."""
    return (a.astype(np.float64) * b.astype(np.float64) + acc.astype(np.float64)).astype(np.float32)


def _out_size(n, k, stride, before, after):
    return (n + before + after - k) // stride + 1


# ------------------------------------------------------------------------------------------ pointwise
@njit(cache=True)
def pointwise_conv2d_fma(x, w):
    n, h, wd, cin = x.shape
    cout = w.shape[1]
    pixels = n * h * wd
    xf = x.reshape(pixels, cin)
    y = np.empty((pixels, cout), dtype=np.float32)
    for p in range(pixels):
        acc = y[p]
        acc[:] = np.float32(0.0)
        for c in range(cin):
            v = xf[p, c]
            for o in range(cout):
                acc[o] = fma32(v, w[c, o], acc[o])
    return y.reshape(n, h, wd, cout)


def pointwise_conv2d_fma_numpy(x, w):
    """NumPy twin of :func:`pointwise_conv2d_fma`: ``y[.., o] = fma-chain over c of x[.., c] * w[c, o]``."""
    acc = np.zeros(x.shape[:-1] + (w.shape[1],), np.float32)
    for c in range(x.shape[-1]):
        acc = _fma_numpy(x[..., c:c + 1], w[c], acc)
    return acc


# ------------------------------------------------------------------------------------------ full conv
@njit(cache=True)
def conv2d_fma(x, w, stride, pads):
    n, h, wd, cin = x.shape
    kh, kw, _, cout = w.shape
    top, bottom, left, right = pads
    oh = (h + top + bottom - kh) // stride + 1
    ow = (wd + left + right - kw) // stride + 1
    y = np.empty((n, oh, ow, cout), dtype=np.float32)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                acc = y[b, i, j]
                acc[:] = np.float32(0.0)
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
                            for o in range(cout):
                                acc[o] = fma32(v, w[ky, kx, c, o], acc[o])
    return y


def _padded(x, pads):
    top, bottom, left, right = pads
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def conv2d_fma_numpy(x, w, stride, pads):
    """NumPy twin of :func:`conv2d_fma`: taps in (ky, kx, c) order, each one fused multiply-add.

    Zero padding stands in for skipped out-of-image taps: ``fma(0, w, acc) == acc`` exactly.
    """
    kh, kw, cin, cout = w.shape
    oh = _out_size(x.shape[1], kh, stride, pads[0], pads[1])
    ow = _out_size(x.shape[2], kw, stride, pads[2], pads[3])
    xp = _padded(x, pads)
    acc = np.zeros((x.shape[0], oh, ow, cout), np.float32)
    for ky in range(kh):
        for kx in range(kw):
            tap = xp[:, ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride, :]
            for c in range(cin):
                acc = _fma_numpy(tap[..., c:c + 1], w[ky, kx, c], acc)
    return acc


# ------------------------------------------------------------------------------------------ depthwise
@njit(cache=True)
def depthwise_conv2d_fma(x, w, stride, pads):
    n, h, wd, cin = x.shape
    kh, kw, _, mult = w.shape
    top, bottom, left, right = pads
    oh = (h + top + bottom - kh) // stride + 1
    ow = (wd + left + right - kw) // stride + 1
    y = np.empty((n, oh, ow, cin * mult), dtype=np.float32)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                acc = y[b, i, j]
                acc[:] = np.float32(0.0)
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
                                acc[c * mult + m] = fma32(v, w[ky, kx, c, m], acc[c * mult + m])
    return y


def depthwise_conv2d_fma_numpy(x, w, stride, pads):
    """NumPy twin of :func:`depthwise_conv2d_fma`: ``y[.., c*M + m]`` = fma chain over (ky, kx) of
    ``x[.., c] * w[ky, kx, c, m]``."""
    kh, kw, cin, mult = w.shape
    oh = _out_size(x.shape[1], kh, stride, pads[0], pads[1])
    ow = _out_size(x.shape[2], kw, stride, pads[2], pads[3])
    xp = np.repeat(_padded(x, pads), mult, axis=3)        # channel c*M + m reads input channel c
    acc = np.zeros((x.shape[0], oh, ow, cin * mult), np.float32)
    for ky in range(kh):
        for kx in range(kw):
            tap = xp[:, ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride, :]
            acc = _fma_numpy(tap, w[ky, kx].reshape(-1), acc)
    return acc


# ------------------------------------------------------------------------------------------ pooling
@njit(cache=True)
def avg_pool_sequential(x):
    n, h, w, c = x.shape
    y = np.empty((n, c), dtype=np.float32)
    for b in range(n):
        acc = y[b]
        acc[:] = np.float32(0.0)
        for i in range(h):
            for j in range(w):
                for k in range(c):
                    acc[k] = acc[k] + x[b, i, j, k]
        for k in range(c):
            acc[k] = acc[k] / np.float32(h * w)
    return y


def avg_pool_sequential_numpy(x):
    """NumPy twin of :func:`avg_pool_sequential`: a float32 running sum in row-major order, then ``/ (H W)``."""
    acc = np.zeros((x.shape[0], x.shape[3]), np.float32)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            acc = acc + x[:, i, j, :]
    return acc / np.float32(x.shape[1] * x.shape[2])
