"""Side-by-side speed of mobilenet_np and its peers, on the same weights and inputs, in one process.

    python bench/compare.py                       # all cases, 1 thread, batch 1 and 32
    python bench/compare.py --cases v1_025_128 --batch 1 --threads 1,2 --repeats 30 --json out.json
    python bench/compare.py --profile v1_025_128  # per-layer time vs MACs of mobilenet_np
    python bench/compare.py --profile v2_050_160_notop --interleaved   # per stage, the peers run in between
    python bench/compare.py --batch 1 --block 5   # each engine in its steady state (5 calls in a row per round)

Peers: TFLite (ai-edge-litert; default interpreter = XNNPACK), ONNX Runtime (a graph we build from the
same folded weights), TensorFlow (the Keras application model under ``tf.function``). Runs are interleaved,
one run of each engine per round, so that machine noise hits all alike; the order rotates from round to
round, so that no engine always follows the same one (``--block N``: N runs of each in a row instead, the
first not timed). The table shows medians in ms and the ratio mobilenet_np / peer (below 1 = we are
faster). Needs the ``bench`` extra (``pip install -e '.[bench]'``) plus tensorflow-cpu and ai-edge-litert
from the ``test`` extra.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import mobilenet_np as mnp  # noqa: E402
from mobilenet_np.testing import fixture_path  # noqa: E402

CASES = {
    # name: (family, alpha, size, fixture weights or None for realistic random weights, top): top = logits (the
    # classification model), else the pooled feature vector (the "feature_vector" modules; issue 7's anchor
    # for V2 0.5/160 is "no top")
    "v1_025_128": ("v1", 0.25, 128, "models/mobilenet_v1_0.25_128_2017/frozen_graph.pb", True),
    "v1_025_224": ("v1", 0.25, 224, "models/mobilenet_v1_0.25_224/mobilenet_v1_0.25_224_frozen.pb", True),
    "v2_050_160": ("v2", 0.5, 160, None, True),
    "v2_050_160_notop": ("v2", 0.5, 160, None, False),
}
# integer cases: the same .tflite file for us and TFLite; ours with rounding="xnnpack" against the default
# interpreter (XNNPACK) and with rounding="reference" against TFLite's reference kernels (BUILTIN_REF)
INTEGER_CASES = {
    "v1_025_128_uint8": "models/mobilenet_v1_0.25_128_quant/mobilenet_v1_0.25_128_quant.tflite",
    "v2_100_224_uint8": "models/tflite/coral_mobilenet_v2_1.0_224_quant.tflite",
}
DEFAULT_CASES = ["v1_025_128", "v1_025_224", "v2_050_160", "v2_050_160_notop", "v1_025_128_uint8"]


def weights_for(case):
    family, alpha, size, rel, _ = CASES[case]
    path = fixture_path(rel) if rel else None
    if path is not None:
        return mnp.read_weights(str(path))
    from tests.helpers import random_weight_set
    return random_weight_set(family, alpha, seed=0, input_size=(size, size))


# ------------------------------------------------------------------------------------------------- peers
def keras_model(ws, top=True):
    """The keras.applications model with our slim variables loaded (the inverse of weights_tools.names);
    without ``top``, the pooled feature vector (``include_top=False, pooling="avg"``)."""
    import keras

    from weights_tools.names import keras_to_slim

    size = ws.input_size
    builder = keras.applications.MobileNet if ws.family == "mobilenet_v1" else keras.applications.MobileNetV2
    model = builder(alpha=ws.depth_multiplier, input_shape=(*size, 3), weights=None, classes=ws.num_classes,
                    classifier_activation=None, include_top=top, pooling=None if top else "avg")
    for layer in model.layers:
        values = []
        for var in layer.weights:
            name = keras_to_slim(ws.family, layer.name, var.path.split("/")[-1])
            value = ws.variables[name]
            values.append(value.reshape(var.shape))
        if values:
            layer.set_weights(values)
    return model


def tflite_runner(keras_net, batch, threads):
    import tensorflow as tf

    import contextlib
    import io

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_net)
    with contextlib.redirect_stdout(io.StringIO()):   # the converter prints every captured tensor
        flat = converter.convert()
    run = tflite_file_runner(flat, batch, threads)
    return lambda x: run(x * 2 - 1)


def tflite_file_runner(content, batch, threads, reference=False):
    """The TFLite interpreter on a model's bytes, resized to ``batch``: the default resolver (XNNPACK), or
    with ``reference`` TFLite's reference kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {"experimental_op_resolver_type": OpResolverType.BUILTIN_REF} if reference else {}
    interpreter = Interpreter(model_content=content, num_threads=threads, **kwargs)
    inp = interpreter.get_input_details()[0]
    try:
        interpreter.resize_tensor_input(inp["index"], [batch, *inp["shape"][1:]])
        interpreter.allocate_tensors()
    except RuntimeError:   # e.g. a RESHAPE to a constant [1, 1001]: the file only runs at batch 1
        print(f"  (TFLite cannot resize this file to batch {batch}: it runs the batch one image at a time)")
        single = tflite_file_runner(content, 1, threads, reference)
        return lambda x: np.concatenate([single(x[k:k + 1]) for k in range(len(x))])
    out = interpreter.get_output_details()[0]

    def run(x):
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])
    return run


