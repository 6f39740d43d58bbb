"""The published MobileNet family by name: TF-Hub handles, release archives, download and cache.

A model can be named three ways, all resolving to one :class:`Entry` of :data:`REGISTRY`:

* a TF-Hub URL: ``https://tfhub.dev/google/imagenet/mobilenet_v1_025_128/quantops/classification/3``
* the same without the host: ``google/imagenet/mobilenet_v1_025_128/quantops/classification/3``
* a short name: ``mobilenet_v1_025_128`` / ``mobilenet_v1_025_128_quant`` / ``mobilenet_v2_050_160``

Each entry knows the official TF-slim release archive its weights come from. The first use downloads that
archive (progress on stderr), checks its sha256 where one is recorded, converts it, and caches the HDF5 under
``$MOBILENET_NP_HOME`` (default ``~/.cache/mobilenet_np``); later loads are offline. Downloads go to a
temporary file and are renamed into place only when complete and verified, so an interrupted or corrupt
transfer leaves no cache entry. ``$MOBILENET_NP_MIRROR`` replaces the scheme and host of every archive URL
(for a local mirror, and for the tests' loopback server).
"""
import hashlib
import http.client
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import architectures
from .errors import MobileNetError

V1_RELEASE = "https://storage.googleapis.com/download.tensorflow.org/models/mobilenet_v1_2018_02_22"
V1_QUANT_RELEASE = "https://storage.googleapis.com/download.tensorflow.org/models/mobilenet_v1_2018_08_02"
V2_RELEASE = "https://storage.googleapis.com/mobilenet_v2/checkpoints"
DOWNLOAD_TIMEOUT = 60.0      # seconds without data before a download is abandoned
CHUNK = 1 << 16


class DownloadError(MobileNetError):
    """A model archive could not be fetched or verified; the message says what to do instead."""


class UnknownModelError(MobileNetError):
    """A handle or name that is not in the registry."""


@dataclass(frozen=True)
class Entry:
    """One published model: architecture, training size, quantization, and where its weights come from."""
    name: str
    family: str
    depth_multiplier: float
    size: int
    quant: bool
    archive_url: str
    sha256: Optional[str] = None
    num_classes: int = 1001

    @property
    def num_features(self):
        return architectures.build(self.family, self.depth_multiplier, 0).num_features

    @property
    def archive_name(self):
        return self.archive_url.rsplit("/", 1)[-1]


def _alpha_code(alpha):
    return f"{int(round(alpha * 100)):03d}"       # 0.25 -> "025", 1.0 -> "100", 1.4 -> "140"


def _build_registry():
    entries = {}
    for alpha in (0.25, 0.5, 0.75, 1.0):
        for size in (128, 160, 192, 224):
            base = f"mobilenet_v1_{_alpha_code(alpha)}_{size}"
            release = f"mobilenet_v1_{alpha:g}_{size}" if alpha != 1.0 else f"mobilenet_v1_1.0_{size}"
            entries[base] = Entry(base, architectures.V1, alpha, size, False, f"{V1_RELEASE}/{release}.tgz")
            entries[base + "_quant"] = Entry(base + "_quant", architectures.V1, alpha, size, True,
                                             f"{V1_QUANT_RELEASE}/{release}_quant.tgz")
    for alpha in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
        for size in ((96, 128, 160, 192, 224) if alpha <= 1.0 else (224,)):
            name = f"mobilenet_v2_{_alpha_code(alpha)}_{size}"
            release = f"mobilenet_v2_{alpha:g}_{size}" if alpha != 1.0 else f"mobilenet_v2_1.0_{size}"
            entries[name] = Entry(name, architectures.V2, alpha, size, False, f"{V2_RELEASE}/{release}.tgz")
    return entries


REGISTRY = _build_registry()
_HANDLE = re.compile(r"^(?:https?://(?:tfhub\.dev|www\.kaggle\.com/models)/)?google/imagenet/"
                     r"(mobilenet_v[12]_\d{3}_\d{2,3})/(?:(quantops)/)?(classification|feature_vector)/(\d+)"
                     r"(?:\.tar\.gz)?/?$")


@dataclass(frozen=True)
class Handle:
    """A resolved name: the registry entry and the kind of module it named (which sets the default signature)."""
    entry: Entry
    kind: str = "classification"     # or "feature_vector"
    version: Optional[int] = None


