"""Self-tests of the TensorFlow oracle (tests/tf_oracle.py) against Google's released MobileNet files.

They prove the oracle is faithful before the library is compared with it: its hard-coded tables match the real
graphs' variables (V1) and the real V2 TFLite model's layers, its eager forward pass reproduces the released
frozen graphs on real photos, its random models are numerically sane, its checkpoints read back in TF, and its
MAC counts match the published totals.
"""
import math
import warnings

import numpy as np
import pytest

from mobilenet_np import testing
from tests import tf_oracle as oracle

tf = pytest.importorskip("tensorflow")

FROZEN = {
    "2018_224": ("models/mobilenet_v1_0.25_224/mobilenet_v1_0.25_224_frozen.pb", 224),
    "2017_128": ("models/mobilenet_v1_0.25_128_2017/frozen_graph.pb", 128),
    "2017_192": ("models/mobilenet_v1_0.25_192_2017/frozen_graph.pb", 192),
}
V2_TFLITE = "models/tflite/coral_mobilenet_v2_1.0_224_quant.tflite"

V1_ENDPOINTS = (["Conv2d_0"] + [f"Conv2d_{i}_{p}" for i in range(1, 14) for p in ("depthwise", "pointwise")]
                + ["AvgPool_1a", "Logits", "Predictions"])
V2_ENDPOINTS = (["Conv", "expanded_conv/depthwise", "expanded_conv/project", "expanded_conv"]
                + [f"expanded_conv_{k}{p}" for k in range(1, 17)
                   for p in ("/expand", "/depthwise", "/project", "")]
                + ["Conv_1", "global_pool", "Logits", "Predictions"])


def _fixture(rel):
    path = testing.fixture_path(rel)
    if path is None:
        pytest.skip(testing.missing_reason(rel))
    return str(path)


def _photos(size):
    """The fixture photos, bilinear-resized (pillow) to ``size`` x ``size``, float32 in [0, 1]."""
    image_mod = pytest.importorskip("PIL.Image")
    folder = testing.fixture_path("images")
    if folder is None:
        pytest.skip(testing.missing_reason("images"))
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".bmp"))
    return np.stack([np.asarray(image_mod.open(p).convert("RGB").resize((size, size), image_mod.BILINEAR),
                                dtype=np.float32) / 255.0 for p in files])


def _top5(logits):
    return np.argsort(-logits, axis=1, kind="stable")[:, :5]


# ---------------------------------------------------------------------------------------------- tables

@pytest.mark.parametrize("key", sorted(FROZEN))
def test_v1_table_matches_released_graph_variables(key):
    pb = _fixture(FROZEN[key][0])
    found = {name: tuple(value.shape) for name, value in oracle.frozen_graph_variables_tf(pb).items()}
    assert found == oracle.slim_variable_shapes("v1", 0.25)
    assert all(v.dtype == np.float32 for v in oracle.frozen_graph_variables_tf(pb).values())
    assert oracle.frozen_graph_batch_norm_epsilon(pb) == pytest.approx(1e-3, rel=1e-6)


def test_v2_table_matches_real_v2_tflite_layers():
    """Kernel shapes, output sizes (hence strides) and residual count of the real V2 1.0/224 TFLite model."""
    path = _fixture(V2_TFLITE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=path)
    if not hasattr(interpreter, "_get_ops_details"):
        pytest.skip("this TFLite interpreter does not expose op details")
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    shapes = oracle.slim_variable_shapes("v2", 1.0)
    macs_tflite = {}
    for op in ops:
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        kernel = tensors[op["inputs"][1]]
        scope = kernel["name"].split(";")[0].rsplit("/", 1)[0].split("/", 1)[1]
        o, kh, kw, i = (int(d) for d in kernel["shape"])
        if op["op_name"] == "DEPTHWISE_CONV_2D":        # TFLite [1, KH, KW, C] vs TF [KH, KW, C, 1]
            assert shapes[f"MobilenetV2/{scope}/depthwise_weights"] == (kh, kw, i, 1)
            kind = "dw"
        else:                                           # TFLite [O, KH, KW, I] vs TF [KH, KW, I, O]
            assert shapes[f"MobilenetV2/{scope}/weights"] == (kh, kw, i, o)
            kind = "conv"
        out = tensors[op["outputs"][0]]["shape"]
        macs_tflite[scope] = oracle._conv_macs(kind, out, (kh, kw, i, 1) if kind == "dw" else (kh, kw, i, o))
    assert macs_tflite == oracle.tf_macs("v2", 1.0, 224, 224)
    residuals = sum(b["residual"] for b in oracle.v2_blocks(1.0))
    assert sum(op["op_name"] == "ADD" for op in ops) == residuals == 10


