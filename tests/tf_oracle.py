"""TensorFlow oracle for the parity tests (test-only code).

Everything here builds, runs or measures MobileNet V1/V2 with TensorFlow itself. It is written independently of
``mobilenet_np``'s own model code (it never imports ``mobilenet_np.architectures``, ``.model`` or ``.kernels``):
the architecture is a separate hard-coded transcription of the published TF-slim tables, so a mistake in the
library cannot hide in a shared table.

Public API (``arch`` is ``"v1"`` or ``"v2"``; every array is float32 NHWC unless said otherwise):

* :func:`slim_variable_shapes`, :func:`random_slim_variables`, :func:`save_slim_checkpoint`
* :func:`tf_endpoints` -- eager TF forward pass, images in [0, 1] (mapped to [-1, 1] as ``2x - 1``)
* :func:`tf_macs` -- MACs per layer from TF shape inference of that same forward pass
* :func:`run_frozen_graph`, :func:`frozen_graph_variables_tf`, :func:`frozen_graph_batch_norm_epsilon`,
  :func:`frozen_graph_macs` -- the released V1 frozen GraphDefs
* :func:`smooth_random_images` -- calibration/test images

TensorFlow is imported lazily, so importing this module never needs it.
"""
import functools
import math
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BN_NAMES = ("beta", "gamma", "moving_mean", "moving_variance")

SCOPES = {"v1": "MobilenetV1", "v2": "MobilenetV2"}

# V1 (mobilenet_v1.py, MOBILENETV1_CONV_DEFS): 3x3/s2 full conv to 32, then 13 separable blocks
# (base depth of the pointwise conv, stride of the depthwise conv).
V1_CONV0 = (32, 2)
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
V1_MIN_DEPTH = 8

# V2 (mobilenet_v2.py, V2_DEF): 3x3/s2 conv to 32, then (expansion t, base out c, repeats n, first stride s),
# then a 1x1 conv to 1280.
V2_CONV = (32, 2)
V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
V2_LAST = 1280


def _arch(arch):
    key = str(arch).lower().replace("mobilenet", "").strip("_ ")
    if key not in SCOPES:
        raise ValueError(f"arch must be 'v1' or 'v2', got {arch!r}")
    return key


def _tf():
    import tensorflow as tf
    return tf


def v1_depth(base, alpha):
    """V1 channel count: ``max(int(base * alpha), 8)``."""
    return max(int(base * alpha), V1_MIN_DEPTH)


