"""Fake quantization: TensorFlow's ``FakeQuantWithMinMaxVars``, bit for bit (TF 2.21).

A fake-quant op rounds a float tensor to the grid of an ``num_bits``-bit asymmetric integer format and returns
floats again, so a float graph sees exactly the values an integer engine would. Everything is float32.

**Nudging** (``nudge``) moves ``[min, max]`` so that real 0 lands on an integer zero point::

    quant_min = 1 if narrow_range else 0          quant_max = 2**num_bits - 1
    scale       = (max - min) / (quant_max - quant_min)
    inv_scale   = (quant_max - quant_min) / (max - min)          (computed directly, not as 1 / scale)
    zp_from_min = quant_min - min / scale
    zero_point  = quant_min                          if zp_from_min < quant_min
                  quant_max                          if zp_from_min > quant_max
                  round_half_away_from_zero(zp_from_min)   otherwise   (C ``std::round``)
    nudged_min  = (quant_min - zero_point) * scale
    nudged_max  = (quant_max - zero_point) * scale

**Element function** of TF 2.x (the ``quant_zero`` / ``inv_scale`` formula of ``fake_quant_ops_functor.h``)::

    quant_zero = floor(-nudged_min * inv_scale + 0.5)
    c = max(min(x, nudged_max), nudged_min)                 (clamp)
    y = floor((c - nudged_min) / scale - quant_zero + 0.5) * scale

i.e. ``y = (q - zero_point) * scale`` with ``q = round_half_up((c - nudged_min) / scale)``. Special case:
``min == max == 0`` gives all zeros. ``min == max != 0`` gives NaN (``scale = 0``), as in TF. TF accepts
``min > max`` without complaint and so does this kernel (the result is then a constant); callers that build
models reject such ranges.

The TF 1.x kernels that ran when the 2018 ``_quant`` models were trained and exported used a different final
step, ``y = floor((c - nudged_min) / scale + 0.5) * scale + nudged_min``. Both land on the same grid point, but
they differ in the last ulp in ~23 % of elements; this module follows the current formula because TF 2.21 is
the oracle the tests run.

NaN inputs are not supported (TF's result for them depends on its SIMD min/max); model inputs are checked
for NaN before they get here.
"""
import numpy as np
from numba import njit

MIN_BITS, MAX_BITS = 2, 16   # TF's own limits on num_bits


def _quant_limits(num_bits, narrow_range):
    num_bits = int(num_bits)
    if not MIN_BITS <= num_bits <= MAX_BITS:
        raise ValueError(f"num_bits must be between {MIN_BITS} and {MAX_BITS}, got {num_bits}")
    return (1 if narrow_range else 0), (1 << num_bits) - 1


def _round_half_away(v):
    """C ``std::round`` of a non-negative float32 (exact: ``v - floor(v)`` has no rounding error)."""
    r = np.floor(v)
    return r + np.float32(1.0) if v - r >= np.float32(0.5) else r


def nudge_full(min, max, num_bits=8, narrow_range=False):
    """``(nudged_min, nudged_max, scale, inv_scale, zero_point)`` as float32 scalars (``zero_point`` an int).

    See the module docstring for the formula. ``min == max`` leaves ``scale = 0`` (and ``inv_scale = inf``).
    """
    quant_min, quant_max = _quant_limits(num_bits, narrow_range)
    qmin, qmax = np.float32(quant_min), np.float32(quant_max)
    mn, mx = np.float32(min), np.float32(max)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (mx - mn) / (qmax - qmin)
        inv_scale = (qmax - qmin) / (mx - mn)
        zp_from_min = qmin - mn / scale
    if zp_from_min < qmin:
        zero_point = quant_min
    elif zp_from_min > qmax:
        zero_point = quant_max
    elif np.isnan(zp_from_min):          # 0 / 0: min == max == 0; C++ would cast NaN (undefined), use quant_min
        zero_point = quant_min
    else:
        zero_point = int(_round_half_away(zp_from_min))
    zp = np.float32(zero_point)
    return (np.float32((qmin - zp) * scale), np.float32((qmax - zp) * scale), np.float32(scale),
            np.float32(inv_scale), zero_point)


