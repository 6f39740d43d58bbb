"""Reader for TensorFlow Lite ``.tflite`` files (FlatBuffers, identifier ``TFL3``), without TensorFlow.

Format facts (design/SEMANTICS.md section G; field ids from TFLite's ``schema.fbs``):

* FlatBuffer binary, all little-endian. Bytes 0..3: uint32 offset of the root table (``Model``); bytes 4..7:
  the file identifier ``TFL3``.
* A table at byte ``p`` starts with an int32 ``soffset``; its vtable is at ``p - soffset``: uint16 vtable size,
  uint16 table size, then one uint16 per field id (offset of the field from ``p``; 0, or an id beyond the
  vtable, means "absent, use the default"). Scalars are stored inline. Tables, strings and vectors are
  referenced by a uint32 stored at ``q``, pointing to ``q + value``. A vector is a uint32 length followed
  by its elements (tables and strings as uint32 offsets relative to their own slot); a string is a uint32
  length followed by UTF-8 bytes. A union is a ubyte type tag (field ``k``) plus a table offset (``k + 1``).
* ``Model``: 0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers, 5 metadata_buffer,
  6 metadata, 7 signature_defs. ``SubGraph``: 0 tensors, 1 inputs, 2 outputs, 3 operators (in execution
  order), 4 name. ``Tensor``: 0 shape, 1 type, 2 buffer, 3 name, 4 quantization, 5 is_variable, 6 sparsity,
  7 shape_signature. ``Buffer``: 0 data, 1 offset, 2 size (offset/size only for > 2 GB models, relative to
  the file start). ``QuantizationParameters``: 0 min, 1 max, 2 scale, 3 zero_point (int64), 4/5 custom
  details, 6 quantized_dimension. ``Operator``: 0 opcode_index, 1 inputs (-1 = optional input absent),
  2 outputs, 3/4 builtin_options (union), 5 custom_options. ``OperatorCode``: 0 deprecated_builtin_code
  (int8), 1 custom_code, 2 version, 3 builtin_code (int32); the op is
  ``max(deprecated_builtin_code, builtin_code)`` (files from before 2020 only have field 0).

The reader is strict: every offset, length and index is checked against the file before it is used, the
amount of data decoded is bounded by the file size (so overlapping or self-referencing structures cannot make
it slow), and every problem raises :class:`~mobilenet_np.errors.CorruptFileError` (or
:class:`~mobilenet_np.errors.UnsupportedFormatError` for a well-formed file it cannot represent, such as a
sparse constant tensor) naming the file and what is wrong. Only subgraph 0 is decoded in full (MobileNet
files have one).

Builtin options are decoded for the ops the integer MobileNet executor needs (see ``_OPTION_TABLES``); for any
other op ``Operator.options`` is ``{}`` and ``options_type`` keeps the union tag.
"""
import math
import os
import struct
from dataclasses import dataclass, field

import numpy as np

from mobilenet_np.errors import CorruptFileError, UnsupportedFormatError, WeightsError, WeightsFileNotFoundError

FILE_IDENTIFIER = b"TFL3"
#: A tensor of more dimensions than this is taken as corruption (TFLite kernels handle at most 6).
MAX_RANK = 16

# TensorType enum -> numpy dtype of the stored bytes (little-endian); None = kept as raw bytes.
TENSOR_TYPES = {
    0: ("float32", np.dtype("<f4")), 1: ("float16", np.dtype("<f2")), 2: ("int32", np.dtype("<i4")),
    3: ("uint8", np.dtype("u1")), 4: ("int64", np.dtype("<i8")), 5: ("string", None), 6: ("bool", np.dtype("?")),
    7: ("int16", np.dtype("<i2")), 8: ("complex64", np.dtype("<c8")), 9: ("int8", np.dtype("i1")),
    10: ("float64", np.dtype("<f8")), 11: ("complex128", np.dtype("<c16")), 12: ("uint64", np.dtype("<u8")),
    13: ("resource", None), 14: ("variant", None), 15: ("uint32", np.dtype("<u4")),
    16: ("uint16", np.dtype("<u2")), 17: ("int4", None),
}

