"""CRC32C (Castagnoli) and the "masked" form TensorFlow and LevelDB store on disk.

Format facts:

* CRC32C uses the reflected polynomial ``0x82F63B78``, initial value ``0xFFFFFFFF`` and a final XOR with
  ``0xFFFFFFFF``; ``crc32c(b"123456789") == 0xE3069283``.
* Stored checksums are *masked* so that a CRC of data containing CRCs stays well distributed:
  ``mask(c) = (((c >> 15) | (c << 17)) + 0xA282EAD8) mod 2**32``; :func:`unmask` inverts it.

The byte loop is a table-driven Numba kernel (compiled once, cached on disk), a few ms for a 2 MB tensor.
"""
import numpy as np
from numba import njit

_POLY = 0x82F63B78
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def _make_table():
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _make_table()


@njit(cache=True, nogil=True)
def _crc32c_update(state, data, table):
    """Advance the raw (pre-inverted) CRC register ``state`` over the uint8 array ``data``."""
    c = np.uint32(state)
    for i in range(data.shape[0]):
        c = table[(c ^ np.uint32(data[i])) & np.uint32(0xFF)] ^ (c >> np.uint32(8))
    return c


def _as_uint8(data):
    if isinstance(data, np.ndarray):
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)


def crc32c(data, crc=0):
    """CRC32C of ``data`` (bytes, bytearray, memoryview or a contiguous numpy array's raw bytes).

    ``crc`` continues a previous (unmasked) CRC: ``crc32c(b, crc32c(a)) == crc32c(a + b)``.
    """
    state = (int(crc) ^ _U32) & _U32
    arr = _as_uint8(data)
    if arr.size:
        state = int(_crc32c_update(np.uint32(state), arr, _TABLE))
    return (state ^ _U32) & _U32


def mask(crc):
    """Mask a CRC the way TensorFlow/LevelDB store it: rotate right by 15 bits, add ``0xA282EAD8``."""
    crc = int(crc) & _U32
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def unmask(masked):
    """Invert :func:`mask`."""
    rot = (int(masked) - _MASK_DELTA) & _U32
    return ((rot >> 17) | (rot << 15)) & _U32


def masked_crc32c(data):
    """``mask(crc32c(data))``: the value stored in checkpoint entries and SSTable block trailers."""
    return mask(crc32c(data))
