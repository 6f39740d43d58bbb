"""Reader for TensorFlow tensor bundles (V2 checkpoints and SavedModel ``variables/``), without TensorFlow.

Format facts (design/SEMANTICS.md section F):

* A checkpoint *prefix* ``P`` has ``P.index`` and shards ``P.data-SSSSS-of-NNNNN`` (5-digit, zero-padded).
* ``P.index`` is a LevelDB-format SSTable. Its last 48 bytes are the footer: metaindex BlockHandle, index
  BlockHandle (each two varint64: offset, size), zero padding to 40 bytes, magic ``0xdb4775248b80fb57``
  (little-endian). Each block (offset, size) is followed by a 5-byte trailer: compression byte (0 = none)
  and the masked CRC32C of ``contents + compression byte``. A block holds prefix-compressed entries
  (varint ``shared``, ``non_shared``, ``value_len``, key suffix, value), then ``num_restarts`` uint32
  restart offsets and ``num_restarts`` itself. The index block maps each data block's last key to its
  BlockHandle.
* Key ``""`` holds a ``BundleHeaderProto`` (field numbers: num_shards 1, endianness 2 with LITTLE = 0,
  version 3). Every other key is a tensor name whose value is a ``BundleEntryProto`` (dtype 1, shape 2,
  shard_id 3, offset 4, size 5, crc32c 6 = fixed32 masked, slices 7).
* A partitioned variable's entry has ``slices`` and no bytes; each partition is stored under the key
  ``OrderedCode(0, name, rank, start_0, length_0, …)`` (starts with a NUL byte). :meth:`TensorBundle.keys`
  hides those keys and :meth:`TensorBundle.read` reassembles the full tensor.
* Numeric tensor bytes are C-order little-endian. ``DT_STRING`` bytes are ``n`` varint64 lengths, a 4-byte
  masked CRC32C of the lengths (each taken as a little-endian uint32, or uint64 when > 2**32-1), then the
  string bytes. A numeric entry's ``crc32c`` is the masked CRC32C of its raw bytes on disk; a string
  entry's is the masked CRC32C of (the lengths as fixed-width uint32/uint64, the 4-byte length checksum,
  the string bytes) — the varints themselves are not what is checksummed (checked against TF 2.21).

The reader is strict: every block's CRC (data, metaindex and index blocks), the footer's zero padding, the
key order and every entry's size against its shape and the shard length are checked before anything is
allocated or returned; errors are the project's ``CorruptFileError`` / ``ChecksumError`` /
``WeightsFileNotFoundError`` / ``UnsupportedFormatError`` with the file and entry named.

``DT_BFLOAT16`` tensors are returned **converted to float32** (exact: the bf16 bits become the high 16 bits
of a float32). ``DT_STRING`` tensors are numpy ``object`` arrays of ``bytes``.
"""
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from mobilenet_np.errors import (ChecksumError, CorruptFileError, UnsupportedFormatError, WeightsError,
                                 WeightsFileNotFoundError)

from . import protobuf_wire as pw
from .crc32c import crc32c, mask, masked_crc32c

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5

# DataType enum -> numpy dtype of the on-disk elements (little-endian).
_NUMPY_DTYPES = {
    1: np.dtype("<f4"),    # DT_FLOAT
    2: np.dtype("<f8"),    # DT_DOUBLE
    3: np.dtype("<i4"),    # DT_INT32
    4: np.dtype("u1"),     # DT_UINT8
    5: np.dtype("<i2"),    # DT_INT16
    6: np.dtype("i1"),     # DT_INT8
    8: np.dtype("<c8"),    # DT_COMPLEX64
    9: np.dtype("<i8"),    # DT_INT64
    10: np.dtype("?"),     # DT_BOOL
    14: np.dtype("<u2"),   # DT_BFLOAT16 (raw bits on disk)
    17: np.dtype("<u2"),   # DT_UINT16
    18: np.dtype("<c16"),  # DT_COMPLEX128
    19: np.dtype("<f2"),   # DT_HALF
    22: np.dtype("<u4"),   # DT_UINT32
    23: np.dtype("<u8"),   # DT_UINT64
}
DT_STRING = 7
DT_BFLOAT16 = 14
DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
               8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32",
               14: "bfloat16", 15: "qint16", 16: "quint16", 17: "uint16", 18: "complex128", 19: "half",
               20: "resource", 21: "variant", 22: "uint32", 23: "uint64"}