# BuiltinOperator enum (schema.fbs); tests check every entry against TFLite's generated schema.
BUILTIN_OPS = [
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE",
    "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP", "L2_NORMALIZATION", "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU",
    "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH",
    "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN",
    "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU",
    "MAXIMUM", "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL",
    "SELECT", "SLICE", "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL",
    "NOT_EQUAL", "LOG", "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD",
    "REDUCE_MAX", "PACK", "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN",
    "FLOOR_DIV", "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU", "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2",
    "ADD_N", "GATHER_ND", "COS", "WHERE", "RANK", "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE",
    "MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF", "WHILE", "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2", "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL",
]

PADDING = {0: "SAME", 1: "VALID"}
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}

# BuiltinOptions union tag -> (table name, [(field id, key, kind, default)]). Kinds: "b" int8, "B" uint8,
# "?" bool, "i" int32, "f" float32, "pad"/"act" enums (stored as int8), "[i]" vector of int32.
_OPTION_TABLES = {
    1: ("Conv2DOptions", [(0, "padding", "pad", 0), (1, "stride_w", "i", 0), (2, "stride_h", "i", 0),
                          (3, "fused_activation_function", "act", 0), (4, "dilation_w_factor", "i", 1),
                          (5, "dilation_h_factor", "i", 1)]),
    2: ("DepthwiseConv2DOptions", [(0, "padding", "pad", 0), (1, "stride_w", "i", 0), (2, "stride_h", "i", 0),
                                   (3, "depth_multiplier", "i", 0), (4, "fused_activation_function", "act", 0),
                                   (5, "dilation_w_factor", "i", 1), (6, "dilation_h_factor", "i", 1)]),
    5: ("Pool2DOptions", [(0, "padding", "pad", 0), (1, "stride_w", "i", 0), (2, "stride_h", "i", 0),
                          (3, "filter_width", "i", 0), (4, "filter_height", "i", 0),
                          (5, "fused_activation_function", "act", 0)]),
    8: ("FullyConnectedOptions", [(0, "fused_activation_function", "act", 0), (1, "weights_format", "b", 0),
                                  (2, "keep_num_dims", "?", False), (3, "asymmetric_quantize_inputs", "?", False)]),
    9: ("SoftmaxOptions", [(0, "beta", "f", 0.0)]),
    11: ("AddOptions", [(0, "fused_activation_function", "act", 0), (1, "pot_scale_int16", "?", True)]),
    17: ("ReshapeOptions", [(0, "new_shape", "[i]", None)]),
    22: ("PadOptions", []),
    27: ("ReducerOptions", [(0, "keep_dims", "?", False)]),
    30: ("SqueezeOptions", [(0, "squeeze_dims", "[i]", None)]),
    38: ("DequantizeOptions", []),
    89: ("QuantizeOptions", []),
}

_SCALAR = {"b": ("<b", 1), "B": ("<B", 1), "?": ("<B", 1), "i": ("<i", 4), "I": ("<I", 4), "f": ("<f", 4),
           "q": ("<q", 8), "Q": ("<Q", 8), "h": ("<h", 2), "H": ("<H", 2), "pad": ("<b", 1), "act": ("<b", 1)}


def op_name(code):
    """The BuiltinOperator name of ``code`` (``"BUILTIN_<n>"`` beyond the known table)."""
    return BUILTIN_OPS[code] if 0 <= code < len(BUILTIN_OPS) else f"BUILTIN_{code}"


# ----------------------------------------------------------------------------------------- result types
@dataclass(frozen=True)
class Quantization:
    """A tensor's affine quantization: ``real = scale * (q - zero_point)``.

    ``scale`` (float32) and ``zero_point`` (int64) have one entry (per-tensor) or one per slice along
    ``quantized_dimension`` (per-channel). ``min``/``max`` are the informational float ranges, or ``None``.
    """
    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dimension: int = 0
    min: np.ndarray = None
    max: np.ndarray = None

    @property
    def per_channel(self):
        return self.scale.size > 1

    @property
    def is_quantized(self):
        return self.scale.size > 0


_NO_QUANTIZATION = Quantization(np.zeros(0, np.float32), np.zeros(0, np.int64))


