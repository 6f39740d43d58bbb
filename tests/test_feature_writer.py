"""Feature vectors written as they come (memory of one batch), atomically at the end, and resumable.

Expected vectors are the arrays handed to the writer (or, for the command line, the library's own
``model.features`` on the same images): what is tested is that the files hold exactly those, in order."""
import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mobilenet_np import cli
from mobilenet_np.outputs import FeatureWriter, OutputError
from mobilenet_np.weights import save_hdf5

from .helpers import random_images, random_weight_set

DIM = 6


def batches(n_batches=3, size=4, seed=0):
    rng = np.random.default_rng(seed)
    return [([f"img/{b}_{i}.jpg" for i in range(size)], rng.standard_normal((size, DIM)).astype(np.float32))
            for b in range(n_batches)]


def read_output(path):
    path = str(path)
    if path.endswith(".npy"):
        return np.load(path), open(path[:-4] + ".files.txt", encoding="utf-8").read().splitlines()
    with h5py.File(path) as f:
        return f["features"][()], [n.decode() for n in f["files"][()]]


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_streamed_output_holds_every_batch_in_order(tmp_path, suffix):
    out = tmp_path / f"f{suffix}"
    data = batches()
    with FeatureWriter(out, DIM) as w:
        for k, (names, vectors) in enumerate(data):
            w.add(names, vectors)
            # each batch is on disk when add() returns, not held in memory
            assert os.path.getsize(tmp_path / f"f{suffix}.partial" / "vectors.f32") == 4 * DIM * 4 * (k + 1)
        assert not out.exists()                 # nothing final before finish()
        written = w.finish()
    vectors, names = read_output(out)
    assert vectors.dtype == np.float32 and vectors.shape == (12, DIM)
    np.testing.assert_array_equal(vectors, np.concatenate([v for _, v in data]))
    assert names == [n for ns, _ in data for n in ns]
    assert not (tmp_path / f"f{suffix}.partial").exists()
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in written)


def test_finish_copies_in_pieces(tmp_path, monkeypatch):
    """A run larger than the copy piece is assembled piece by piece, in order (the piece is made tiny here)."""
    import mobilenet_np.outputs as outputs

    monkeypatch.setattr(outputs, "COPY_ROWS_BYTES", 3 * 4 * DIM)        # 3 rows per piece; 12 rows in all
    data = batches()
    for suffix in (".npy", ".h5"):
        with FeatureWriter(tmp_path / f"f{suffix}", DIM) as w:
            for names, vectors in data:
                w.add(names, vectors)
            w.finish()
        np.testing.assert_array_equal(read_output(tmp_path / f"f{suffix}")[0],
                                      np.concatenate([v for _, v in data]))


def test_an_empty_run_writes_an_empty_file(tmp_path):
    with FeatureWriter(tmp_path / "f.npy", DIM) as w:
        w.finish()
    vectors, names = read_output(tmp_path / "f.npy")
    assert vectors.shape == (0, DIM) and names == []


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_an_interrupted_run_resumes_to_the_same_output(tmp_path, suffix):
    """A run stopped mid-batch (half a vector row written, a name without its line end) keeps its whole
    rows; resuming skips them and the final output equals an uninterrupted run's."""
    data = batches(4)
    w = FeatureWriter(tmp_path / f"a{suffix}", DIM, {"model": "m"})
    w.add(*data[0])
    w.add(*data[1])
    w.close()                                   # the process dies here ...
    partial = tmp_path / f"a{suffix}.partial"
    with open(partial / "vectors.f32", "ab") as f:          # ... in the middle of the third batch
        f.write(data[2][1][:1].tobytes() + data[2][1][1, :2].tobytes())
    with open(partial / "names.txt", "a") as f:
        f.write("img/2_0.jpg")
    with pytest.raises(OutputError, match="--resume"):      # its work is never dropped silently
        FeatureWriter(tmp_path / f"a{suffix}", DIM, {"model": "m"})
    with FeatureWriter(tmp_path / f"a{suffix}", DIM, {"model": "m"}, resume=True) as w:
        assert len(w) == 8
        assert w.written() == {os.path.normpath(os.path.join(os.getcwd(), n)) for ns, _ in data[:2] for n in ns}
        for names, vectors in data[2:]:
            w.add(names, vectors)
        w.finish()
    with FeatureWriter(tmp_path / f"b{suffix}", DIM) as w:
        for names, vectors in data:
            w.add(names, vectors)
        w.finish()
    (va, na), (vb, nb) = read_output(tmp_path / f"a{suffix}"), read_output(tmp_path / f"b{suffix}")
    np.testing.assert_array_equal(va, vb)
    assert na == nb


