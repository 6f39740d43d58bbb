"""The TF-free ``.tflite`` reader (weights_tools/tflite.py) against TFLite's own view of every fixture file.

What is proved here:

* every tensor of every fixture ``.tflite`` has the name, shape, shape signature, dtype, quantization (scales,
  zero points, quantized dimension) and constant bytes that ``Interpreter.get_tensor_details()`` /
  ``get_tensor()`` report, and every operator the op name, inputs and outputs of ``_get_ops_details()``;
* decoded builtin options, operator codes, metadata names, version and description equal what TFLite's
  generated FlatBuffers schema classes (``schema_py_generated``, an independent decoder) read;
* our enum tables (ops, option tags, tensor types) equal the schema's;
* broken files -- wrong identifier, truncated, random byte flips (hypothesis), absurd offsets and lengths,
  out-of-range indices, wrong constant sizes -- raise ``CorruptFileError`` / ``UnsupportedFormatError`` naming the
  file and the problem, quickly, and never an IndexError or struct.error.
"""
import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mobilenet_np.errors import CorruptFileError, UnsupportedFormatError, WeightsFileNotFoundError
from mobilenet_np.testing import fixtures_dir, missing_reason
from weights_tools import tflite as T

OUR_ERRORS = (CorruptFileError, UnsupportedFormatError)


def _fixture_files():
    root = fixtures_dir()
    if root is None:
        return []
    return sorted(str(p.relative_to(root)) for p in root.glob("models/**/*.tflite"))


FILES = _fixture_files()
SMALL = "models/mobilenet_v1_0.25_128_quant/mobilenet_v1_0.25_128_quant.tflite"


def _path(rel):
    root = fixtures_dir()
    if root is None or not (root / rel).exists():
        pytest.skip(missing_reason(rel))
    return str(root / rel)


def _bytes(rel):
    with open(_path(rel), "rb") as f:
        return f.read()


# ------------------------------------------------------------------------------ agreement with the interpreter
def check_against_interpreter(path):
    """Assert our decoding of ``path`` equals what the TFLite interpreter reports; returns the parsed model."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = T.read_tflite(path)
    it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    # The interpreter appends its own scratch tensors (e.g. MEAN's temporaries) after the file's.
    details = [d for d in it.get_tensor_details() if d["index"] < len(model.tensors)]
    assert len(details) == len(model.tensors), f"{path}: tensor count"
    for d in details:
        t = model.tensors[d["index"]]
        where = f"{path}: tensor {t.index} {t.name!r}"
        assert t.name == d["name"], where
        assert list(t.shape) == d["shape"].tolist(), where
        assert list(t.shape_signature if t.shape_signature is not None else t.shape) == \
            d["shape_signature"].tolist(), where
        assert t.dtype == np.dtype(d["dtype"]), where
        q = d["quantization_parameters"]
        assert np.array_equal(t.quantization.scale, q["scales"]), where
        assert np.array_equal(t.quantization.zero_point, q["zero_points"]), where
        assert t.quantization.quantized_dimension == q["quantized_dimension"], where
        if not t.quantization.per_channel:       # the legacy (scale, zero_point) pair is (0, 0) when per-channel
            assert (t.scale, t.zero_point) == pytest.approx(d["quantization"]), where
        if t.data is not None:
            ref = it.get_tensor(d["index"])
            assert t.data.dtype == ref.dtype and np.array_equal(t.data, ref), where + ": constant data"
    ops = it._get_ops_details()
    assert len(ops) == len(model.operators)
    for o, ours in zip(ops, model.operators):
        assert (ours.name, list(ours.inputs), list(ours.outputs)) == \
            (o["op_name"], list(o["inputs"]), list(o["outputs"])), f"{path}: operator {o['index']}"
    assert [d["index"] for d in it.get_input_details()] == list(model.inputs)
    assert [d["index"] for d in it.get_output_details()] == list(model.outputs)
    return model


@pytest.mark.parametrize("rel", FILES or [pytest.param(SMALL, marks=pytest.mark.skip(reason=missing_reason("models")))])
def test_reader_matches_interpreter(rel):
    pytest.importorskip("ai_edge_litert")
    model = check_against_interpreter(_path(rel))
    assert len(model.tensors) > 80 and len(model.operators) >= 31
    print(f"{rel}: {len(model.tensors)} tensors, {len(model.operators)} ops {model.op_counts()}, "
          f"metadata {sorted(model.metadata)}")


# ------------------------------------------------------------------------------ agreement with the schema
def _schema():
    pytest.importorskip("tensorflow")
    from tensorflow.lite.python import schema_py_generated as schema
    return schema


_OPTION_FIELDS = {  # our option key -> attribute of the generated ...OptionsT class
    "padding": "padding", "stride_w": "strideW", "stride_h": "strideH", "depth_multiplier": "depthMultiplier",
    "fused_activation_function": "fusedActivationFunction", "dilation_w_factor": "dilationWFactor",
    "dilation_h_factor": "dilationHFactor", "filter_width": "filterWidth", "filter_height": "filterHeight",
    "beta": "beta", "new_shape": "newShape", "squeeze_dims": "squeezeDims", "keep_dims": "keepDims",
    "weights_format": "weightsFormat", "keep_num_dims": "keepNumDims",
    "asymmetric_quantize_inputs": "asymmetricQuantizeInputs", "pot_scale_int16": "potScaleInt16",
}


def check_against_schema(data, model):
    """Compare operator codes, options, metadata and header fields with TFLite's generated decoder."""
    schema = _schema()
    ref = schema.ModelT.InitFromPackedBuf(data, 0)
    assert model.version == ref.version
    assert model.description == (ref.description or b"").decode()
    assert sorted(model.metadata) == sorted(m.name.decode() for m in (ref.metadata or []))
    sg = ref.subgraphs[0]
    for op, rop in zip(model.operators, sg.operators):
        code = ref.operatorCodes[rop.opcodeIndex]
        assert op.opcode == max(code.builtinCode, code.deprecatedBuiltinCode)
        assert op.options_type == rop.builtinOptionsType
        ropts = rop.builtinOptions
        for key, value in op.options.items():
            expected = getattr(ropts, _OPTION_FIELDS[key])
            if key == "padding":
                expected = T.PADDING[expected]
            elif key == "fused_activation_function":
                expected = T.ACTIVATIONS[expected]
            elif key in ("new_shape", "squeeze_dims"):
                expected = None if expected is None else tuple(int(v) for v in expected)
            elif key == "beta":
                expected = float(np.float32(expected))
            assert value == expected, f"operator {op.index} ({op.name}) option {key}"