@dataclass
class Tensor:
    """One tensor of subgraph 0. ``data`` is the constant's value (shaped, native byte order) or ``None``."""
    index: int
    name: str
    shape: tuple
    type: int
    buffer: int
    data: object = None
    quantization: Quantization = _NO_QUANTIZATION
    shape_signature: tuple = None
    is_variable: bool = False

    @property
    def type_name(self):
        return TENSOR_TYPES.get(self.type, (f"type_{self.type}", None))[0]

    @property
    def dtype(self):
        """The numpy dtype of the tensor's elements (native byte order), or ``None`` for non-numeric types."""
        dt = TENSOR_TYPES.get(self.type, (None, None))[1]
        return None if dt is None else dt.newbyteorder("=")

    @property
    def scale(self):
        """Per-tensor scale as a Python float (first entry; 0.0 when unquantized)."""
        q = self.quantization
        return float(q.scale[0]) if q.scale.size else 0.0

    @property
    def zero_point(self):
        q = self.quantization
        return int(q.zero_point[0]) if q.zero_point.size else 0


@dataclass
class Operator:
    """One operator of subgraph 0, in execution order; ``inputs`` may hold -1 for an absent optional input."""
    index: int
    opcode: int
    name: str
    inputs: tuple
    outputs: tuple
    options_type: int = 0
    options: dict = field(default_factory=dict)
    custom_code: str = None
    version: int = 1


@dataclass
class TFLiteModel:
    """A decoded ``.tflite`` file: subgraph 0's tensors, inputs, outputs and operators, plus file facts."""
    source: str
    version: int
    description: str
    tensors: list
    inputs: tuple
    outputs: tuple
    operators: list
    subgraph_name: str = ""
    num_subgraphs: int = 1
    metadata: dict = field(default_factory=dict)   # metadata name -> bytes of its buffer
    signature_keys: tuple = ()

    @property
    def has_metadata(self):
        return bool(self.metadata)

    def tensor(self, key):
        """A tensor by index or by name."""
        if isinstance(key, (int, np.integer)):
            return self.tensors[int(key)]
        for t in self.tensors:
            if t.name == key:
                return t
        raise KeyError(key)

    def op_counts(self):
        counts = {}
        for op in self.operators:
            counts[op.name] = counts.get(op.name, 0) + 1
        return counts

    def __repr__(self):
        ops = ", ".join(f"{k} x{v}" for k, v in self.op_counts().items())
        return (f"TFLiteModel({os.path.basename(self.source)!r}, {len(self.tensors)} tensors, "
                f"{len(self.operators)} operators: {ops})")


# ----------------------------------------------------------------------------------------- flatbuffer access
class _Buffer:
    """Bounds-checked little-endian reads from the whole file; every failure names the file."""

    def __init__(self, data, source):
        self.data = data
        self.size = len(data)
        self.source = source
        # Bound on the total number of vector elements decoded: a real file never references much more data
        # than it holds, so overlapping or shared structures cannot make decoding slow.
        self.budget = 4 * self.size + (1 << 16)

    def fail(self, message, cls=CorruptFileError):
        raise cls(f"{self.source}: {message}")

    def check(self, pos, size, what):
        if pos < 0 or size < 0 or pos + size > self.size:
            self.fail(f"{what} at byte {pos} (+{size} bytes) lies outside the file of {self.size} bytes "
                      "(truncated or corrupt)")

    def scalar(self, fmt, pos, size, what):
        self.check(pos, size, what)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def spend(self, n, what):
        self.budget -= n
        if self.budget < 0:
            self.fail(f"{what}: the file's structures reference far more data than the file holds "
                      "(overlapping or self-referencing offsets)")

    def uoffset(self, pos, what):
        """Follow the uint32 relative offset stored at ``pos``; returns the target position."""
        target = pos + self.scalar("<I", pos, 4, what)
        self.check(target, 4, what + " target")
        return target

    def table(self, pos, what):
        return _Table(self, pos, what)


