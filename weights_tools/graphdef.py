"""Reader for binary ``GraphDef`` files (frozen graphs), without TensorFlow.

Format facts (field numbers checked against TF 2.21's descriptors):

* ``GraphDef { repeated NodeDef node = 1; FunctionDefLibrary library = 2; VersionDef versions = 4; }``
* ``NodeDef { string name = 1; string op = 2; repeated string input = 3; string device = 4;
  map<string, AttrValue> attr = 5; }`` (a map is repeated ``{key = 1; value = 2}`` entries). Inputs are
  ``"node"``, ``"node:k"`` (output k) or ``"^node"`` (control dependency).
* ``AttrValue { ListValue list = 1; bytes s = 2; int64 i = 3; float f = 4; bool b = 5; DataType type = 6;
  TensorShapeProto shape = 7; TensorProto tensor = 8; string placeholder = 9; NameAttrList func = 10; }``,
  ``ListValue { repeated bytes s = 2; int64 i = 3; float f = 4; bool b = 5; DataType type = 6;
  TensorShapeProto shape = 7; TensorProto tensor = 8; NameAttrList func = 9; }``.
* ``TensorShapeProto { repeated Dim dim = 2 {int64 size = 1; string name = 2}; bool unknown_rank = 3; }``
* ``TensorProto { DataType dtype = 1; TensorShapeProto tensor_shape = 2; bytes tensor_content = 4;
  float_val = 5; double_val = 6; int32 int_val = 7 (also int8/16, uint8/16, qint*); bytes string_val = 8;
  float scomplex_val = 9; int64_val = 10; bool_val = 11; double dcomplex_val = 12; int32 half_val = 13
  (bits of half/bfloat16); uint32_val = 16; uint64_val = 17; }``. Either ``tensor_content`` holds the raw
  little-endian C-order bytes, or the typed field holds values; if it holds fewer values than the shape
  needs, the last value is repeated (none at all = zeros).

Decoded attribute values: ``s`` -> ``bytes``, ``i`` -> ``int``, ``f`` -> ``float``, ``b`` -> ``bool``,
``type`` -> :class:`DataType`, ``shape`` -> tuple of ints (-1 = unknown) or ``None`` (unknown rank),
``tensor`` -> ``np.ndarray`` (bfloat16 converted to float32, strings as ``object`` arrays of bytes), ``list``
-> Python list of those, ``func`` -> ``{"name": str, "attr": {...}}``.

:func:`frozen_graph_variables` recovers TF-slim *variable* names and values (conv weights, BatchNorm
gamma/beta/moving statistics, biases, fake-quant min/max) by following what each Conv2D/Depthwise/MatMul
actually consumes, for the three batch-norm forms found in released MobileNet graphs: ``FusedBatchNorm``,
the unfused ``batchnorm/{add,Rsqrt,mul,mul_1,mul_2,sub,add_1}`` chain, and tf.contrib.quantize's folded form
(``BatchNorm_Fold``, ``mul_fold``, ``add_fold``).
"""
import math
import os
from dataclasses import dataclass, field

import numpy as np

from mobilenet_np.errors import CorruptFileError, UnsupportedFormatError, WeightsError, WeightsFileNotFoundError

from . import protobuf_wire as pw

#: Tensors filled by the repeat-the-last-value rule are not backed by file bytes; refuse absurd ones.
MAX_BROADCAST_BYTES = 1 << 28

_DT_NAMES = {0: "invalid", 1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
             7: "string", 8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32",
             14: "bfloat16", 15: "qint16", 16: "quint16", 17: "uint16", 18: "complex128", 19: "half",
             20: "resource", 21: "variant", 22: "uint32", 23: "uint64"}
