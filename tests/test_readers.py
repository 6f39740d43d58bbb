"""Tests of the TensorFlow-free readers in ``weights_tools`` (CRC32C, protobuf wire, tensor bundle, GraphDef).

Oracles: TensorFlow itself (imported inside the tests: its checkpoint reader, its GraphDef parser and
``make_ndarray``, its sessions running the real graphs, its TFRecord writer's checksums, its protobuf
classes as encoders) and published check values (RFC 3720 CRC32C vectors). Never our own code.
"""
import os
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mobilenet_np.errors import (ChecksumError, CorruptFileError, MobileNetError, UnsupportedFormatError,
                                 WeightsFileNotFoundError)
from mobilenet_np.testing import fixture_path, missing_reason
from weights_tools import protobuf_wire as pw
from weights_tools.crc32c import crc32c, mask, masked_crc32c, unmask
from weights_tools.graphdef import DataType, frozen_graph_variables, parse_graphdef, read_graphdef
from weights_tools.tensor_bundle import TensorBundle

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

QUANT_DIR = "models/mobilenet_v1_0.25_128_quant"
QUANT_CKPT = f"{QUANT_DIR}/mobilenet_v1_0.25_128_quant.ckpt"
QUANT_PB = f"{QUANT_DIR}/mobilenet_v1_0.25_128_quant_frozen.pb"
F224_INDEX = "models/mobilenet_v1_0.25_224/mobilenet_v1_0.25_224.ckpt.index"
F224_PB = "models/mobilenet_v1_0.25_224/mobilenet_v1_0.25_224_frozen.pb"
PB_2017_128 = "models/mobilenet_v1_0.25_128_2017/frozen_graph.pb"
PB_2017_192 = "models/mobilenet_v1_0.25_192_2017/frozen_graph.pb"
ALL_PBS = [F224_PB, PB_2017_128, PB_2017_192, QUANT_PB]

# float32 comparisons of a conv / batch norm computed two ways (TF vs NumPy): ~1e-5 as in TF's own op tests.
F32_TOL = 1e-5

FUZZ = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def fixture(relative):
    path = fixture_path(relative)
    if path is None:
        pytest.skip(missing_reason(relative))
    return path


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


# ----------------------------------------------------------------------------- independent references
_CRC_POLY = 0x82F63B78