class _Table:
    def __init__(self, buf, pos, what):
        self.buf, self.pos, self.what = buf, pos, what
        soff = buf.scalar("<i", pos, 4, f"{what} table")
        self.vtable = pos - soff
        vsize = buf.scalar("<H", self.vtable, 2, f"{what} vtable")
        self.tsize = buf.scalar("<H", self.vtable + 2, 2, f"{what} vtable")
        if vsize < 4 or vsize % 2:
            buf.fail(f"{what} table at byte {pos}: vtable size {vsize} is not an even number >= 4")
        if self.tsize < 4:
            buf.fail(f"{what} table at byte {pos}: table size {self.tsize} < 4")
        buf.check(self.vtable, vsize, f"{what} vtable")
        buf.check(pos, self.tsize, f"{what} table")
        self.nfields = (vsize - 4) // 2

    def _field(self, fid, size):
        """Absolute position of field ``fid`` (of ``size`` bytes inline), or None when absent."""
        if fid >= self.nfields:
            return None
        off = struct.unpack_from("<H", self.buf.data, self.vtable + 4 + 2 * fid)[0]
        if off == 0:
            return None
        if off < 4 or off + size > self.tsize:
            self.buf.fail(f"{self.what} table at byte {self.pos}: field {fid} at offset {off} (+{size} bytes) "
                          f"lies outside the table of {self.tsize} bytes")
        return self.pos + off

    def scalar(self, fid, kind, default):
        fmt, size = _SCALAR[kind]
        p = self._field(fid, size)
        if p is None:
            return default
        value = struct.unpack_from(fmt, self.buf.data, p)[0]
        if kind == "?":
            return bool(value)
        if kind == "f":
            return float(np.float32(value))
        return value

    def _target(self, fid, what):
        p = self._field(fid, 4)
        return None if p is None else self.buf.uoffset(p, f"{self.what}.{what}")

    def table(self, fid, what):
        t = self._target(fid, what)
        return None if t is None else _Table(self.buf, t, f"{self.what}.{what}")

    def _vector(self, fid, elem_size, what):
        t = self._target(fid, what)
        if t is None:
            return None
        n = struct.unpack_from("<I", self.buf.data, t)[0]
        self.buf.check(t + 4, n * elem_size, f"{self.what}.{what} vector of {n} elements")
        self.buf.spend(n, f"{self.what}.{what}")
        return t + 4, n

    def vector(self, fid, dtype, what):
        """A numeric vector as a fresh numpy array (native byte order), or None when absent."""
        dtype = np.dtype(dtype)
        v = self._vector(fid, dtype.itemsize, what)
        if v is None:
            return None
        start, n = v
        return np.frombuffer(self.buf.data, dtype=dtype, count=n, offset=start).astype(dtype.newbyteorder("="))

    def raw_bytes(self, fid, what):
        v = self._vector(fid, 1, what)
        if v is None:
            return None
        start, n = v
        return self.buf.data[start:start + n]

    def tables(self, fid, what):
        v = self._vector(fid, 4, what)
        if v is None:
            return []
        start, n = v
        return [_Table(self.buf, self.buf.uoffset(start + 4 * i, f"{self.what}.{what}[{i}]"), f"{what}[{i}]")
                for i in range(n)]

    def string(self, fid, what, default=""):
        v = self._vector(fid, 1, what)
        if v is None:
            return default
        start, n = v
        raw = bytes(self.buf.data[start:start + n])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.buf.fail(f"{self.what}.{what} is not valid UTF-8")

    def strings(self, fid, what):
        v = self._vector(fid, 4, what)
        if v is None:
            return []
        start, n = v
        out = []
        for i in range(n):
            s = self.buf.uoffset(start + 4 * i, f"{self.what}.{what}[{i}]")
            length = struct.unpack_from("<I", self.buf.data, s)[0]
            self.buf.check(s + 4, length, f"{self.what}.{what}[{i}] string")
            self.buf.spend(length, f"{self.what}.{what}")
            out.append(bytes(self.buf.data[s + 4:s + 4 + length]).decode("utf-8", errors="replace"))
        return out


# ----------------------------------------------------------------------------------------- decoding
def _int_list(values):
    return tuple(int(v) for v in values) if values is not None else ()