def nudge(min, max, num_bits=8, narrow_range=False):
    """``(nudged_min, nudged_max, scale)`` of TF's ``Nudge`` in float32 (see the module docstring).

    >>> nudge(-1.0, 1.0)             # zp_from_min = 127.49999 -> zero point 127
    (-0.99607843, 1.0039216, 0.007843138)
    """
    nudged_min, nudged_max, scale, _, _ = nudge_full(min, max, num_bits, narrow_range)
    return nudged_min, nudged_max, scale


# --------------------------------------------------------------------------------------------- Numba kernel
@njit(cache=True, error_model="numpy")
def _nudge_nb(mn, mx, quant_min, quant_max):
    qmin = np.float32(quant_min)
    qmax = np.float32(quant_max)
    scale = (mx - mn) / (qmax - qmin)
    inv_scale = (qmax - qmin) / (mx - mn)
    zp_from_min = qmin - mn / scale
    if zp_from_min < qmin:
        zp = qmin
    elif zp_from_min > qmax:
        zp = qmax
    elif zp_from_min != zp_from_min:     # NaN
        zp = qmin
    else:
        zp = np.floor(zp_from_min)
        if zp_from_min - zp >= np.float32(0.5):
            zp += np.float32(1.0)
    return (qmin - zp) * scale, (qmax - zp) * scale, scale, inv_scale


@njit(cache=True, error_model="numpy")
def _fake_quant_flat(xf, mn, mx, quant_min, quant_max):
    out = np.empty(xf.size, dtype=np.float32)
    if mn == np.float32(0.0) and mx == np.float32(0.0):
        out[:] = np.float32(0.0)
        return out
    nudged_min, nudged_max, scale, inv_scale = _nudge_nb(mn, mx, quant_min, quant_max)
    half = np.float32(0.5)
    quant_zero = np.floor(-nudged_min * inv_scale + half)
    for i in range(xf.size):
        c = min(xf[i], nudged_max)
        c = max(c, nudged_min)
        out[i] = np.floor((c - nudged_min) / scale - quant_zero + half) * scale
    return out


@njit(cache=True)
def fake_quant(x, min, max, num_bits, narrow_range):
    if num_bits < 2 or num_bits > 16:
        raise ValueError("fake_quant: num_bits must be between 2 and 16")
    quant_min = 1 if narrow_range else 0
    quant_max = (1 << num_bits) - 1
    xf = np.ascontiguousarray(x).reshape(-1).astype(np.float32)
    out = _fake_quant_flat(xf, np.float32(min), np.float32(max), quant_min, quant_max)
    return out.reshape(x.shape)


def fake_quant_numpy(x, min, max, num_bits, narrow_range):
    """NumPy twin of :func:`fake_quant`: ``FakeQuantWithMinMaxVars(x, min, max, num_bits, narrow_range)``.

    ``y = floor((clamp(x, nudged_min, nudged_max) - nudged_min) / scale - quant_zero + 0.5) * scale`` with
    ``quant_zero = floor(-nudged_min * inv_scale + 0.5)``, all float32 (module docstring).
    """
    x = np.asarray(x, dtype=np.float32)
    if np.float32(min) == 0 and np.float32(max) == 0:
        return np.zeros(x.shape, np.float32)
    nudged_min, nudged_max, scale, inv_scale, _ = nudge_full(min, max, num_bits, narrow_range)
    half = np.float32(0.5)
    with np.errstate(invalid="ignore", divide="ignore"):
        quant_zero = np.floor(-nudged_min * inv_scale + half)
        clamped = np.maximum(np.minimum(x, nudged_max), nudged_min)
        return (np.floor((clamped - nudged_min) / scale - quant_zero + half) * scale).astype(np.float32)
