"""The command line, run as a user runs it (a subprocess), on weights and images made here."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mobilenet_np.weights import save_hdf5

from .helpers import random_images, random_weight_set


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mobilenet_np", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    ws = random_weight_set(input_size=(64, 64))
    ws.labels = ["background"] + [f"class {i}" for i in range(1, 1001)]
    save_hdf5(ws, d / "w.h5")
    (d / "imgs" / "sub").mkdir(parents=True)
    for i, img in enumerate(random_images(3, 80, 100, seed=5)):
        Image.fromarray((img * 255).astype(np.uint8)).save(d / "imgs" / ("sub" if i == 2 else "") / f"im{i}.png")
    (d / "imgs" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return d


def test_classify_json_lines(workdir):
    r = run("classify", "--weights", workdir / "w.h5", "--json", "--top", "3",
            workdir / "imgs" / "im0.png", workdir / "imgs" / "im1.png")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [l["image"] for l in lines] == [str(workdir / "imgs" / "im0.png"), str(workdir / "imgs" / "im1.png")]
    for l in lines:
        assert len(l["top"]) == 3
        scores = [t["score"] for t in l["top"]]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
        assert all(t["label"] == ("background" if t["index"] == 0 else f"class {t['index']}") for t in l["top"])


def test_threads_give_the_same_answers(workdir):
    images = [workdir / "imgs" / "im0.png", workdir / "imgs" / "im1.png"]
    one = run("classify", "--weights", workdir / "w.h5", "--json", *images)
    two = run("classify", "--weights", workdir / "w.h5", "--json", "--threads", "2", *images)
    assert one.returncode == two.returncode == 0, two.stderr
    assert one.stdout == two.stdout
    bad = run("classify", "--weights", workdir / "w.h5", "--threads", "0", *images)
    assert bad.returncode == 2 and "at least 1" in bad.stderr


def test_classify_folder_skips_unreadable_images_loudly(workdir):
    r = run("classify", "--weights", workdir / "w.h5", workdir / "imgs")
    assert r.returncode == 1
    assert "skipped" in r.stderr and "broken.jpg" in r.stderr and "1 of 4 images" in r.stderr
    assert "Traceback" not in r.stderr
    assert sum(line.endswith(".png") for line in r.stdout.splitlines()) == 3  # found recursively


def test_inspect_and_layers(workdir):
    r = run("inspect", workdir / "w.h5")
    assert r.returncode == 0, r.stderr
    assert "mobilenet_v1 depth_multiplier=0.25 input=64x64" in r.stdout
    assert "Conv2d_13_pointwise" in r.stdout and "labels: stored" in r.stdout
    r = run("layers", "v1", "--alpha", "0.25", "--size", "192")
    assert "total MACs 30,212,864" in r.stdout


@pytest.mark.parametrize("args,message", [
    (("classify", "--weights", "missing.h5", "x.png"), "not found"),
    (("inspect", "README.md"), "not a format"),
    (("layers", "v1", "--alpha", "-1"), "positive"),
])
def test_user_errors_are_one_line_without_traceback(args, message, tmp_path):
    (tmp_path / "README.md").write_text("hello")
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 1
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_convert_refuses_and_leaves_no_file(tmp_path):
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x00\x01garbage")
    r = run("convert", bad, "-o", tmp_path / "out.h5")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "out.h5").exists()
    assert sorted(os.listdir(tmp_path)) == ["bad.pb"]


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_features_writes_vectors_and_file_list(workdir, suffix, tmp_path):
    import h5py

    out = tmp_path / f"feats{suffix}"
    r = run("features", "--weights", workdir / "w.h5", workdir / "imgs", "-o", out, "--batch-size", "2")
    assert r.returncode == 1 and "1 of 4 images could not be read" in r.stderr   # broken.jpg, loudly
    if suffix == ".npy":
        vectors = np.load(out)
        names = (tmp_path / "feats.files.txt").read_text().splitlines()
    else:
        with h5py.File(out) as f:
            vectors, names = f["features"][()], [n.decode() for n in f["files"][()]]
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32
    assert [os.path.basename(n) for n in names] == ["im0.png", "im1.png", "im2.png"]
    # row i is the feature vector of image i, as the library computes it
    import mobilenet_np as mnp
    model = mnp.load(workdir / "w.h5")
    np.testing.assert_allclose(vectors[2], model.features(mnp.load_image(names[2], 64)[None])[0], rtol=1e-6)


def test_models_lists_the_registry():
    r = run("models")
    assert r.returncode == 0
    assert "mobilenet_v1_025_128_quant" in r.stdout and "mobilenet_v2_140_224" in r.stdout
    assert len(r.stdout.strip().splitlines()) == 1 + 54


def test_classify_top1_agrees_with_tflite_on_every_photo(tmp_path):
    """`mobilenet-np classify --json` on the fixture photos vs TFLite running the float 2018 V1 0.25/224 model."""
    from mobilenet_np.testing import fixture_path, missing_reason

    litert = pytest.importorskip("ai_edge_litert.interpreter")
    pb, tfl = (fixture_path(f"models/mobilenet_v1_0.25_224/mobilenet_v1_0.25_224{s}") for s in ("_frozen.pb", ".tflite"))
    images = fixture_path("images")
    if pb is None or tfl is None or images is None:
        pytest.skip(missing_reason("models/mobilenet_v1_0.25_224"))
    r = run("classify", "--weights", pb, "--json", "--top", "1", images)
    assert r.returncode == 0, r.stderr
    ours = {json.loads(line)["image"]: json.loads(line)["top"][0]["index"] for line in r.stdout.splitlines()}
    interpreter = litert.Interpreter(model_path=str(tfl))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    import mobilenet_np as mnp
    assert len(ours) == 13
    for path, index in ours.items():
        interpreter.set_tensor(inp["index"], mnp.load_image(path, 224)[None] * 2 - 1)
        interpreter.invoke()
        assert int(interpreter.get_tensor(out["index"])[0].argmax()) == index, path


@pytest.mark.parametrize("mode,source", [("uint8", "mobilenet_v1_0.25_128_quant.tflite"),
                                         ("fake_quant", "mobilenet_v1_0.25_128_quant.ckpt.index")])
def test_classify_quantized_modes(mode, source):
    from mobilenet_np.testing import fixture_path, missing_reason

    rel = f"models/mobilenet_v1_0.25_128_quant/{source}"
    path, image = fixture_path(rel), fixture_path("images/koala.jpg")
    if path is None or image is None:
        pytest.skip(missing_reason(rel))
    r = run("classify", "--weights", path, "--mode", mode, "--json", "--top", "1", image)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["top"][0]["index"] == 106      # koala, in both quantized forms


def test_parallel_loading_reads_like_a_serial_read(workdir, tmp_path, monkeypatch, capsys):
    """_ImageBatches with loader threads: the same batches, in the same order, with the same warnings in the
    same order as one thread; and it never reads more than two batches ahead of the one it yields."""
    from mobilenet_np import cli, preprocessing

    good = sorted((workdir / "imgs").rglob("*.png"))
    paths = []
    for i in range(7):      # 21 good images, 7 broken ones between them
        paths += good
        bad = tmp_path / f"bad{i}.png"
        bad.write_bytes(b"not an image")
        paths.append(bad)
    started = []
    real = preprocessing.load_image

    def counting(path, *args):
        started.append(path)
        return real(path, *args)

    monkeypatch.setattr(preprocessing, "load_image", counting)
    runs = {}
    for loaders in (1, 4):
        started.clear()
        batches = cli._ImageBatches(paths, (32, 40), 5, loaders=loaders)
        got = []
        for k, (chunk, images) in enumerate(batches):
            assert len(started) <= 5 * (k + 2)      # this batch and the next, no more
            got.append((chunk, images))
        runs[loaders] = got, batches.failed, capsys.readouterr().err
    (serial, failed1, err1), (parallel, failed4, err4) = runs[1], runs[4]
    assert failed1 == failed4 == 7 and err1 == err4 and err1.count("skipped") == 7
    assert [c for c, _ in serial] == [c for c, _ in parallel]
    assert sum(len(c) for c, _ in serial) == 21
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(serial, parallel))
    bad = run("features", "--weights", workdir / "w.h5", "--loaders", "0", "-o", tmp_path / "f.npy", good[0])
    assert bad.returncode == 2 and "at least 1" in bad.stderr


def test_a_slow_first_call_is_explained(capsys):
    """The first batch compiles the kernels on a new machine (15-30 s): past a few seconds the command line
    says so on stderr, once; a fast first call, and every later one, stay quiet."""
    import time

    from mobilenet_np import cli

    slow = cli._first_call_explained(lambda x: time.sleep(0.4) or x + 1, after=0.05)
    assert slow(1) == 2 and "compiling the kernels" in capsys.readouterr().err
    assert slow(2) == 3 and capsys.readouterr().err == ""
    fast = cli._first_call_explained(lambda x: x, after=0.5)
    assert fast(5) == 5
    time.sleep(0.7)                      # past the delay: the cancelled notice never comes
    assert capsys.readouterr().err == ""