def crc32c_bitwise(data, crc=0):
    """Slow textbook CRC32C, one bit at a time (the reference for the table-driven kernel)."""
    crc ^= 0xFFFFFFFF
    for byte in bytes(data):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_CRC_POLY if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked_ref(data):
    c = crc32c_bitwise(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def conv2d_same(x, w, stride, depthwise=False):
    """Direct NHWC convolution with TF's SAME padding (extra pad at bottom/right), float64 accumulation."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    oh, ow = -(-h // stride), -(-wd // stride)
    ph = max((oh - 1) * stride + kh - h, 0)
    pw_ = max((ow - 1) * stride + kw - wd, 0)
    xp = np.pad(x.astype(np.float64), ((0, 0), (ph // 2, ph - ph // 2), (pw_ // 2, pw_ - pw_ // 2), (0, 0)))
    out = 0
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride, :]
            if depthwise:
                out = out + patch * w[i, j, :, 0]
            else:
                out = out + patch @ w[i, j].astype(np.float64)
    return out


def assert_same_tensor(ours, theirs, name):
    """Bit-for-bit equality with what TensorFlow returned (dtype, shape, bytes)."""
    if isinstance(theirs, bytes):
        assert ours.dtype == object and ours.shape == () and ours.item() == theirs, name
        return
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
    if theirs.dtype == object:
        assert ours.dtype == object and ours.tolist() == theirs.tolist(), name
    elif theirs.dtype.name == "bfloat16":  # documented: bfloat16 is returned converted to float32 (exact)
        assert ours.dtype == np.float32, name
        np.testing.assert_array_equal(ours, theirs.astype(np.float32), err_msg=name)
    else:
        assert ours.dtype == theirs.dtype, (name, ours.dtype, theirs.dtype)
        assert ours.tobytes() == theirs.tobytes(), f"{name}: values differ from TensorFlow's"


def tf_checkpoint_equal(tf, prefix):
    """Every entry we read equals ``tf.train.load_checkpoint(prefix).get_tensor``; returns the entry count."""
    reader = tf.train.load_checkpoint(str(prefix))
    shapes = reader.get_variable_to_shape_map()
    bundle = TensorBundle(prefix)
    assert sorted(bundle.keys()) == sorted(shapes), "key sets differ from TensorFlow's"
    for name in bundle.keys():
        assert bundle.entry(name).shape == tuple(shapes[name]), name
        assert_same_tensor(bundle.read(name, verify=True), reader.get_tensor(name), name)
    return len(bundle.keys())


# ------------------------------------------------------------------------------------------- CRC32C
def test_crc32c_published_values():
    # "123456789" check value, and the iSCSI test vectors of RFC 3720 appendix B.4.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


@given(st.integers(0, 2**32 - 1))
def test_mask_unmask_round_trip(c):
    assert unmask(mask(c)) == c
    assert mask(c) == ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.binary(max_size=100))
def test_crc32c_matches_bitwise_reference(a, b):
    assert crc32c(a) == crc32c_bitwise(a)
    assert crc32c(b, crc32c(a)) == crc32c(a + b)  # continuation
    arr = np.frombuffer(a, dtype=np.uint8)
    assert crc32c(arr[::-1]) == crc32c_bitwise(a[::-1])  # non-contiguous numpy input


def test_crc32c_large_buffer_fast():
    data = np.random.default_rng(0).integers(0, 256, 2_000_000, dtype=np.uint8)
    crc32c(data[:10])
    t0 = time.perf_counter()
    c = crc32c(data)
    assert time.perf_counter() - t0 < 0.5
    assert c == crc32c(data[1_000_000:], crc32c(data[:1_000_000]))


def test_masked_crc32c_matches_tfrecord_writer(tf, tmp_path):
    # A TFRecord is: uint64 length, masked CRC32C(length bytes), data, masked CRC32C(data).
    path = str(tmp_path / "r.tfrecord")
    payloads = [b"", b"123456789", os.urandom(1000)]
    with tf.io.TFRecordWriter(path) as w:
        for p in payloads:
            w.write(p)
    raw = open(path, "rb").read()
    pos = 0
    for p in payloads:
        header = raw[pos:pos + 8]
        assert struct.unpack("<Q", header)[0] == len(p)
        assert struct.unpack("<I", raw[pos + 8:pos + 12])[0] == masked_crc32c(header)
        data = raw[pos + 12:pos + 12 + len(p)]
        assert struct.unpack("<I", raw[pos + 12 + len(p):pos + 16 + len(p)])[0] == masked_crc32c(data)
        pos += 16 + len(p)


# ------------------------------------------------------------------------------------ protobuf wire
@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-2**63, 2**63 - 1), max_size=20),
       st.lists(st.integers(-2**31, 2**31 - 1), max_size=20),
       st.lists(st.floats(width=32, allow_nan=False), max_size=20), st.binary(max_size=50))
def test_wire_decoder_matches_protobuf_encoder(tf, i64, i32, f32, content):
    from tensorflow.core.framework import tensor_pb2
    msg = tensor_pb2.TensorProto(dtype=9, int64_val=i64, int_val=i32, float_val=f32, tensor_content=content,
                                 version_number=-5)
    fields = pw.decode_message(msg.SerializeToString())
    assert pw.repeated_varints(fields.get(10)) == i64
    assert pw.repeated_varints(fields.get(7), bits=32) == i32
    np.testing.assert_array_equal(pw.repeated_floats(fields.get(5)), np.array(f32, dtype=np.float32))
    assert pw.get_bytes(fields, 4) == content
    assert pw.get_int(fields, 3, bits=32) == -5
    assert pw.get_int(fields, 1) == 9


def test_wire_decoder_rejects_garbage():
    with pytest.raises(CorruptFileError):
        pw.read_varint(b"\x80\x80", 0)  # truncated
    with pytest.raises(CorruptFileError):
        pw.read_varint(b"\xff" * 11, 0)  # longer than 10 bytes
    with pytest.raises(CorruptFileError, match="declares"):
        pw.decode_message(b"\x0a" + varint(2**60) + b"abc")  # absurd length
    with pytest.raises(CorruptFileError, match="wire type"):
        pw.decode_message(b"\x0b")  # group (wire type 3)
    with pytest.raises(CorruptFileError):
        pw.decode_message(b"\x0d\x01\x02")  # truncated fixed32
    with pytest.raises(CorruptFileError):
        pw.repeated_floats([memoryview(b"\x00" * 5)])  # packed floats not a multiple of 4


@FUZZ
@given(st.binary(max_size=300))
def test_wire_decoder_terminates_on_random_bytes(data):
    try:
        pw.decode_message(data)
    except CorruptFileError:
        pass


# --------------------------------------------------------------------------- tensor bundle: fixtures
def test_quant_checkpoint_matches_tensorflow(tf):
    index = fixture(QUANT_CKPT + ".index")
    prefix = str(index)[:-len(".index")]
    assert tf_checkpoint_equal(tf, prefix) == 363


def test_quant_checkpoint_open_forms():
    index = fixture(QUANT_CKPT + ".index")
    prefix = str(index)[:-len(".index")]
    bundle = TensorBundle(prefix)
    assert bundle.num_shards == 1 and len(bundle) == 363
    assert bundle.keys() == sorted(bundle.keys(), key=lambda k: k.encode())
    for form in (index, prefix + ".data-00000-of-00001", os.path.dirname(prefix)):
        assert TensorBundle(form).keys() == bundle.keys()
    arrays = bundle.read_all(verify=True)
    assert len(arrays) == 363
    e = bundle.entry("MobilenetV1/Conv2d_0/weights")
    assert (e.dtype, e.shape, e.shard_id, e.size) == (np.float32, (3, 3, 3, 8), 0, 3 * 3 * 3 * 8 * 4)
    assert masked_ref(bundle.read_raw("MobilenetV1/Conv2d_0/weights")) == e.crc32c
    assert arrays["global_step"].dtype == np.int64 and arrays["global_step"].shape == ()
    # All of the data file belongs to some entry (so the byte-flip test below must always be detected).
    assert sum(bundle.entry(k).size for k in bundle.keys()) == os.path.getsize(prefix + ".data-00000-of-00001")


def test_index_without_data_lists_and_matches_frozen_graph():
    index = fixture(F224_INDEX)
    graph_vars = frozen_graph_variables(fixture(F224_PB)).variables
    bundle = TensorBundle(index)
    assert len(bundle.keys()) == 443
    assert bundle.missing_shards() == [str(index)[:-len(".index")] + ".data-00000-of-00001"]
    assert not bundle.has_data
    assert len(graph_vars) == 137
    for name, value in graph_vars.items():
        e = bundle.entry(name)
        assert e.shape == value.shape and e.dtype == value.dtype == np.float32, name
        # The entry's CRC was written by TF over the variable's bytes: the frozen const is the same tensor.
        assert masked_crc32c(value.tobytes()) == e.crc32c, f"{name}: frozen const differs from checkpoint"
    with pytest.raises(WeightsFileNotFoundError, match=r"\.data-00000-of-00001"):
        bundle.read("MobilenetV1/Conv2d_0/weights")


# ---------------------------------------------------------------------- tensor bundle: written by TF
def _dtype_zoo(rng):
    return {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f32_scalar": np.float32(2.5),
        "f64": rng.standard_normal(5),
        "i32": rng.integers(-2**31, 2**31 - 1, (2, 3), dtype=np.int32),
        "i64_scalar": np.int64(-(2**40) - 7),
        "b": np.array([[True, False, True]]),
        "h": rng.standard_normal(7).astype(np.float16),
        "s_scalar": b"hello \x00 world",
        "s": np.array([[b"a", b""], [b"xyz" * 100, b"\xff\xfe"]], dtype=object),
        "empty": np.zeros((0, 3), np.float32),
    }


def test_tf1_saver_checkpoint(tf, tmp_path):
    rng = np.random.default_rng(1)
    g = tf.Graph()
    with g.as_default():
        for name, value in _dtype_zoo(rng).items():
            tf.compat.v1.Variable(value, name=name)
        with tf.compat.v1.variable_scope("MobilenetV1/Conv2d_0"):
            tf.compat.v1.get_variable("weights", initializer=tf.constant(rng.standard_normal((3, 3, 3, 8),
                                                                                              dtype=np.float32)))
        # A partitioned variable: stored as slices under OrderedCode keys, reassembled on read.
        tf.compat.v1.get_variable("part", shape=[10, 3], partitioner=tf.compat.v1.fixed_size_partitioner(3),
                                  initializer=tf.compat.v1.random_normal_initializer(seed=1))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            prefix = saver.save(sess, str(tmp_path / "model.ckpt"))
    assert tf_checkpoint_equal(tf, prefix) == len(_dtype_zoo(rng)) + 2
    assert TensorBundle(prefix).read("part").shape == (10, 3)


def test_tf2_checkpoint(tf, tmp_path):
    rng = np.random.default_rng(2)
    values = _dtype_zoo(rng)
    values.update({
        "u8": rng.integers(0, 256, 9, dtype=np.uint8), "i8": rng.integers(-128, 128, 4, dtype=np.int8),
        "i16": rng.integers(-2**15, 2**15, 4, dtype=np.int16), "u16": rng.integers(0, 2**16, 4, dtype=np.uint16),
        "c64": (rng.standard_normal(3) + 1j * rng.standard_normal(3)).astype(np.complex64),
    })
    variables = {k: tf.Variable(v) for k, v in values.items()}
    variables["bf16"] = tf.Variable(tf.constant([1.5, -2.25, 3.0e38, 1e-30], dtype=tf.bfloat16))
    prefix = tf.train.Checkpoint(**variables).write(str(tmp_path / "ckpt"))
    assert tf_checkpoint_equal(tf, prefix) == len(variables) + 1  # + _CHECKPOINTABLE_OBJECT_GRAPH
    bundle = TensorBundle(prefix)
    assert bundle.entry("bf16/.ATTRIBUTES/VARIABLE_VALUE").dtype == np.float32


def test_multi_shard_checkpoint(tf, tmp_path):
    policy = getattr(tf.train.experimental, "MaxShardSizePolicy", None)
    if policy is None:
        pytest.skip("this TensorFlow cannot write a multi-shard checkpoint in one process")
    rng = np.random.default_rng(3)
    variables = {"a": tf.Variable(rng.standard_normal((100, 300)).astype(np.float32)),
                 "b": tf.Variable(rng.standard_normal((300, 100))),
                 "c": tf.Variable(np.float16([1, 2])), "d": tf.Variable(np.int64(5))}
    opts = tf.train.CheckpointOptions(experimental_sharding_callback=policy(max_shard_size=100_000))
    prefix = tf.train.Checkpoint(**variables).write(str(tmp_path / "sharded"), options=opts)
    bundle = TensorBundle(prefix)
    assert bundle.num_shards > 1
    assert len({bundle.entry(k).shard_id for k in bundle.keys()}) > 1
    tf_checkpoint_equal(tf, prefix)
    os.remove(bundle.shard_path(bundle.num_shards - 1))
    with pytest.raises(WeightsFileNotFoundError, match=f"of-{bundle.num_shards:05d}"):
        bundle.read_all()


# ---------------------------------------------------------------------------------- frozen graphs
def _tf_attr(tf, av):
    kind = av.WhichOneof("value")
    if kind == "list":
        for fld in ("s", "i", "f", "b", "type", "shape", "tensor", "func"):
            vals = list(getattr(av.list, fld))
            if vals:
                if fld == "shape":
                    return [None if v.unknown_rank else tuple(d.size for d in v.dim) for v in vals]
                if fld == "tensor":
                    return [tf.make_ndarray(v) for v in vals]
                if fld == "type":
                    return [int(v) for v in vals]
                return vals
        return []
    if kind == "shape":
        return None if av.shape.unknown_rank else tuple(d.size for d in av.shape.dim)
    if kind == "tensor":
        return tf.make_ndarray(av.tensor)
    if kind == "type":
        return int(av.type)
    return getattr(av, kind)


def _assert_attr_equal(ours, theirs, where):
    if isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray) and ours.dtype == theirs.dtype and ours.shape == theirs.shape, where
        assert ours.tobytes() == theirs.tobytes() if ours.dtype != object else ours.tolist() == theirs.tolist()
    elif isinstance(ours, DataType):
        assert ours.code == theirs, where
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), where
        for a, b in zip(ours, theirs):
            _assert_attr_equal(a, b, where)
    elif isinstance(theirs, float):
        assert np.float32(ours) == np.float32(theirs), where
    else:
        assert ours == theirs, (where, ours, theirs)


@pytest.mark.parametrize("relative", ALL_PBS)
def test_graphdef_matches_tensorflow_parser(tf, relative):
    path = fixture(relative)
    data = open(path, "rb").read()
    theirs = tf.compat.v1.GraphDef()
    theirs.ParseFromString(data)
    graph = read_graphdef(path)
    assert [n.name for n in graph.nodes] == [n.name for n in theirs.node]
    consts = graph.consts()
    n_consts = 0
    for ours, tn in zip(graph.nodes, theirs.node):
        assert (ours.op, ours.inputs, ours.device) == (tn.op, list(tn.input), tn.device), tn.name
        assert sorted(ours.attrs) == sorted(tn.attr), tn.name
        for key, av in tn.attr.items():
            _assert_attr_equal(ours.attrs[key], _tf_attr(tf, av), f"{tn.name}.{key}")
        if tn.op == "Const":
            n_consts += 1
            expected = tf.make_ndarray(tn.attr["value"].tensor)
            assert consts[tn.name].dtype == expected.dtype and consts[tn.name].shape == expected.shape
            assert consts[tn.name].tobytes() == expected.tobytes(), tn.name
    assert len(consts) == n_consts > 100


def _v1_expected_shapes():
    depths = [8, 16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256]  # V1 x 0.25
    shapes = {"MobilenetV1/Conv2d_0/weights": (3, 3, 3, 8)}
    layers = ["MobilenetV1/Conv2d_0"]
    for i in range(1, 14):
        shapes[f"MobilenetV1/Conv2d_{i}_depthwise/depthwise_weights"] = (3, 3, depths[i - 1], 1)
        shapes[f"MobilenetV1/Conv2d_{i}_pointwise/weights"] = (1, 1, depths[i - 1], depths[i])
        layers += [f"MobilenetV1/Conv2d_{i}_depthwise", f"MobilenetV1/Conv2d_{i}_pointwise"]
    for layer in layers:
        c = shapes.get(f"{layer}/weights", shapes.get(f"{layer}/depthwise_weights"))
        c = c[3] if c[3] != 1 else c[2]
        for v in ("gamma", "beta", "moving_mean", "moving_variance"):
            shapes[f"{layer}/BatchNorm/{v}"] = (c,)
    shapes["MobilenetV1/Logits/Conv2d_1c_1x1/weights"] = (1, 1, 256, 1001)
    shapes["MobilenetV1/Logits/Conv2d_1c_1x1/biases"] = (1001,)
    return shapes


@pytest.mark.parametrize("relative, input_shape", [
    (F224_PB, (-1, 224, 224, 3)), (PB_2017_128, (1, 128, 128, 3)), (PB_2017_192, (1, 192, 192, 3)),
    (QUANT_PB, (-1, 128, 128, 3))])
def test_frozen_graph_variables_slim_names(relative, input_shape):
    result = frozen_graph_variables(fixture(relative))
    expected = _v1_expected_shapes()
    assert len(expected) == 27 + 27 * 4 + 2
    model_vars = {k: v for k, v in result.variables.items() if "_quant/" not in k}
    assert {k: v.shape for k, v in model_vars.items()} == expected
    assert all(v.dtype == np.float32 for v in model_vars.values())
    assert result.batch_norm_epsilon == float(np.float32(0.001))
    assert (result.input_name, result.input_shape) == ("input", input_shape)
    assert result.notes == []  # gamma is present in all of them: nothing synthesised


def test_quant_frozen_graph_fake_quant_consts_match_checkpoint(tf):
    result = frozen_graph_variables(fixture(QUANT_PB))
    reader = tf.train.load_checkpoint(str(fixture(QUANT_CKPT + ".index"))[:-len(".index")])
    assert len(result.fake_quant) == 56
    quant_vars = [k for k in result.variables if "_quant/" in k]
    assert len(quant_vars) == 112
    assert "MobilenetV1/MobilenetV1/Conv2d_0/act_quant/min" in quant_vars
    assert "MobilenetV1/Logits/Conv2d_1c_1x1/weights_quant/max" in quant_vars
    for name, value in result.variables.items():  # model variables and min/max: same bits as the checkpoint
        assert_same_tensor(value, reader.get_tensor(name), name)
    narrow = {k.rsplit("/", 2)[-2]: v["narrow_range"] for k, v in result.fake_quant.items()}
    assert narrow == {"weights_quant": True, "act_quant": False}


def _tf_run(tf, graph_def, feed, fetches):
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=g) as sess:
        return sess.run(fetches, feed)


# (fixture, [(layer, conv output, BN output or None, depthwise)], quant-fold nodes)
BN_CASES = {
    "2017_unfused": (PB_2017_128, "convolution", "BatchNorm/batchnorm/add_1"),
    "2018_fused": (F224_PB, "Conv2D", "BatchNorm/FusedBatchNorm"),
}


@pytest.mark.parametrize("case", sorted(BN_CASES))
def test_returned_batch_norm_reproduces_graph(tf, case):
    relative, conv_op, bn_op = BN_CASES[case]
    path = fixture(relative)
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(open(path, "rb").read())
    result = frozen_graph_variables(path)
    v, eps = result.variables, np.float32(result.batch_norm_epsilon)
    size = result.input_shape[1]
    x = np.random.default_rng(4).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    layers = [("Conv2d_0", conv_op, False), ("Conv2d_1_depthwise", "depthwise", True),
              ("Conv2d_13_pointwise", conv_op, False)]
    fetches = []
    for layer, op, _ in layers:
        fetches += [f"MobilenetV1/MobilenetV1/{layer}/{op}:0", f"MobilenetV1/MobilenetV1/{layer}/{bn_op}:0"]
    fetches.append("MobilenetV1/MobilenetV1/Conv2d_0/Relu6:0")
    out = _tf_run(tf, gd, {"input:0": x}, fetches)
    # Our NumPy conv with the returned weights equals TF's first conv.
    w0 = v["MobilenetV1/Conv2d_0/weights"]
    np.testing.assert_allclose(conv2d_same(x, w0, 2), out[0], rtol=F32_TOL, atol=F32_TOL)
    for k, (layer, _, _) in enumerate(layers):
        pre = f"MobilenetV1/{layer}/BatchNorm/"
        gamma, beta, mean, var = (v[pre + n] for n in ("gamma", "beta", "moving_mean", "moving_variance"))
        m = gamma / np.sqrt(var + eps)
        ours = out[2 * k] * m + (beta - mean * m)
        np.testing.assert_allclose(ours, out[2 * k + 1], rtol=F32_TOL, atol=F32_TOL * np.abs(out[2 * k + 1]).max(),
                                   err_msg=f"{case} {layer}")
    # Depthwise conv of TF's Relu6 with our returned depthwise weights equals TF's depthwise output.
    dw = conv2d_same(out[-1], v["MobilenetV1/Conv2d_1_depthwise/depthwise_weights"], 1, depthwise=True)
    np.testing.assert_allclose(dw, out[2], rtol=F32_TOL, atol=F32_TOL * np.abs(out[2]).max())


def test_quant_fold_reproduces_graph(tf):
    path = fixture(QUANT_PB)
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(open(path, "rb").read())
    result = frozen_graph_variables(path)
    v, eps = result.variables, np.float32(result.batch_norm_epsilon)
    layers = ["Conv2d_0", "Conv2d_1_depthwise", "Conv2d_7_pointwise"]
    fetches = []
    for layer in layers:
        fetches += [f"MobilenetV1/MobilenetV1/{layer}/mul_fold:0", f"MobilenetV1/MobilenetV1/{layer}/BatchNorm_Fold/bias:0"]
    out = _tf_run(tf, gd, {}, fetches)
    for k, layer in enumerate(layers):
        pre = f"MobilenetV1/{layer}/"
        w = v.get(pre + "weights", v.get(pre + "depthwise_weights"))
        gamma, beta, mean, var = (v[pre + "BatchNorm/" + n] for n in ("gamma", "beta", "moving_mean", "moving_variance"))
        m = gamma / np.sqrt(var + eps)
        w_fold = w * (m if w.shape[3] != 1 else m.reshape(-1, 1))
        np.testing.assert_allclose(w_fold, out[2 * k], rtol=F32_TOL, atol=0, err_msg=layer)
        np.testing.assert_allclose(beta - mean * m, out[2 * k + 1], rtol=F32_TOL, atol=F32_TOL, err_msg=layer)


def _build_v2_graph(tf, bn_form, rng):
    """A tiny slim-named MobileNet V2 (stem, expanded_conv, a residual expanded_conv_1, logits), frozen."""
    values = {}
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 16, 16, 3], name="input")

        def var(name, arr):
            v = tf.compat.v1.get_variable(name, initializer=tf.constant(arr))
            values[tf.compat.v1.get_variable_scope().name + "/" + name] = arr
            return v

        def bn(h):
            c = int(h.shape[-1])
            with tf.compat.v1.variable_scope("BatchNorm"):
                gamma = None if bn_form == "no_scale" else var("gamma", rng.uniform(0.5, 2, c).astype(np.float32))
                beta = var("beta", rng.standard_normal(c).astype(np.float32))
                mean = var("moving_mean", rng.standard_normal(c).astype(np.float32))
                variance = var("moving_variance", rng.uniform(0.5, 2, c).astype(np.float32))
            if bn_form == "fused":
                return tf.compat.v1.nn.fused_batch_norm(h, gamma, beta, mean, variance, epsilon=1e-3,
                                                        is_training=False)[0]
            return tf.nn.batch_normalization(h, mean, variance, beta, gamma, 1e-3)

        def conv(scope, h, k, cout, stride=1, act=True):
            with tf.compat.v1.variable_scope(scope):
                w = var("weights", rng.standard_normal((k, k, int(h.shape[-1]), cout)).astype(np.float32))
                h = bn(tf.nn.conv2d(h, w, stride, "SAME"))
            return tf.nn.relu6(h) if act else h

        def depthwise(scope, h):
            with tf.compat.v1.variable_scope(scope):
                w = var("depthwise_weights", rng.standard_normal((3, 3, int(h.shape[-1]), 1)).astype(np.float32))
                return tf.nn.relu6(bn(tf.nn.depthwise_conv2d(h, w, [1, 1, 1, 1], "SAME")))

        with tf.compat.v1.variable_scope("MobilenetV2"):
            h = conv("Conv", x, 3, 16, 2)
            with tf.compat.v1.variable_scope("expanded_conv"):
                h = conv("project", depthwise("depthwise", h), 1, 8, act=False)
            with tf.compat.v1.variable_scope("expanded_conv_1"):
                e = conv("expand", h, 1, 48)
                h = h + conv("project", depthwise("depthwise", e), 1, 8, act=False)
            with tf.compat.v1.variable_scope("Logits/Conv2d_1c_1x1"):
                w = var("weights", rng.standard_normal((1, 1, 8, 10)).astype(np.float32))
                b = var("biases", rng.standard_normal(10).astype(np.float32))
                pooled = tf.reduce_mean(h, [1, 2], keepdims=True)
                logits = tf.nn.bias_add(tf.nn.conv2d(pooled, w, 1, "SAME"), b)
        tf.identity(logits, name="output")
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), ["output"])
    return frozen.SerializeToString(), values


@pytest.mark.parametrize("bn_form", ["fused", "unfused", "no_scale"])
def test_frozen_graph_variables_v2_built_by_tf(tf, tmp_path, bn_form):
    data, values = _build_v2_graph(tf, bn_form, np.random.default_rng(5))
    path = tmp_path / "v2_frozen.pb"
    path.write_bytes(data)
    result = frozen_graph_variables(path)
    bn_layers = ["Conv", "expanded_conv/depthwise", "expanded_conv/project", "expanded_conv_1/expand",
                 "expanded_conv_1/depthwise", "expanded_conv_1/project"]
    expected = set(values)
    if bn_form == "no_scale":
        expected |= {f"MobilenetV2/{layer}/BatchNorm/gamma" for layer in bn_layers}
    assert set(result.variables) == expected
    assert len(expected) == 6 * 5 + 2
    for name, arr in values.items():
        assert result.variables[name].tobytes() == arr.tobytes(), name
    assert result.batch_norm_epsilon == float(np.float32(1e-3))
    assert (result.input_name, result.input_shape) == ("input", (-1, 16, 16, 3))
    if bn_form == "no_scale":
        assert len(result.notes) == 6 and all("scale=False" in n for n in result.notes)
        for layer in bn_layers:
            np.testing.assert_array_equal(result.variables[f"MobilenetV2/{layer}/BatchNorm/gamma"], 1)
    else:
        assert result.notes == []


# ------------------------------------------------------------------------------- corrupt/absurd input
def _block(entries, restarts=None):
    out = b""
    offsets = []
    for key, value in entries:
        offsets.append(len(out))
        out += varint(0) + varint(len(key)) + varint(len(value)) + key + value
    offsets = offsets or [0]
    n = len(offsets) if restarts is None else restarts
    return out + b"".join(struct.pack("<I", o) for o in offsets) + struct.pack("<I", n)


def make_index(entries, restarts=None, footer_index_size=None):
    """A minimal SSTable (one data block) written by the test, checksummed with the bitwise reference."""
    buf = b""

    def put(block):
        nonlocal buf
        handle = (len(buf), len(block))
        buf += block + b"\x00" + struct.pack("<I", masked_ref(block + b"\x00"))
        return handle

    data = put(_block(entries, restarts))
    meta = put(_block([]))
    index = put(_block([(entries[-1][0], varint(data[0]) + varint(data[1]))]))
    handles = varint(meta[0]) + varint(meta[1]) + varint(index[0]) + varint(footer_index_size or index[1])
    return buf + handles.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)


def _entry(tf, **kw):
    from tensorflow.core.protobuf import tensor_bundle_pb2
    shape = kw.pop("shape", ())
    e = tensor_bundle_pb2.BundleEntryProto(**kw)
    for d in shape:
        e.shape.dim.add().size = d
    return e.SerializeToString()


def _header(tf, endianness=0, num_shards=1):
    from tensorflow.core.protobuf import tensor_bundle_pb2
    return tensor_bundle_pb2.BundleHeaderProto(num_shards=num_shards, endianness=endianness).SerializeToString()


def _write_bundle(tmp_path, index_bytes, data=b"", name="crafted"):
    prefix = tmp_path / name
    (tmp_path / f"{name}.index").write_bytes(index_bytes)
    (tmp_path / f"{name}.data-00000-of-00001").write_bytes(data)
    return str(prefix)


def test_crafted_bundle_is_valid_for_tensorflow(tf, tmp_path):
    """Sanity check of the test's own SSTable writer: TensorFlow reads what it writes."""
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    index = make_index([(b"", _header(tf)), (b"x", _entry(tf, dtype=1, shape=(2, 3), size=24,
                                                               crc32c=masked_ref(arr.tobytes())))])
    prefix = _write_bundle(tmp_path, index, arr.tobytes())
    assert tf_checkpoint_equal(tf, prefix) == 1


ABSURD_ENTRIES = {
    # name: (entry kwargs, data, expected error, message fragment)
    "exabyte tensor": (dict(dtype=1, shape=(2**30, 2**30), size=2**62), b"", CorruptFileError, "holds 0 bytes"),
    "size disagrees with shape": (dict(dtype=1, shape=(2**31, 2**31), size=16), b"\x00" * 16,
                                  CorruptFileError, "should hold"),
    "offset past end": (dict(dtype=1, shape=(2,), offset=2**40, size=8), b"\x00" * 8, CorruptFileError, "truncated"),
    "string count": (dict(dtype=7, shape=(2**40,), size=100), b"\x00" * 100, CorruptFileError, "elements"),
    "string lengths": (dict(dtype=7, shape=(2,), size=20), varint(2**50) + varint(3) + b"\x00" * 11,
                       ChecksumError, "length checksum"),
    "negative dim": (dict(dtype=1, shape=(-1,), size=4), b"\x00" * 4, CorruptFileError, "negative"),
    "bad shard": (dict(dtype=1, shape=(1,), size=4, shard_id=5), b"\x00" * 4, CorruptFileError, "shard 5"),
    "resource dtype": (dict(dtype=20, shape=(), size=4), b"\x00" * 4, UnsupportedFormatError, "resource"),
    "unknown dtype": (dict(dtype=99, shape=(), size=4), b"\x00" * 4, UnsupportedFormatError, "enum 99"),
    "bad crc": (dict(dtype=1, shape=(1,), size=4, crc32c=123), b"\x00" * 4, ChecksumError, "0x0000007b"),
}


@pytest.mark.parametrize("case", sorted(ABSURD_ENTRIES))
def test_absurd_entries_raise(tf, tmp_path, case):
    kwargs, data, error, fragment = ABSURD_ENTRIES[case]
    index = make_index([(b"", _header(tf)), (b"v", _entry(tf, **kwargs))])
    prefix = _write_bundle(tmp_path, index, data)
    t0 = time.perf_counter()
    with pytest.raises(error, match=fragment) as info:
        TensorBundle(prefix).read("v")
    assert time.perf_counter() - t0 < 1
    assert "crafted" in str(info.value) and "'v'" in str(info.value) or "negative" in case


def test_absurd_index_structures_raise(tf, tmp_path):
    good = [(b"", _header(tf)), (b"a", _entry(tf, dtype=1, shape=(1,), size=4))]
    cases = {
        "restarts": (make_index(good, restarts=2**31), CorruptFileError, "restart"),
        "index size": (make_index(good, footer_index_size=2**40), CorruptFileError, "runs past the end"),
        "order": (make_index([good[0], (b"b", good[1][1]), (b"a", good[1][1])]), CorruptFileError, "out of order"),
        "no header": (make_index(good[1:]), CorruptFileError, "header"),
        "big endian": (make_index([(b"", _header(tf, endianness=1))] + good[1:]), UnsupportedFormatError, "big-endian"),
        "magic": (make_index(good)[:-8] + b"\x00" * 8, CorruptFileError, "magic"),
        "tiny": (b"\x00" * 10, CorruptFileError, "shorter than"),
        "not an index": (b"\x0a\x05input" * 20, CorruptFileError, "magic"),
    }
    for name, (index, error, fragment) in cases.items():
        prefix = _write_bundle(tmp_path, index, name=name.replace(" ", "_"))
        with pytest.raises(error, match=fragment):
            TensorBundle(prefix)


def test_missing_files_raise(tmp_path):
    with pytest.raises(WeightsFileNotFoundError, match="nothing.index"):
        TensorBundle(tmp_path / "nothing")
    with pytest.raises(WeightsFileNotFoundError, match="nothing.pb"):
        read_graphdef(tmp_path / "nothing.pb")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("corrupt")


@pytest.fixture(scope="module")
def quant_bytes():
    index = fixture(QUANT_CKPT + ".index")
    return open(index, "rb").read(), str(index)[:-len(".index")] + ".data-00000-of-00001"


@FUZZ
@given(data=st.data())
def test_index_byte_flips_and_truncation_detected(scratch, quant_bytes, data):
    index, data_path = quant_bytes
    pos = data.draw(st.integers(0, len(index) - 1), label="pos")
    if data.draw(st.booleans(), label="truncate"):
        corrupt = index[:pos]
    else:
        corrupt = bytearray(index)
        corrupt[pos] ^= data.draw(st.integers(1, 255), label="xor")
    (scratch / "q.index").write_bytes(bytes(corrupt))
    t0 = time.perf_counter()
    with pytest.raises(MobileNetError):  # every index byte is covered by a block CRC, the magic or the padding
        TensorBundle(scratch / "q")
    assert time.perf_counter() - t0 < 2


@settings(max_examples=10, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_data_byte_flips_and_truncation_detected(scratch, quant_bytes, data):
    index, data_path = quant_bytes
    raw = open(data_path, "rb").read()
    pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
    truncate = data.draw(st.booleans(), label="truncate")
    corrupt = bytearray(raw[:pos] if truncate else raw)
    if not truncate:
        corrupt[pos] ^= data.draw(st.integers(1, 255), label="xor")
    (scratch / "d.index").write_bytes(index)
    (scratch / "d.data-00000-of-00001").write_bytes(bytes(corrupt))
    bundle = TensorBundle(scratch / "d")
    with pytest.raises(CorruptFileError if truncate else ChecksumError,
                       match="truncated" if truncate else "CRC32C mismatch for entry"):
        bundle.read_all()


@pytest.fixture(scope="module")
def pb_bytes():
    return open(fixture(F224_PB), "rb").read()


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_graphdef_corruption_raises_only_project_errors(pb_bytes, data):
    """A GraphDef has no checksum: a flipped byte may still parse, but never as a raw Python error."""
    pos = data.draw(st.integers(0, len(pb_bytes) - 1), label="pos")
    truncate = data.draw(st.booleans(), label="truncate")
    if truncate:
        corrupt = pb_bytes[:pos]
    else:
        corrupt = bytearray(pb_bytes)
        corrupt[pos] ^= data.draw(st.integers(1, 255), label="xor")
    t0 = time.perf_counter()
    try:
        graph = parse_graphdef(bytes(corrupt), source="corrupt.pb")
        frozen_graph_variables(graph)
        if truncate:  # only a cut exactly between two nodes can parse, and then nodes are missing
            assert len(graph.nodes) < 366
    except MobileNetError as exc:
        assert "corrupt.pb" in str(exc)
    assert time.perf_counter() - t0 < 3


def test_graphdef_absurd_tensors_raise(tf):
    def graph_with(tensor_kwargs, shape):
        gd = tf.compat.v1.GraphDef()
        node = gd.node.add(name="c", op="Const")
        t = node.attr["value"].tensor
        t.dtype = tensor_kwargs.pop("dtype", 1)
        for d in shape:
            t.tensor_shape.dim.add().size = d
        for k, v in tensor_kwargs.items():
            if isinstance(v, bytes):
                setattr(t, k, v)
            else:
                getattr(t, k).extend(v)
        return gd.SerializeToString()

    t0 = time.perf_counter()
    with pytest.raises(CorruptFileError, match="absurd"):
        parse_graphdef(graph_with({"float_val": [1.0]}, (2**20, 2**20)), "g.pb")
    with pytest.raises(CorruptFileError, match="tensor_content"):
        parse_graphdef(graph_with({"tensor_content": b"\x00" * 12}, (2**40,)), "g.pb")
    with pytest.raises(CorruptFileError, match="more than"):
        parse_graphdef(graph_with({"float_val": [1.0, 2.0, 3.0]}, (2,)), "g.pb")
    with pytest.raises(CorruptFileError, match="negative"):
        parse_graphdef(graph_with({"float_val": [1.0]}, (-1,)), "g.pb")
    with pytest.raises(UnsupportedFormatError, match="enum 99"):
        parse_graphdef(graph_with({"dtype": 99}, ()), "g.pb")
    with pytest.raises(CorruptFileError, match="not in the graph"):
        gd = tf.compat.v1.GraphDef()
        gd.node.add(name="r", op="Relu", input=["missing"])
        parse_graphdef(gd.SerializeToString(), "g.pb")
    assert time.perf_counter() - t0 < 1


def test_graphdef_scalar_broadcast_rule(tf):
    """Fewer values than elements: the last value repeats (as tf.make_ndarray does)."""
    gd = tf.compat.v1.GraphDef()
    cases = {"f": (1, "float_val", [1.5, 2.5], (2, 3)), "i": (3, "int_val", [-7], (4,)),
             "l": (9, "int64_val", [2**40, -3], (3,)), "b": (10, "bool_val", [True], (2, 2)),
             "h": (19, "half_val", [np.float16(0.5).view(np.uint16).item()], (3,)),
             "s": (7, "string_val", [b"x", b"yz"], (3,)), "z": (1, "float_val", [], (2,)),
             "u8": (4, "int_val", [255, 3], (3,))}
    for name, (dtype, fld, values, shape) in cases.items():
        t = gd.node.add(name=name, op="Const").attr["value"].tensor
        t.dtype = dtype
        for d in shape:
            t.tensor_shape.dim.add().size = d
        getattr(t, fld).extend(values)
    consts = parse_graphdef(gd.SerializeToString()).consts()
    for node in gd.node:
        expected = tf.make_ndarray(node.attr["value"].tensor)
        assert_same_tensor(consts[node.name], expected, node.name)
