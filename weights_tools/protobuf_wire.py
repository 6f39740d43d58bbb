"""A minimal, bounds-checked protobuf wire-format decoder (no generated code, no ``protobuf`` package).

Format facts:

* varint: little-endian base-128, 7 bits per byte, high bit set on every byte but the last; at most 10 bytes
  for a 64-bit value. Negative ``int32``/``int64`` are written as 10-byte varints of their two's complement
  (use :func:`to_int64` / :func:`to_int32`); ``sint*`` zig-zag fields are not used by the TF protos we read.
* A message is a sequence of ``key = field_number << 3 | wire_type`` (varint) followed by a value:
  wire type 0 varint, 1 fixed64 (8 bytes LE), 2 length-delimited (varint length + bytes: strings, bytes,
  sub-messages, packed repeated scalars), 5 fixed32 (4 bytes LE). Groups (3, 4) are obsolete and rejected.
* Repeated scalar fields may arrive packed (one wire-type-2 blob) or unpacked (one key per value), or mixed;
  the ``repeated_*`` helpers accept both.

Every malformed input raises :class:`~mobilenet_np.errors.CorruptFileError` (never IndexError/struct.error);
callers add the file name.
"""
import struct

import numpy as np

from mobilenet_np.errors import CorruptFileError

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
_MAX_FIELD = (1 << 29) - 1


def read_varint(buf, pos):
    """Decode one unsigned varint from ``buf`` at ``pos``; return ``(value, new_pos)``."""
    result = 0
    shift = 0
    end = len(buf)
    for _ in range(10):
        if pos >= end:
            raise CorruptFileError(f"truncated varint at byte {pos} (buffer of {end} bytes)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
    raise CorruptFileError(f"varint longer than 10 bytes ending at byte {pos}")


def to_int64(value):
    """Reinterpret an unsigned 64-bit varint value as a two's-complement signed int64."""
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= (1 << 63) else value


def to_int32(value):
    """Reinterpret a varint value as int32 (protobuf truncates to the low 32 bits, then sign-extends)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


def iter_fields(buf):
    """Yield ``(field_number, wire_type, value)`` for every field of the message in ``buf``.

    ``value`` is an ``int`` for varint (unsigned), fixed64 and fixed32 (raw unsigned bits), and a
    ``memoryview`` slice of ``buf`` for length-delimited fields.
    """
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    pos = 0
    end = len(mv)
    while pos < end:
        key, pos = read_varint(mv, pos)
        field = key >> 3
        wire = key & 7
        if field == 0 or field > _MAX_FIELD:
            raise CorruptFileError(f"invalid protobuf field number {field} at byte {pos}")
        if wire == VARINT:
            value, pos = read_varint(mv, pos)
        elif wire == FIXED64:
            if pos + 8 > end:
                raise CorruptFileError(f"truncated fixed64 field {field} at byte {pos}")
            value = int.from_bytes(mv[pos:pos + 8], "little")
            pos += 8
        elif wire == FIXED32:
            if pos + 4 > end:
                raise CorruptFileError(f"truncated fixed32 field {field} at byte {pos}")
            value = int.from_bytes(mv[pos:pos + 4], "little")
            pos += 4
        elif wire == LENGTH_DELIMITED:
            length, pos = read_varint(mv, pos)
            if length > end - pos:
                raise CorruptFileError(
                    f"field {field} declares {length} bytes at byte {pos} but only {end - pos} remain")
            value = mv[pos:pos + length]
            pos += length
        else:
            raise CorruptFileError(f"unsupported protobuf wire type {wire} (field {field}) at byte {pos}")
        yield field, wire, value


def decode_message(buf):
    """Decode one message level into ``{field_number: [values in file order]}`` (see :func:`iter_fields`)."""
    out = {}
    for field, _wire, value in iter_fields(buf):
        out.setdefault(field, []).append(value)
    return out


def last(fields, number, default=None):
    """The last value of a singular field (protobuf "last one wins"), or ``default`` when absent."""
    values = fields.get(number)
    return values[-1] if values else default


def _need_bytes(value, what):
    if isinstance(value, int):
        raise CorruptFileError(f"{what}: expected a length-delimited field, found a scalar")
    return value


def get_bytes(fields, number, default=b""):
    """A singular ``bytes``/``string`` field as ``bytes``."""
    value = last(fields, number)
    if value is None:
        return default
    return bytes(_need_bytes(value, f"field {number}"))


def get_str(fields, number, default=""):
    """A singular ``string`` field decoded as UTF-8."""
    raw = get_bytes(fields, number, None)
    if raw is None:
        return default
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"field {number} is not valid UTF-8: {exc}") from None


def get_int(fields, number, default=0, signed=True, bits=64):
    """A singular varint integer field (``int32``/``int64``/enum/``bool``), two's complement if ``signed``."""
    value = last(fields, number)
    if value is None:
        return default
    if not isinstance(value, int):
        raise CorruptFileError(f"field {number}: expected a varint, found a length-delimited field")
    if not signed:
        return value & ((1 << bits) - 1)
    return to_int64(value) if bits == 64 else to_int32(value)


def get_message(fields, number):
    """The last occurrence of a sub-message field decoded with :func:`decode_message` (``{}`` if absent)."""
    value = last(fields, number)
    if value is None:
        return {}
    return decode_message(_need_bytes(value, f"field {number}"))


def fixed32_to_float(bits):
    """The IEEE float32 whose bits are the unsigned int ``bits`` (as a Python float)."""
    return struct.unpack("<f", (bits & 0xFFFFFFFF).to_bytes(4, "little"))[0]


def fixed64_to_double(bits):
    """The IEEE float64 whose bits are the unsigned int ``bits``."""
    return struct.unpack("<d", (bits & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little"))[0]


def _fixed_array(values, width, dtype, what):
    parts = []
    for v in values or ():
        if isinstance(v, int):
            parts.append(np.array([v & ((1 << (8 * width)) - 1)], dtype=f"<u{width}").view(dtype))
        else:
            if len(v) % width:
                raise CorruptFileError(f"packed {what} field of {len(v)} bytes is not a multiple of {width}")
            parts.append(np.frombuffer(v, dtype=dtype))
    if not parts:
        return np.zeros(0, dtype=dtype)
    return np.concatenate(parts).astype(dtype, copy=False)


def repeated_floats(values):
    """``repeated float`` values (packed blobs and/or unpacked fixed32 ints) as a float32 array."""
    return _fixed_array(values, 4, np.dtype("<f4"), "float")


def repeated_doubles(values):
    """``repeated double`` values as a float64 array."""
    return _fixed_array(values, 8, np.dtype("<f8"), "double")


def packed_varints(blob):
    """Decode a packed blob of varints into a list of unsigned ints."""
    out = []
    pos = 0
    end = len(blob)
    while pos < end:
        v, pos = read_varint(blob, pos)
        out.append(v)
    return out


def repeated_varints(values, signed=True, bits=64):
    """``repeated int32/int64/bool/enum`` values (packed and/or unpacked) as a list of Python ints."""
    out = []
    for v in values or ():
        if isinstance(v, int):
            out.append(v)
        else:
            out.extend(packed_varints(v))
    if signed:
        conv = to_int64 if bits == 64 else to_int32
        return [conv(v) for v in out]
    mask = (1 << bits) - 1
    return [v & mask for v in out]


def repeated_bytes(values):
    """``repeated bytes/string`` values as a list of ``bytes``."""
    return [bytes(_need_bytes(v, "repeated bytes")) for v in values or ()]
