"""Image loading in every odd mode pillow produces, checked against values derived by hand."""
import numpy as np
import pytest
from PIL import Image

import mobilenet_np as mnp
from mobilenet_np.preprocessing import central_crop_box


def _save(tmp_path, name, image, **kw):
    path = tmp_path / name
    image.save(path, **kw)
    return path


def test_rgb_png_round_trips_exactly(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    x = mnp.load_image(_save(tmp_path, "a.png", Image.fromarray(rgb)), (40, 50))
    assert x.dtype == np.float32 and x.shape == (40, 50, 3)
    np.testing.assert_array_equal(x, rgb.astype(np.float32) / np.float32(255))


def test_grayscale_palette_rgba_and_16_bit(tmp_path):
    gray = np.arange(40 * 40, dtype=np.uint8).reshape(40, 40)
    x = mnp.load_image(_save(tmp_path, "g.png", Image.fromarray(gray, "L")), 40)
    assert np.array_equal(x[..., 0], x[..., 2]) and np.array_equal(x[..., 0] * 255, gray.astype(np.float32))
    pal = Image.fromarray(gray, "L").convert("P")
    xp = mnp.load_image(_save(tmp_path, "p.png", pal), 40)
    expected = np.asarray(pal.convert("RGB"), np.float32) / 255
    np.testing.assert_array_equal(xp, expected)
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 7          # alpha is dropped, colour kept
    xa = mnp.load_image(_save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")), 40)
    assert np.all(xa[..., 0] == np.float32(200) / 255) and np.all(xa[..., 1:] == 0)
    deep = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).astype(np.uint16)   # up to 63,960
    x16 = mnp.load_image(_save(tmp_path, "d.png", Image.fromarray(deep)), 40)
    np.testing.assert_array_equal(x16[..., 1] * 255, np.floor(deep / 257.0 + 0.5).astype(np.float32))


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((30, 60, 3), np.uint8)
    img[:, :10] = 255                                    # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6                                     # "rotate 90 CW to display"
    path = _save(tmp_path, "r.jpg", Image.fromarray(img), exif=exif, quality=100)
    x = mnp.load_image(path, (60, 30))                   # displayed upright: 60 tall, 30 wide
    assert x[:10].mean() > 0.9 and x[-10:].mean() < 0.1  # the band is now on top


def test_central_crop_matches_tf_rule():
    # tf.image.central_crop: start = int((n - n*f) / 2); 0.875 of 100 -> start 6, size 88
    assert central_crop_box(100, 100, 0.875) == (6, 6, 94, 94)
    assert central_crop_box(225, 150, 0.875) == (14, 9, 211, 141)
    with pytest.raises(mnp.InputError):
        central_crop_box(10, 10, 0)


def test_bilinear_resize_and_crop(tmp_path):
    ramp = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    path = _save(tmp_path, "ramp.png", Image.fromarray(np.dstack([ramp] * 3)))
    x = mnp.load_image(path, 32)
    assert x.shape == (32, 32, 3) and np.all(np.diff(x[0, :, 0]) > 0)       # still a monotone ramp
    crop = mnp.load_image(path, 56, central_fraction=0.875)                  # 64 -> start 4, 56 pixels
    np.testing.assert_array_equal(crop[0, :, 0] * 255, (np.arange(4, 60) * 4).astype(np.float32))


def test_unreadable_images_raise_input_error(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(mnp.InputError, match="cannot read image"):
        mnp.load_image(tmp_path / "x.jpg", 32)
    with pytest.raises(mnp.InputError, match="not found"):
        mnp.load_image(tmp_path / "missing.jpg", 32)


def test_decode_predictions_uses_softmax_and_labels():
    logits = np.array([[0.0, np.log(3.0), 0.0, 0.0]], np.float32)   # softmax = [1/6, 3/6, 1/6, 1/6]
    (top,) = mnp.decode_predictions(logits, top=2, labels=["background", "a", "b", "c"])
    assert top[0][:2] == (1, "a") and abs(top[0][2] - 0.5) < 1e-6
    assert top[1][:2] == (0, "background")        # ties: lower index first