_DATA_RE = re.compile(r"^(.*)\.data-(\d{5})-of-(\d{5})$")


@dataclass(frozen=True)
class BundleEntry:
    """One tensor's metadata from the index.

    ``dtype`` is the numpy dtype :meth:`TensorBundle.read` returns (float32 for bfloat16, ``object`` for
    strings); ``tf_dtype`` the TF DataType enum value; ``crc32c`` the stored *masked* CRC32C.
    """
    name: str
    dtype: np.dtype
    tf_dtype: int
    shape: tuple
    shard_id: int
    offset: int
    size: int
    crc32c: int
    has_slices: bool = False


def _returned_dtype(tf_dtype):
    if tf_dtype == DT_STRING:
        return np.dtype(object)
    if tf_dtype == DT_BFLOAT16:
        return np.dtype(np.float32)
    dt = _NUMPY_DTYPES.get(tf_dtype)
    return None if dt is None else dt.newbyteorder("=")


def _normalise_prefix(path):
    """Map a prefix, ``P.index``, ``P.data-…`` or a SavedModel/checkpoint directory to the prefix ``P``."""
    p = os.fspath(path)
    if os.path.isdir(p):
        for cand in (os.path.join(p, "variables", "variables"), os.path.join(p, "variables")):
            if os.path.isfile(cand + ".index"):
                return cand
        indexes = sorted(f for f in os.listdir(p) if f.endswith(".index"))
        if len(indexes) == 1:
            return os.path.join(p, indexes[0][:-len(".index")])
        raise WeightsFileNotFoundError(
            f"{p}: directory holds {len(indexes)} '.index' files; pass the checkpoint prefix explicitly")
    if p.endswith(".index"):
        return p[:-len(".index")]
    m = _DATA_RE.match(p)
    if m:
        return m.group(1)
    return p


def _read_block(buf, offset, size, path, what):
    """Return the contents of the SSTable block at (offset, size) after checking its trailer CRC."""
    end = offset + size
    if offset < 0 or size < 0 or end + BLOCK_TRAILER_SIZE > len(buf):
        raise CorruptFileError(
            f"{path}: {what} block (offset {offset}, size {size}) runs past the end of the "
            f"{len(buf)}-byte index file (truncated?)")
    contents = buf[offset:end]
    ctype = buf[end]
    stored = int.from_bytes(buf[end + 1:end + 5], "little")
    actual = mask(crc32c(buf[end:end + 1], crc32c(contents)))
    if stored != actual:
        raise ChecksumError(
            f"{path}: CRC32C mismatch in {what} block at offset {offset}: stored 0x{stored:08x}, "
            f"computed 0x{actual:08x}")
    if ctype != 0:
        raise UnsupportedFormatError(
            f"{path}: {what} block at offset {offset} uses compression type {ctype} (only uncompressed "
            f"tables are supported; TensorFlow writes bundles uncompressed)")
    return contents