# DataType -> (numpy dtype of tensor_content, TensorProto value field, numpy dtype of the values there)
_TENSOR_LAYOUT = {
    1: ("<f4", 5, "f4"), 2: ("<f8", 6, "f8"), 3: ("<i4", 7, "i4"), 4: ("u1", 7, "u1"), 5: ("<i2", 7, "i2"),
    6: ("i1", 7, "i1"), 8: ("<c8", 9, "f4"), 9: ("<i8", 10, "i8"), 10: ("?", 11, "?"), 11: ("i1", 7, "i1"),
    12: ("u1", 7, "u1"), 13: ("<i4", 7, "i4"), 14: ("<u2", 13, "u2"), 15: ("<i2", 7, "i2"),
    16: ("<u2", 7, "u2"), 17: ("<u2", 7, "u2"), 18: ("<c16", 12, "f8"), 19: ("<f2", 13, "u2"),
    22: ("<u4", 16, "u4"), 23: ("<u8", 17, "u8"),
}
_DT_STRING = 7
_DT_BFLOAT16 = 14
_DT_HALF = 19

CONV_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")
FUSED_BN_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
FAKE_QUANT_VARS_OPS = ("FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel")
_PASS_THROUGH_OPS = ("Identity", "Snapshot", "StopGradient")


@dataclass(frozen=True)
class DataType:
    """A TF ``DataType`` enum value (``code``) with its name; ``numpy`` is the matching numpy dtype or None."""
    code: int
    name: str

    @property
    def numpy(self):
        if self.code == _DT_STRING:
            return np.dtype(object)
        if self.code == _DT_BFLOAT16:
            return np.dtype(np.float32)
        layout = _TENSOR_LAYOUT.get(self.code)
        return None if layout is None else np.dtype(layout[0]).newbyteorder("=")

    def __repr__(self):
        return f"DataType({self.name})"


def _datatype(code):
    return DataType(code, _DT_NAMES.get(code, f"dtype_{code}"))


@dataclass(frozen=True)
class OpaqueTensor:
    """A TensorProto of a dtype that has no numpy meaning here (resource, variant, …): kept undecoded."""
    dtype: DataType
    shape: tuple


@dataclass
class Node:
    """One ``NodeDef``: ``inputs`` as written (``"x"``, ``"x:1"``, ``"^ctrl"``), ``attrs`` decoded."""
    name: str
    op: str
    inputs: list
    device: str = ""
    attrs: dict = field(default_factory=dict)

    @property
    def data_inputs(self):
        """Input node names of data (non-control) inputs, output index stripped."""
        return [_base_name(i) for i in self.inputs if not i.startswith("^")]


def _base_name(inp):
    name = inp[1:] if inp.startswith("^") else inp
    head, sep, tail = name.rpartition(":")
    return head if sep and tail.isdigit() else name


# ----------------------------------------------------------------------------------------- decoding
def _shape(buf):
    msg = pw.decode_message(buf)
    if pw.get_int(msg, 3, 0):
        return None
    dims = []
    for d in msg.get(2, ()):
        if isinstance(d, int):
            raise CorruptFileError("malformed TensorShapeProto dim")
        dims.append(pw.get_int(pw.decode_message(d), 1, 0))
    return tuple(dims)


