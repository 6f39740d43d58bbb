"""Weights in memory (:class:`WeightSet`) and on disk (our HDF5 format, see ``docs/weights_format.md``).

An HDF5 weight file holds one float32 dataset per variable under its TF-slim name
(``MobilenetV1/Conv2d_0/weights``; HDF5 groups follow the ``/`` in the name), optional metadata datasets
under ``/_meta`` (``labels``), and root attributes describing the architecture and where the weights came
from. Files are written atomically: to a temporary file in the same folder, then renamed.
"""
import hashlib
import os
import tempfile
from dataclasses import dataclass, field, replace
from typing import Optional, Tuple

import numpy as np

from . import architectures
from .errors import CorruptFileError, VariableMismatchError, WeightsError, WeightsFileNotFoundError

FORMAT_NAME = "mobilenet_np.weights"
FORMAT_VERSION = 1
META_GROUP = "_meta"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# What h5py raises on a damaged file, depending on where the damage is.
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, UnicodeDecodeError, AttributeError)


@dataclass
class WeightSet:
    """Variables under slim names plus what is needed to rebuild the network around them."""
    variables: dict
    family: str
    depth_multiplier: float
    num_classes: int = 1001
    input_size: Tuple[int, int] = (224, 224)
    batch_norm_epsilon: float = architectures.BATCH_NORM_EPSILON
    source_file: str = ""
    source_sha256: str = ""
    labels: Optional[list] = None
    notes: list = field(default_factory=list)

    def architecture(self):
        arch = architectures.build(self.family, self.depth_multiplier, self.num_classes, self.input_size)
        if self.batch_norm_epsilon != arch.batch_norm_epsilon:
            arch = replace(arch, batch_norm_epsilon=float(self.batch_norm_epsilon))
        return arch


def check_variables(arch, variables, strict=False, source=""):
    """Check ``variables`` against ``arch``; raise :class:`VariableMismatchError` naming every missing or
    mis-shaped variable (and, with ``strict``, every unexpected one). Returns the unexpected names."""
    expected = arch.variables()
    missing = [n for n in expected if n not in variables]
    mismatched = [(n, shape, tuple(np.shape(variables[n]))) for n, shape in expected.items()
                  if n in variables and tuple(np.shape(variables[n])) != tuple(shape)]
    unexpected = sorted(n for n in variables if n not in expected)
    bad_dtype = [n for n in expected if n in variables and np.asarray(variables[n]).dtype.kind != "f"]
    problems = []
    where = f" in {source}" if source else ""
    if missing:
        problems.append(f"{len(missing)} missing: " + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    if mismatched:
        problems.append(f"{len(mismatched)} of the wrong shape: " + ", ".join(
            f"{n} is {found}, expected {exp}" for n, exp, found in mismatched[:10]))
    if bad_dtype:
        problems.append("not floating point: " + ", ".join(bad_dtype[:10]))
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected: " + ", ".join(unexpected[:10]))
    if problems:
        raise VariableMismatchError(
            f"variables{where} do not fit {arch.family} depth_multiplier={arch.depth_multiplier:g} "
            f"num_classes={arch.num_classes}: " + "; ".join(problems), missing, unexpected, mismatched)
    return unexpected


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_hdf5(path):
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def is_weights_file(path):
    """True when ``path`` is an HDF5 file in our format (its ``format`` attribute says so)."""
    if not is_hdf5(path):
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT_NAME
    except H5_ERRORS:
        return False


def save_hdf5(weights, path, strict=False):
    """Validate ``weights`` against its architecture and write it to ``path`` atomically."""
    import h5py

    arch = weights.architecture()
    unexpected = check_variables(arch, weights.variables, strict=strict, source=weights.source_file)
    keep = {n: np.asarray(v) for n, v in weights.variables.items()}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".h5", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it the mode a plain open() would
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(dict(
                format=FORMAT_NAME, format_version=FORMAT_VERSION, architecture=weights.family,
                depth_multiplier=float(weights.depth_multiplier), num_classes=int(weights.num_classes),
                input_size=np.asarray(weights.input_size, np.int64),
                batch_norm_epsilon=float(weights.batch_norm_epsilon),
                source_file=weights.source_file or "", source_sha256=weights.source_sha256 or "",
                unexpected_variables=len(unexpected)))
            for name, value in keep.items():
                f.create_dataset(name, data=value)
            if weights.labels:
                f.create_dataset(f"{META_GROUP}/labels", data=np.array(weights.labels, dtype=h5py.string_dtype()))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_hdf5(path):
    """Read one of our HDF5 weight files into a :class:`WeightSet` (validated against its architecture)."""
    import h5py

    path = os.fspath(path)
    if not os.path.exists(path):
        raise WeightsFileNotFoundError(f"weight file not found: {path}")
    if not is_hdf5(path):
        raise CorruptFileError(f"{path} is not an HDF5 file (wrong signature)")
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            if attrs.get("format") != FORMAT_NAME:
                raise WeightsError(f"{path} is an HDF5 file but not a mobilenet_np weight file "
                                   f"(format attribute {attrs.get('format')!r}); convert it with `mobilenet-np convert`")
            version = int(attrs.get("format_version", -1))
            if version > FORMAT_VERSION:
                raise WeightsError(f"{path} has format version {version}; this mobilenet_np reads up to "
                                   f"{FORMAT_VERSION}: upgrade mobilenet_np")
            variables, labels = {}, None

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and not name.startswith(META_GROUP + "/"):
                    variables[name] = obj[()]

            f.visititems(visit)
            if f"{META_GROUP}/labels" in f:
                labels = [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in f[f"{META_GROUP}/labels"][()]]
    except H5_ERRORS as e:
        raise CorruptFileError(f"cannot read HDF5 weight file {path}: {e}") from e
    try:
        weights = WeightSet(
            variables=variables, family=str(attrs["architecture"]),
            depth_multiplier=float(attrs["depth_multiplier"]), num_classes=int(attrs["num_classes"]),
            input_size=tuple(int(v) for v in np.ravel(attrs["input_size"]))[:2],
            batch_norm_epsilon=float(attrs.get("batch_norm_epsilon", architectures.BATCH_NORM_EPSILON)),
            source_file=str(attrs.get("source_file", "")), source_sha256=str(attrs.get("source_sha256", "")),
            labels=labels)
        arch = weights.architecture()
    except (KeyError, ValueError, TypeError) as e:
        raise CorruptFileError(f"{path}: missing or invalid root attribute: {e}") from e
    check_variables(arch, variables, source=path)
    return weights
