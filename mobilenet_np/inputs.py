"""Validation of image batches before they reach the kernels."""
import math

import numpy as np

from .architectures import MIN_INPUT_SIZE
from .errors import InputError

_FLOAT32 = np.dtype(np.float32)


def check_images(images, values=True):
    """Return ``images`` as a C-contiguous float32 ``[N, H, W, 3]`` array in [0, 1], or raise :class:`InputError`.

    The TF-Hub convention: RGB, float, values in [0, 1]; the model maps them to [-1, 1] itself (``2x - 1``).
    Any floating dtype is accepted and cast to float32; integer images are refused (a uint8 photo passed
    unscaled would be 255 times too bright). ``values=False`` skips the pass over the values (NaN, infinities,
    range) for callers that check them on the way, like the fast executor (:func:`check_values` then names the
    problem).
    """
    # (an array that needs no conversion is checked by a few attribute reads: every call runs this, and
    # right after a pass each NumPy call costs several microseconds, see executor.py)
    x = images if type(images) is np.ndarray else np.asarray(images)
    shape = x.shape
    if len(shape) != 4:
        hint = " (for one image use images[None])" if len(shape) == 3 else ""
        raise InputError(f"images must have shape [batch, height, width, 3]; got shape {shape}{hint}")
    if shape[3] != 3:
        raise InputError(f"images must have 3 (RGB) channels in the last axis; got shape {shape}")
    ready = x.dtype is _FLOAT32 and x.flags.c_contiguous
    if not ready and x.dtype.kind != "f":
        hint = "; divide uint8 images by 255" if x.dtype == np.uint8 else ""
        raise InputError(f"images must be floating point with values in [0, 1]; got dtype {x.dtype}{hint}")
    if shape[1] < MIN_INPUT_SIZE or shape[2] < MIN_INPUT_SIZE:
        raise InputError(f"images must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} pixels; "
                         f"got {shape[1]}x{shape[2]}")
    if not ready:
        x = np.ascontiguousarray(x, dtype=np.float32)
    if values:
        check_values(x)
    return x


def check_values(x):
    """Raise :class:`InputError` if the float array ``x`` holds NaN, infinities or values outside [0, 1]."""
    if not x.size:
        return
    lo, hi = float(x.min()), float(x.max())    # NaN propagates through min/max, infinities show up in them
    if not (math.isfinite(lo) and math.isfinite(hi)):
        finite = np.isfinite(x)
        bad = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise InputError(f"images contain {int((~finite).sum())} NaN or infinite values (first at index {bad})")
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"image values must lie in [0, 1]; got range [{lo:.4g}, {hi:.4g}] (the model maps "
                         "[0, 1] to [-1, 1] itself: do not pre-scale to [-1, 1] or pass 0..255)")
