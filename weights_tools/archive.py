"""Official release archives (``mobilenet_v1_0.25_128_quant.tgz`` and the like), opened safely.

An archive is unpacked into a temporary folder that the caller owns (a context manager): only regular files,
no absolute paths, no ``..``, no links or devices, at most ``MAX_MEMBERS`` files and ``MAX_BYTES`` in all.
Then the best weight source inside is chosen: a checkpoint (BN unfolded, quantization ranges and EMA shadows
kept) before a frozen graph, before a SavedModel, before a ``.tflite``.
"""
import tarfile
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from mobilenet_np.errors import CorruptFileError, UnsupportedFormatError

MAX_MEMBERS = 10_000
MAX_BYTES = 4 << 30
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".zip")


def is_archive(path):
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def _safe_name(name, archive):
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise CorruptFileError(f"{archive}: refusing unsafe member path {name!r}")
    return Path(*p.parts)


def _extract(path, target):
    total = 0
    try:
        if str(path).lower().endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                members = [m for m in z.infolist() if not m.is_dir()]
                if len(members) > MAX_MEMBERS:
                    raise CorruptFileError(f"{path}: {len(members)} members, more than {MAX_MEMBERS}")
                for m in members:
                    total += m.file_size
                    if total > MAX_BYTES:
                        raise CorruptFileError(f"{path}: unpacks to more than {MAX_BYTES} bytes")
                    out = target / _safe_name(m.filename, path)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(m) as src, open(out, "wb") as dst:
                        dst.write(src.read())
            return
        with tarfile.open(path, "r:*") as t:
            count = 0
            for m in t:
                count += 1
                if count > MAX_MEMBERS:
                    raise CorruptFileError(f"{path}: more than {MAX_MEMBERS} members")
                if m.isdir():
                    continue
                if not m.isfile():
                    raise CorruptFileError(f"{path}: refusing link or special file {m.name!r}")
                total += m.size
                if total > MAX_BYTES:
                    raise CorruptFileError(f"{path}: unpacks to more than {MAX_BYTES} bytes")
                out = target / _safe_name(m.name, path)
                out.parent.mkdir(parents=True, exist_ok=True)
                src = t.extractfile(m)
                with open(out, "wb") as dst:
                    dst.write(src.read())
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise CorruptFileError(f"cannot unpack archive {path}: {e}") from e


def choose_source(folder):
    """The best weight source in an unpacked archive (see the module docstring), or raise."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    for suffix_test in (lambda p: p.name.endswith(".ckpt.index") or p.suffix == ".index",
                        lambda p: p.name.endswith("_frozen.pb") or p.name == "frozen_graph.pb",
                        lambda p: p.name == "saved_model.pb",
                        lambda p: p.suffix == ".tflite"):
        found = [p for p in files if suffix_test(p)]
        if found:
            chosen = found[0]
            if chosen.suffix == ".index":
                return str(chosen)[: -len(".index")]
            return str(chosen.parent) if chosen.name == "saved_model.pb" else str(chosen)
    names = ", ".join(p.name for p in files[:8])
    raise UnsupportedFormatError(f"no checkpoint, frozen graph, SavedModel or .tflite in the archive ({names})")


@contextmanager
def _unpacked_dir(path):
    with tempfile.TemporaryDirectory(prefix="mobilenet_np-") as tmp:
        _extract(path, Path(tmp))
        yield Path(tmp)


@contextmanager
def unpacked_files(path):
    """``with unpacked_files(archive) as files:`` gives the paths of every file, safely unpacked."""
    with _unpacked_dir(path) as folder:
        yield sorted(p for p in folder.rglob("*") if p.is_file())


@contextmanager
def unpacked(path):
    """``with unpacked(archive) as source:`` gives the path of the chosen weight source inside."""
    with _unpacked_dir(path) as folder:
        yield choose_source(folder)