def _quantization(table, buf, what):
    if table is None:
        return _NO_QUANTIZATION
    qmin = table.vector(0, "<f4", "min")
    qmax = table.vector(1, "<f4", "max")
    scale = table.vector(2, "<f4", "scale")
    zp = table.vector(3, "<i8", "zero_point")
    qdim = table.scalar(6, "i", 0)
    if table.scalar(4, "B", 0) != 0:
        buf.fail(f"{what} uses custom quantization details (not affine)", UnsupportedFormatError)
    scale = np.zeros(0, np.float32) if scale is None else scale.astype(np.float32)
    zp = np.zeros(0, np.int64) if zp is None else zp.astype(np.int64)
    if zp.size and scale.size and zp.size != scale.size:
        buf.fail(f"{what}: {scale.size} scales but {zp.size} zero points")
    return Quantization(scale, zp, int(qdim), qmin, qmax)


def _options(op_table, opts_type, buf, what):
    spec = _OPTION_TABLES.get(opts_type)
    table = op_table.table(4, "builtin_options")
    if spec is None or table is None:
        return {}
    name, fields = spec
    out = {}
    for fid, key, kind, default in fields:
        if kind == "[i]":
            v = table.vector(fid, "<i4", key)
            out[key] = None if v is None else _int_list(v)
            continue
        value = table.scalar(fid, kind, default)
        if kind == "pad":
            if value not in PADDING:
                buf.fail(f"{what}: {name}.padding has the unknown value {value}")
            value = PADDING[value]
        elif kind == "act":
            if value not in ACTIVATIONS:
                buf.fail(f"{what}: {name}.fused_activation_function has the unknown value {value}")
            value = ACTIVATIONS[value]
        out[key] = value
    return out


def _buffer_bytes(buffers, index, buf, cache, what):
    if index in cache:
        return cache[index]
    b = buffers[index]
    data = b.raw_bytes(0, "data")
    offset = b.scalar(1, "Q", 0)
    size = b.scalar(2, "Q", 0)
    if (data is None or len(data) == 0) and offset > 1:
        buf.check(offset, size, f"{what}: external data of buffer {index}")
        buf.spend(size, f"buffer {index}")
        data = buf.data[offset:offset + size]
    cache[index] = data
    return data


def _tensor(index, t, buffers, buf, cache):
    what = f"tensor {index}"
    shape = t.vector(0, "<i4", "shape")
    shape = () if shape is None else _int_list(shape)
    name = t.string(3, "name")
    what = f"tensor {index} ({name!r})"
    if len(shape) > MAX_RANK:
        buf.fail(f"{what} has rank {len(shape)} (more than {MAX_RANK})")
    if any(d < 0 for d in shape):
        buf.fail(f"{what} has a negative dimension in shape {shape}")
    ttype = t.scalar(1, "b", 0)
    if ttype not in TENSOR_TYPES:
        buf.fail(f"{what} has the unknown tensor type {ttype}", UnsupportedFormatError)
    bindex = t.scalar(2, "I", 0)
    if bindex >= len(buffers):
        buf.fail(f"{what} refers to buffer {bindex}, but the file has {len(buffers)} buffers")
    signature = t.vector(7, "<i4", "shape_signature")
    quant = _quantization(t.table(4, "quantization"), buf, what)
    if quant.per_channel:
        qd = quant.quantized_dimension
        if not 0 <= qd < len(shape) or shape[qd] != quant.scale.size:
            buf.fail(f"{what} of shape {shape} has {quant.scale.size} per-channel scales along dimension {qd}")
    tensor = Tensor(index=index, name=name, shape=shape, type=ttype, buffer=bindex, quantization=quant,
                    shape_signature=None if signature is None else _int_list(signature),
                    is_variable=t.scalar(5, "?", False))
    raw = _buffer_bytes(buffers, bindex, buf, cache, what) if bindex else None
    if raw is not None and len(raw):
        if t.table(6, "sparsity") is not None:
            buf.fail(f"{what} is a sparse constant tensor; sparse storage is not supported", UnsupportedFormatError)
        dtype = TENSOR_TYPES[ttype][1]
        if dtype is None:
            tensor.data = bytes(raw)
        else:
            count = math.prod(shape)
            if len(raw) != count * dtype.itemsize:
                buf.fail(f"{what}: {tensor.type_name} tensor of shape {shape} needs {count * dtype.itemsize} bytes, "
                         f"its buffer {bindex} holds {len(raw)}")
            tensor.data = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(shape)
    return tensor