@pytest.mark.parametrize("rel", FILES or [pytest.param(SMALL, marks=pytest.mark.skip(reason=missing_reason("models")))])
def test_options_and_header_match_schema(rel):
    data = _bytes(rel)
    model = T.parse_tflite(data, rel)
    check_against_schema(data, model)
    kinds = {op.name for op in model.operators}
    assert all(op.options for op in model.operators if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                                     "AVERAGE_POOL_2D", "SOFTMAX"))
    assert kinds <= {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "ADD", "RESHAPE", "SQUEEZE", "SOFTMAX"}


def test_metadata_presence():
    """The fixtures README says which files carry TFLite metadata; the 2018 slim release does not."""
    assert not T.read_tflite(_path(SMALL)).has_metadata
    coral = T.read_tflite(_path("models/tflite/coral_mobilenet_v1_0.25_128_quant.tflite"))
    assert coral.has_metadata and "TFLITE_METADATA" in coral.metadata and len(coral.metadata["TFLITE_METADATA"]) > 100


def test_enum_tables_match_schema():
    schema = _schema()
    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    for code, name in enumerate(T.BUILTIN_OPS):
        assert ops[code] == name, code
    tags = {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}
    for tag, (name, _) in T._OPTION_TABLES.items():
        assert tags[tag] == name, tag
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    for code, (name, _) in T.TENSOR_TYPES.items():
        assert types[code].lower() == name, code
    assert T.op_name(999) == "BUILTIN_999"