def _iter_block(contents, path, what):
    """Yield ``(key_bytes, value_memoryview)`` from one block's prefix-compressed entries."""
    n = len(contents)
    if n < 4:
        raise CorruptFileError(f"{path}: {what} block of {n} bytes is too small for its restart count")
    num_restarts = int.from_bytes(contents[n - 4:n], "little")
    if num_restarts == 0 and n > 4:
        raise CorruptFileError(f"{path}: {what} block with entries declares no restart points")
    limit = n - 4 - 4 * num_restarts
    if limit < 0:
        raise CorruptFileError(
            f"{path}: {what} block declares {num_restarts} restart points, more than its {n} bytes can hold")
    pos = 0
    key = b""
    while pos < limit:
        try:
            shared, pos = pw.read_varint(contents, pos)
            non_shared, pos = pw.read_varint(contents, pos)
            value_len, pos = pw.read_varint(contents, pos)
        except CorruptFileError as exc:
            raise CorruptFileError(f"{path}: bad entry header in {what} block: {exc}") from None
        if shared > len(key) or non_shared > limit - pos or value_len > limit - pos - non_shared:
            raise CorruptFileError(
                f"{path}: malformed entry at byte {pos} of {what} block (shared={shared}, "
                f"non_shared={non_shared}, value_len={value_len}, {limit - pos} bytes left)")
        key = key[:shared] + bytes(contents[pos:pos + non_shared])
        pos += non_shared
        value = contents[pos:pos + value_len]
        pos += value_len
        yield key, value


def _ordered_unsigned(key, pos, path):
    """OrderedCode unsigned number: a length byte n (0..8) then n big-endian bytes."""
    if pos >= len(key) or key[pos] > 8 or pos + 1 + key[pos] > len(key):
        raise CorruptFileError(f"{path}: malformed number in slice key {key!r}")
    n = key[pos]
    return int.from_bytes(key[pos + 1:pos + 1 + n], "big"), pos + 1 + n


def _ordered_signed(key, pos, path):
    """OrderedCode signed number: for x >= 0, L leading one-bits, a zero bit, then the value in the rest of
    the L bytes (big-endian); x < 0 is the bitwise complement of the encoding of ~x."""
    if pos >= len(key):
        raise CorruptFileError(f"{path}: truncated signed number in slice key {key!r}")
    negative = not key[pos] & 0x80
    flip = 0xFF if negative else 0
    head = ((key[pos] ^ flip) << 8) | ((key[pos + 1] ^ flip) if pos + 1 < len(key) else 0)
    length = 0
    while length < 16 and head & (0x8000 >> length):
        length += 1
    if length == 0 or length > 10 or pos + length > len(key):
        raise CorruptFileError(f"{path}: malformed signed number in slice key {key!r}")
    raw = int.from_bytes(bytes(b ^ flip for b in key[pos:pos + length]), "big")
    value = raw & ((1 << (8 * length - length - 1)) - 1)
    return (~value if negative else value), pos + length


def _decode_slice_key(key, path):
    """Decode a partition key ``OrderedCode(0, name, rank, start_0, length_0, …)`` into
    ``(name, ((start, length), …))`` (length -1 = the whole dimension)."""
    zero, pos = _ordered_unsigned(key, 0, path)
    end = key.find(b"\x00\x01", pos)
    if zero != 0 or end < 0:
        raise CorruptFileError(f"{path}: malformed slice key {key!r}")
    raw_name = key[pos:end].replace(b"\x00\xff", b"\x00").replace(b"\xff\x00", b"\xff")
    pos = end + 2
    rank, pos = _ordered_unsigned(key, pos, path)
    extents = []
    for _ in range(rank):
        if pos >= len(key):
            raise CorruptFileError(f"{path}: slice key {key!r} shorter than its rank {rank}")
        start, pos = _ordered_signed(key, pos, path)
        length, pos = _ordered_signed(key, pos, path)
        extents.append((start, length))
    if pos != len(key):
        raise CorruptFileError(f"{path}: trailing bytes in slice key {key!r}")
    return raw_name.decode("utf-8", errors="replace"), tuple(extents)


def _concrete_extents(extents, shape, path, name):
    """Normalise slice extents to ``((start, length), …)`` with full dimensions spelled out."""
    if not extents:
        extents = [(0, -1)] * len(shape)
    if len(extents) != len(shape):
        raise CorruptFileError(f"{path}: a slice of {name!r} has rank {len(extents)}, the tensor {len(shape)}")
    out = []
    for (start, length), dim in zip(extents, shape):
        if length == -1:
            start, length = 0, dim
        if start < 0 or length < 0 or start + length > dim:
            raise CorruptFileError(f"{path}: slice extent ({start}, {length}) of {name!r} exceeds dimension {dim}")
        out.append((start, length))
    return tuple(out)


