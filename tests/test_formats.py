"""Every weight format weights_tools reads, with TensorFlow/Keras as the maker of real files and the oracle.

Each test: TF or Keras writes a file, we read it without TF, and every array must equal what TF/Keras
report (bit for bit); where a model can run, our outputs must match TF's.
"""
import os
import tarfile

import numpy as np
import pytest

import mobilenet_np as mnp
from mobilenet_np.testing import assert_close, fixture_path, fixtures_dir, max_difference, missing_reason
from weights_tools.convert import read_source, source_kind
from weights_tools.keras_h5 import BACKGROUND_BIAS

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
tf_oracle = pytest.importorskip("tests.tf_oracle")

QUANT_DIR = "models/mobilenet_v1_0.25_128_quant"


def _photos(size, count=4):
    root = fixtures_dir()
    if root is None:
        pytest.skip(missing_reason("images"))
    paths = sorted(p for p in (root / "images").iterdir() if p.suffix in (".jpg", ".bmp"))[:count]
    return mnp.load_images(paths, size)


def _realistic(model, seed=0):
    """Give a Keras model's BN layers non-trivial statistics (Keras initializes them to 0/1)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.3, c),
                               rng.uniform(0.5, 2.0, c)])
        elif isinstance(layer, keras.layers.Dense) or layer.name == "conv_preds":
            w, b = layer.get_weights()
            layer.set_weights([w * 3.0, rng.normal(0, 0.1, b.shape)])
    return model


def _keras_slim_pairs(model):
    """(slim name, Keras array) for every weight, by the published layer-name correspondence."""
    from weights_tools.names import keras_family, keras_to_slim

    family = keras_family(l.name for l in model.layers)
    for layer in model.layers:
        for var in layer.weights:
            leaf = var.path.split("/")[-1] if hasattr(var, "path") else var.name
            name = keras_to_slim(family, layer.name, leaf)
            if name:
                yield name, np.asarray(var.numpy())


@pytest.fixture(scope="module")
def keras_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("keras")
    v1 = _realistic(keras.applications.MobileNet(alpha=0.5, input_shape=(128, 128, 3), weights=None), 1)
    v2 = _realistic(keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None), 2)
    files = {}
    for name, model in (("v1", v1), ("v2", v2)):
        model.save(d / f"{name}_full.h5")
        model.save_weights(d / f"{name}.weights.h5")
        files[name] = (model, d / f"{name}_full.h5", d / f"{name}.weights.h5")
    return files


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_keras_files_read_bit_exact_in_both_layouts(keras_models, name):
    model, full, weights_only = keras_models[name]
    expected = dict(_keras_slim_pairs(model))
    for path in (full, weights_only):
        assert source_kind(path) == "keras"
        ws = read_source(path)
        assert ws.num_classes == 1001 and ws.family == f"mobilenet_{name}"
        for slim, value in expected.items():
            got = ws.variables[slim]
            if slim.endswith("Logits/Conv2d_1c_1x1/weights"):
                assert np.array_equal(got[..., 1:].reshape(value.shape), value) and not got[..., 0].any()
            elif slim.endswith("Logits/Conv2d_1c_1x1/biases"):
                assert np.array_equal(got[1:], value) and got[0] == np.float32(BACKGROUND_BIAS)
            else:
                assert np.array_equal(got, value), f"{path.name}: {slim}"
    assert read_source(full).input_size == model.input_shape[1:3]


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_keras_model_parity(keras_models, name):
    """Our forward pass on Keras weights equals Keras's own (probabilities: background gets exactly 0)."""
    model, full, _ = keras_models[name]
    size = model.input_shape[1:3]
    images = tf_oracle.smooth_random_images(3, *size, seed=3)
    theirs = model.predict(images * 2.0 - 1.0, verbose=0)
    ours = mnp.load(full).predictions(images)
    assert np.all(ours[:, 0] == 0.0)
    worst, where = max_difference(ours[:, 1:], theirs)
    print(f"\nKeras {name}: max |d probability| {worst:.3g} at {where}")
    assert_close(ours[:, 1:], theirs, "probabilities_vs_keras", f"Keras {name} probabilities")
    assert np.array_equal(ours[:, 1:].argmax(1), theirs.argmax(1))


