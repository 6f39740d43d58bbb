"""Handles, the registry, and download-and-cache against a loopback HTTP server (127.0.0.1 only, bounded)."""
import dataclasses
import hashlib
import http.server
import socket
import tarfile
import threading

import numpy as np
import pytest

import mobilenet_np as mnp
from mobilenet_np import hub
from mobilenet_np.testing import fixture_path, missing_reason

QUANT = "models/mobilenet_v1_0.25_128_quant"
HANDLE = "https://tfhub.dev/google/imagenet/mobilenet_v1_025_128/quantops/classification/3"


def test_handles_resolve_to_registry_entries():
    h = hub.resolve(HANDLE)
    assert (h.entry.name, h.kind, h.version, h.entry.quant) == ("mobilenet_v1_025_128_quant", "classification", 3, True)
    assert hub.resolve("google/imagenet/mobilenet_v1_025_128/quantops/classification/3").entry is h.entry
    fv = hub.resolve("https://tfhub.dev/google/imagenet/mobilenet_v1_025_224/feature_vector/4")
    assert (fv.entry.name, fv.kind, fv.entry.size) == ("mobilenet_v1_025_224", "feature_vector", 224)
    v2 = hub.resolve("google/imagenet/mobilenet_v2_050_160/feature_vector/1")
    assert v2.entry.num_features == 1280 and v2.entry.family == "mobilenet_v2"
    assert hub.resolve("mobilenet_v2_140_224").entry.num_features == 1792
    assert hub.resolve("mobilenet_v1_100_224").entry.archive_url.endswith("mobilenet_v1_2018_02_22/mobilenet_v1_1.0_224.tgz")
    with pytest.raises(hub.UnknownModelError, match="did you mean"):
        hub.resolve("mobilenet_v1_025_129")
    with pytest.raises(hub.UnknownModelError):
        hub.resolve("google/imagenet/mobilenet_v2_140_96/feature_vector/4")


def test_registry_covers_the_published_family():
    names = set(hub.REGISTRY)
    assert len([n for n in names if n.startswith("mobilenet_v1") and not n.endswith("_quant")]) == 16
    assert len([n for n in names if n.endswith("_quant")]) == 16
    assert len([n for n in names if n.startswith("mobilenet_v2")]) == 22   # 4 x 5 sizes + 1.3 and 1.4 at 224


class _Server:
    """A loopback HTTP server for one archive; ``mode`` = "ok" or "truncate" (announce all, send half)."""

    def __init__(self, payload, mode="ok"):
        outer = self
        self.payload, self.mode, self.requests = payload, mode, 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                body = outer.payload
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if outer.mode == "ok" else body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive_bytes(tmp_path):
    folder = fixture_path(QUANT)
    if folder is None:
        pytest.skip(missing_reason(QUANT))
    archive = tmp_path / "mobilenet_v1_0.25_128_quant.tgz"
    with tarfile.open(archive, "w:gz") as t:
        for f in sorted(folder.iterdir()):
            if ".ckpt." in f.name:
                t.add(f, arcname=f"mobilenet_v1_0.25_128_quant/{f.name}")
    return archive.read_bytes()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILENET_NP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _cache_files(home):
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()) if home.exists() else []


def test_download_convert_cache_then_offline(archive_bytes, home, monkeypatch):
    entry = hub.REGISTRY["mobilenet_v1_025_128_quant"]
    monkeypatch.setitem(hub.REGISTRY, entry.name,
                        dataclasses.replace(entry, sha256=hashlib.sha256(archive_bytes).hexdigest()))
    with _Server(archive_bytes) as server:
        monkeypatch.setenv("MOBILENET_NP_MIRROR", server.url)
        model = mnp.load(HANDLE, mode="float")
        assert server.requests == 1
    assert _cache_files(home) == ["archives/mobilenet_v1_0.25_128_quant.tgz", "weights/mobilenet_v1_025_128_quant.h5"]
    assert mnp.get_expected_image_size(model) == [128, 128]
    images = np.random.default_rng(0).uniform(0, 1, (2, 128, 128, 3)).astype(np.float32)
    logits = model.signatures["default"](images)
    assert logits.shape == (2, 1001)
    # the server is gone: a second load is served from the cache
    again = mnp.load("mobilenet_v1_025_128_quant", mode="float")
    np.testing.assert_array_equal(again.classify(images), logits)
    direct = mnp.load(str(fixture_path(QUANT) / "mobilenet_v1_0.25_128_quant.ckpt"))
    np.testing.assert_array_equal(direct.classify(images), logits)


def test_wrong_checksum_keeps_nothing(archive_bytes, home, monkeypatch):
    entry = hub.REGISTRY["mobilenet_v1_025_128_quant"]
    monkeypatch.setitem(hub.REGISTRY, entry.name, dataclasses.replace(entry, sha256="0" * 64))
    with _Server(archive_bytes) as server:
        monkeypatch.setenv("MOBILENET_NP_MIRROR", server.url)
        with pytest.raises(hub.DownloadError, match="sha256"):
            hub.fetch("mobilenet_v1_025_128_quant", progress=False)
    assert _cache_files(home) == []


def test_interrupted_transfer_keeps_nothing(archive_bytes, home, monkeypatch):
    with _Server(archive_bytes, mode="truncate") as server:
        monkeypatch.setenv("MOBILENET_NP_MIRROR", server.url)
        with pytest.raises(hub.DownloadError, match="interrupted|cannot download"):
            hub.fetch("mobilenet_v1_025_128_quant", progress=False)
    assert _cache_files(home) == []


def test_offline_message_says_what_to_fetch_and_where(home, monkeypatch):
    with socket.socket() as s:          # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MOBILENET_NP_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(hub.DownloadError) as info:
        hub.fetch("mobilenet_v2_050_160", progress=False)
    message = str(info.value)
    assert "mobilenet_v2_0.5_160.tgz" in message and "--weights" in message
    assert str(home / "weights" / "mobilenet_v2_050_160.h5") in message
    assert _cache_files(home) == []


def test_signatures_follow_the_module_kind(tmp_path):
    from tests.helpers import random_weight_set

    ws = random_weight_set()
    model = mnp.Model(ws.architecture(), ws.variables)
    images = np.random.default_rng(1).uniform(0, 1, (1, 64, 64, 3)).astype(np.float32)
    assert model.signatures["default"](images).shape == (1, 1001)
    model.module_kind = "feature_vector"
    out = model.signatures["default"](images, as_dict=True)
    assert out["default"].shape == (1, 256) and "MobilenetV1/Conv2d_13_pointwise" in out
    np.testing.assert_array_equal(out["default"], model.signatures["image_feature_vector"](images))