def _parse_shape(msg, path, name):
    if pw.get_int(msg, 3, 0):
        raise CorruptFileError(f"{path}: entry '{name}' has unknown rank")
    dims = []
    for d in msg.get(2, ()):
        if isinstance(d, int):
            raise CorruptFileError(f"{path}: entry '{name}' has a malformed shape")
        size = pw.get_int(pw.decode_message(d), 1, 0)
        if size < 0:
            raise CorruptFileError(f"{path}: entry '{name}' has negative dimension {size}")
        dims.append(size)
    return tuple(dims)


class TensorBundle:
    """A TF tensor bundle opened by prefix, ``.index`` path, any ``.data-*`` shard path or directory.

    The index is read and fully checked (footer magic, every block's CRC, key order, entry protos) at
    construction; data shards are opened only when a tensor is read, so an index without its ``.data``
    files can still be listed (:meth:`keys`, :meth:`entry`) and only :meth:`read` fails, with
    :class:`WeightsFileNotFoundError` naming the missing shard.
    """

    def __init__(self, path):
        self.prefix = _normalise_prefix(path)
        self.index_path = self.prefix + ".index"
        try:
            with open(self.index_path, "rb") as f:
                buf = f.read()
        except FileNotFoundError:
            raise WeightsFileNotFoundError(f"checkpoint index not found: {self.index_path}") from None
        except IsADirectoryError:
            raise WeightsFileNotFoundError(f"checkpoint index is a directory: {self.index_path}") from None
        except OSError as exc:
            raise WeightsError(f"cannot read checkpoint index {self.index_path}: {exc}") from None
        self._entries = {}
        self._slice_entries = {}  # name -> [(key extents, BundleEntry of that partition)]
        self._slices = {}  # name -> [((start, length), ...) per partition] from the full entry
        self._have_header = False
        self.num_shards = 1
        self.version = {}
        self._parse_index(memoryview(buf))

    # ----------------------------------------------------------------------------------------- index
    def _parse_index(self, buf):
        path = self.index_path
        if len(buf) < FOOTER_SIZE:
            raise CorruptFileError(
                f"{path}: {len(buf)} bytes is shorter than the 48-byte SSTable footer (truncated?)")
        footer = buf[len(buf) - FOOTER_SIZE:]
        magic = int.from_bytes(footer[40:48], "little")
        if magic != TABLE_MAGIC:
            raise CorruptFileError(
                f"{path}: wrong SSTable magic 0x{magic:016x} (expected 0x{TABLE_MAGIC:016x}); "
                f"not a TensorFlow checkpoint index or truncated")
        handles = footer[:40]
        try:
            meta_off, pos = pw.read_varint(handles, 0)
            meta_size, pos = pw.read_varint(handles, pos)
            index_off, pos = pw.read_varint(handles, pos)
            index_size, pos = pw.read_varint(handles, pos)
        except CorruptFileError as exc:
            raise CorruptFileError(f"{path}: bad block handle in footer: {exc}") from None
        if any(handles[pos:]):
            raise CorruptFileError(f"{path}: non-zero padding in the SSTable footer")
        _read_block(buf, meta_off, meta_size, path, "metaindex")  # empty in bundles; checked for its CRC
        index_block = _read_block(buf, index_off, index_size, path, "index")
        prev_key = None
        seen_blocks = set()
        for _last_key, handle in _iter_block(index_block, path, "index"):
            try:
                off, p = pw.read_varint(handle, 0)
                size, p = pw.read_varint(handle, p)
            except CorruptFileError as exc:
                raise CorruptFileError(f"{path}: bad data-block handle in index block: {exc}") from None
            if (off, size) in seen_blocks:
                raise CorruptFileError(f"{path}: data block at offset {off} listed twice in the index block")
            seen_blocks.add((off, size))
            block = _read_block(buf, off, size, path, f"data (offset {off})")
            for key, value in _iter_block(block, path, f"data (offset {off})"):
                if prev_key is not None and key <= prev_key:
                    raise CorruptFileError(
                        f"{path}: keys out of order ({prev_key!r} then {key!r}); the table is corrupt")
                prev_key = key
                self._add_entry(key, value)
        if not self._have_header:
            raise CorruptFileError(f"{path}: the index has no bundle header entry (not a tensor bundle?)")

    def _add_entry(self, key, value):
        path = self.index_path
        slice_id = None
        if key[:1] == b"\x00":  # an OrderedCode-encoded (name, slice) key of one partition of a variable
            slice_id = _decode_slice_key(key, path)
            name = slice_id[0]
        else:
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                name = key.decode("latin-1")
        try:
            msg = pw.decode_message(value)
        except CorruptFileError as exc:
            raise CorruptFileError(f"{path}: cannot decode the proto of entry {name!r}: {exc}") from None
        if name == "":
            self.num_shards = pw.get_int(msg, 1, 0, bits=32)
            endianness = pw.get_int(msg, 2, 0)
            ver = pw.get_message(msg, 3)
            self.version = {"producer": pw.get_int(ver, 1, 0, bits=32),
                            "min_consumer": pw.get_int(ver, 2, 0, bits=32)}
            if endianness != 0:
                raise UnsupportedFormatError(
                    f"{path}: bundle written big-endian (endianness={endianness}); only little-endian "
                    f"bundles are supported")
            if self.num_shards < 1 or self.num_shards > 99999:
                raise CorruptFileError(f"{path}: bundle header declares {self.num_shards} shards")
            self._have_header = True
            return
        tf_dtype = pw.get_int(msg, 1, 0)
        shape = _parse_shape(pw.get_message(msg, 2), path, name)
        shard_id = pw.get_int(msg, 3, 0, bits=32)
        offset = pw.get_int(msg, 4, 0)
        size = pw.get_int(msg, 5, 0)
        crc = pw.last(msg, 6, 0)
        if not isinstance(crc, int):
            raise CorruptFileError(f"{path}: entry {name!r} has a malformed crc32c field")
        if shard_id < 0 or offset < 0 or size < 0:
            raise CorruptFileError(
                f"{path}: entry {name!r} has negative shard/offset/size ({shard_id}, {offset}, {size})")
        entry = BundleEntry(
            name=name, dtype=_returned_dtype(tf_dtype), tf_dtype=tf_dtype, shape=shape, shard_id=shard_id,
            offset=offset, size=size, crc32c=crc & 0xFFFFFFFF, has_slices=bool(msg.get(7)))
        if slice_id is not None:
            self._slice_entries.setdefault(name, []).append((slice_id[1], entry))
            return
        self._entries[name] = entry
        if entry.has_slices:
            slices = []
            for sl in msg[7]:
                if isinstance(sl, int):
                    raise CorruptFileError(f"{path}: entry {name!r} has a malformed slice")
                extents = []
                for ext in pw.decode_message(sl).get(1, ()):
                    if isinstance(ext, int):
                        raise CorruptFileError(f"{path}: entry {name!r} has a malformed slice extent")
                    em = pw.decode_message(ext)
                    extents.append((pw.get_int(em, 1, 0), pw.get_int(em, 2, -1)))
                slices.append(_concrete_extents(extents, shape, path, name))
            self._slices[name] = slices

    # ------------------------------------------------------------------------------------------ API
    def keys(self):
        """Sorted tensor names (bytewise order, as stored; the header key ``""`` is excluded)."""
        return list(self._entries)

    def __contains__(self, name):
        return name in self._entries

    def __len__(self):
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def entry(self, name):
        """The :class:`BundleEntry` of ``name`` (``KeyError`` naming the file if absent)."""
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"{name!r} is not in checkpoint {self.index_path}") from None

    def shard_path(self, shard_id):
        """Path of data shard ``shard_id``: ``PREFIX.data-0000k-of-0000n``."""
        return f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}"

    def missing_shards(self):
        """Paths of the data shards that do not exist (an index-only checkpoint lists them all)."""
        return [self.shard_path(i) for i in range(self.num_shards) if not os.path.isfile(self.shard_path(i))]

    def _read_sliced(self, name, verify):
        e = self._entries[name]
        by_extents = {_concrete_extents(ext, e.shape, self.index_path, name): part
                      for ext, part in self._slice_entries.get(name, ())}
        parts = []
        total = 0
        for extents in self._slices.get(name, ()):
            part = by_extents.get(extents)
            if part is None:
                raise CorruptFileError(
                    f"{self.index_path}: partition {list(extents)} of sliced variable {name!r} has no entry")
            if part.tf_dtype != e.tf_dtype or part.shape != tuple(n for _s, n in extents):
                raise CorruptFileError(
                    f"{self.index_path}: partition {list(extents)} of {name!r} has dtype/shape "
                    f"{DTYPE_NAMES.get(part.tf_dtype)}/{part.shape}, expected {DTYPE_NAMES.get(e.tf_dtype)}/"
                    f"{tuple(n for _s, n in extents)}")
            parts.append((extents, self._read_entry(part, f"{name!r} partition {list(extents)}", verify)))
            total += math.prod(n for _s, n in extents)
        count = math.prod(e.shape)
        if total != count or not parts:
            raise CorruptFileError(
                f"{self.index_path}: the partitions of {name!r} cover {total} elements, its shape {e.shape} "
                f"has {count}")
        # Safe to allocate now: the partitions' bytes (bounded by the shard files) add up to the full size.
        out = np.empty(e.shape, dtype=parts[0][1].dtype)
        covered = np.zeros(e.shape, dtype=bool)
        for extents, arr in parts:
            region = tuple(slice(s0, s0 + n) for s0, n in extents)
            if covered[region].any():
                raise CorruptFileError(f"{self.index_path}: partitions of {name!r} overlap at {list(extents)}")
            covered[region] = True
            out[region] = arr
        return out

    @property
    def has_data(self):
        """True when every data shard exists (False for an index-only checkpoint)."""
        return not self.missing_shards()

    def read_raw(self, name, verify=True):
        """The entry's bytes exactly as stored in its shard, CRC-checked when ``verify`` (numeric dtypes;
        string entries are checked by :meth:`read`)."""
        e = self.entry(name)
        if e.has_slices:
            raise UnsupportedFormatError(
                f"{self.index_path}: {name!r} is a partitioned (sliced) variable with no bytes of its own; "
                f"use read()")
        return self._read_raw_entry(e, repr(name), verify)

    def _read_raw_entry(self, e, label, verify):
        if e.shard_id >= self.num_shards:
            raise CorruptFileError(
                f"{self.index_path}: entry {label} names shard {e.shard_id} but the bundle has "
                f"{self.num_shards} shard(s)")
        shard = self.shard_path(e.shard_id)
        try:
            with open(shard, "rb") as f:
                length = os.fstat(f.fileno()).st_size
                if e.offset + e.size > length:
                    raise CorruptFileError(
                        f"{shard}: entry {label} needs bytes {e.offset}..{e.offset + e.size} but the shard "
                        f"holds {length} bytes (truncated data file or corrupt index)")
                f.seek(e.offset)
                raw = f.read(e.size)
        except (FileNotFoundError, IsADirectoryError):
            raise WeightsFileNotFoundError(
                f"checkpoint data shard {shard} not found (needed for {label}; index {self.index_path})"
            ) from None
        except OSError as exc:
            raise WeightsError(f"cannot read checkpoint data shard {shard}: {exc}") from None
        if len(raw) != e.size:
            raise CorruptFileError(f"{shard}: short read for entry {label}")
        if verify and e.tf_dtype != DT_STRING:  # string CRCs are checked while decoding
            got = masked_crc32c(raw)
            if got != e.crc32c:
                raise ChecksumError(
                    f"{shard}: CRC32C mismatch for entry {label}: index says 0x{e.crc32c:08x}, "
                    f"data bytes give 0x{got:08x}")
        return raw

    def read(self, name, verify=True):
        """Tensor ``name`` as a C-order numpy array in native byte order (see the module doc for dtypes).

        With ``verify`` the entry's masked CRC32C is checked over the bytes before anything is returned.
        Partitioned variables are reassembled from their slices.
        """
        e = self.entry(name)
        if e.has_slices:
            return self._read_sliced(name, verify)
        return self._read_entry(e, repr(name), verify)

    def _read_entry(self, e, label, verify):
        if e.tf_dtype != DT_STRING and e.tf_dtype not in _NUMPY_DTYPES:
            raise UnsupportedFormatError(
                f"{self.index_path}: entry {label} has unsupported dtype "
                f"{DTYPE_NAMES.get(e.tf_dtype, e.tf_dtype)} (DataType enum {e.tf_dtype})")
        count = 1
        for d in e.shape:
            count *= d
        if e.tf_dtype != DT_STRING:
            disk = _NUMPY_DTYPES[e.tf_dtype]
            if count * disk.itemsize != e.size:
                raise CorruptFileError(
                    f"{self.index_path}: entry {label} of shape {e.shape} and dtype "
                    f"{DTYPE_NAMES[e.tf_dtype]} should hold {count * disk.itemsize} bytes but declares {e.size}")
        elif count + 4 > e.size:
            raise CorruptFileError(
                f"{self.index_path}: string entry {label} declares {count} elements in only {e.size} bytes")
        raw = self._read_raw_entry(e, label, verify)
        if e.tf_dtype == DT_STRING:
            return self._decode_strings(e, label, raw, count, verify)
        arr = np.frombuffer(raw, dtype=disk)
        if e.tf_dtype == DT_BFLOAT16:
            arr = (arr.astype(np.uint32) << np.uint32(16)).view(np.float32)
        else:
            arr = arr.astype(disk.newbyteorder("="), copy=True)
        return arr.reshape(e.shape)

    def _decode_strings(self, e, label, raw, count, verify):
        where = f"{self.shard_path(e.shard_id)}: string entry {label}"
        pos = 0
        lengths = []
        length_crc = 0
        try:
            for _ in range(count):
                n, pos = pw.read_varint(raw, pos)
                lengths.append(n)
                length_crc = crc32c(n.to_bytes(4 if n <= 0xFFFFFFFF else 8, "little"), length_crc)
        except CorruptFileError as exc:
            raise CorruptFileError(f"{where}: bad length varint: {exc}") from None
        if pos + 4 > len(raw):
            raise CorruptFileError(f"{where}: truncated before the length checksum")
        stored = int.from_bytes(raw[pos:pos + 4], "little")
        if verify and stored != mask(length_crc):
            raise ChecksumError(
                f"{where}: length checksum mismatch: stored 0x{stored:08x}, computed 0x{mask(length_crc):08x}")
        if verify:
            got = mask(crc32c(raw[pos:], length_crc))
            if got != e.crc32c:
                raise ChecksumError(
                    f"{where}: CRC32C mismatch: index says 0x{e.crc32c:08x}, data bytes give 0x{got:08x}")
        pos += 4
        if sum(lengths) != len(raw) - pos:
            raise CorruptFileError(
                f"{where}: string lengths add up to {sum(lengths)} bytes but {len(raw) - pos} are stored")
        out = np.empty(count, dtype=object)
        for i, n in enumerate(lengths):
            out[i] = bytes(raw[pos:pos + n])
            pos += n
        return out.reshape(e.shape)

    def read_all(self, verify=True):
        """``{name: array}`` for every entry of :meth:`keys`."""
        return {name: self.read(name, verify=verify) for name in self._entries}

    def __repr__(self):
        return f"TensorBundle({self.prefix!r}, {len(self)} entries, {self.num_shards} shard(s))"


def read_checkpoint(path, verify=True):
    """Shortcut: ``TensorBundle(path).read_all(verify)``."""
    return TensorBundle(path).read_all(verify=verify)