def test_real_keras_no_top_file_matches_keras():
    rel = "models/keras/mobilenet_2_5_224_tf_no_top.h5"
    path = fixture_path(rel)
    if path is None:
        pytest.skip(missing_reason(rel))
    ws = read_source(path)
    assert (ws.family, ws.depth_multiplier, ws.num_classes, ws.input_size) == ("mobilenet_v1", 0.25, 0, (224, 224))
    model = keras.applications.MobileNet(alpha=0.25, input_shape=(224, 224, 3), include_top=False, weights=None,
                                         pooling="avg")
    model.load_weights(path)
    for slim, value in _keras_slim_pairs(model):
        assert np.array_equal(ws.variables[slim], value), slim
    images = _photos(224)
    theirs = model.predict(images * 2.0 - 1.0, verbose=0)
    ours = mnp.load(path).features(images)
    worst, _ = max_difference(ours, theirs)
    print(f"\nreal Keras V1 0.25/224 no-top: max |d feature| {worst:.3g}")
    assert_close(ours, theirs, "endpoint_vs_tf", "features")


def _tf1_saved_model(variables, folder, hub=False):
    graph = tf.Graph()
    with graph.as_default():
        feeds = {}
        for name, value in variables.items():
            scope, leaf = name.rsplit("/", 1)
            init = tf.compat.v1.placeholder(tf.float32, value.shape)
            with tf.compat.v1.variable_scope(scope):
                tf.compat.v1.get_variable(leaf, initializer=init)
            feeds[init] = value
        images = tf.compat.v1.placeholder(tf.float32, [None, 160, 160, 3], name="images")
        out = tf.identity(tf.reduce_mean(images, axis=[1, 2]), name="out")
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer(), feeds)
            builder = tf.compat.v1.saved_model.Builder(str(folder))
            sig = tf.compat.v1.saved_model.predict_signature_def({"images": images}, {"default": out})
            builder.add_meta_graph_and_variables(sess, [], signature_def_map={"default": sig})
            builder.save()
    if hub:  # ModuleDef { format = 1: FORMAT_V3 = 3 }
        (folder / "tfhub_module.pb").write_bytes(bytes([0x08, 0x03]))


def test_tf1_saved_model_and_hub_module(tmp_path):
    variables = {k: v for k, v in tf_oracle.random_slim_variables("v2", 0.5).items() if k != "global_step"}
    _tf1_saved_model(variables, tmp_path / "module", hub=True)
    ws = read_source(tmp_path / "module")
    assert "read as a TF1 hub module" in ws.notes
    assert ws.input_size == (160, 160)        # from the signature's input shape
    assert ws.variables.keys() == variables.keys()
    for k, v in variables.items():
        assert np.array_equal(ws.variables[k], v), k


def test_tf2_saved_model_names_recovered_from_object_graph(tmp_path):
    variables = {k: v for k, v in tf_oracle.random_slim_variables("v1", 0.25).items() if k != "global_step"}
    module = tf.Module()
    module.variables_list = [tf.Variable(v, name=k) for k, v in variables.items()]
    tf.saved_model.save(module, str(tmp_path / "sm"))
    reader = tf.train.load_checkpoint(str(tmp_path / "sm" / "variables" / "variables"))
    assert "variables_list/0/.ATTRIBUTES/VARIABLE_VALUE" in reader.get_variable_to_shape_map()
    ws = read_source(tmp_path / "sm")
    assert "read as a TF2 SavedModel" in ws.notes
    assert ws.variables.keys() == variables.keys()
    for k, v in variables.items():
        assert np.array_equal(ws.variables[k], v), k


def test_ema_shadows_are_used_on_request(tmp_path):
    """TF's ExponentialMovingAverage writes ``<var>/ExponentialMovingAverage``; --ema must read exactly those."""
    variables = {k: v for k, v in tf_oracle.random_slim_variables("v1", 0.25).items() if k != "global_step"}
    graph = tf.Graph()
    with graph.as_default():
        made = {}
        for name, value in variables.items():
            scope, leaf = name.rsplit("/", 1)
            with tf.compat.v1.variable_scope(scope):
                made[name] = tf.compat.v1.get_variable(leaf, initializer=tf.constant(value))
        ema = tf.compat.v1.train.ExponentialMovingAverage(0.5)
        update = ema.apply(list(made.values()))
        bump = [tf.compat.v1.assign_add(v, tf.ones_like(v)) for v in made.values()]
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(bump)
            sess.run(update)
            shadows = {n: sess.run(ema.average(v)) for n, v in made.items()}
            raw = {n: sess.run(v) for n, v in made.items()}
            prefix = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "ema.ckpt"))
    plain, averaged = read_source(prefix), read_source(prefix, ema=True)
    for n in variables:
        assert np.array_equal(plain.variables[n], raw[n]) and np.array_equal(averaged.variables[n], shadows[n]), n
    assert not np.array_equal(plain.variables[n], averaged.variables[n])
    with pytest.raises(mnp.WeightsError, match="ema"):
        read_source(tf_oracle.save_slim_checkpoint(variables, tmp_path / "plain.ckpt"), ema=True)


