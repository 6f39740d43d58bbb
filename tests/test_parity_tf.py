"""Parity with TensorFlow: the real frozen graphs on the fixture photos, and TF-built V1/V2 checkpoints.

Our side loads the weights with our own readers (no TensorFlow); TensorFlow runs the released graphs
(``tf.compat.v1``) or an independent TF transcription of the network (``tests/tf_oracle.py``).
"""
import numpy as np
import pytest

import mobilenet_np as mnp
from mobilenet_np.testing import TOLERANCES, assert_close, fixture_path, fixtures_dir, max_difference, missing_reason

tf_oracle = pytest.importorskip("tests.tf_oracle")
pytest.importorskip("tensorflow")

FROZEN_GRAPHS = {
    "v1_025_224_2018": "models/mobilenet_v1_0.25_224/mobilenet_v1_0.25_224_frozen.pb",
    "v1_025_128_2017": "models/mobilenet_v1_0.25_128_2017/frozen_graph.pb",
    "v1_025_192_2017": "models/mobilenet_v1_0.25_192_2017/frozen_graph.pb",
}


def fixture_images(size):
    root = fixtures_dir()
    if root is None or not (root / "images").is_dir():
        pytest.skip(missing_reason("images"))
    paths = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in (".jpg", ".bmp"))
    return [p.name for p in paths], mnp.load_images(paths, size)


def report(title, ours, theirs):
    """Print the per-endpoint max |difference| (shown with pytest -s) and return it."""
    errors = {name: max_difference(ours[name], theirs[name], name)[0] for name in theirs}
    print(f"\n{title}: max |diff| per endpoint")
    for name, err in errors.items():
        print(f"  {name:<28} {err:.3g}")
    return errors


def check_endpoints_and_top5(ours, theirs, names):
    for name in theirs:
        kind = "logits_vs_tf" if name == "Logits" else "endpoint_vs_tf"
        assert_close(ours[name], theirs[name], kind, name)
    top_ours = np.argsort(-ours["Logits"], axis=1, kind="stable")[:, :5]
    top_tf = np.argsort(-theirs["Logits"], axis=1, kind="stable")[:, :5]
    for i, name in enumerate(names):
        assert top_ours[i].tolist() == top_tf[i].tolist(), f"{name}: top-5 {top_ours[i]} vs TF {top_tf[i]}"


@pytest.mark.parametrize("key", list(FROZEN_GRAPHS))
def test_real_frozen_graph_parity(key):
    pb = fixture_path(FROZEN_GRAPHS[key])
    if pb is None:
        pytest.skip(missing_reason(FROZEN_GRAPHS[key]))
    model = mnp.load(pb)
    names, images = fixture_images(model.input_size)
    theirs = tf_oracle.run_frozen_graph(pb, images)
    ours = model.endpoints(images)
    errors = report(f"{key} ({len(names)} images)", ours, theirs)
    check_endpoints_and_top5(ours, theirs, names)
    assert errors["Logits"] <= TOLERANCES["logits_vs_tf"]["atol"]


def test_real_frozen_graph_numpy_engine_parity():
    """The readable NumPy twins are held to the same bound on the real 2018 weights."""
    rel = FROZEN_GRAPHS["v1_025_224_2018"]
    pb = fixture_path(rel)
    if pb is None:
        pytest.skip(missing_reason(rel))
    model = mnp.load(pb, engine="numpy", fold_batch_norm=False)
    names, images = fixture_images(224)
    theirs = tf_oracle.run_frozen_graph(pb, images[:4])
    check_endpoints_and_top5(model.endpoints(images[:4]), theirs, names[:4])


def test_real_v2_weights_parity(tmp_path):
    """No real float V2 file exists offline, but the Coral V2 1.0/224 uint8 model holds trained weights: the
    oracle dequantizes them into slim variables (BN folded, identity BN around the bias), TF's Saver writes
    them, we read the checkpoint without TF and must match TF on the photos at the trained-weights bound."""
    rel = "models/tflite/coral_mobilenet_v2_1.0_224_quant.tflite"
    path = fixture_path(rel)
    if path is None:
        pytest.skip(missing_reason(rel))
    variables = tf_oracle.slim_variables_from_tflite(path)
    prefix = tf_oracle.save_slim_checkpoint(variables, tmp_path / "mobilenet_v2_1.0_224.ckpt")
    model = mnp.load(prefix)
    assert (model.architecture.family, model.architecture.depth_multiplier, model.input_size) == (
        "mobilenet_v2", 1.0, (224, 224))
    names, images = fixture_images(224)
    theirs = tf_oracle.tf_endpoints("v2", variables, images)
    ours = model.endpoints(images)
    errors = report(f"real V2 1.0/224 weights ({len(names)} images)", ours, theirs)
    check_endpoints_and_top5(ours, theirs, names)
    assert errors["Logits"] <= TOLERANCES["logits_vs_tf"]["atol"]


