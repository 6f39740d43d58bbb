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
}

ENGINES = ("numba", "numpy")


def kernel_set(engine):
    """``{name: kernel}`` for ``engine`` ``"numba"`` (fast) or ``"numpy"`` (readable twins)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    index = ENGINES.index(engine)
    return {name: pair[index] for name, pair in KERNELS.items()}