def test_release_archive_uses_the_checkpoint_inside(tmp_path):
    folder = fixture_path(QUANT_DIR)
    if folder is None:
        pytest.skip(missing_reason(QUANT_DIR))
    archive = tmp_path / "mobilenet_v1_0.25_128_quant.tgz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(folder, arcname="mobilenet_v1_0.25_128_quant")
    ws = read_source(archive)
    direct = read_source(str(folder / "mobilenet_v1_0.25_128_quant.ckpt"))
    assert any("ckpt" in n for n in ws.notes) and ws.input_size == (128, 128)
    assert ws.variables.keys() == direct.variables.keys()
    assert all(np.array_equal(ws.variables[k], direct.variables[k]) for k in direct.variables)
    assert "MobilenetV1/MobilenetV1/Conv2d_0/act_quant/min" in ws.variables   # quant ranges are kept


def test_unsafe_or_corrupt_archives_are_refused(tmp_path):
    evil = tmp_path / "evil.tgz"
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w:gz") as t:
        t.add(payload, arcname="../../escape.txt")
    with pytest.raises(mnp.CorruptFileError, match="unsafe"):
        read_source(evil)
    link = tmp_path / "link.tgz"
    with tarfile.open(link, "w:gz") as t:
        info = tarfile.TarInfo("model.ckpt.index")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    with pytest.raises(mnp.CorruptFileError, match="link"):
        read_source(link)
    good = tmp_path / "good.tgz"
    with tarfile.open(good, "w:gz") as t:
        t.add(payload, arcname="readme.txt")
    with pytest.raises(mnp.UnsupportedFormatError, match="no checkpoint"):
        read_source(good)
    data = good.read_bytes()
    (tmp_path / "cut.tgz").write_bytes(data[: len(data) // 2])
    with pytest.raises(mnp.CorruptFileError):
        read_source(tmp_path / "cut.tgz")
    assert not os.path.exists(tmp_path.parent / "escape.txt")


def test_corrupt_keras_and_saved_model_files(tmp_path, keras_models):
    _, full, weights_only = keras_models["v2"]
    for src in (full, weights_only):
        data = src.read_bytes()
        bad = tmp_path / src.name
        bad.write_bytes(data[: len(data) // 2])
        with pytest.raises(mnp.MobileNetError):
            read_source(bad)
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff\x0f garbage")
    with pytest.raises(mnp.MobileNetError):
        read_source(tmp_path / "sm")
    (tmp_path / "sm2" / "variables").mkdir(parents=True)
    (tmp_path / "sm2" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(mnp.WeightsFileNotFoundError, match="variables.index"):
        read_source(tmp_path / "sm2")


def test_float_tflite_reads_as_float_weights_and_matches_tflite():
    rel = "models/mobilenet_v1_0.25_224/mobilenet_v1_0.25_224.tflite"
    path = fixture_path(rel)
    if path is None:
        pytest.skip(missing_reason(rel))
    from ai_edge_litert.interpreter import Interpreter

    model = mnp.load(path, mode="float")
    images = _photos(224, count=13)
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    theirs = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None] * 2 - 1)
        interpreter.invoke()
        theirs.append(interpreter.get_tensor(out["index"])[0])
    ours = model.predictions(images)
    worst, where = max_difference(ours, np.array(theirs))
    print(f"\nfloat .tflite read as float weights: max |d probability| vs TFLite {worst:.3g}")
    assert_close(ours, np.array(theirs), "probabilities_vs_keras", "float tflite probabilities")
    assert np.array_equal(ours.argmax(1), np.array(theirs).argmax(1))


def test_quantized_tflite_dequantizes_like_tensorflow_reports():
    rel = "models/tflite/coral_mobilenet_v2_1.0_224_quant.tflite"
    path = fixture_path(rel)
    if path is None:
        pytest.skip(missing_reason(rel))
    ws = read_source(str(path))
    expected = tf_oracle.slim_variables_from_tflite(path)     # TF's interpreter reports the same tensors
    assert (ws.family, ws.depth_multiplier, ws.input_size) == ("mobilenet_v2", 1.0, (224, 224))
    assert ws.variables.keys() == expected.keys()
    for name, value in expected.items():
        assert np.array_equal(ws.variables[name], value), name
