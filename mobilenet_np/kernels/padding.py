"""TensorFlow 'SAME' padding, one spatial dimension at a time.

For an input of ``n`` pixels, a kernel of ``k`` taps and stride ``s``::

    out       = ceil(n / s)
    pad_total = max((out - 1) * s + k - n, 0)
    before    = pad_total // 2          (top / left)
    after     = pad_total - before      (bottom / right: the odd extra pixel goes here)

Example: n = 224, k = 3, s = 2 gives out = 112, pad_total = 1, so no padding on top and one row at the
bottom. Symmetric padding (one pixel on every side, as PyTorch does) shifts every stride-2 layer by one
pixel; it is the most common porting mistake.
"""
from numba import njit


def same_padding(n, k, s):
    """Return ``(out, pad_before, pad_after)`` for TF 'SAME' padding of one dimension."""
    if n < 1 or k < 1 or s < 1:
        raise ValueError(f"same_padding needs positive sizes, got n={n}, k={k}, s={s}")
    out = -(-n // s)
    pad_total = max((out - 1) * s + k - n, 0)
    before = pad_total // 2
    return out, before, pad_total - before


def same_pads(h, w, k, s):
    """``(top, bottom, left, right)`` SAME padding of an ``h`` x ``w`` map for a ``k`` x ``k`` kernel."""
    _, top, bottom = same_padding(h, k, s)
    _, left, right = same_padding(w, k, s)
    return top, bottom, left, right


@njit(cache=True)
def valid_columns(k, stride, before, n, out):
    """Output positions ``j`` in ``[lo, hi)`` whose tap ``j*stride - before + k`` lies inside ``[0, n)``:
    the range a kernel loop can run over without a bounds check per pixel."""
    lo = max(0, (before - k + stride - 1) // stride)
    hi = min(out, (n - 1 + before - k) // stride + 1)
    return lo, hi
