"""The model without TensorFlow: engines agree, BN folding is exact, endpoints and inputs behave."""
import numpy as np
import pytest

import mobilenet_np as mnp
from mobilenet_np.model import Model
from mobilenet_np.testing import assert_close

from .helpers import random_images, random_weight_set


def _model(family="v1", alpha=0.25, **kw):
    ws = random_weight_set(family, alpha)
    return Model(ws.architecture(), ws.variables, weights=ws, **kw)


@pytest.mark.parametrize("family,alpha,size", [("v1", 0.25, (64, 96)), ("v2", 0.5, (65, 33))])
def test_numba_and_numpy_engines_agree_on_every_endpoint(family, alpha, size):
    images = random_images(2, *size, seed=1)
    fast = _model(family, alpha).endpoints(images)
    slow = _model(family, alpha, engine="numpy").endpoints(images)
    assert fast.keys() == slow.keys()
    for name in fast:
        assert_close(fast[name], slow[name], "engine_vs_engine", name)


@pytest.mark.parametrize("family", ["v1", "v2"])
def test_unfolded_batch_norm_path_agrees_with_folded(family):
    images = random_images(1, 64, 64, seed=2)
    folded = _model(family, 0.5 if family == "v2" else 0.25).endpoints(images)
    unfolded = _model(family, 0.5 if family == "v2" else 0.25, fold_batch_norm=False).endpoints(images)
    for name in folded:
        assert_close(folded[name], unfolded[name], "engine_vs_engine", name)


def test_endpoint_names_and_shapes_v1():
    model = _model()
    ends = model.endpoints(random_images(3, 128, 128))
    assert list(ends)[:3] == ["Conv2d_0", "Conv2d_1_depthwise", "Conv2d_1_pointwise"]
    assert ends["Conv2d_0"].shape == (3, 64, 64, 8)
    assert ends["Conv2d_13_pointwise"].shape == (3, 4, 4, 256)
    assert ends["AvgPool_1a"].shape == (3, 1, 1, 256)
    assert ends["Logits"].shape == (3, 1001)
    np.testing.assert_allclose(ends["Predictions"].sum(axis=1), 1.0, rtol=1e-5)
    assert len(ends) == 27 + 3


def test_endpoint_names_v2_and_residuals():
    model = _model("v2", 0.5)
    images = random_images(1, 160, 160)
    ends = model.endpoints(images)
    assert ends["global_pool"].shape == (1, 1, 1, 1280)
    # A residual block's output is its projection plus the previous block's output; a block without one is
    # just the projection.
    np.testing.assert_allclose(ends["expanded_conv_2"], ends["expanded_conv_2/project"] + ends["expanded_conv_1"],
                               rtol=1e-6)
    assert np.array_equal(ends["expanded_conv_3"], ends["expanded_conv_3/project"])
    assert "expanded_conv/expand" not in ends


def test_classify_features_endpoints_are_consistent_and_batched():
    model = _model()
    images = random_images(5, 128, 128, seed=3)
    ends = model.endpoints(images)
    assert_close(model.classify(images), ends["Logits"], "engine_vs_engine", "classify")
    assert_close(model.classify(images, batch_size=2), ends["Logits"], "engine_vs_engine", "batched classify")
    assert_close(model.features(images), ends["AvgPool_1a"][:, 0, 0], "engine_vs_engine", "features")
    # batch independence: image 3 alone gives the same answer as inside the batch
    assert_close(model.classify(images[3:4])[0], ends["Logits"][3], "engine_vs_engine", "single image")
    assert model.classify(np.zeros((0, 128, 128, 3), np.float32)).shape == (0, 1001)


def test_input_validation_names_the_problem():
    model = _model()
    good = random_images(1, 40, 40)
    cases = {
        "shape": good[0],
        "3 \\(RGB\\) channels": np.zeros((1, 40, 40, 4), np.float32),
        "floating point": (good * 255).astype(np.uint8),
        "at least 32x32": np.zeros((1, 31, 40, 3), np.float32),
        "NaN or infinite": np.where(good > 0.5, np.nan, good).astype(np.float32),
        r"\[0, 1\]": good * 2 - 1,
    }
    for message, images in cases.items():
        with pytest.raises(mnp.InputError, match=message):
            model.classify(images)
    model.classify(good.astype(np.float64))  # other float dtypes are cast


def test_no_logits_model_gives_features_only():
    ws = random_weight_set(num_classes=0)
    model = Model(ws.architecture(), ws.variables)
    assert model.features(random_images(1, 64, 64)).shape == (1, 256)
    with pytest.raises(mnp.MobileNetError, match="no classification layer"):
        model.classify(random_images(1, 64, 64))
