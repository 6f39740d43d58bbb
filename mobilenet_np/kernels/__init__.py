"""Numba kernels, each beside a plain-NumPy twin with the same signature and the maths in its docstring.

``KERNELS[name] = (numba_kernel, numpy_twin)``: tests check every pair on random shapes, and
:class:`mobilenet_np.model.Model` runs either set (``engine="numba"`` or ``"numpy"``).
All kernels take and return C-contiguous float32 NHWC arrays.
"""
from .activations import relu6, relu6_numpy, softmax, softmax_numpy
from .batchnorm import batch_norm, batch_norm_numpy, fold_batch_norm
from .conv import conv2d, conv2d_numpy
from .dense import logits, logits_numpy
from .depthwise import depthwise_conv2d, depthwise_conv2d_numpy
from .fake_quant import fake_quant, fake_quant_numpy, nudge
from .fma_conv import (avg_pool_sequential, avg_pool_sequential_numpy, conv2d_fma, conv2d_fma_numpy,
                       depthwise_conv2d_fma, depthwise_conv2d_fma_numpy, pointwise_conv2d_fma,
                       pointwise_conv2d_fma_numpy)
from .integer_conv import (int_conv2d, int_conv2d_numpy, int_depthwise_conv2d,
                           int_depthwise_conv2d_numpy)
from .integer_fixedpoint import requantize, requantize_numpy
from .integer_ops import (int_add, int_add_numpy, int_add_xnnpack, int_add_xnnpack_numpy, int_avg_pool,
                          int_avg_pool_numpy, int_dequantize, int_dequantize_numpy, int_mean_hw, int_mean_hw_numpy,
                          int_quantize, int_quantize_numpy, int_requantize, int_requantize_numpy, int_softmax,
                          int_softmax_numpy)
from .padding import same_padding, same_pads
from .pointwise import pointwise_conv2d, pointwise_conv2d_numpy
from .pooling import global_avg_pool, global_avg_pool_numpy

KERNELS = {
    "conv2d": (conv2d, conv2d_numpy),
    "depthwise_conv2d": (depthwise_conv2d, depthwise_conv2d_numpy),
    "pointwise_conv2d": (pointwise_conv2d, pointwise_conv2d_numpy),
    "batch_norm": (batch_norm, batch_norm_numpy),
    "relu6": (relu6, relu6_numpy),
    "global_avg_pool": (global_avg_pool, global_avg_pool_numpy),
    "logits": (logits, logits_numpy),
    "softmax": (softmax, softmax_numpy),
    "fake_quant": (fake_quant, fake_quant_numpy),
    # TF's own accumulation order (fused multiply-add chains), for the bit-exact fake-quant model
    "conv2d_fma": (conv2d_fma, conv2d_fma_numpy),
    "depthwise_conv2d_fma": (depthwise_conv2d_fma, depthwise_conv2d_fma_numpy),
    "pointwise_conv2d_fma": (pointwise_conv2d_fma, pointwise_conv2d_fma_numpy),
    "avg_pool_sequential": (avg_pool_sequential, avg_pool_sequential_numpy),
    # Integer (TFLite uint8/int8) kernels, bit-exact with TFLite (integer_*.py). Unlike the float kernels
    # above they take and return integer arrays (values of the quantized type, as int32 on output).
    "requantize": (requantize, requantize_numpy),
    "int_conv2d": (int_conv2d, int_conv2d_numpy),
    "int_depthwise_conv2d": (int_depthwise_conv2d, int_depthwise_conv2d_numpy),
    "int_avg_pool": (int_avg_pool, int_avg_pool_numpy),
    "int_add": (int_add, int_add_numpy),
    "int_add_xnnpack": (int_add_xnnpack, int_add_xnnpack_numpy),
    "int_mean_hw": (int_mean_hw, int_mean_hw_numpy),
    "int_softmax": (int_softmax, int_softmax_numpy),
    "int_quantize": (int_quantize, int_quantize_numpy),
    "int_requantize": (int_requantize, int_requantize_numpy),
    "int_dequantize": (int_dequantize, int_dequantize_numpy),
}

ENGINES = ("numba", "numpy")


def kernel_set(engine):
    """``{name: kernel}`` for ``engine`` ``"numba"`` (fast) or ``"numpy"`` (readable twins)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    index = ENGINES.index(engine)
    return {name: pair[index] for name, pair in KERNELS.items()}
