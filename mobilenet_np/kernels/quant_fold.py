"""Batch-norm folding exactly as ``tf.contrib.quantize`` does it in the eval graph, bit for bit with TF 2.21.

``FoldBatchNorms`` rewrites every conv + batch norm into (per output channel ``c``)::

    m[c]   = gamma[c] * rsqrt(moving_variance[c] + eps)          BatchNorm_Fold/add, /Rsqrt, /mul
    w_fold = w * m            (HWIO: m scales the last axis;     <layer>/mul_fold
                               depthwise [K, K, C, M]: m reshaped to [C, M] scales the last two axes)
    b_fold = beta - moving_mean * m                               BatchNorm_Fold/mul_1, /bias

every step one float32 operation, in this order. The only step that is not a correctly rounded IEEE operation
is TF's ``Rsqrt``. TF 2.21's x86-64 CPU kernel is Eigen's vectorised ``prsqrt`` (AVX, 8 floats per packet,
built without FMA), which starts from the hardware estimate ``rsqrtps`` (~12 bits) and refines it with one
Newton step, each operation rounded to float32::

    y0 = rsqrtps(a);   r2 = a * y0;   half_r = y0 * -0.5;   h = r2 * y0 - 1;   y = half_r * h + y0
    (y = y0 where that gives NaN, e.g. a = 0 or inf)

Elements past the last whole packet (the final ``n % 8``) go through Eigen's scalar path, ``1 / sqrtf(a)``
(TF runs kernels with denormals flushed to zero, so a denormal ``a`` gives ``inf`` there).
Measured on this project's machines: this rule reproduces TF's ``Rsqrt`` on 100 000 random floats and on all
27 ``BatchNorm_Fold/Rsqrt`` tensors of the real V1 0.25/128 quant graph, where the correctly rounded
``1 / sqrt`` differs from TF in ~30 % of elements (by one ulp). A one-ulp change of ``m`` can move a folded
weight across a rounding boundary of its fake quantization, so it matters for bit-exact weights.

:func:`rsqrt_like_tf` emits ``rsqrtps`` through an LLVM intrinsic, so it reproduces TF *on the same CPU*
(Intel and AMD estimate tables differ, and TF's result differs with them). On other architectures it falls
back to the correctly rounded ``1 / sqrt`` (``RSQRT_MATCHES_TF`` is then False).
"""
import platform

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

EIGEN_PACKET_FLOATS = 8      # AVX Packet8f: TF 2.21's pip build
RSQRT_MATCHES_TF = platform.machine().lower() in ("x86_64", "amd64")


@intrinsic
def _rsqrt_estimate(typingctx, a):
    """The hardware reciprocal square-root estimate of a float32 (x86 ``rsqrtss``)."""
    if not (isinstance(a, types.Float) and a.bitwidth == 32):
        return None

    def codegen(context, builder, signature, args):
        from llvmlite import ir
        vec_t = ir.VectorType(ir.FloatType(), 4)
        vec = builder.insert_element(ir.Constant(vec_t, [0.0] * 4), args[0], ir.Constant(ir.IntType(32), 0))
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec_t, [vec_t]),
                                            "llvm.x86.sse.rsqrt.ss")
        return builder.extract_element(builder.call(fn, [vec]), ir.Constant(ir.IntType(32), 0))

    return types.float32(types.float32), codegen


if RSQRT_MATCHES_TF:
    @njit(cache=True, error_model="numpy")
    def _rsqrt_like_tf(a):
        n = a.size
        out = np.empty(n, dtype=np.float32)
        whole = n - n % EIGEN_PACKET_FLOATS
        one, minus_half = np.float32(1.0), np.float32(-0.5)
        tiny = np.float32(1.1754944e-38)    # smallest normal float32
        for i in range(n):
            x = a[i]
            if i < whole:
                y0 = _rsqrt_estimate(x)
                r2 = x * y0
                half_r = y0 * minus_half
                h = r2 * y0 - one
                y = half_r * h + y0
                out[i] = y0 if y != y else y
            else:
                if abs(x) < tiny:       # TF runs ops with denormals flushed to zero
                    x = x * np.float32(0.0)
                out[i] = one / np.sqrt(x)
        return out
else:  # pragma: no cover - exercised only on non-x86 machines
    @njit(cache=True, error_model="numpy")
    def _rsqrt_like_tf(a):
        out = np.empty(a.size, dtype=np.float32)
        for i in range(a.size):
            out[i] = np.float32(1.0) / np.sqrt(a[i])
        return out


def rsqrt_like_tf(a):
    """TF 2.21's CPU ``Rsqrt`` of a float32 vector (see the module docstring), as a new float32 array."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    return _rsqrt_like_tf(a.reshape(-1)).reshape(a.shape)


def fold_batch_norm_quant(weights, gamma, beta, moving_mean, moving_variance, eps, depthwise=False):
    """``(w_fold, b_fold, m)`` of tf.contrib.quantize's batch-norm folding, float32 op by op as TF does it.

    ``weights`` is HWIO ``[K, K, C_in, C_out]`` or, with ``depthwise``, ``[K, K, C, M]``.
    """
    f32 = np.float32
    variance_eps = (np.asarray(moving_variance, f32) + f32(eps)).astype(f32)     # BatchNorm_Fold/add
    m = (np.asarray(gamma, f32) * rsqrt_like_tf(variance_eps)).astype(f32)          # BatchNorm_Fold/mul
    bias = (np.asarray(beta, f32) - np.asarray(moving_mean, f32) * m).astype(f32)   # BatchNorm_Fold/bias
    w = np.asarray(weights, f32)
    scale = m.reshape(w.shape[2], w.shape[3]) if depthwise else m                   # scale_reshape
    return (w * scale).astype(f32), bias, m                                          # mul_fold
