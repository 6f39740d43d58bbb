"""Writing feature vectors: ``.npy`` (with the file list beside it) or ``.h5``, as they come and atomically.

:class:`FeatureWriter` appends each batch to a *partial run*, a folder ``OUT.partial`` beside the output:

    vectors.f32   the vectors so far, row after row (little-endian float32, ``dim`` values per row)
    names.txt     their images, one per line, in the same order
    run.json      what made them: vector size, model, image settings, working folder

so memory stays one batch whatever the number of images, and an interrupted run (a crash, Ctrl-C, a killed
job) keeps what it had written. :meth:`FeatureWriter.finish` writes the final file(s) from the partial run,
each atomically (a temporary file, then a rename), and removes the folder. ``resume=True`` continues a partial
run made with the same settings; the images already written are then skipped by the caller
(:meth:`FeatureWriter.written`).
"""
import json
import os
import shutil
import tempfile

import numpy as np

from .errors import MobileNetError

# File names that are not valid UTF-8 (Linux allows any bytes) keep their bytes: Python holds them as lone
# surrogates, written back as the original bytes, in the name list and in the .h5's ``files``.
NAME_ERRORS = "surrogateescape"
COPY_ROWS_BYTES = 16 << 20      # finish() copies the vectors into the final file in pieces of about this size


