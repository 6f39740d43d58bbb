"""Corrupt input for every format, end to end through `read_source` (what `convert`/`inspect`/`load` use).

Property: a damaged file (truncated, bytes flipped, wrong magic) either still reads as a valid weight set or
raises one of our own exceptions (a ``MobileNetError``) -- never a raw IndexError, struct.error, KeyError,
MemoryError or a hang -- and reading never writes anything. The byte-level fuzzing of the checkpoint index
and data, and of GraphDefs, is in test_readers.py; here every other format gets the same treatment.
"""
import io
import tarfile
import time

import pytest
from hypothesis import given, settings, strategies as st

from mobilenet_np.errors import MobileNetError
from mobilenet_np.testing import fixture_path
from mobilenet_np.weights import save_hdf5
from weights_tools.convert import read_source

from .helpers import random_weight_set

FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None)
SECONDS = 20.0   # a generous bound on one read of a damaged file (a healthy one takes well under 1 s)


def _files(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    files = {"ours": save_hdf5(random_weight_set(), d / "ours.h5")}
    keras = fixture_path("models/keras/mobilenet_2_5_224_tf_no_top.h5")
    if keras is not None:
        files["keras"] = str(keras)
    quant = fixture_path("models/mobilenet_v1_0.25_128_quant")
    if quant is not None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for f in sorted(quant.iterdir()):
                if ".ckpt." in f.name:
                    t.add(f, arcname=f.name)
        (d / "release.tgz").write_bytes(buf.getvalue())
        files["archive"] = str(d / "release.tgz")
    for rel in ("models/tflite/coral_mobilenet_v1_0.25_128_quant.tflite",):
        if fixture_path(rel) is not None:
            files["tflite"] = str(fixture_path(rel))
    return d, {k: str(v) for k, v in files.items()}


class _Corpus:
    """Holds the pristine files; its repr stays short (hypothesis prints the arguments of failing examples)."""

    def __init__(self, folder, files):
        self.folder, self.files = folder, files
        self.blobs = {k: open(v, "rb").read() for k, v in files.items()}

    def __repr__(self):
        return f"<corpus {sorted(self.files)}>"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _Corpus(*_files(tmp_path_factory))


def _read_damaged(folder, kind, data):
    suffix = {"ours": ".h5", "keras": ".h5", "archive": ".tgz", "tflite": ".tflite"}[kind]
    path = folder / f"damaged{suffix}"
    path.write_bytes(data)
    before = sorted(p.name for p in folder.iterdir())
    start = time.time()
    try:
        read_source(str(path))
    except MobileNetError:
        pass
    assert time.time() - start < SECONDS
    assert sorted(p.name for p in folder.iterdir()) == before      # nothing written beside it


@pytest.mark.parametrize("kind", ["ours", "keras", "archive", "tflite"])
@FUZZ
@given(data=st.data())
def test_flipped_bytes_and_truncation(corpus, kind, data):
    folder, blobs = corpus.folder, corpus.blobs
    if kind not in blobs:
        pytest.skip(f"no {kind} file available (fixtures absent)")
    raw = bytearray(blobs[kind])
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            i = data.draw(st.integers(0, len(raw) - 1), label="offset")
            raw[i] ^= data.draw(st.integers(1, 255), label="mask")
    _read_damaged(folder, kind, bytes(raw))


@pytest.mark.parametrize("kind", ["ours", "keras", "archive", "tflite"])
def test_wrong_magic_raises_our_error(corpus, kind):
    folder, blobs = corpus.folder, corpus.blobs
    if kind not in blobs:
        pytest.skip(f"no {kind} file available (fixtures absent)")
    raw = bytearray(blobs[kind])
    raw[:8] = b"JUNKJUNK"
    path = folder / f"magic_{kind}.bin"
    path.write_bytes(bytes(raw))
    with pytest.raises(MobileNetError):
        read_source(str(path))