def test_v2_table_spot_checks():
    """Rows of SEMANTICS B.2 (alpha 0.5) and the depth rules at other multipliers."""
    s = oracle.slim_variable_shapes("v2", 0.5)
    assert s["MobilenetV2/Conv/weights"] == (3, 3, 3, 16)
    assert "MobilenetV2/expanded_conv/expand/weights" not in s
    assert s["MobilenetV2/expanded_conv/depthwise/depthwise_weights"] == (3, 3, 16, 1)
    assert s["MobilenetV2/expanded_conv/project/weights"] == (1, 1, 16, 8)
    assert s["MobilenetV2/expanded_conv_1/expand/weights"] == (1, 1, 8, 48)
    assert s["MobilenetV2/expanded_conv_13/depthwise/depthwise_weights"] == (3, 3, 288, 1)
    assert s["MobilenetV2/expanded_conv_16/project/weights"] == (1, 1, 480, 160)
    assert s["MobilenetV2/Conv_1/weights"] == (1, 1, 160, 1280)
    assert s["MobilenetV2/Logits/Conv2d_1c_1x1/weights"] == (1, 1, 1280, 1001)
    assert len(s) == 262
    assert oracle.slim_variable_shapes("v2", 1.4)["MobilenetV2/Conv_1/weights"] == (1, 1, 448, 1792)
    assert oracle.slim_variable_shapes("v2", 0.35)["MobilenetV2/Conv/weights"] == (3, 3, 3, 16)
    assert oracle.slim_variable_shapes("v1", 1.0)["MobilenetV1/Conv2d_13_pointwise/weights"] == (1, 1, 1024, 1024)
    assert "MobilenetV1/Logits/Conv2d_1c_1x1/biases" not in oracle.slim_variable_shapes("v1", 0.25, num_classes=0)


# ---------------------------------------------------------------------------------------------- forward pass

@pytest.mark.parametrize("key", sorted(FROZEN))
def test_tf_endpoints_reproduce_released_frozen_graph(key):
    rel, size = FROZEN[key]
    pb = _fixture(rel)
    images = _photos(size)
    reference = oracle.run_frozen_graph(pb, images)
    ours = oracle.tf_endpoints("v1", oracle.frozen_graph_variables_tf(pb), images,
                               batch_norm_epsilon=oracle.frozen_graph_batch_norm_epsilon(pb))
    assert list(reference) == list(ours) == V1_ENDPOINTS
    for name in V1_ENDPOINTS:
        assert ours[name].shape == reference[name].shape, name
        assert ours[name].dtype == np.float32
        np.testing.assert_allclose(ours[name], reference[name], rtol=0, atol=1e-3, err_msg=name)
    delta = np.abs(ours["Logits"] - reference["Logits"]).max()
    print(f"{key}: max |delta logits| = {delta:.2e} over {len(images)} photos")
    assert delta < 1e-4
    np.testing.assert_array_equal(_top5(ours["Logits"]), _top5(reference["Logits"]))
    np.testing.assert_allclose(ours["Predictions"], reference["Predictions"], rtol=0, atol=1e-5)
    assert reference["Conv2d_13_pointwise"].shape[1] == math.ceil(size / 32)