def parse_tensor_proto(buf):
    """Decode a serialized ``TensorProto`` into a numpy array (or :class:`OpaqueTensor`)."""
    msg = pw.decode_message(buf)
    code = pw.get_int(msg, 1, 0)
    shape_buf = pw.last(msg, 2)
    if isinstance(shape_buf, int):
        raise CorruptFileError("malformed tensor_shape")
    shape = () if shape_buf is None else _shape(shape_buf)
    if shape is None or any(d < 0 for d in shape):
        raise CorruptFileError(f"tensor with unknown or negative shape {shape}")
    count = math.prod(shape)
    dtype = _datatype(code)
    if code == _DT_STRING:
        values = pw.repeated_bytes(msg.get(8))
        return _broadcast_objects(values, count, shape)
    layout = _TENSOR_LAYOUT.get(code)
    if layout is None:
        if code in (20, 21):
            return OpaqueTensor(dtype, shape)
        raise UnsupportedFormatError(f"tensor of unsupported dtype {dtype.name} (DataType enum {code})")
    disk, value_field, value_dtype = layout
    disk = np.dtype(disk)
    content = pw.last(msg, 4)
    if content is not None and len(content) > 0:
        if isinstance(content, int):
            raise CorruptFileError("malformed tensor_content")
        if len(content) != count * disk.itemsize:
            raise CorruptFileError(
                f"{dtype.name} tensor of shape {shape} needs {count * disk.itemsize} bytes of tensor_content, "
                f"found {len(content)}")
        arr = np.frombuffer(content, dtype=disk).astype(disk.newbyteorder("="), copy=True)
    else:
        raw = msg.get(value_field)
        if value_dtype in ("f4",):
            vals = pw.repeated_floats(raw)
        elif value_dtype in ("f8",):
            vals = pw.repeated_doubles(raw)
        else:
            ints = pw.repeated_varints(raw, signed=value_dtype[0] == "i", bits=64)
            if value_dtype == "?":
                vals = np.array([bool(v) for v in ints], dtype=bool)
            else:
                wide = np.array(ints, dtype=np.int64 if value_dtype[0] == "i" else np.uint64)
                vals = wide.astype(value_dtype)  # int_val holds int32; narrow types keep the low bits
        if code in (8, 18):  # complex: (real, imag) pairs
            if len(vals) % 2:
                raise CorruptFileError(f"{dtype.name} tensor with an odd number of float components")
            vals = vals.view(disk.newbyteorder("="))
        elif code not in (_DT_HALF, _DT_BFLOAT16):  # half_val holds the raw 16-bit patterns
            vals = vals.astype(disk.newbyteorder("="), copy=False)
        arr = _broadcast(vals, count, shape, dtype)
    if code == _DT_BFLOAT16:
        arr = (arr.astype(np.uint32) << np.uint32(16)).view(np.float32)
    elif code == _DT_HALF and arr.dtype != np.float16:
        arr = arr.view(np.float16)
    return arr.reshape(shape)


def _check_broadcast(n_values, count, nbytes, shape, what):
    if n_values > count:
        raise CorruptFileError(f"{what} tensor of shape {shape} holds {n_values} values, more than {count}")
    if n_values < count and nbytes > MAX_BROADCAST_BYTES:
        raise CorruptFileError(
            f"{what} tensor of shape {shape} would expand {n_values} stored values to {nbytes} bytes "
            f"(limit {MAX_BROADCAST_BYTES}); refusing an absurd declared size")


def _broadcast(vals, count, shape, dtype):
    _check_broadcast(len(vals), count, count * vals.dtype.itemsize, shape, dtype.name)
    if len(vals) == count:
        return vals.copy()
    out = np.zeros(count, dtype=vals.dtype)
    if len(vals):
        out[:len(vals)] = vals
        out[len(vals):] = vals[-1]
    return out