def resolve(name):
    """Resolve a TF-Hub handle, its short form, or a short name; raise :class:`UnknownModelError` otherwise."""
    text = str(name).strip()
    match = _HANDLE.match(text.replace("https://storage.googleapis.com/tfhub-test-modules/", ""))
    if match:
        key = match.group(1) + ("_quant" if match.group(2) else "")
        if key in REGISTRY:
            return Handle(REGISTRY[key], match.group(3), int(match.group(4)))
        raise UnknownModelError(f"{text}: {key} is not a published MobileNet (see `mobilenet-np models`)")
    if text in REGISTRY:
        return Handle(REGISTRY[text])
    close = [n for n in REGISTRY if n.startswith(text[:15])][:5]
    raise UnknownModelError(f"unknown model {text!r}" + (f"; did you mean {', '.join(close)}?" if close else
                                                         " (see `mobilenet-np models`)"))


def looks_like_handle(text):
    text = str(text)
    return bool(_HANDLE.match(text)) or text in REGISTRY


def home():
    return Path(os.environ.get("MOBILENET_NP_HOME", Path.home() / ".cache" / "mobilenet_np"))


def cached_weights_path(entry):
    return home() / "weights" / f"{entry.name}.h5"


def archive_url(entry):
    """The entry's archive URL, with scheme and host replaced by ``$MOBILENET_NP_MIRROR`` when set."""
    mirror = os.environ.get("MOBILENET_NP_MIRROR")
    if not mirror:
        return entry.archive_url
    path = urllib.parse.urlsplit(entry.archive_url).path
    return mirror.rstrip("/") + path


def _progress(done, total, stream):
    if total:
        width = 30
        filled = int(width * done / total)
        stream.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done / 1e6:6.1f} / {total / 1e6:.1f} MB")
    else:
        stream.write(f"\r  {done / 1e6:6.1f} MB")
    stream.flush()


def download(url, target, sha256=None, progress=True, timeout=DOWNLOAD_TIMEOUT):
    """Fetch ``url`` to ``target`` atomically; check the length the server announced and ``sha256``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stream = sys.stderr
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=target.parent)
    digest = hashlib.sha256()
    done = 0
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0)
                if progress:
                    stream.write(f"downloading {url}\n")
                shown = -1
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    step = done * 100 // total if total else done >> 20
                    if progress and step != shown:
                        shown = step
                        _progress(done, total, stream)
        if progress:
            stream.write("\n")
        if total and done != total:
            raise DownloadError(f"download of {url} was interrupted: {done} of {total} bytes arrived")
        if sha256 and digest.hexdigest() != sha256:
            raise DownloadError(f"{url}: sha256 {digest.hexdigest()} does not match the expected {sha256}; "
                                "the file was not kept")
        os.replace(tmp, target)
        return target
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        raise DownloadError(f"cannot download {url}: {getattr(e, 'reason', e)}") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def offline_help(entry):
    return (f"fetch {entry.archive_url} on a machine with network access, then either pass it directly "
            f"(--weights {entry.archive_name}), convert it (mobilenet-np convert {entry.archive_name} -o "
            f"{entry.name}.h5), or place the converted file at {cached_weights_path(entry)}")


def _archive(entry, progress):
    """The cached release archive of ``entry``, downloaded on first use."""
    archive = home() / "archives" / entry.archive_name
    if not archive.exists():
        try:
            download(archive_url(entry), archive, entry.sha256, progress)
        except DownloadError as e:
            raise DownloadError(f"{e}. Without network: {offline_help(entry)}") from e
    return archive


def fetch(name, progress=True):
    """Path of the cached HDF5 weights for ``name``, downloading and converting the archive on first use."""
    entry = resolve(name).entry
    cached = cached_weights_path(entry)
    if cached.exists():
        return cached
    archive = _archive(entry, progress)
    from . import read_weights
    from .weights import save_hdf5

    weights = read_weights(str(archive), input_size=entry.size)
    save_hdf5(weights, cached)
    return cached


def fetch_tflite(name, progress=True):
    """Path of the cached ``.tflite`` of ``name`` (taken from its release archive), for ``mode="uint8"``."""
    import shutil

    from weights_tools.archive import unpacked_files

    entry = resolve(name).entry
    target = home() / "tflite" / f"{entry.name}.tflite"
    if target.exists():
        return target
    archive = _archive(entry, progress)
    with unpacked_files(archive) as files:
        found = [f for f in files if f.suffix == ".tflite"]
        if not found:
            raise DownloadError(f"{archive} holds no .tflite file for {entry.name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(found[0], tmp)
        os.replace(tmp, target)
    return target
