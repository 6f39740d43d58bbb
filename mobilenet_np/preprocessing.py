"""Image loading with pillow: RGB, bilinear resize, float32 in [0, 1] (the TF-Hub image convention)."""
import numpy as np

from .errors import InputError


def _size2(size):
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def central_crop_box(width, height, fraction):
    """The box ``tf.image.central_crop`` keeps: ``start = int((n - n * fraction) / 2)``, size ``n - 2 * start``
    per dimension (slim's eval preprocessing uses ``fraction = 0.875`` before resizing)."""
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"central crop fraction must be in (0, 1], got {fraction}")
    top = int((height - height * fraction) / 2)
    left = int((width - width * fraction) / 2)
    return left, top, width - left, height - top


def load_image(path, size, central_fraction=None):
    """Read ``path`` and return float32 ``[H, W, 3]`` in [0, 1] resized (bilinear) to ``size`` = ``(H, W)`` or an int.

    EXIF orientation is applied; grayscale, palette, RGBA (alpha dropped) and 16-bit images become RGB.
    ``central_fraction`` (e.g. 0.875, slim's eval crop) keeps the central part before resizing.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    height, width = _size2(size)
    try:
        with Image.open(path) as im:
            ImageOps.exif_transpose(im, in_place=True)     # (no copy when there is nothing to turn)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grayscale (pillow opens 16-bit PNGs as "I;16" or "I"): 0..65535 -> 0..255, rounded
                arr = np.asarray(im, dtype=np.float64)
                im = Image.fromarray(np.clip(np.floor(arr / 257.0 + 0.5), 0, 255).astype(np.uint8))
            if im.mode != "RGB":
                im = im.convert("RGB")
            if central_fraction is not None:
                im = im.crop(central_crop_box(im.width, im.height, central_fraction))
            if im.size != (width, height):
                im = im.resize((width, height), Image.BILINEAR)
            pixels = np.asarray(im, dtype=np.float32)      # a new array: divided in place
            pixels /= np.float32(255.0)
            return pixels
    except FileNotFoundError as e:
        raise InputError(f"image not found: {path}") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"cannot read image {path}: {e}") from e


def load_images(paths, size, central_fraction=None):
    """A batch ``[N, H, W, 3]`` of :func:`load_image`."""
    if not len(paths):
        return np.zeros((0, *_size2(size), 3), np.float32)
    return np.stack([load_image(p, size, central_fraction) for p in paths])