class OutputError(MobileNetError):
    """The output cannot be written as asked: a bad file name, a partial run in the way or made differently,
    or another run writing the same output."""


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic(path, write):
    """``write(tmp)`` to a temporary file beside ``path``, flushed to disk, then renamed to ``path``: readers
    see the old file or the whole new one, never a part."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _output_kind(path):
    if path.endswith(".npy"):
        return "npy"
    if path.endswith((".h5", ".hdf5")):
        return "h5"
    raise OutputError(f"output {path}: use a .npy or .h5 file name")


class FeatureWriter:
    """Feature vectors of size ``dim`` written to ``path`` (``OUT.npy`` + ``OUT.files.txt``, or ``OUT.h5``
    with datasets ``features`` [N, dim] float32 and ``files``) batch by batch; see the module docstring.

    ``settings``: a JSON-able dict of whatever decides the vectors (model, mode, image size, crop); a resumed
    run must have the same, else :class:`OutputError` names what differs. Without ``resume`` an existing
    partial run is an error (its work is never thrown away silently). Use as a context manager or call
    :meth:`close`; the partial run is locked against a second writer while open (where ``fcntl`` exists)."""

    def __init__(self, path, dim, settings=None, resume=False):
        self.path = str(path)
        self.kind = _output_kind(self.path)
        self.dim = int(dim)
        self.partial = self.path + ".partial"
        self.run = {"dim": self.dim, "cwd": os.getcwd(), **(settings or {})}
        self._vectors = self._names = None
        self._count = 0         # rows written (the names stay on disk only: memory is one batch)
        self._cwd_before = self.run["cwd"]      # where a resumed run's relative names are relative to
        if os.path.exists(self.partial) and not os.path.isdir(self.partial):
            raise OutputError(f"{self.partial} is in the way: a partial run would be kept in that folder")
        if os.path.isdir(self.partial):
            if not resume:
                raise OutputError(f"{self.partial} holds an unfinished run for {self.path}: pass --resume "
                                  f"(resume=True) to continue it, or delete that folder to start again")
            self._open(resume=True)
        else:
            os.makedirs(self.partial)
            self._write_run()
            self._open(resume=False)

    # ------------------------------------------------------------------ the partial run
    def _file(self, name):
        return os.path.join(self.partial, name)

    def _write_run(self):
        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.run, f, indent=1, sort_keys=True)
        _atomic(self._file("run.json"), write)

    def _open(self, resume):
        self._vectors = open(self._file("vectors.f32"), "ab")
        self._lock()
        self._names = open(self._file("names.txt"), "a", encoding="utf-8", errors=NAME_ERRORS, newline="\n")
        if resume:
            try:
                self._check_run()
                self._recover()
            except BaseException:
                self.close()        # (and release the lock)
                raise

    def _lock(self):
        try:
            import fcntl
        except ImportError:             # (Windows: no lock)
            return
        try:
            fcntl.flock(self._vectors.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._vectors.close()
            raise OutputError(f"another run is writing {self.path} (its partial run {self.partial} is locked)")

    def _check_run(self):
        try:
            with open(self._file("run.json"), encoding="utf-8") as f:
                before = json.load(f)
        except (OSError, ValueError) as e:
            raise OutputError(f"{self.partial}: cannot read run.json ({e}); delete the folder to start again")
        for key in sorted(set(before) | set(self.run)):
            if key != "cwd" and before.get(key) != self.run.get(key):
                raise OutputError(f"{self.partial} was made with {key}={before.get(key)!r}, this run has "
                                  f"{key}={self.run.get(key)!r}: its vectors would not match; delete the "
                                  f"folder to start again")
        self._cwd_before = before.get("cwd", self.run["cwd"])

    def _name_lines(self):
        """The partial run's names, one bytes string per complete line (a last line without its newline is
        incomplete), not decoded: callers that want text decode with :data:`NAME_ERRORS`, as they were encoded."""
        with open(self._file("names.txt"), "rb") as f:
            return f.read().split(b"\n")[:-1]

    def _recover(self):
        """Keep the rows that have both a vector and a name (a run stopped mid-batch may have written one and
        not the other, or half a row), and cut both files to them."""
        lines = self._name_lines()
        rows = os.path.getsize(self._file("vectors.f32")) // (4 * self.dim)
        n = min(rows, len(lines))
        self._vectors.truncate(n * 4 * self.dim)
        self._names.truncate(sum(len(line) + 1 for line in lines[:n]))
        self._count = n

    # ------------------------------------------------------------------ writing
    def written(self):
        """The images whose vectors the partial run already holds, as absolute paths (a resumed run may start
        in another folder than the one it continues)."""
        return {os.path.normpath(os.path.join(self._cwd_before, line.decode("utf-8", NAME_ERRORS)))
                for line in self._name_lines()}

    def __len__(self):
        return self._count

    def add(self, names, vectors):
        """Append ``vectors`` [len(names), dim] and their image names; both reach the files before it returns
        (the operating system's buffers: they survive the process, not a power cut)."""
        vectors = np.asarray(vectors, dtype="<f4")
        names = [str(n) for n in names]
        if vectors.shape != (len(names), self.dim):
            raise OutputError(f"expected {len(names)} vectors of size {self.dim}, got shape {vectors.shape}")
        if any("\n" in n or "\r" in n for n in names):
            raise OutputError("an image name contains a line break; it cannot be listed one per line")
        self._vectors.write(np.ascontiguousarray(vectors).tobytes())
        self._vectors.flush()
        self._names.write("".join(n + "\n" for n in names))
        self._names.flush()
        self._count += len(names)

    def finish(self):
        """Write the final file(s) from the partial run and remove it; returns the files written. (:meth:`add`
        has flushed both files.)"""
        if self.kind == "npy":
            listing = self.path[:-4] + ".files.txt"
            _atomic(listing, lambda tmp: shutil.copyfile(self._file("names.txt"), tmp))
            _atomic(self.path, self._write_npy)
            written = [self.path, listing]
        else:
            _atomic(self.path, self._write_h5)
            written = [self.path]
        self.close()
        shutil.rmtree(self.partial)
        return written

    def _row_pieces(self):
        """(first row, rows as float32 [rows, dim]) pieces of the partial run's vectors, in order."""
        n = self._count
        step = max(1, COPY_ROWS_BYTES // (4 * self.dim))
        with open(self._file("vectors.f32"), "rb") as f:
            for start in range(0, n, step):
                rows = min(step, n - start)
                data = f.read(rows * 4 * self.dim)
                yield start, np.frombuffer(data, dtype="<f4").reshape(rows, self.dim)

    def _write_npy(self, tmp):
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                     "shape": (self._count, self.dim)})
            for _, rows in self._row_pieces():
                f.write(rows)           # (the buffer itself, not a copy)

    def _write_h5(self, tmp):
        import h5py

        with h5py.File(tmp, "w") as f:
            ds = f.create_dataset("features", shape=(self._count, self.dim), dtype=np.float32)
            for start, rows in self._row_pieces():
                ds[start:start + rows.shape[0]] = rows
            f.create_dataset("files", data=np.array(self._name_lines(), dtype=h5py.string_dtype()))

    def close(self):
        """Close the partial run's files (and release its lock); what was added stays for a resume."""
        for f in (self._vectors, self._names):
            if f is not None and not f.closed:
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
