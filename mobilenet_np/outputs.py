"""Writing feature vectors: ``.npy`` (with the file list beside it) or ``.h5``, atomically."""
import os
import tempfile

import numpy as np

from .errors import MobileNetError


def _atomic(path, write):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_features(path, features, names):
    """Write ``features`` [N, D] and the N image names; returns the files written.

    ``OUT.npy`` gets ``OUT.files.txt`` (one name per line, row order); ``OUT.h5`` holds datasets ``features``
    and ``files``.
    """
    path = str(path)
    if path.endswith(".npy"):
        listing = path[:-4] + ".files.txt"

        def write_npy(tmp):
            with open(tmp, "wb") as f:
                np.save(f, features)

        def write_list(tmp):
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(n + "\n" for n in names)

        _atomic(listing, write_list)
        _atomic(path, write_npy)
        return [path, listing]
    if path.endswith((".h5", ".hdf5")):
        import h5py

        def write_h5(tmp):
            with h5py.File(tmp, "w") as f:
                f.create_dataset("features", data=features)
                f.create_dataset("files", data=np.array(names, dtype=h5py.string_dtype()))

        _atomic(path, write_h5)
        return [path]
    raise MobileNetError(f"output {path}: use a .npy or .h5 file name")