def make_divisible(v, divisor=8, min_value=None):
    """Slim's ``_make_divisible``: nearest multiple of ``divisor``, never more than 10% below ``v``."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


def v2_blocks(alpha):
    """The 17 V2 bottlenecks as dicts: scope, stride, cin, inner (expansion width), cout, expand, residual."""
    cin = make_divisible(V2_CONV[0] * alpha)
    blocks = []
    for t, base, repeats, first_stride in V2_STAGES:
        for j in range(repeats):
            k = len(blocks)
            cout = make_divisible(base * alpha)
            inner = cin if k == 0 else make_divisible(cin * t)   # block 0: expand_input_by_factor(1, divisible_by=1)
            stride = first_stride if j == 0 else 1
            blocks.append(dict(scope="expanded_conv" if k == 0 else f"expanded_conv_{k}", stride=stride,
                               cin=cin, inner=inner, cout=cout, expand=inner > cin,
                               residual=stride == 1 and cin == cout))
            cin = cout
    return blocks


def v2_block_strides():
    """``[(scope, depthwise stride)]`` of the 17 V2 bottlenecks."""
    return [(b["scope"], b["stride"]) for b in v2_blocks(1.0)]


def v2_last_depth(alpha):
    """Depth of ``Conv_1``: 1280 for alpha <= 1 (finegrain mode), ``make_divisible(1280 * alpha)`` above."""
    return V2_LAST if alpha <= 1 else make_divisible(V2_LAST * alpha)


def _layers(arch, alpha):
    """Own layer list: (scope without arch prefix, kind 'conv'|'dw', kernel, stride, cin, cout)."""
    arch = _arch(arch)
    out = []
    if arch == "v1":
        cin = v1_depth(V1_CONV0[0], alpha)
        out.append(("Conv2d_0", "conv", 3, V1_CONV0[1], 3, cin))
        for i, (base, stride) in enumerate(V1_BLOCKS, 1):
            cout = v1_depth(base, alpha)
            out.append((f"Conv2d_{i}_depthwise", "dw", 3, stride, cin, cin))
            out.append((f"Conv2d_{i}_pointwise", "conv", 1, 1, cin, cout))
            cin = cout
    else:
        c0 = make_divisible(V2_CONV[0] * alpha)
        out.append(("Conv", "conv", 3, V2_CONV[1], 3, c0))
        for b in v2_blocks(alpha):
            if b["expand"]:
                out.append((b["scope"] + "/expand", "conv", 1, 1, b["cin"], b["inner"]))
            out.append((b["scope"] + "/depthwise", "dw", 3, b["stride"], b["inner"], b["inner"]))
            out.append((b["scope"] + "/project", "conv", 1, 1, b["inner"], b["cout"]))
        out.append(("Conv_1", "conv", 1, 1, b["cout"], v2_last_depth(alpha)))
    return out


def slim_variable_shapes(arch, alpha, num_classes=1001):
    """``{slim variable name: shape}`` of the float model (no ``global_step``); ``num_classes=0`` drops the logits."""
    arch = _arch(arch)
    top = SCOPES[arch]
    shapes = {}
    for scope, kind, k, _, cin, cout in _layers(arch, alpha):
        if kind == "dw":
            shapes[f"{top}/{scope}/depthwise_weights"] = (k, k, cin, 1)
        else:
            shapes[f"{top}/{scope}/weights"] = (k, k, cin, cout)
        for name in BN_NAMES:
            shapes[f"{top}/{scope}/BatchNorm/{name}"] = (cout,)
    if num_classes:
        shapes[f"{top}/Logits/Conv2d_1c_1x1/weights"] = (1, 1, cout, num_classes)
        shapes[f"{top}/Logits/Conv2d_1c_1x1/biases"] = (num_classes,)
    return shapes


# --------------------------------------------------------------------------------------------------------------
# Forward pass in TensorFlow

def _forward(arch, variables, x, eps, on_conv=None):
    """TF ops of the whole network on ``x`` (already in [-1, 1]); returns ``{endpoint: tensor}``.

    ``on_conv(scope, kind, inputs, conv_output, kernel)`` is called after every conv, before its BN; it may
    update the BN entries of ``variables`` (used for calibration).
    """
    tf = _tf()
    arch = _arch(arch)
    top = SCOPES[arch]
    ends = {}

    def conv_bn(x, scope, kind, stride, relu):
        name = f"{top}/{scope}"
        with tf.name_scope(scope.replace("/", "_")):
            if kind == "dw":
                kernel = variables[f"{name}/depthwise_weights"]
                y = tf.nn.depthwise_conv2d(x, kernel, [1, stride, stride, 1], "SAME")
            else:
                kernel = variables[f"{name}/weights"]
                y = tf.nn.conv2d(x, kernel, stride, "SAME")
            if on_conv is not None:
                on_conv(scope, kind, x, y, kernel)
            bn = {n: variables[f"{name}/BatchNorm/{n}"] for n in BN_NAMES}
            y = tf.nn.batch_normalization(y, bn["moving_mean"], bn["moving_variance"], bn["beta"], bn["gamma"],
                                          eps)
            return tf.nn.relu6(y) if relu else y

    if arch == "v1":
        x = ends["Conv2d_0"] = conv_bn(x, "Conv2d_0", "conv", V1_CONV0[1], True)
        for i, (_, stride) in enumerate(V1_BLOCKS, 1):
            x = ends[f"Conv2d_{i}_depthwise"] = conv_bn(x, f"Conv2d_{i}_depthwise", "dw", stride, True)
            x = ends[f"Conv2d_{i}_pointwise"] = conv_bn(x, f"Conv2d_{i}_pointwise", "conv", 1, True)
        pool_name = "AvgPool_1a"
    else:
        x = ends["Conv"] = conv_bn(x, "Conv", "conv", V2_CONV[1], True)
        for scope, stride in v2_block_strides():
            block_in = x
            if f"{top}/{scope}/expand/weights" in variables:
                x = ends[f"{scope}/expand"] = conv_bn(x, f"{scope}/expand", "conv", 1, True)
            x = ends[f"{scope}/depthwise"] = conv_bn(x, f"{scope}/depthwise", "dw", stride, True)
            x = ends[f"{scope}/project"] = conv_bn(x, f"{scope}/project", "conv", 1, False)
            if stride == 1 and block_in.shape[-1] == x.shape[-1]:
                x = x + block_in
            ends[scope] = x
        x = ends["Conv_1"] = conv_bn(x, "Conv_1", "conv", 1, True)
        pool_name = "global_pool"
    x = ends[pool_name] = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    weights = variables.get(f"{top}/Logits/Conv2d_1c_1x1/weights")
    if weights is not None:
        y = tf.nn.conv2d(x, weights, 1, "SAME")
        if on_conv is not None:
            on_conv("Logits/Conv2d_1c_1x1", "conv", x, y, weights)
        y = tf.nn.bias_add(y, variables[f"{top}/Logits/Conv2d_1c_1x1/biases"])
        ends["Logits"] = tf.squeeze(y, axis=[1, 2])
        ends["Predictions"] = tf.nn.softmax(ends["Logits"])
    return ends


def _check_images(images01):
    images = np.asarray(images01, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [N, H, W, 3], got shape {images.shape}")
    return images


def tf_endpoints(arch, variables, images01, batch_norm_epsilon=1e-3, dtype=np.float32):
    """Run the network in eager TensorFlow on images in [0, 1]; ``{endpoint: array}``.

    Depths come from the variables' shapes, strides from this module's own tables. Any batch size and any
    H, W >= 32 (also non-square). Without logits variables the result stops at the pooled endpoint.
    ``dtype=np.float64`` runs the same float32 weights and images in double precision: a reference close to
    the exact answer, used to measure how far TF's own float32 result is from it.
    """
    tf = _tf()
    images = _check_images(images01)
    consts = {k: tf.constant(np.asarray(v, dtype=np.float32).astype(dtype))
              for k, v in variables.items() if k != "global_step"}
    x = tf.constant(images.astype(dtype)) * 2.0 - 1.0
    ends = _forward(arch, consts, x, batch_norm_epsilon)
    return {k: v.numpy() for k, v in ends.items()}


def slim_variables_from_tflite(tflite_path):
    """Slim-named float variables of a real uint8 TFLite MobileNet (a QAT model with BN folded into its convs).

    Each conv kernel is dequantized (``scale * (q - zero_point)``) and transposed from TFLite's OHWI
    (depthwise ``[1, KH, KW, C]``) to TF's HWIO (``[KH, KW, C, 1]``); the int32 bias becomes float
    (``scale_in * scale_w * q``) and is stored as BN ``beta`` with an identity BN around it (gamma 1, mean 0,
    variance ``1 - eps`` so that ``var + eps`` is exactly 1.0 in float32). The result is a float network with
    the trained weights of the real model: realistic conditioning for float parity tests.
    """
    import warnings

    tf = _tf()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}

    def dequantized(index):
        t = tensors[index]
        scale, zero = t["quantization"]
        return (interpreter.get_tensor(index).astype(np.float64) - zero) * scale

    variables = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        inp, kernel, bias = (tensors[i] for i in op["inputs"][:3])
        full = kernel["name"].split(";")[0]
        top, scope = full.split("/", 1)[0], full.rsplit("/", 1)[0].split("/", 1)[1]
        scope = scope.replace("/weights_quant", "")
        w = dequantized(kernel["index"])
        b = interpreter.get_tensor(bias["index"]).astype(np.float64) * bias["quantization"][0]
        name = f"{top}/{scope}"
        if op["op_name"] == "DEPTHWISE_CONV_2D":
            variables[f"{name}/depthwise_weights"] = np.transpose(w, (1, 2, 3, 0)).astype(np.float32)
        else:
            variables[f"{name}/weights"] = np.transpose(w, (1, 2, 3, 0)).astype(np.float32)
        if scope.startswith("Logits"):
            variables[f"{name}/biases"] = b.astype(np.float32)
            continue
        c = b.shape[0]
        variables[f"{name}/BatchNorm/gamma"] = np.ones(c, np.float32)
        variables[f"{name}/BatchNorm/beta"] = b.astype(np.float32)
        variables[f"{name}/BatchNorm/moving_mean"] = np.zeros(c, np.float32)
        variables[f"{name}/BatchNorm/moving_variance"] = np.full(c, 1.0 - 1e-3, np.float32)
    return variables


def tf_macs(arch, alpha, height, width, num_classes=1001):
    """MACs of every conv (and the logits conv) for one image, from TF graph shape inference of :func:`tf_endpoints`'s
    ops; keys are layer scopes without the arch prefix (``Conv2d_0``, ``Conv2d_1_depthwise``,
    ``expanded_conv_3/expand``, ``Logits/Conv2d_1c_1x1``).
    """
    tf = _tf()
    shapes = slim_variable_shapes(arch, alpha, num_classes)
    macs = {}

    def count(scope, kind, x, y, kernel):
        macs[scope] = _conv_macs(kind, y.shape, kernel.shape)

    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, height, width, 3])
        variables = {k: tf.zeros(s) for k, s in shapes.items()}
        _forward(arch, variables, x, 1e-3, on_conv=count)
    return macs


def _conv_macs(kind, out_shape, kernel_shape):
    out_h, out_w, out_c = (int(d) for d in list(out_shape)[1:4])
    kh, kw, cin, mult = (int(d) for d in kernel_shape)
    taps = kh * kw if kind == "dw" else kh * kw * cin
    return out_h * out_w * out_c * taps


# --------------------------------------------------------------------------------------------------------------
# Realistic random weights

def smooth_random_images(n, height, width, seed=0):
    """``n`` smooth random RGB images in [0, 1] (bilinear-upsampled noise at two scales plus a ramp), float32."""
    tf = _tf()
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (n, 4, 4, 3)).astype(np.float32)
    fine = rng.uniform(-0.25, 0.25, (n, 16, 16, 3)).astype(np.float32)
    img = (tf.image.resize(coarse, (height, width), "bilinear")
           + tf.image.resize(fine, (height, width), "bilinear")).numpy()
    ramp = np.linspace(-0.2, 0.2, width, dtype=np.float32)[None, None, :, None] * rng.choice([-1, 1], (n, 1, 1, 3))
    return np.clip(img + ramp, 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _random_slim_variables(arch, alpha, num_classes, seed):
    tf = _tf()
    arch = _arch(arch)
    top = SCOPES[arch]
    rng = np.random.default_rng(seed)
    shapes = slim_variable_shapes(arch, alpha, num_classes)
    variables = {}
    for name, shape in shapes.items():
        leaf = name.rsplit("/", 1)[1]
        if leaf in ("weights", "depthwise_weights"):
            fan_in = shape[0] * shape[1] * (1 if leaf == "depthwise_weights" else shape[2])
            value = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
        elif leaf == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf == "beta":
            value = rng.normal(0.0, 0.1, shape)
        elif leaf == "moving_variance":
            value = np.ones(shape)
        else:       # moving_mean, biases
            value = np.zeros(shape)
        variables[name] = value.astype(np.float32)

    # Calibrate the BN moving statistics layer by layer on smooth images: each layer's stats are the batch
    # statistics of its own conv output, perturbed (mean shifted by ~0.3 sd, variance scaled by a log-uniform
    # factor; below 1 for ReLU6 layers so that some activations saturate at 6, as in trained MobileNets).
    linear = {s for s, *_ in _layers(arch, alpha) if s.endswith("/project")}

    def calibrate(scope, kind, x, y, kernel):
        if scope.startswith("Logits"):
            return
        mean, var = (m.numpy().astype(np.float64) for m in tf.nn.moments(y, axes=[0, 1, 2]))
        var = np.maximum(var, 1e-6)
        c = mean.shape[0]
        low, high = (0.5, 1.5) if scope in linear else (0.15, 1.2)
        mean = mean + np.sqrt(var) * rng.normal(0.0, 0.3, c)
        var = var * np.exp(rng.uniform(np.log(low), np.log(high), c))
        body[f"{top}/{scope}/BatchNorm/moving_mean"] = mean.astype(np.float32)
        body[f"{top}/{scope}/BatchNorm/moving_variance"] = var.astype(np.float32)

    images = smooth_random_images(8, 128, 128, seed=seed + 1000)
    body = {k: v for k, v in variables.items() if "/Logits/" not in k}
    ends = _forward(arch, body, tf.constant(images) * 2.0 - 1.0, 1e-3, on_conv=calibrate)
    variables.update(body)
    if num_classes:
        # Scale the logits weights so that the logits spread over a few units (std ~2 across classes).
        pooled = ends["AvgPool_1a" if arch == "v1" else "global_pool"].numpy()[:, 0, 0, :]
        w_name, b_name = f"{top}/Logits/Conv2d_1c_1x1/weights", f"{top}/Logits/Conv2d_1c_1x1/biases"
        raw = pooled @ variables[w_name][0, 0].astype(np.float64)
        variables[w_name] = (variables[w_name] * (2.0 / raw.std(axis=1).mean())).astype(np.float32)
        variables[b_name] = rng.normal(0.0, 0.2, num_classes).astype(np.float32)
    return variables


def random_slim_variables(arch, alpha, num_classes=1001, seed=0):
    """Realistic random slim variables (``{name: float32 array}``), BN statistics calibrated with TF.

    He-normal conv weights, gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), moving mean/variance set layer by layer from
    the batch statistics of the conv outputs on smooth random images (with noise), logits spread ~2 units std.
    Cached per arguments; every call returns fresh copies.
    """
    cached = _random_slim_variables(_arch(arch), float(alpha), int(num_classes or 0), int(seed))
    return {k: v.copy() for k, v in cached.items()}


def activation_stats(endpoints):
    """``{endpoint: (fraction == 0, fraction == 6, max |value|)}`` of every endpoint, for sanity checks."""
    out = {}
    for name, value in endpoints.items():
        out[name] = (float(np.mean(value == 0)), float(np.mean(value == 6)), float(np.max(np.abs(value))))
    return out


# --------------------------------------------------------------------------------------------------------------
# Checkpoints written by TF's own Saver

def save_slim_checkpoint(variables, prefix, global_step=None):
    """Write ``variables`` as a TF-slim checkpoint with ``tf.compat.v1.train.Saver``; returns ``prefix``.

    Each variable is created under its slim variable scope (floats as float32), plus an int64 ``global_step``
    (from ``variables['global_step']`` or the argument, default 0). Files: ``prefix.index``,
    ``prefix.data-00000-of-00001``, ``prefix.meta`` and the directory's ``checkpoint`` state file.
    """
    tf = _tf()
    prefix = str(prefix)
    step_value = variables.get("global_step", 0 if global_step is None else global_step)
    graph = tf.Graph()
    with graph.as_default():
        feeds = {}
        for name, value in variables.items():
            if name == "global_step":
                continue
            value = np.asarray(value)
            if value.dtype.kind == "f":
                value = value.astype(np.float32)
            scope, leaf = name.rsplit("/", 1) if "/" in name else ("", name)
            initial = tf.compat.v1.placeholder(tf.as_dtype(value.dtype), value.shape)
            with tf.compat.v1.variable_scope(scope):
                tf.compat.v1.get_variable(leaf, initializer=initial)
            feeds[initial] = value
        initial = tf.compat.v1.placeholder(tf.int64, [])
        tf.compat.v1.get_variable("global_step", initializer=initial, trainable=False, collections=[
            tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, tf.compat.v1.GraphKeys.GLOBAL_STEP])
        feeds[initial] = np.int64(step_value)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer(), feeds)
            saver.save(sess, prefix)
    return prefix


# --------------------------------------------------------------------------------------------------------------
# Released frozen GraphDefs (V1)

def v1_frozen_tensor_names():
    """Endpoint -> tensor name in the released V1 frozen graphs (same names in the 2017 and 2018 releases).

    Body ops live under ``MobilenetV1/MobilenetV1/`` (slim re-enters the scope), the head under
    ``MobilenetV1/Logits`` and ``MobilenetV1/Predictions``.
    """
    names = {"Conv2d_0": "MobilenetV1/MobilenetV1/Conv2d_0/Relu6:0"}
    for i in range(1, len(V1_BLOCKS) + 1):
        for part in ("depthwise", "pointwise"):
            names[f"Conv2d_{i}_{part}"] = f"MobilenetV1/MobilenetV1/Conv2d_{i}_{part}/Relu6:0"
    names["AvgPool_1a"] = "MobilenetV1/Logits/AvgPool_1a/AvgPool:0"
    names["Logits"] = "MobilenetV1/Logits/SpatialSqueeze:0"
    names["Predictions"] = "MobilenetV1/Predictions/Reshape_1:0"
    return names


V1_FROZEN_TENSOR_NAMES = v1_frozen_tensor_names()


@functools.lru_cache(maxsize=8)
def _graph_def_bytes(pb_path):
    with open(pb_path, "rb") as f:
        return f.read()


def _graph_def(pb_path):
    tf = _tf()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(_graph_def_bytes(str(pb_path)))
    return graph_def


def _import(pb_path):
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(_graph_def(pb_path), name="")
    return graph


def run_frozen_graph(pb_path, images01, batch1=False):
    """Run a released V1 frozen graph on images in [0, 1] (fed as ``2x - 1`` to ``input``); every endpoint.

    Graphs whose placeholder has a fixed batch of 1 (2017 releases) -- or ``batch1=True`` -- run image by image
    and the results are concatenated.
    """
    tf = _tf()
    images = _check_images(images01)
    graph = _import(pb_path)
    placeholder = graph.get_tensor_by_name("input:0")
    fetches = {k: graph.get_tensor_by_name(v) for k, v in V1_FROZEN_TENSOR_NAMES.items()}
    feed = images * np.float32(2.0) - np.float32(1.0)
    one_at_a_time = batch1 or placeholder.shape[0] == 1
    with tf.compat.v1.Session(graph=graph) as sess:
        if one_at_a_time:
            runs = [sess.run(fetches, {placeholder: feed[i:i + 1]}) for i in range(len(feed))]
            return {k: np.concatenate([r[k] for r in runs]).astype(np.float32) for k in fetches}
        return {k: v.astype(np.float32) for k, v in sess.run(fetches, {placeholder: feed}).items()}


def frozen_graph_variables_tf(pb_path):
    """Slim variables frozen into a GraphDef: every Const read through a ``<name>/read`` Identity, via
    ``tf.make_ndarray``. Both the 2017 (BN as Mul/Add/Rsqrt) and the 2018 (FusedBatchNorm) V1 releases keep the
    four unfolded BN tensors (gamma, beta, moving_mean, moving_variance) under their variable names.
    """
    tf = _tf()
    graph_def = _graph_def(pb_path)
    read_inputs = {n.input[0] for n in graph_def.node if n.op == "Identity" and n.name.endswith("/read")}
    return {n.name: tf.make_ndarray(n.attr["value"].tensor)
            for n in graph_def.node if n.op == "Const" and n.name in read_inputs}


def frozen_graph_batch_norm_epsilon(pb_path):
    """The BN epsilon of a frozen graph: ``FusedBatchNorm`` attr or the ``batchnorm/add/y`` consts (must agree)."""
    tf = _tf()
    found = set()
    for n in _graph_def(pb_path).node:
        if n.op.startswith("FusedBatchNorm"):
            found.add(float(np.float32(n.attr["epsilon"].f)))
        elif n.op == "Const" and n.name.endswith("BatchNorm/batchnorm/add/y"):
            found.add(float(tf.make_ndarray(n.attr["value"].tensor)))
    if len(found) != 1:
        raise ValueError(f"expected one BN epsilon in {pb_path}, found {sorted(found)}")
    return found.pop()


def frozen_graph_macs(pb_path):
    """MACs per image of every Conv2D / DepthwiseConv2dNative in a frozen graph, from TF's own shape inference.

    Output shape (H x W x C) times kernel taps (KH x KW x Cin for Conv2D, KH x KW for depthwise); keyed by the
    kernel variable's layer scope without ``MobilenetV1/`` (``Conv2d_0``, ``Conv2d_1_depthwise``, ...,
    ``Logits/Conv2d_1c_1x1``).
    """
    graph = _import(pb_path)
    macs = {}
    for op in graph.get_operations():
        if op.type not in ("Conv2D", "DepthwiseConv2dNative"):
            continue
        kernel_op = op.inputs[1].op
        while kernel_op.type == "Identity":
            kernel_op = kernel_op.inputs[0].op
        scope = kernel_op.name.rsplit("/", 1)[0].split("/", 1)[1]
        kind = "dw" if op.type == "DepthwiseConv2dNative" else "conv"
        macs[scope] = _conv_macs(kind, op.outputs[0].shape, op.inputs[1].shape)
    return macs