@pytest.mark.parametrize("arch,alpha,size", [("v2", 0.5, (160, 160)), ("v2", 1.0, (96, 128)),
                                              ("v1", 0.5, (97, 160)), ("v1", 0.25, (32, 32))])
def test_tf_written_checkpoint_parity(arch, alpha, size, tmp_path):
    """TF's own Saver writes a slim-named checkpoint with realistic random weights; we read it without TF, run
    it, and compare every endpoint with TF running the same variables (any size >= 32, square or not).

    Random networks amplify rounding more than trained ones, so the bound is relative to TF's own float32
    error against a float64 run (TOLERANCES["random_net_vs_tf"]); both errors are printed."""
    variables = tf_oracle.random_slim_variables(arch, alpha)
    prefix = tf_oracle.save_slim_checkpoint(variables, tmp_path / "model.ckpt")
    model = mnp.load(prefix + ".index", input_size=size)
    for name, value in variables.items():
        if name != "global_step":
            assert np.array_equal(model.weights.variables[name], value), name
    images = tf_oracle.smooth_random_images(3, *size, seed=7)
    theirs = tf_oracle.tf_endpoints(arch, variables, images)
    exact = tf_oracle.tf_endpoints(arch, variables, images, dtype=np.float64)
    ours = model.endpoints(images)
    assert set(theirs) <= set(ours)
    ours_err = report(f"TF-built {arch} {alpha}/{size}: ours vs TF float32", ours, theirs)
    tf_err = report(f"TF-built {arch} {alpha}/{size}: TF float32 vs TF float64", theirs, exact)
    factor = TOLERANCES["random_net_vs_tf"]["factor"]
    for name in theirs:
        base = TOLERANCES["logits_vs_tf"]["atol"] if name == "Logits" else (
            TOLERANCES["endpoint_vs_tf"]["scaled_atol"] * float(np.abs(theirs[name]).max()))
        bound = max(base, factor * tf_err[name])
        assert ours_err[name] <= bound, (f"{name}: max |ours - TF| {ours_err[name]:.3g} > {bound:.3g} "
                                         f"(TF float32 itself is {tf_err[name]:.3g} off float64)")
    top_ours = np.argsort(-ours["Logits"], axis=1)[:, :5]
    assert top_ours.tolist() == np.argsort(-theirs["Logits"], axis=1)[:, :5].tolist()
    assert_close(model.features(images), ours[model.architecture.feature_endpoint][:, 0, 0], "engine_vs_engine",
                 "features")


def test_convert_then_load_equals_loading_the_source(tmp_path):
    variables = tf_oracle.random_slim_variables("v2", 0.5)
    prefix = tf_oracle.save_slim_checkpoint(variables, tmp_path / "v2.ckpt")
    from mobilenet_np.cli import main
    assert main(["convert", prefix, "-o", str(tmp_path / "v2.h5"), "--input-size", "160"]) == 0
    images = tf_oracle.smooth_random_images(2, 160, 160)
    np.testing.assert_array_equal(mnp.load(tmp_path / "v2.h5").classify(images), mnp.load(prefix).classify(images))


def test_corrupted_checkpoint_data_raises_checksum_error(tmp_path):
    variables = tf_oracle.random_slim_variables("v1", 0.25)
    prefix = tf_oracle.save_slim_checkpoint(variables, tmp_path / "m.ckpt")
    data = tmp_path / "m.ckpt.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    data.write_bytes(bytes(raw))
    with pytest.raises(mnp.ChecksumError, match="CRC"):
        mnp.load(prefix)
    data.write_bytes(bytes(raw[: len(raw) // 3]))
    with pytest.raises(mnp.CorruptFileError):
        mnp.load(prefix)
