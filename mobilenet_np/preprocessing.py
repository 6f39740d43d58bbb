"""Image loading with pillow: RGB, bilinear resize, float32 in [0, 1] (the TF-Hub image convention)."""
import numpy as np

from .errors import InputError


def _size2(size):
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def load_image(path, size):
    """Read ``path`` and return float32 ``[H, W, 3]`` in [0, 1] resized (bilinear) to ``size`` = ``(H, W)`` or an int.

    EXIF orientation is applied; grayscale, palette, RGBA (alpha dropped) and 16-bit images become RGB.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    height, width = _size2(size)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                im = Image.fromarray(np.clip(arr / (65535.0 if arr.max() > 255 else 255.0) * 255.0 + 0.5, 0, 255)
                                     .astype(np.uint8))
            im = im.convert("RGB")
            if im.size != (width, height):
                im = im.resize((width, height), Image.BILINEAR)
            return np.asarray(im, dtype=np.float32) / np.float32(255.0)
    except FileNotFoundError as e:
        raise InputError(f"image not found: {path}") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"cannot read image {path}: {e}") from e


def load_images(paths, size):
    """A batch ``[N, H, W, 3]`` of :func:`load_image`."""
    return np.stack([load_image(p, size) for p in paths]) if paths else np.zeros((0, *_size2(size), 3), np.float32)