def _check_indices(values, n, what, buf, optional=False):
    for v in values:
        if not (0 <= v < n or (optional and v == -1)):
            buf.fail(f"{what} refers to tensor {v}, but subgraph 0 has {n} tensors")


def parse_tflite(data, source="<bytes>"):
    """Decode the bytes of a ``.tflite`` file into a :class:`TFLiteModel`."""
    data = bytes(data)
    buf = _Buffer(data, source)
    if len(data) < 8:
        buf.fail(f"file of {len(data)} bytes is too short to be a TFLite FlatBuffer")
    if data[4:8] != FILE_IDENTIFIER:
        buf.fail(f"not a TFLite file: identifier {data[4:8]!r} instead of {FILE_IDENTIFIER!r}")
    root = buf.uoffset(0, "root table offset")
    model = buf.table(root, "Model")
    version = model.scalar(0, "I", 0)
    codes = []
    for i, oc in enumerate(model.tables(1, "operator_codes")):
        deprecated = oc.scalar(0, "b", 0)
        builtin = oc.scalar(3, "i", 0)
        codes.append((max(deprecated, builtin), oc.string(1, "custom_code", None), oc.scalar(2, "i", 1)))
    subgraphs = model.tables(2, "subgraphs")
    if not subgraphs:
        buf.fail("the model has no subgraphs")
    buffers = model.tables(4, "buffers")
    description = model.string(3, "description")
    metadata = {}
    for m in model.tables(6, "metadata"):
        mname = m.string(0, "name")
        mbuf = m.scalar(1, "I", 0)
        if mbuf >= len(buffers):
            buf.fail(f"metadata {mname!r} refers to buffer {mbuf}, but the file has {len(buffers)} buffers")
        metadata[mname] = bytes(_buffer_bytes(buffers, mbuf, buf, {}, f"metadata {mname!r}") or b"")
    signature_keys = tuple(s.string(1, "signature_key") for s in model.tables(7, "signature_defs"))

    sg = subgraphs[0]
    cache = {}
    tensors = [_tensor(i, t, buffers, buf, cache) for i, t in enumerate(sg.tables(0, "tensors"))]
    n = len(tensors)
    inputs = _int_list(sg.vector(1, "<i4", "inputs"))
    outputs = _int_list(sg.vector(2, "<i4", "outputs"))
    _check_indices(inputs, n, "subgraph input", buf)
    _check_indices(outputs, n, "subgraph output", buf)
    operators = []
    for i, o in enumerate(sg.tables(3, "operators")):
        opcode_index = o.scalar(0, "I", 0)
        if opcode_index >= len(codes):
            buf.fail(f"operator {i} uses operator code {opcode_index}, but the file has {len(codes)}")
        code, custom, opver = codes[opcode_index]
        name = op_name(code) if code != 32 else f"CUSTOM({custom})"
        what = f"operator {i} ({name})"
        op_in = _int_list(o.vector(1, "<i4", "inputs"))
        op_out = _int_list(o.vector(2, "<i4", "outputs"))
        _check_indices(op_in, n, what + " input", buf, optional=True)
        _check_indices(op_out, n, what + " output", buf)
        opts_type = o.scalar(3, "B", 0)
        operators.append(Operator(index=i, opcode=code, name=name, inputs=op_in, outputs=op_out,
                                  options_type=opts_type, options=_options(o, opts_type, buf, what),
                                  custom_code=custom, version=opver))
    return TFLiteModel(source=source, version=version, description=description, tensors=tensors,
                       inputs=inputs, outputs=outputs, operators=operators, subgraph_name=sg.string(4, "name"),
                       num_subgraphs=len(subgraphs), metadata=metadata, signature_keys=signature_keys)


def read_tflite(path):
    """Read a ``.tflite`` file into a :class:`TFLiteModel`."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, IsADirectoryError):
        raise WeightsFileNotFoundError(f"TFLite file not found: {path}") from None
    except OSError as exc:
        raise WeightsError(f"cannot read TFLite file {path}: {exc}") from None
    return parse_tflite(data, source=path)


def is_tflite(path):
    """True when the file at ``path`` carries the ``TFL3`` identifier."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == FILE_IDENTIFIER