# ------------------------------------------------------------------------------ files edited with the schema classes
def _pack(model_t):
    import flatbuffers
    b = flatbuffers.Builder(1 << 20)
    b.Finish(model_t.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _model_t(rel=SMALL):
    schema = _schema()
    return schema, schema.ModelT.InitFromPackedBuf(_bytes(rel), 0)


def test_builtin_code_is_max_of_both_fields():
    """Old files only have deprecated_builtin_code; codes above 127 store 127 there and the real one in builtin_code."""
    _, m = _model_t()
    for oc in m.operatorCodes:
        oc.builtinCode, oc.deprecatedBuiltinCode = 0, max(oc.builtinCode, oc.deprecatedBuiltinCode)
    assert T.parse_tflite(_pack(m)).op_counts() == T.read_tflite(_path(SMALL)).op_counts()
    m.operatorCodes[0].deprecatedBuiltinCode, m.operatorCodes[0].builtinCode = 127, 150
    names = {op.name for op in T.parse_tflite(_pack(m)).operators}
    assert "BUILTIN_150" in names


def _filter(m):
    """The first convolution's filter: a constant tensor."""
    sg = m.subgraphs[0]
    return sg.tensors[sg.operators[0].inputs[1]]


@pytest.mark.parametrize("edit, message", [
    (lambda m: setattr(m.subgraphs[0].tensors[3], "buffer", 10 ** 6), "refers to buffer"),
    (lambda m: setattr(m.subgraphs[0].operators[2], "opcodeIndex", 99), "operator code 99"),
    (lambda m: setattr(m.subgraphs[0].operators[2], "inputs", np.array([0, 5000, 2], np.int32)), "tensor 5000"),
    (lambda m: setattr(m.subgraphs[0], "outputs", np.array([-1], np.int32)), "subgraph output"),
    (lambda m: setattr(_filter(m), "shape", np.array([1, 2, 3], np.int32)), "needs"),
    (lambda m: setattr(_filter(m), "shape", np.array([-4, 2], np.int32)), "negative dimension"),
    (lambda m: setattr(_filter(m), "shape", np.ones(40, np.int32)), "rank 40"),
    (lambda m: setattr(m, "subgraphs", []), "no subgraphs"),
])
def test_inconsistent_files_raise_corrupt(edit, message):
    _, m = _model_t()
    edit(m)
    with pytest.raises(CorruptFileError, match=message) as info:
        T.parse_tflite(_pack(m), "edited.tflite")
    assert "edited.tflite" in str(info.value)


def test_unknown_tensor_type_is_unsupported():
    _, m = _model_t()
    m.subgraphs[0].tensors[0].type = 99
    with pytest.raises(UnsupportedFormatError, match="unknown tensor type 99"):
        T.parse_tflite(_pack(m), "edited.tflite")


# ------------------------------------------------------------------------------ corrupt bytes
def test_identifier_and_short_files():
    data = _bytes(SMALL)
    with pytest.raises(CorruptFileError, match="identifier"):
        T.parse_tflite(data[:4] + b"TFL4" + data[8:], "x.tflite")
    for n in range(8):
        with pytest.raises(CorruptFileError, match="too short"):
            T.parse_tflite(data[:n], "x.tflite")
    with pytest.raises(WeightsFileNotFoundError):
        T.read_tflite("/nonexistent/model.tflite")
    assert T.is_tflite(_path(SMALL)) and not T.is_tflite(__file__)


def test_absurd_offsets_and_lengths():
    data = bytearray(_bytes(SMALL))
    bad = bytearray(data)
    bad[0:4] = struct.pack("<I", 0x7FFFFFF0)               # root table far beyond the file
    with pytest.raises(CorruptFileError, match="outside the file"):
        T.parse_tflite(bytes(bad), "x.tflite")
    # Locate Model.subgraphs -> SubGraph.tensors with the reader's own helpers, then give that vector an
    # absurd length: the check must fail before anything of that size is touched.
    buf = T._Buffer(bytes(data), "x")
    model = buf.table(buf.uoffset(0, "root"), "Model")
    sg = model.tables(2, "subgraphs")[0]
    tensors_slot = sg._field(0, 4)
    vec = buf.uoffset(tensors_slot, "tensors")
    for length in (0xFFFFFFFF, len(data)):
        bad = bytearray(data)
        bad[vec:vec + 4] = struct.pack("<I", length)
        start = time.perf_counter()
        with pytest.raises(CorruptFileError, match="outside the file"):
            T.parse_tflite(bytes(bad), "x.tflite")
        assert time.perf_counter() - start < 1.0
    bad = bytearray(data)                                     # a vtable offset pointing before the file
    bad[sg.pos:sg.pos + 4] = struct.pack("<i", sg.pos + 1000)
    with pytest.raises(CorruptFileError, match="outside the file"):
        T.parse_tflite(bytes(bad), "x.tflite")


@settings(max_examples=25, deadline=None)
@given(cut=st.floats(0.0, 1.0))
def test_truncated_files_raise(cut):
    data = _bytes(SMALL)
    n = int(cut * (len(data) - 64))           # the last 8 bytes are padding nothing refers to; stay clear of them
    with pytest.raises(CorruptFileError) as info:
        T.parse_tflite(data[:n], "cut.tflite")
    assert "cut.tflite" in str(info.value)


def _structure_positions(data):
    """Byte ranges holding tables and vtables (everything but constant data) of a real file."""
    buf = T._Buffer(data, "x")
    root = buf.uoffset(0, "root")
    return root, root + 8192


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_flipped_bytes_never_escape(data):
    raw = _bytes(SMALL)
    lo, hi = _structure_positions(raw)
    n = data.draw(st.integers(1, 6))
    bad = bytearray(raw)
    for _ in range(n):
        where = data.draw(st.one_of(st.integers(0, 64), st.integers(lo, hi), st.integers(0, len(raw) - 1)))
        bad[where] ^= data.draw(st.integers(1, 255))
    start = time.perf_counter()
    try:
        T.parse_tflite(bytes(bad), "flipped.tflite")
    except OUR_ERRORS as exc:
        assert "flipped.tflite" in str(exc)
    assert time.perf_counter() - start < 2.0