def test_a_resume_with_other_settings_is_refused(tmp_path):
    w = FeatureWriter(tmp_path / "f.npy", DIM, {"model": "a", "size": [64, 64]})
    w.add(*batches(1)[0])
    w.close()
    with pytest.raises(OutputError, match=r"size=\[64, 64\].*size=\[96, 96\]"):
        FeatureWriter(tmp_path / "f.npy", DIM, {"model": "a", "size": [96, 96]}, resume=True)
    with pytest.raises(OutputError, match="dim=6.*dim=7") as refused:
        FeatureWriter(tmp_path / "f.npy", DIM + 1, {"model": "a", "size": [64, 64]}, resume=True)
    # a refused writer releases the partial run's lock at once (its traceback, kept here, still holds it), and
    # changes nothing in it
    assert len(FeatureWriter(tmp_path / "f.npy", DIM, {"model": "a", "size": [64, 64]}, resume=True)) == 4
    assert refused.value is not None


def test_a_second_writer_on_the_same_output_is_refused(tmp_path):
    pytest.importorskip("fcntl")
    with FeatureWriter(tmp_path / "f.npy", DIM) as w:
        w.add(*batches(1)[0])
        with pytest.raises(OutputError, match="another run"):
            FeatureWriter(tmp_path / "f.npy", DIM, resume=True)


def test_bad_output_names_and_rows_are_refused(tmp_path):
    with pytest.raises(OutputError, match=r"\.npy or \.h5"):
        FeatureWriter(tmp_path / "f.csv", DIM)
    assert os.listdir(tmp_path) == []
    with FeatureWriter(tmp_path / "f.npy", DIM) as w:
        with pytest.raises(OutputError, match=r"2 vectors of size 6, got shape \(2, 5\)"):
            w.add(["a", "b"], np.zeros((2, 5), np.float32))
        with pytest.raises(OutputError, match="line break"):
            w.add(["a\nb"], np.zeros((1, DIM), np.float32))
        assert len(w) == 0


# ------------------------------------------------------------------------------------------ the command line
@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("resume")
    ws = random_weight_set(input_size=(64, 64))
    save_hdf5(ws, d / "w.h5")
    (d / "imgs").mkdir()
    for i, img in enumerate(random_images(7, 70, 90, seed=11)):
        Image.fromarray((img * 255).astype(np.uint8)).save(d / "imgs" / f"p{i}.png")
    return d


def test_features_interrupted_then_resumed_on_the_command_line(photos, tmp_path, monkeypatch, capsys):
    """Ctrl-C after the second batch keeps its vectors; the same command refuses to start over without
    --resume, and with it writes the same file as an uninterrupted run, extracting only the images left."""
    import mobilenet_np as mnp
    from mobilenet_np.model import Model

    args = ["features", "--weights", str(photos / "w.h5"), str(photos / "imgs"), "--batch-size", "2"]
    assert cli.main(args + ["-o", str(tmp_path / "whole.npy")]) == 0
    real = Model.features
    seen = []

    def interrupted(self, images):
        seen.append(len(images))
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(self, images)

    monkeypatch.setattr(Model, "features", interrupted)
    assert cli.main(args + ["-o", str(tmp_path / "part.npy")]) == 130
    assert "4 vectors kept" in capsys.readouterr().err
    assert not (tmp_path / "part.npy").exists()
    assert cli.main(args + ["-o", str(tmp_path / "part.npy")]) == 1
    assert "--resume" in capsys.readouterr().err
    seen.clear()
    monkeypatch.setattr(Model, "features", real)
    monkeypatch.setattr(Model, "features", lambda self, images: seen.append(len(images)) or real(self, images))
    assert cli.main(args + ["-o", str(tmp_path / "part.npy"), "--resume"]) == 0
    assert "4 vectors kept, 3 images to go" in capsys.readouterr().err
    assert seen == [2, 1]                               # only the 3 images left were extracted
    whole, part = read_output(tmp_path / "whole.npy"), read_output(tmp_path / "part.npy")
    np.testing.assert_array_equal(part[0], whole[0])
    assert part[1] == whole[1] and len(whole[1]) == 7
    model = mnp.load(photos / "w.h5")
    np.testing.assert_allclose(whole[0][6], model.features(mnp.load_image(whole[1][6], 64)[None])[0], rtol=1e-6)
    # another model cannot continue it
    assert cli.main(args + ["-o", str(tmp_path / "other.npy")]) == 0
    monkeypatch.setattr(Model, "features", interrupted)
    seen.clear()
    assert cli.main(args + ["-o", str(tmp_path / "other.npy"), "--size", "96"]) == 130
    monkeypatch.setattr(Model, "features", real)
    assert cli.main(args + ["-o", str(tmp_path / "other.npy"), "--resume"]) == 1
    assert "size=[96, 96]" in capsys.readouterr().err