def configure_tensorflow(threads):
    """TF's thread pools can only be set before its first op, hence one thread count per process."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def tensorflow_runner(keras_net, threads):
    import tensorflow as tf

    fn = tf.function(lambda x: keras_net(x * 2 - 1, training=False))
    return lambda x: fn(tf.constant(x)).numpy()


def onnx_model(model, include_top=True):
    """An ONNX graph of the same network from our folded weights (NCHW Conv, Clip, GlobalAveragePool, Gemm);
    without ``include_top`` its output is the pooled feature vector."""
    from onnx import TensorProto, helper, numpy_helper

    arch = model.architecture
    nodes, inits = [], []
    nodes.append(helper.make_node("Mul", ["images", "two"], ["scaled"]))
    nodes.append(helper.make_node("Sub", ["scaled", "one"], ["x_nhwc"]))
    nodes.append(helper.make_node("Transpose", ["x_nhwc"], ["x0"], perm=[0, 3, 1, 2]))
    inits += [numpy_helper.from_array(np.float32(2.0).reshape(()), "two"),
              numpy_helper.from_array(np.float32(1.0).reshape(()), "one"),
              numpy_helper.from_array(np.float32(0.0).reshape(()), "zero"),
              numpy_helper.from_array(np.float32(6.0).reshape(()), "six")]
    h, w = arch.default_size
    x, block_input, block = "x0", None, None
    for i, (layer, weights, bias, _) in enumerate(model._steps):
        if layer.op == "logits":
            break
        if layer.block != block:
            block, block_input = layer.block, x
        if layer.op == "pointwise":
            kernel = weights.T[:, :, None, None]
            group, pads = 1, [0, 0, 0, 0]
        else:
            top, bottom, left, right = mnp.kernels.same_pads(h, w, layer.kernel, layer.stride)
            pads = [top, left, bottom, right]
            if layer.op == "depthwise":
                kernel, group = np.transpose(weights, (2, 3, 0, 1)), weights.shape[2]
            else:
                kernel, group = np.transpose(weights, (3, 2, 0, 1)), 1
            h, w = -(-h // layer.stride), -(-w // layer.stride)
        inits += [numpy_helper.from_array(np.ascontiguousarray(kernel, np.float32), f"w{i}"),
                  numpy_helper.from_array(bias, f"b{i}")]
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], group=group, pads=pads,
                                      strides=[layer.stride] * 2, kernel_shape=[layer.kernel] * 2))
        x = f"c{i}"
        if layer.relu6:
            nodes.append(helper.make_node("Clip", [x, "zero", "six"], [f"r{i}"]))
            x = f"r{i}"
        if layer.ends_block and layer.residual:
            nodes.append(helper.make_node("Add", [x, block_input], [f"a{i}"]))
            x = f"a{i}"
    nodes += [helper.make_node("GlobalAveragePool", [x], ["pool"]),
              helper.make_node("Flatten", ["pool"], ["flat" if include_top else "out"])]
    if include_top:
        _, weights, bias, _ = model._steps[-1]
        inits += [numpy_helper.from_array(weights, "wl"), numpy_helper.from_array(bias, "bl")]
        nodes.append(helper.make_node("Gemm", ["flat", "wl", "bl"], ["out"]))
    width = arch.num_classes if include_top else arch.num_features
    graph = helper.make_graph(nodes, "mobilenet", [helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, ["n", *arch.default_size, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def onnx_runner(model, threads, top=True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_model(model, top), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(["out"], {"images": x})[0]


# ------------------------------------------------------------------------------------------------ timing
def interleaved(runners, x, repeats, warmup=3, block=1):
    """``{name: median ms}`` over ``repeats`` rounds, each running every engine ``block`` times in a row. With
    ``block`` = 1 every call follows the other engines (cold); with more, the first call of each block is not
    timed and the others follow the engine's own calls (its steady state, as in a loop of one engine)."""
    for run in runners.values():
        for _ in range(warmup):
            run(x)
    times = {name: [] for name in runners}
    order = list(runners.items())
    for r in range(repeats):   # rotated: a call's speed depends on what ran before it (bench/cold_calls.py)
        for name, run in order[r % len(order):] + order[:r % len(order)]:
            for i in range(block):
                t = time.perf_counter()
                run(x)
                if i > 0 or block == 1:
                    times[name].append((time.perf_counter() - t) * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def float_peers(ws, ours, batch, threads, top):
    """``{name: run(x)}`` of the float peers on the weights ``ws`` (ONNX Runtime's graph built from ``ours``)."""
    net = keras_model(ws, top)
    return {"tflite_xnnpack": tflite_runner(net, batch, threads), "onnxruntime": onnx_runner(ours, threads, top),
            "tensorflow": tensorflow_runner(net, threads)}


def float_case(case, batch=1, threads=1, seed=0):
    """``(weights, model, run, images)`` of a float case: ``run`` is ``model.classify`` with top, else
    ``model.features``; ``images`` [batch, H, W, 3] uniform in [0, 1]."""
    ws = weights_for(case)
    model = mnp.Model(ws.architecture(), ws.variables, weights=ws, threads=threads)
    x = np.random.default_rng(seed).uniform(0, 1, (batch, *ws.input_size, 3)).astype(np.float32)
    return ws, model, model.classify if CASES[case][4] else model.features, x


def bench_case(case, batch, threads, repeats, peers, block=1):
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    ws, ours, run, x = float_case(case, batch, threads)
    top = CASES[case][4]
    runners = {"mobilenet_np": run}
    reference = run(x)
    if peers:
        runners.update(float_peers(ws, ours, batch, threads, top))
        for name, run in runners.items():  # same weights, same answers (a peer with other weights is no peer)
            worst = float(np.abs(run(x) - reference).max())
            if worst > 1e-3:
                raise SystemExit(f"{name} disagrees with mobilenet_np by {worst:.3g} on {case}")
    medians = interleaved(runners, x, repeats, block=block)
    return {"case": case, "batch": batch, "threads": threads, "block": block, "median_ms": medians,
            "ratio": {k: medians["mobilenet_np"] / v for k, v in medians.items() if k != "mobilenet_np"}}


def bench_integer_case(case, batch, threads, repeats, peers, block=1):
    """Our integer model (both roundings) against TFLite on the same .tflite and the same uint8 images; the
    outputs must be the same bytes."""
    import numba

    from mobilenet_np.integer import load_integer

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    path = fixture_path(INTEGER_CASES[case])
    if path is None:
        raise SystemExit(f"{case} needs the fixture {INTEGER_CASES[case]} (see tests' fixture rules)")
    xnn = load_integer(str(path), "xnnpack", threads=threads)
    ref = load_integer(str(path), "reference", threads=threads)
    x = np.random.default_rng(0).integers(0, 256, (batch, *xnn.input_size, 3), dtype=np.uint8)
    runners = {"mobilenet_np": xnn.output, "mobilenet_np_reference": ref.output}
    if peers:
        content = open(path, "rb").read()
        runners["tflite_xnnpack"] = tflite_file_runner(content, batch, threads)
        runners["tflite_reference"] = tflite_file_runner(content, batch, threads, reference=True)
        for ours, theirs in (("mobilenet_np", "tflite_xnnpack"), ("mobilenet_np_reference", "tflite_reference")):
            if not np.array_equal(runners[ours](x), runners[theirs](x)):
                raise SystemExit(f"{ours} and {theirs} disagree on {case}")
    medians = interleaved(runners, x, repeats, block=block)
    ratio = {}
    if peers:
        ratio = {"tflite_xnnpack": medians["mobilenet_np"] / medians["tflite_xnnpack"],
                 "tflite_reference": medians["mobilenet_np_reference"] / medians["tflite_reference"]}
    return {"case": case, "batch": batch, "threads": threads, "block": block, "median_ms": medians, "ratio": ratio}


def _print_layer_profile(title, spent, macs, repeats):
    """``spent``: {layer: seconds over ``repeats`` runs}; ``macs``: {layer: multiply-adds}."""
    total = sum(spent.values()) / repeats * 1e3
    print(f"{title}: body {total:.2f} ms per image (sum of per-layer kernel calls)")
    print(f"{'layer':<34}{'ms':>8}{'share':>8}{'MACs':>12}{'GMAC/s':>8}")
    for name, seconds in spent.items():
        ms = seconds / repeats * 1e3
        rate = f"{macs[name] / ms / 1e6:>8.2f}" if macs.get(name) else f"{'':>8}"
        print(f"{name:<34}{ms:>8.3f}{ms / total:>8.1%}{macs.get(name, 0):>12,}{rate}")


def _print_stage_profile(title, plan, run, repeats, macs, label=lambda name: name, between=lambda: None):
    """Per-stage time of the fast executor from the CPU's cycle counter: ``run(cycles)`` makes one pass;
    ``between()`` runs before each pass, untimed (the peers, to profile passes that start as cold as in the
    interleaved benchmark)."""
    run(None)
    cycles = np.zeros(len(plan.stages) + 1, np.int64)
    wall = []
    for _ in range(repeats):
        between()
        before = cycles.copy()
        t = time.perf_counter()
        run(cycles)
        wall.append((time.perf_counter() - t, int((cycles - before).sum())))
    # cycles -> ms from the runs themselves (the counter ticks at a constant rate)
    seconds_per_cycle = sum(w for w, _ in wall) / max(1, sum(c for _, c in wall))
    names = plan.names + [["logits"]]
    ms = cycles * seconds_per_cycle / repeats * 1e3
    best = min(w for w, _ in wall) * 1e3
    print(f"\n{title}: {ms.sum():.2f} ms per image in the compiled call "
          f"(median run {statistics.median(w for w, _ in wall) * 1e3:.2f} ms, best {best:.2f} ms, logits included)")
    print(f"{'stage (layers)':<58}{'ms':>8}{'share':>8}{'MACs':>12}{'GMAC/s':>8}")
    for stage_names, t in zip(names, ms):
        m = sum(macs.get(n, 0) for n in stage_names)
        rate = f"{m / t / 1e6:>8.2f}" if m and t > 0 else f"{'':>8}"
        print(f"{' + '.join(label(n) for n in stage_names):<58}{t:>8.3f}{t / ms.sum():>8.1%}{m:>12,}{rate}")


def profile(case, repeats, interleaved=False):
    """Per-layer time of mobilenet_np (batch 1) against each layer's multiply-adds: the layer-by-layer path
    (``engine="layers"``, one kernel call per layer from Python; integer models: ``engine="ops"``) and the fast
    executor (one compiled call; time per fused stage from the CPU's cycle counter). With ``interleaved``
    (float cases), the fast executor's passes each follow one run of every peer, as in the benchmark."""
    if case in INTEGER_CASES:
        return profile_integer(case, repeats)
    ws = weights_for(case)
    model = mnp.Model(ws.architecture(), ws.variables, engine="layers")
    x = np.random.default_rng(0).uniform(-1, 1, (1, *ws.input_size, 3)).astype(np.float32)
    model.classify(x * 0.5 + 0.5)
    table = {r["name"]: r["macs"] for r in model.architecture.layer_table(*ws.input_size)}
    spent = {}
    for _ in range(repeats):
        y = x
        for step in model._steps[:-1]:
            t = time.perf_counter()
            y = model._conv(step, y)
            spent[step[0].name] = spent.get(step[0].name, 0.0) + time.perf_counter() - t
    _print_layer_profile(f"{case}, engine='layers'", spent, table, repeats)
    fast = mnp.Model(ws.architecture(), ws.variables)
    images = x * 0.5 + 0.5
    table["logits"] = model.architecture.logits.macs(1, 1) if model.architecture.logits else 0
    top = CASES[case][4]
    between = lambda: None  # noqa: E731
    if interleaved:
        configure_tensorflow(1)
        peers = float_peers(ws, fast, 1, 1, top).values()
        between = lambda: [run(images) for run in peers]  # noqa: E731
    _print_stage_profile(f"{case}, engine='numba' (fast executor{', peers in between' if interleaved else ''})",
                         fast.executor.plan(*ws.input_size),
                         lambda cycles: fast.executor.run(images, logits=top, cycles=cycles), repeats, table,
                         between=between)


def profile_integer(case, repeats, rounding="xnnpack"):
    from mobilenet_np.integer import load_integer

    path = str(fixture_path(INTEGER_CASES[case]))
    ops_model = load_integer(path, rounding, engine="ops")
    x = np.random.default_rng(0).integers(0, 256, (1, *ops_model.input_size, 3), dtype=np.uint8)
    tensors = ops_model.tflite.tensors
    macs, names = {}, {}
    for op in ops_model.tflite.operators:
        out = tensors[op.outputs[0]]
        name = names[op.index] = ops_model.endpoint_names[out.index]
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = tensors[op.inputs[1]].shape
            per_output = w[1] * w[2] if op.name == "DEPTHWISE_CONV_2D" else int(np.prod(w[1:]))
            macs[name] = int(np.prod(out.shape[1:])) * per_output
    ops_model.output(x)
    spent = {}
    for _ in range(repeats):
        values = {ops_model.input_tensor.index: ops_model.quantize_input(x)}
        for op, step in zip(ops_model.tflite.operators, ops_model._steps):
            t = time.perf_counter()
            values[op.outputs[0]] = step(values).astype(tensors[op.outputs[0]].dtype, copy=False)
            spent[names[op.index]] = spent.get(names[op.index], 0.0) + time.perf_counter() - t
    _print_layer_profile(f"{case} ({rounding}), engine='ops'", spent, macs, repeats)
    fast = load_integer(path, rounding)
    ex = fast._executor
    xf = np.ascontiguousarray(x, np.float32)
    plan = ex.plan(*fast.input_size)
    macs["logits"] = macs.get(names[fast._chain.logits.index], 0) if fast._chain.logits is not None else 0

    def label(layer):   # executor layer "op12" -> the op's endpoint name
        return names[int(layer[2:])] if layer.startswith("op") and layer[2:].isdigit() else layer

    macs.update({f"op{k}": macs[names[k]] for k in names if names[k] in macs})
    _print_stage_profile(f"{case} ({rounding}), engine='numba' (fast executor)", plan,
                         lambda cycles: ex._call(xf, plan, ex._head, False, cycles), repeats, macs, label)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"of {', '.join([*CASES, *INTEGER_CASES])}")
    p.add_argument("--batch", default="1,32")
    p.add_argument("--threads", default="1")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--block", type=int, default=1,
                   help="calls of each engine in a row per round; past 1 the first is not timed and the rest show "
                        "each engine's steady state (default 1: every call follows the other engines)")
    p.add_argument("--no-peers", action="store_true", help="time mobilenet_np alone")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--profile", metavar="CASE", help="per-layer profile of one case instead")
    p.add_argument("--interleaved", action="store_true",
                   help="with --profile: run the peers before each profiled pass (cold caches, as in the benchmark)")
    args = p.parse_args()
    if args.interleaved and (not args.profile or args.profile in INTEGER_CASES):
        p.error("--interleaved goes with --profile of a float case")
    if args.block < 1:
        p.error("--block must be at least 1")
    if args.profile:
        profile(args.profile, args.repeats, args.interleaved)
        return
    thread_counts = [int(t) for t in args.threads.split(",")]
    if len(thread_counts) > 1:   # one process per thread count (TF fixes its pools at start-up)
        import subprocess
        import tempfile

        results = []
        for t in thread_counts:
            with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
                cmd = [sys.executable, os.path.abspath(__file__), "--cases", args.cases, "--batch", args.batch,
                       "--threads", str(t), "--repeats", str(args.repeats), "--block", str(args.block),
                       "--json", tmp.name]
                subprocess.run(cmd + (["--no-peers"] if args.no_peers else []), check=True)
                results += json.load(open(tmp.name))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        return
    if not args.no_peers:
        configure_tensorflow(thread_counts[0])
    results = []
    print("ms = median of the interleaved runs" + (f" (blocks of {args.block}, the first of each not timed)"
                                                   if args.block > 1 else "")
          + "; (ratio) = mobilenet_np / peer, below 1 = we are faster")
    print(f"{'case':<18}{'batch':>6}{'thr':>4}{'ours ms':>10}  peers")
    for case in args.cases.split(","):
        for batch in map(int, args.batch.split(",")):
            for threads in thread_counts:
                if case in INTEGER_CASES:
                    r = bench_integer_case(case, batch, threads, args.repeats, not args.no_peers, args.block)
                else:
                    r = bench_case(case, batch, threads, args.repeats, not args.no_peers, args.block)
                results.append(r)
                peers = "  ".join(f"{n} {r['median_ms'][n]:.2f} ({r['ratio'][n]:.2f}x)" for n in r["ratio"])
                print(f"{case:<18}{batch:>6}{threads:>4}{r['median_ms']['mobilenet_np']:>10.2f}  {peers}", flush=True)
                if case in INTEGER_CASES:
                    print(f"{'':<28}{r['median_ms']['mobilenet_np_reference']:>10.2f}  (ours, rounding='reference', "
                          "against tflite_reference)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