def test_run_frozen_graph_batch1_matches_batched():
    pb = _fixture(FROZEN["2018_224"][0])
    images = _photos(224)[:3]
    batched = oracle.run_frozen_graph(pb, images)
    single = oracle.run_frozen_graph(pb, images, batch1=True)
    for name in V1_ENDPOINTS:
        np.testing.assert_allclose(single[name], batched[name], rtol=0, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("arch,alpha", [("v1", 0.25), ("v2", 0.5), ("v2", 1.4)])
def test_calibrated_random_model_is_sane(arch, alpha):
    """Realistic activations at every depth, on images the calibration never saw, non-square, batch 3."""
    variables = oracle.random_slim_variables(arch, alpha)
    assert {k: v.shape for k, v in variables.items()} == oracle.slim_variable_shapes(arch, alpha)
    assert all(v.dtype == np.float32 for v in variables.values())
    images = oracle.smooth_random_images(3, 96, 160, seed=123)
    ends = oracle.tf_endpoints(arch, variables, images)
    assert list(ends) == (V1_ENDPOINTS if arch == "v1" else V2_ENDPOINTS)
    pool = "AvgPool_1a" if arch == "v1" else "global_pool"
    relu6 = [k for k in ends if k not in (pool, "Logits", "Predictions") and not _linear(arch, k)]
    saturating = 0
    for name in relu6:
        value = ends[name]
        zero, six = np.mean(value == 0), np.mean(value == 6)
        assert 0.05 < zero < 0.95 and six < 0.5, (name, zero, six)
        dead = np.mean(np.all(value.reshape(-1, value.shape[-1]) == 0, axis=0))
        assert dead < 0.1, (name, dead)
        saturating += six > 0
    assert saturating >= 0.5 * len(relu6)            # the clip at 6 is exercised
    for name in ends:
        if _linear(arch, name):
            assert ends[name].min() < -0.5 and 1 < ends[name].max() < 30, name
    spread = ends["Logits"].max(axis=1) - ends["Logits"].min(axis=1)
    assert np.all(spread > 4) and np.all(ends["Logits"].std(axis=1) > 1), spread
    assert np.all(np.abs(ends["Logits"]) < 50)
    np.testing.assert_allclose(ends["Predictions"].sum(axis=1), 1, rtol=1e-5)
    assert ends[pool].shape == (3, 1, 1, variables[f"{oracle.SCOPES[arch]}/Logits/Conv2d_1c_1x1/weights"].shape[2])
    # Batch independence: each image alone gives the same result.
    alone = oracle.tf_endpoints(arch, variables, images[1:2])
    np.testing.assert_allclose(alone["Logits"], ends["Logits"][1:2], rtol=0, atol=1e-4)


def _linear(arch, endpoint):
    """V2 project outputs and residual block outputs have no ReLU6."""
    return arch == "v2" and endpoint.startswith("expanded_conv") and not endpoint.endswith(("/expand", "/depthwise"))


def test_tf_endpoints_spatial_sizes_any_input():
    variables = oracle.random_slim_variables("v1", 0.25)
    ends = oracle.tf_endpoints("v1", variables, oracle.smooth_random_images(2, 33, 70, seed=3))
    assert ends["Conv2d_0"].shape == (2, 17, 35, 8)
    assert ends["Conv2d_13_pointwise"].shape == (2, 2, 3, 256)
    assert ends["Logits"].shape == (2, 1001)
    features = oracle.tf_endpoints("v1", {k: v for k, v in variables.items() if "Logits" not in k},
                                   oracle.smooth_random_images(1, 32, 32, seed=4))
    assert list(features)[-1] == "AvgPool_1a" and features["AvgPool_1a"].shape == (1, 1, 1, 256)


def test_random_variables_are_deterministic_copies():
    a = oracle.random_slim_variables("v1", 0.25, seed=0)
    b = oracle.random_slim_variables("v1", 0.25, seed=0)
    a["MobilenetV1/Conv2d_0/weights"][:] = 0
    assert np.any(b["MobilenetV1/Conv2d_0/weights"] != 0)
    c = oracle.random_slim_variables("v1", 0.25, seed=1)
    assert not np.array_equal(b["MobilenetV1/Conv2d_0/weights"], c["MobilenetV1/Conv2d_0/weights"])


# ---------------------------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("arch,alpha", [("v1", 0.25), ("v2", 0.5)])
def test_saved_checkpoint_reads_back_in_tf(tmp_path, arch, alpha):
    variables = oracle.random_slim_variables(arch, alpha)
    variables["global_step"] = np.int64(12345)
    prefix = oracle.save_slim_checkpoint(variables, tmp_path / "model.ckpt")
    assert (tmp_path / "model.ckpt.index").exists() and (tmp_path / "model.ckpt.data-00000-of-00001").exists()
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    assert set(reader.get_variable_to_shape_map()) == set(variables)
    assert dtypes["global_step"] == tf.int64 and reader.get_tensor("global_step") == 12345
    for name, value in variables.items():
        if name != "global_step":
            assert dtypes[name] == tf.float32
            np.testing.assert_array_equal(reader.get_tensor(name), value, err_msg=name)


# ---------------------------------------------------------------------------------------------- MACs

PUBLISHED_MACS = {"2017_128": 13.57e6, "2018_224": 41.03e6}     # with the logits layer


@pytest.mark.parametrize("key", sorted(FROZEN))
def test_frozen_graph_macs(key):
    rel, size = FROZEN[key]
    macs = oracle.frozen_graph_macs(_fixture(rel))
    total = sum(macs.values())
    print(f"\n{key}: {total:,} MACs with logits ({total - macs['Logits/Conv2d_1c_1x1']:,} body)")
    for scope, count in macs.items():
        print(f"  {scope:24s} {count:>11,}")
    assert list(macs) == ["Conv2d_0"] + [f"Conv2d_{i}_{p}" for i in range(1, 14)
                                         for p in ("depthwise", "pointwise")] + ["Logits/Conv2d_1c_1x1"]
    assert macs == oracle.tf_macs("v1", 0.25, size, size)
    assert macs["Logits/Conv2d_1c_1x1"] == 256 * 1001
    if key in PUBLISHED_MACS:
        assert abs(total - PUBLISHED_MACS[key]) <= 0.01e6
    else:   # 192 px: the slim README's "34 M" is not what the graph computes; TF's shapes give 30.21 M
        assert total == 30_212_864