def test_names_that_are_not_utf8_keep_their_bytes(tmp_path):
    """Linux file names are bytes; Python holds undecodable ones as lone surrogates (``os.fsdecode``). The
    name list and the .h5's ``files`` must give back the original bytes, and a resume must recognise them."""
    name = os.fsdecode(b"photos/caf\xe9.jpg")
    vectors = np.ones((1, DIM), np.float32)
    for suffix in (".npy", ".h5"):
        w = FeatureWriter(tmp_path / f"f{suffix}", DIM)
        w.add([name], vectors)
        w.close()
        with FeatureWriter(tmp_path / f"f{suffix}", DIM, resume=True) as w:
            assert w.written() == {os.path.normpath(os.path.join(os.getcwd(), name))}
            w.finish()
    assert (tmp_path / "f.files.txt").read_bytes() == b"photos/caf\xe9.jpg\n"
    with h5py.File(tmp_path / "f.h5") as f:
        assert list(f["files"][()]) == [b"photos/caf\xe9.jpg"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut_vectors=st.integers(0, 12 * 4 * DIM), cut_names=st.integers(0, 200))
def test_a_run_cut_anywhere_resumes_to_the_whole_output(tmp_path_factory, cut_vectors, cut_names):
    """Whatever prefix of each file an interruption leaves (any byte count of the vectors, any of the names),
    the resumed run keeps only rows that have both, in order, and the finished file is the whole run."""
    d = tmp_path_factory.mktemp("cut")
    data = batches(3)
    all_names = [n for ns, _ in data for n in ns]
    all_vectors = np.concatenate([v for _, v in data])
    w = FeatureWriter(d / "f.npy", DIM)
    for names, vectors in data:
        w.add(names, vectors)
    w.close()
    for name, cut in (("vectors.f32", cut_vectors), ("names.txt", cut_names)):
        with open(d / "f.npy.partial" / name, "r+b") as f:
            f.truncate(cut)
    whole_lines = (d / "f.npy.partial" / "names.txt").read_bytes().count(b"\n")
    with FeatureWriter(d / "f.npy", DIM, resume=True) as w:
        n = len(w)
        assert n == min(cut_vectors // (4 * DIM), whole_lines)
        done = w.written()
        rest = [i for i, name in enumerate(all_names) if os.path.normpath(os.path.join(os.getcwd(), name)) not in done]
        assert rest == list(range(n, 12))
        w.add([all_names[i] for i in rest], all_vectors[rest])
        w.finish()
    vectors, names = read_output(d / "f.npy")
    np.testing.assert_array_equal(vectors, all_vectors)
    assert names == all_names


def test_a_damaged_run_description_is_refused(tmp_path):
    w = FeatureWriter(tmp_path / "f.npy", DIM)
    w.close()
    (tmp_path / "f.npy.partial" / "run.json").write_text("{not json")
    with pytest.raises(OutputError, match="cannot read run.json"):
        FeatureWriter(tmp_path / "f.npy", DIM, resume=True)
    (tmp_path / "f.npy.partial").rename(tmp_path / "elsewhere")
    (tmp_path / "f.npy.partial").write_text("a file, not a folder")
    with pytest.raises(OutputError, match="in the way"):
        FeatureWriter(tmp_path / "f.npy", DIM)