def _broadcast_objects(values, count, shape):
    _check_broadcast(len(values), count, count * 8, shape, "string")
    out = np.empty(count, dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    fill = values[-1] if values else b""
    for i in range(len(values), count):
        out[i] = fill
    return out.reshape(shape)


def _func(buf):
    msg = pw.decode_message(buf)
    return {"name": pw.get_str(msg, 1), "attr": _attr_map(msg.get(2, ()))}


def _attr_map(entries):
    out = {}
    for entry in entries:
        if isinstance(entry, int):
            raise CorruptFileError("malformed attr map entry")
        em = pw.decode_message(entry)
        key = pw.get_str(em, 1)
        value = pw.last(em, 2)
        if isinstance(value, int):
            raise CorruptFileError(f"malformed AttrValue for attr {key!r}")
        out[key] = parse_attr_value(value if value is not None else b"")
    return out


def parse_attr_value(buf):
    """Decode a serialized ``AttrValue`` (see the module doc for the Python types)."""
    msg = pw.decode_message(buf)
    if 1 in msg:
        lst = pw.get_message(msg, 1)
        if lst.get(2):
            return pw.repeated_bytes(lst[2])
        if lst.get(3):
            return pw.repeated_varints(lst[3])
        if lst.get(4):
            return [float(v) for v in pw.repeated_floats(lst[4])]
        if lst.get(5):
            return [bool(v) for v in pw.repeated_varints(lst[5])]
        if lst.get(6):
            return [_datatype(v) for v in pw.repeated_varints(lst[6])]
        if lst.get(7):
            return [_shape(pw._need_bytes(v, "shape list")) for v in lst[7]]
        if lst.get(8):
            return [parse_tensor_proto(pw._need_bytes(v, "tensor list")) for v in lst[8]]
        if lst.get(9):
            return [_func(pw._need_bytes(v, "func list")) for v in lst[9]]
        return []
    if 2 in msg:
        return pw.get_bytes(msg, 2)
    if 3 in msg:
        return pw.get_int(msg, 3)
    if 4 in msg:
        v = pw.last(msg, 4)
        if not isinstance(v, int):
            raise CorruptFileError("malformed float attr")
        return pw.fixed32_to_float(v)
    if 5 in msg:
        return bool(pw.get_int(msg, 5))
    if 6 in msg:
        return _datatype(pw.get_int(msg, 6))
    if 7 in msg:
        return _shape(pw._need_bytes(pw.last(msg, 7), "shape attr"))
    if 8 in msg:
        return parse_tensor_proto(pw._need_bytes(pw.last(msg, 8), "tensor attr"))
    if 9 in msg:
        return {"placeholder": pw.get_str(msg, 9)}
    if 10 in msg:
        return _func(pw._need_bytes(pw.last(msg, 10), "func attr"))
    return None


def _parse_node(buf):
    msg = pw.decode_message(buf)
    name = pw.get_str(msg, 1)
    for v in msg.get(3, ()):
        pw._need_bytes(v, "node input")
    inputs = [bytes(v).decode("utf-8", errors="replace") for v in msg.get(3, ())]
    try:
        attrs = _attr_map(msg.get(5, ()))
    except (CorruptFileError, UnsupportedFormatError) as exc:
        raise type(exc)(f"node {name!r}: {exc}") from None
    return Node(name=name, op=pw.get_str(msg, 2), inputs=inputs, device=pw.get_str(msg, 4), attrs=attrs)


# -------------------------------------------------------------------------------------------- graph
class Graph:
    """The nodes of a GraphDef, in file order, with name lookup and a few graph queries."""

    def __init__(self, nodes, source="<graph>", producer=None, has_library=False):
        self.nodes = list(nodes)
        self.source = source
        self.producer = producer
        self.has_library = has_library
        self._by_name = {}
        for n in self.nodes:
            if n.name in self._by_name:
                raise CorruptFileError(f"{source}: two nodes are named {n.name!r}")
            self._by_name[n.name] = n
        self._consumers = None

    def node(self, name):
        """The node called ``name`` (an input string such as ``"x:0"`` or ``"^x"`` is accepted)."""
        try:
            return self._by_name[_base_name(name)]
        except KeyError:
            raise KeyError(f"no node {name!r} in {self.source}") from None

    def __contains__(self, name):
        return _base_name(name) in self._by_name

    def consts(self):
        """``{node_name: ndarray}`` for every ``Const`` node, in file order."""
        out = {}
        for n in self.nodes:
            if n.op == "Const":
                value = n.attrs.get("value")
                if isinstance(value, OpaqueTensor):
                    raise UnsupportedFormatError(
                        f"{self.source}: Const {n.name!r} has dtype {value.dtype.name}, which has no array value")
                if not isinstance(value, np.ndarray):
                    raise CorruptFileError(f"{self.source}: Const {n.name!r} has no tensor 'value' attr")
                out[n.name] = value
        return out

    def placeholders(self):
        """The ``Placeholder`` nodes (their ``attrs`` hold ``dtype`` and ``shape``)."""
        return [n for n in self.nodes if n.op in ("Placeholder", "PlaceholderWithDefault")]

    def consumers(self, name):
        """Nodes that take ``name`` (any output of it) as a data input."""
        if self._consumers is None:
            self._consumers = {}
            for n in self.nodes:
                for i in n.data_inputs:
                    self._consumers.setdefault(i, []).append(n)
        return self._consumers.get(_base_name(name), [])

    def resolve(self, name):
        """Follow ``Identity``-like nodes from input ``name`` to the node that produces the value."""
        node = self.node(name)
        for _ in range(len(self.nodes) + 1):
            if node.op not in _PASS_THROUGH_OPS or not node.data_inputs:
                return node
            node = self.node(node.data_inputs[0])
        raise CorruptFileError(f"{self.source}: cycle of Identity nodes through {name!r}")

    def __repr__(self):
        return f"Graph({self.source!r}, {len(self.nodes)} nodes)"


def parse_graphdef(data, source="<bytes>", check_inputs=True):
    """Parse serialized ``GraphDef`` bytes. With ``check_inputs`` every node input must name a node."""
    try:
        msg = pw.decode_message(data)
        nodes = []
        for i, nb in enumerate(msg.get(1, ())):
            try:
                nodes.append(_parse_node(pw._need_bytes(nb, "node")))
            except (CorruptFileError, UnsupportedFormatError) as exc:
                raise type(exc)(f"node #{i}: {exc}") from None
        versions = pw.get_message(msg, 4)
    except CorruptFileError as exc:
        raise CorruptFileError(f"{source}: not a valid binary GraphDef: {exc}") from None
    except UnsupportedFormatError as exc:
        raise UnsupportedFormatError(f"{source}: {exc}") from None
    graph = Graph(nodes, source=source, producer=pw.get_int(versions, 1, None) if versions else None,
                  has_library=bool(msg.get(2)))
    if check_inputs:
        for n in graph.nodes:
            for inp in n.inputs:
                if _base_name(inp) not in graph:
                    raise CorruptFileError(
                        f"{source}: node {n.name!r} reads {inp!r}, which is not in the graph "
                        f"(truncated or not a complete GraphDef)")
    return graph


def read_graphdef(path, check_inputs=True):
    """Read a binary GraphDef (``.pb``) file into a :class:`Graph`."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, IsADirectoryError):
        raise WeightsFileNotFoundError(f"GraphDef file not found: {path}") from None
    except OSError as exc:
        raise WeightsError(f"cannot read GraphDef file {path}: {exc}") from None
    return parse_graphdef(data, source=path, check_inputs=check_inputs)


# --------------------------------------------------------------------------- frozen-graph variables
@dataclass
class FrozenGraphWeights:
    """Variables recovered from a frozen graph under their TF-slim variable names.

    ``batch_norm_epsilon`` is the epsilon every batch norm uses (a Python float of the graph's float32 value;
    ``None`` if there is no BN or they differ, see ``notes``). ``input_shape`` has -1 for unknown dims.
    ``fake_quant`` maps each ``FakeQuantWithMinMax*`` node to ``{"op", "input", "num_bits", "narrow_range",
    "min", "max", "min_value", "max_value"}``; ``min``/``max`` name the const variables in ``variables``
    (``None`` for ``…Args``, whose range is an attribute).
    """
    variables: dict
    batch_norm_epsilon: float = None
    input_shape: tuple = None
    input_name: str = None
    notes: list = field(default_factory=list)
    fake_quant: dict = field(default_factory=dict)


class _Analyzer:
    """Pattern matching on one graph; every failure to match is a note, never a guess."""

    def __init__(self, graph):
        self.g = graph
        self.variables = {}
        self.notes = []
        self.eps = {}
        self.fake_quant = {}

    def args(self, node, n):
        """The first ``n`` data inputs of ``node``, or None when it has fewer (a malformed graph)."""
        ins = node.data_inputs
        return ins[:n] if len(ins) >= n else None

    def attr(self, node, key, kinds, default):
        """Attribute ``key`` of ``node`` checked to be of one of ``kinds`` (absent: ``default``)."""
        value = node.attrs.get(key, default)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise CorruptFileError(
                f"{self.g.source}: attr {key!r} of {node.op} {node.name!r} has the wrong type "
                f"({type(value).__name__})")
        return value

    def const(self, inp):
        """The Const node behind input ``inp`` (through Identity), else None."""
        node = self.g.resolve(inp)
        return node if node.op == "Const" else None

    def add_var(self, node, role):
        value = node.attrs.get("value")
        if not isinstance(value, np.ndarray):
            raise CorruptFileError(f"{self.g.source}: Const {node.name!r} ({role}) has no array value")
        prev = self.variables.get(node.name)
        if prev is not None and prev is not value:
            raise CorruptFileError(f"{self.g.source}: two different values for {node.name!r}")
        self.variables[node.name] = value
        return node.name

    # -- batch-norm arithmetic -------------------------------------------------------------------
    def multiplier(self, node):
        """Match ``m = gamma * rsqrt(var + eps)`` (either operand order) or ``m = rsqrt(var + eps)``.

        Returns ``(gamma_const|None, var_const, eps)`` or None.
        """
        gamma = None
        if node.op == "Mul":
            ins = self.args(node, 2)
            if ins is None:
                return None
            a, b = (self.g.resolve(i) for i in ins)
            if a.op == "Rsqrt" and b.op == "Const":
                rsqrt, gamma = a, b
            elif b.op == "Rsqrt" and a.op == "Const":
                rsqrt, gamma = b, a
            else:
                return None
        elif node.op == "Rsqrt":
            rsqrt = node
        else:
            return None
        ins = self.args(rsqrt, 1)
        if ins is None:
            return None
        add = self.g.resolve(ins[0])
        if add.op not in ("Add", "AddV2") or len(add.data_inputs) != 2:
            return None
        x, y = (self.const(i) for i in add.data_inputs)
        if x is None or y is None:
            return None
        xv, yv = np.asarray(x.attrs.get("value")), np.asarray(y.attrs.get("value"))
        # tf.nn.batch_normalization writes variance + epsilon; the epsilon is the scalar one.
        if xv.ndim == 0 and yv.ndim != 0:
            x, y, xv, yv = y, x, yv, xv
        if yv.size != 1 or yv.dtype.kind != "f":
            return None
        return gamma, x, float(yv.reshape(()))

    def offset(self, node, mult_node):
        """Match ``b = beta - mean * m`` or ``b = -(mean * m)``; returns ``(beta_const|None, mean_const)``."""
        beta = None
        if node.op == "Sub" and self.args(node, 2):
            beta = self.const(node.data_inputs[0])
            prod = self.g.resolve(node.data_inputs[1])
            if beta is None:
                return None
        elif node.op == "Neg" and self.args(node, 1):
            prod = self.g.resolve(node.data_inputs[0])
        else:
            return None
        if prod.op != "Mul" or self.args(prod, 2) is None:
            return None
        a, b = prod.data_inputs[:2]
        if self.g.resolve(b) is mult_node and self.const(a) is not None:
            return beta, self.const(a)
        if self.g.resolve(a) is mult_node and self.const(b) is not None:
            return beta, self.const(b)
        return None

    def record_bn(self, layer, gamma, beta, mean, var, eps, where):
        """Store the four BN vectors under their variable names (synthesising gamma=1 / beta=0 if the graph
        proves there is no scale / offset)."""
        scope = var.name.rsplit("/", 1)[0] if "/" in var.name else f"{layer}/BatchNorm"
        self.add_var(mean, "moving_mean")
        self.add_var(var, "moving_variance")
        if gamma is not None:
            self.add_var(gamma, "gamma")
        else:
            name = f"{scope}/gamma"
            self.variables[name] = np.ones_like(var.attrs["value"])
            self.notes.append(f"{where}: no scale multiply in the graph (scale=False); returned {name} = ones")
        if beta is not None:
            self.add_var(beta, "beta")
        else:
            name = f"{scope}/beta"
            self.variables[name] = np.zeros_like(mean.attrs["value"])
            self.notes.append(f"{where}: no offset in the graph (center=False); returned {name} = zeros")
        self.eps[where] = eps

    # -- layers ----------------------------------------------------------------------------------
    def fake_quant_node(self, node):
        info = {"op": node.op, "input": node.data_inputs[0] if node.data_inputs else None,
                "num_bits": self.attr(node, "num_bits", (int,), 8),
                "narrow_range": self.attr(node, "narrow_range", (bool,), False), "min": None, "max": None}
        if node.op in FAKE_QUANT_VARS_OPS:
            for key, inp in zip(("min", "max"), node.data_inputs[1:3]):
                c = self.const(inp)
                if c is None:
                    self.notes.append(f"{node.name}: {key} is not a const ({self.g.resolve(inp).op})")
                else:
                    info[key] = self.add_var(c, f"fake-quant {key}")
                    value = np.asarray(c.attrs["value"])
                    info[key + "_value"] = float(value.reshape(())) if value.size == 1 else value
        else:  # FakeQuantWithMinMaxArgs: the range is in the attrs
            info["min_value"] = self.attr(node, "min", (float,), -6.0)
            info["max_value"] = self.attr(node, "max", (float,), 6.0)
        self.fake_quant[node.name] = info

    def conv_layer(self, conv):
        if len(conv.data_inputs) < 2:
            return
        src = self.g.resolve(conv.data_inputs[1])
        fold_mult = None
        if src.op in FAKE_QUANT_VARS_OPS and src.data_inputs:
            src = self.g.resolve(src.data_inputs[0])
        if src.op == "Mul" and self.args(src, 2):  # tf.contrib.quantize: mul_fold = w * gamma*rsqrt(var+eps)
            a, b = (self.g.resolve(i) for i in src.data_inputs[:2])
            w, m = (a, b) if a.op == "Const" else (b, a)
            if w.op != "Const":
                self.notes.append(f"{conv.name}: weights come from {src.name!r} ({src.op}) without a const")
                return
            if m.op == "Reshape" and m.data_inputs:  # depthwise: multiplier reshaped to [C, multiplier]
                m = self.g.resolve(m.data_inputs[0])
            fold_mult = m
            src = w
        if src.op != "Const":
            self.notes.append(f"{conv.name}: weights are produced by {src.op} {src.name!r}, not a const; skipped")
            return
        wname = self.add_var(src, "weights")
        layer = wname.rsplit("/", 1)[0]
        if wname.rsplit("/", 1)[-1] not in ("weights", "depthwise_weights", "kernel", "depthwise_kernel"):
            self.notes.append(f"{conv.name}: weights const {wname!r} has no variable-like name (the graph may "
                              f"have been transformed, e.g. batch norm folded into the weights)")
        if fold_mult is not None:
            self.folded_bn(conv, layer, fold_mult)
            return
        for user in self.g.consumers(conv.name):
            if user.op in FUSED_BN_OPS:
                self.fused_bn(user, layer)
                return
            if user.op == "BiasAdd" and len(user.data_inputs) == 2:
                bias = self.const(user.data_inputs[1])
                if bias is not None:
                    self.add_var(bias, "biases")
                    return
            if user.op == "Mul" and self.unfused_bn(conv, user, layer):
                return

    def fused_bn(self, bn, layer):
        if self.attr(bn, "is_training", (bool,), True):
            self.notes.append(f"{bn.name}: is_training=True; the graph normalises with batch statistics")
        consts = [self.const(i) for i in bn.data_inputs[1:5]]
        if len(consts) != 4 or any(c is None for c in consts):
            self.notes.append(f"{bn.name}: scale/offset/mean/variance are not all consts; skipped")
            return
        gamma, beta, mean, var = consts
        eps = self.attr(bn, "epsilon", (float,), 1e-4)  # TF's attr default is 0.0001
        self.record_bn(layer, gamma, beta, mean, var, float(np.float32(eps)), bn.name)

    def unfused_bn(self, conv, mul1, layer):
        others = [self.g.resolve(i) for i in mul1.data_inputs[:2] if _base_name(i) != conv.name]
        if len(others) != 1:
            return False
        mult = others[0]
        matched = self.multiplier(mult)
        if matched is None:
            return False
        gamma, var, eps = matched
        for add1 in self.g.consumers(mul1.name):
            if add1.op not in ("Add", "AddV2"):
                continue
            for inp in add1.data_inputs:
                if _base_name(inp) == mul1.name:
                    continue
                off = self.offset(self.g.resolve(inp), mult)
                if off is not None:
                    beta, mean = off
                    self.record_bn(layer, gamma, beta, mean, var, eps, add1.name)
                    return True
        return False

    def folded_bn(self, conv, layer, mult):
        matched = self.multiplier(mult)
        if matched is None:
            self.notes.append(f"{conv.name}: folded weights multiplier {mult.name!r} not recognised")
            return
        gamma, var, eps = matched
        for user in self.g.consumers(conv.name):
            if user.op not in ("Add", "AddV2"):
                continue
            for inp in user.data_inputs:
                if _base_name(inp) == conv.name:
                    continue
                off = self.offset(self.g.resolve(inp), mult)
                if off is not None:
                    beta, mean = off
                    self.record_bn(layer, gamma, beta, mean, var, eps, user.name)
                    return
        self.notes.append(f"{conv.name}: folded batch-norm bias (beta - mean * m) not found")

    def run(self):
        for node in self.g.nodes:
            if node.op.startswith("FakeQuantWithMinMax"):
                self.fake_quant_node(node)
        for node in self.g.nodes:
            if node.op in CONV_OPS:
                self.conv_layer(node)
        unused = [n.name for n in self.g.nodes
                  if n.op == "Const" and n.name not in self.variables and (n.name + "/read") in self.g]
        if unused:
            self.notes.append(f"{len(unused)} variable-like consts (with a '/read' node) not used by any "
                              f"recognised layer: {', '.join(unused[:10])}{' …' if len(unused) > 10 else ''}")


def frozen_graph_variables(path_or_graph):
    """Recover the model variables of a frozen graph under their TF-slim variable names.

    Accepts a path or a :class:`Graph`. For each Conv2D / DepthwiseConv2dNative / MatMul it follows the
    weight input (through Identity, FakeQuant and tf.contrib.quantize's ``mul_fold``) to a Const, then finds
    the batch norm or bias that consumes the conv output (FusedBatchNorm*, the unfused Mul/Add/Rsqrt chain,
    or the folded ``BatchNorm_Fold`` bias) and checks the arithmetic is exactly
    ``y = conv * gamma * rsqrt(var + eps) + (beta - mean * gamma * rsqrt(var + eps))``. Const names are the
    variable names (freezing keeps them). Fake-quant min/max consts are returned under their own names.
    """
    graph = path_or_graph if isinstance(path_or_graph, Graph) else read_graphdef(path_or_graph)
    an = _Analyzer(graph)
    try:
        an.run()
    except KeyError as exc:
        raise CorruptFileError(f"{graph.source}: {exc.args[0] if exc.args else exc}") from None
    notes = an.notes
    eps_values = sorted(set(an.eps.values()))
    if len(eps_values) == 1:
        epsilon = eps_values[0]
    else:
        epsilon = None
        if eps_values:
            notes.append("batch norms use different epsilons: " +
                         ", ".join(f"{k}={v}" for k, v in an.eps.items()))
    phs = graph.placeholders()
    input_name = input_shape = None
    if phs:
        chosen = next((p for p in phs if p.name == "input"), phs[0])
        input_name = chosen.name
        input_shape = chosen.attrs.get("shape")
        if len(phs) > 1:
            notes.append(f"{len(phs)} placeholders ({', '.join(p.name for p in phs)}); reported {chosen.name!r}")
    else:
        notes.append("no Placeholder node: the input is not a graph input")
    if not an.variables:
        notes.append("no conv/matmul weights found as consts: not a frozen slim graph, or weights pre-folded")
    return FrozenGraphWeights(variables=an.variables, batch_norm_epsilon=epsilon, input_shape=input_shape,
                              input_name=input_name, notes=notes, fake_quant=an.fake_quant)
