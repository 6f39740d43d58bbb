"""The _quant checkpoint -> uint8 parameters converter against the official 2018 .tflite, tensor by tensor.

TensorFlow's interpreter reads the official file (the reference; never our own flatbuffer reader), ops are
matched to slim layers by execution order and checked by tensor name. ``pytest -s`` prints the table.
"""
import warnings

import numpy as np
import pytest

from mobilenet_np.errors import MobileNetError
from mobilenet_np.quantize_convert import (choose_quantization_params, convert_quant_weights, quantize_multiplier,
                                           round_half_away)
from mobilenet_np.testing import TOLERANCES, fixture_path, missing_reason

tf = pytest.importorskip("tensorflow")

QUANT_DIR = "models/mobilenet_v1_0.25_128_quant/"
CHECKPOINT = QUANT_DIR + "mobilenet_v1_0.25_128_quant.ckpt.index"
TFLITE = QUANT_DIR + "mobilenet_v1_0.25_128_quant.tflite"


def test_helpers_by_hand():
    assert [round_half_away(v) for v in (0.5, 1.5, -0.5, -1.5, 2.4999)] == [1, 2, -1, -2, 2]
    # M = 0.75 = 0.75 * 2**0 -> multiplier round(0.75 * 2**31) = 1610612736, shift 0;
    # M = 2**-10 = 0.5 * 2**-9 -> multiplier 2**30, shift -9.
    assert quantize_multiplier(0.75) == (1610612736, 0)
    assert quantize_multiplier(2.0 ** -10) == (1 << 30, -9)
    assert quantize_multiplier(0.0) == (0, 0)
    # (0, 6): scale 6/255, zero point 0. (-1, 1) narrow: scale 2/254, zero point 1 + 127 = 128.
    assert choose_quantization_params(0.0, 6.0) == (6.0 / 255, 0)
    assert choose_quantization_params(-1.0, 1.0, narrow_range=True) == (2.0 / 254, 128)


@pytest.fixture(scope="module")
def official():
    for rel in (CHECKPOINT, TFLITE):
        if fixture_path(rel) is None:
            pytest.skip(missing_reason(rel))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(
            model_path=str(fixture_path(TFLITE)),
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return interpreter, tensors, interpreter._get_ops_details()


def _compare(ours, official):
    interpreter, tensors, ops = official
    convs = [op for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    layers = [k for k in ours if k not in ("input", "AvgPool_1a", "Predictions")]
    assert len(convs) == len(layers) == 28
    rows, params_bad = [], []
    for name, op in zip(layers, convs):
        mine = ours[name]
        x, w, b = (tensors[i] for i in op["inputs"][:3])
        y = tensors[op["outputs"][0]]
        assert op["op_name"] == mine["op"], name
        assert name.rsplit("/", 1)[-1] in w["name"] and name.rsplit("/", 1)[-1] in y["name"], (name, w["name"])
        params = {"weights scale": (w["quantization"][0], mine["weights_scale"]),
                  "weights zero point": (w["quantization"][1], mine["weights_zero_point"]),
                  "bias scale": (b["quantization"][0], mine["bias_scale"]),
                  "input scale": (x["quantization"][0], mine["input_scale"]),
                  "input zero point": (x["quantization"][1], mine["input_zero_point"]),
                  "output scale": (y["quantization"][0], mine["output_scale"]),
                  "output zero point": (y["quantization"][1], mine["output_zero_point"])}
        params_bad += [(name, k, a, m) for k, (a, m) in params.items() if np.float32(a) != np.float32(m)]
        # TFLite derives the requantization multiplier from the stored scales when it loads the model.
        theirs_m = quantize_multiplier(float(np.float32(x["quantization"][0])) * float(np.float32(w["quantization"][0]))
                                       / float(np.float32(y["quantization"][0])))
        if theirs_m != (mine["multiplier"], mine["shift"]):
            params_bad.append((name, "multiplier", theirs_m, (mine["multiplier"], mine["shift"])))
        qw, qb = interpreter.get_tensor(w["index"]), interpreter.get_tensor(b["index"])
        assert qw.shape == mine["weights"].shape and qw.dtype == np.uint8, name
        dw = np.abs(qw.astype(np.int64) - mine["weights"])
        db = np.abs(qb.astype(np.int64) - mine["bias"])
        rows.append((name, qw.size, int(np.sum(dw != 0)), int(dw.max()), qb.size, int(np.sum(db != 0)), int(db.max())))
    return rows, params_bad


@pytest.mark.parametrize("recipe", ["tf1", "tf2"])
def test_converter_matches_official_tflite(official, recipe):
    ours = convert_quant_weights(fixture_path(CHECKPOINT), recipe=recipe)
    rows, params_bad = _compare(ours, official)
    interpreter, tensors, _ = official
    model_in = tensors[interpreter.get_input_details()[0]["index"]]["quantization"]
    model_out = tensors[interpreter.get_output_details()[0]["index"]]["quantization"]
    print(f"\nconverter (recipe {recipe!r}) vs official mobilenet_v1_0.25_128_quant.tflite")
    print(f"  {'layer':<22}{'weights':>8}{'differ':>8}{'max':>5}{'biases':>8}{'differ':>8}{'max':>5}")
    for name, nw, dw, mw, nb, db, mb in rows:
        print(f"  {name:<22}{nw:>8}{dw:>8}{mw:>5}{nb:>8}{db:>8}{mb:>5}")
    total_w, diff_w = sum(r[1] for r in rows), sum(r[2] for r in rows)
    total_b, diff_b = sum(r[4] for r in rows), sum(r[5] for r in rows)
    tensors_same = sum(r[2] == 0 for r in rows), sum(r[5] == 0 for r in rows)
    print(f"  weights: {total_w - diff_w} of {total_w} identical ({tensors_same[0]} of 28 tensors); biases: "
          f"{total_b - diff_b} of {total_b} identical ({tensors_same[1]} of 28 tensors); quantization "
          f"parameters (7 per layer + multiplier): {8 * 28 - len(params_bad)} of {8 * 28} identical")
    assert not params_bad, f"quantization parameters differ: {params_bad[:5]}"
    assert (np.float32(model_in[0]), model_in[1]) == (ours["input"]["scale"], ours["input"]["zero_point"])
    assert (np.float32(model_out[0]), model_out[1]) == (ours["Predictions"]["scale"], ours["Predictions"]["zero_point"])
    tol = TOLERANCES["converter_vs_tflite"][recipe]
    assert max(max(r[3], r[6]) for r in rows) <= 1, "a weight or bias is more than one step off"
    assert diff_w <= tol["weights"] and diff_b <= tol["biases"], (diff_w, diff_b)


def test_converter_refuses_unknown_recipe(official):
    with pytest.raises(MobileNetError, match="recipe"):
        convert_quant_weights(fixture_path(CHECKPOINT), recipe="tf3")
