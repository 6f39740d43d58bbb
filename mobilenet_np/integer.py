"""Integer inference of a ``.tflite`` MobileNet (uint8 per-tensor or int8 per-channel), bit-exact with TFLite.

    from mobilenet_np.integer import load_integer
    model = load_integer("mobilenet_v1_0.25_128_quant.tflite")       # rounding="reference" (BUILTIN_REF)
    probs = model.classify(uint8_images)          # dequantized output [N, 1001] (softmax probabilities here)
    ends = model.endpoints(uint8_images)          # {"Conv2d_0": uint8 [N,64,64,8], ..., "output": ...}

:class:`IntegerModel` executes the file's operator list in order with the kernels of
``mobilenet_np.kernels.integer_*`` (``run``, ``endpoints``: every tensor). ``output``, ``classify``,
``features`` and ``predictions`` take the fast executor instead when the model fits it
(:mod:`mobilenet_np.integer_executor`: the same integers, computed exactly in float32 by the float model's
fused kernels; :attr:`IntegerModel.fast_path` says whether it is used and, if not, why). Two rounding modes (module doc of
:mod:`mobilenet_np.kernels.integer_fixedpoint` gives the formulas):

* ``"reference"``: TFLite's reference kernels (``OpResolverType.BUILTIN_REF``) — gemmlowp fixed-point
  requantization; this is the golden oracle and matches it bit for bit;
* ``"xnnpack"``: what the default ``Interpreter`` computes — the XNNPACK delegate runs the uint8/int8
  convolutions and FULLY_CONNECTED with float32 requantization and round-half-to-even, and ADD and MEAN with its
  own arithmetic (:mod:`mobilenet_np.kernels.integer_ops`); AVERAGE_POOL_2D, SOFTMAX, RESHAPE and QUANTIZE give
  the same bytes as the reference formulas (measured on every fixture).

Both modes match their interpreter on every tensor of every fixture file and photo (``tests/test_integer.py``).
One measured exception inside "reference": TFLite's int8 per-channel FULLY_CONNECTED rounds once, not twice
(:data:`mobilenet_np.kernels.integer_fixedpoint.MODE_SINGLE_ROUNDING`); it is applied automatically.

**Batch.** TFLite files are fixed at batch 1; here any batch size runs. Every op works per image, and a
RESHAPE or SQUEEZE whose file shapes keep a leading batch axis of 1 (``[1,1,1,1001] -> [1,1001]``) is
generalized to ``[N, ...]`` with the same trailing shape. Images must have the file's height, width and channels.

**Inputs.** Integer images of the input tensor's type (uint8 or int8) are used as they are, exactly as
TFLite takes them. Float images are converted first, by ``float_input``:

* ``"pixels"`` (default, for images in [0, 1] — the TF-Hub convention): ``p = rint(255 x)`` is the 8-bit
  pixel, fed as ``q = p`` (uint8 input) or ``q = p - 128`` (int8 input). This is what matches feeding TFLite
  the same 8-bit photo: the slim/Coral files (scale 1/128, zero point 128) expect the raw pixel value.
  (Quantizing the model's real input ``2x - 1`` instead would give ``round(256 x)``, not the pixel.)
* ``"real"``: ``x`` is the real value of the input tensor: ``q = clamp(round_half_away(x / scale) + zero_point)``.

A float ``.tflite`` (no quantization) runs through the float kernels of :mod:`mobilenet_np.kernels` with its
float input taken as is.

**Endpoints** are keyed by TF-slim names read from the tensor names (the first ``;``-separated part, scope
prefix dropped): ``MobilenetV1/MobilenetV1/Conv2d_3_depthwise/Relu6`` -> ``Conv2d_3_depthwise``,
``MobilenetV2/expanded_conv_4/project/add_fold`` -> ``expanded_conv_4/project``, the residual ADD
``MobilenetV2/expanded_conv_4/add`` -> ``expanded_conv_4``, the pooling -> ``AvgPool_1a`` (V1) /
``global_pool`` (V2), the logits conv -> ``Logits/Conv2d_1c_1x1``, its squeeze -> ``Logits``, the softmax ->
``Predictions``; any other tensor keeps its full name. ``"output"`` is the model's output tensor exactly as
TFLite returns it.
"""
import math
import os

import numpy as np

from .errors import InputError, UnsupportedFormatError
from .integer_executor import IntegerExecutor, NotAChain, finish, keeps_batch, read_chain
from .kernels import integer_fixedpoint as FP
from .kernels import integer_ops as IO
from .kernels import kernel_set
from .kernels.padding import same_padding
from weights_tools.names import PROJECT_RE, slim_endpoint_name

DEFAULT_BATCH_SIZE = 64
FLOAT_INPUT_RULES = ("pixels", "real")
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "ADD", "MEAN", "RESHAPE",
                 "SQUEEZE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "PAD")

_INT_TYPES = (np.dtype(np.uint8), np.dtype(np.int8))


def _pads(padding, h, w, kh, kw, sh, sw, dh=1, dw=1):
    if padding == "VALID":
        return (0, 0, 0, 0)
    _, top, bottom = same_padding(h, dh * (kh - 1) + 1, sh)
    _, left, right = same_padding(w, dw * (kw - 1) + 1, sw)
    return (top, bottom, left, right)


class IntegerModel:
    """Runs a parsed ``.tflite`` (:class:`weights_tools.tflite.TFLiteModel`) bit for bit like TFLite.

    ``rounding``: ``"reference"`` (BUILTIN_REF kernels, default) or ``"xnnpack"`` (the default interpreter);
    ``engine``: ``"numba"`` (the fast executor when the model fits it, see :attr:`fast_path`; else the per-op
    kernels), ``"ops"`` (always the per-op Numba kernels) or ``"numpy"`` (the readable twins);
    ``float_input``: ``"pixels"`` or ``"real"``; ``threads``: images run in parallel on the fast executor.
    """

    def __init__(self, tflite, rounding="reference", *, engine="numba", float_input="pixels", threads=1):
        if engine not in ("numba", "ops", "numpy"):
            raise ValueError(f"engine must be 'numba', 'ops' or 'numpy', got {engine!r}")
        if float_input not in FLOAT_INPUT_RULES:
            raise ValueError(f"float_input must be one of {FLOAT_INPUT_RULES}, got {float_input!r}")
        self.tflite = tflite
        self.rounding = rounding
        self._mode = FP.rounding_code(rounding)
        self.engine = engine
        self.float_input = float_input
        self._threads = threads
        self._k = kernel_set("numpy" if engine == "numpy" else "numba")
        src = os.path.basename(tflite.source)
        if len(tflite.inputs) != 1 or not tflite.outputs:
            raise UnsupportedFormatError(f"{src}: expected one input tensor and at least one output, found "
                                         f"{len(tflite.inputs)} inputs and {len(tflite.outputs)} outputs")
        unsupported = sorted({op.name for op in tflite.operators if op.name not in SUPPORTED_OPS})
        if unsupported:
            raise UnsupportedFormatError(f"{src}: unsupported TFLite op(s) {', '.join(unsupported)} "
                                         f"(supported: {', '.join(SUPPORTED_OPS)})")
        self.input_tensor = tflite.tensors[tflite.inputs[0]]
        self.output_tensor = tflite.tensors[tflite.outputs[0]]
        if len(self.input_tensor.shape) != 4:
            raise UnsupportedFormatError(f"{src}: input tensor of shape {self.input_tensor.shape} is not NHWC")
        self.family = next((f for f in ("MobilenetV1", "MobilenetV2")
                            if any(t.name.startswith(f + "/") for t in tflite.tensors)), None)
        self._src = src
        self._check_wiring()
        self._steps = []
        for op in tflite.operators:
            try:
                self._steps.append(self._prepare(op))
            except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
                raise UnsupportedFormatError(f"{src}: operator {op.index} ({op.name}) cannot be prepared: "
                                             f"{type(exc).__name__}: {exc}") from None
        self.endpoint_names = self._endpoint_names()
        self._chain = self._executor = None
        self.fast_path = "off (engine=%r)" % engine
        if engine == "numba":
            try:
                self._chain = read_chain(self)
                self._executor = IntegerExecutor(self._chain, threads)
                self.fast_path = "fast executor"
            except NotAChain as exc:
                self._chain = None
                self.fast_path = f"per-op kernels: {exc}"

    # Pickling (multiprocessing, Dask, Ray): the prepared ops are closures, so the model is built again from
    # the parsed file and the options; of what was set on it later, the hub attributes travel too.
    _PICKLED_ATTRIBUTES = ("module_kind", "batch_norm_momentum")

    def __getstate__(self):
        options = dict(rounding=self.rounding, engine=self.engine, float_input=self.float_input,
                       threads=self._threads)
        return {"tflite": self.tflite, "options": options,
                "attributes": {k: v for k, v in self.__dict__.items() if k in self._PICKLED_ATTRIBUTES}}

    def __setstate__(self, state):
        self.__init__(state["tflite"], **state["options"])
        self.__dict__.update(state["attributes"])

    def _check_wiring(self):
        """Every computed input of every op (the first; both for ADD) is the model input or an earlier output."""
        produced = {self.input_tensor.index}
        for op in self.tflite.operators:
            for i in op.inputs[:2] if op.name == "ADD" else op.inputs[:1]:
                if i not in produced:
                    name = self.tflite.tensors[i].name if i >= 0 else "(absent)"
                    raise UnsupportedFormatError(f"{self._src}: operator {op.index} ({op.name}) reads tensor {i} "
                                                 f"{name!r}, which is neither the model input nor computed before")
            produced.update(op.outputs)
        if self.output_tensor.index not in produced:
            raise UnsupportedFormatError(f"{self._src}: the output tensor is never computed")

    # --------------------------------------------------------------------------------------- preparation
    def _fail(self, op, message):
        raise UnsupportedFormatError(f"{self._src}: operator {op.index} ({op.name}): {message}")

    def _const(self, op, index, what):
        t = self.tflite.tensors[index]
        if t.data is None:
            self._fail(op, f"{what} (tensor {t.name!r}) is not a constant")
        return t.data

    def _quant(self, op, t, what):
        if t.dtype not in _INT_TYPES or not t.quantization.is_quantized:
            self._fail(op, f"{what} tensor {t.name!r} is {t.type_name} without int8/uint8 quantization")
        if t.quantization.scale.size != 1:
            self._fail(op, f"{what} tensor {t.name!r} has per-channel quantization")
        return np.float32(t.scale), t.zero_point

    def _prepare(self, op):
        t = self.tflite.tensors
        ins = [t[i] if i >= 0 else None for i in op.inputs]
        out = t[op.outputs[0]]
        if ins and ins[0] is not None and ins[0].dtype == np.float32 and out.dtype == np.float32 \
                and op.name != "DEQUANTIZE":
            return self._prepare_float(op, ins, out)
        return getattr(self, "_prep_" + op.name.lower())(op, ins, out)

    def _act(self, op, out):
        act = op.options.get("fused_activation_function", "NONE")
        if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            self._fail(op, f"fused activation {act} is not supported")
        return FP.activation_range(act, out.scale, out.zero_point, out.dtype)

    def _conv_params(self, op, x, w, bias, out, channels, channel_axis):
        sx, zx = self._quant(op, x, "input")
        sy, zy = self._quant(op, out, "output")
        wq = w.quantization
        if w.dtype not in _INT_TYPES or not wq.is_quantized:
            self._fail(op, f"filter {w.name!r} is {w.type_name} without quantization")
        if wq.per_channel and wq.quantized_dimension != channel_axis:
            self._fail(op, f"filter {w.name!r} is quantized along dimension {wq.quantized_dimension}, "
                           f"expected {channel_axis}")
        # TFLite's legacy per-tensor multiplier (uint8 convolutions, per-tensor FC) rounds s_x * s_w to float32.
        legacy = (not wq.per_channel) if op.name == "FULLY_CONNECTED" else x.dtype == np.uint8
        qm, shift, fscale = FP.conv_multipliers(sx, wq.scale, sy, channels, float32_product=legacy)
        if bias is None:
            b = np.zeros(channels, np.int32)
        else:
            b = self._const(op, bias.index, "bias")
            if b.dtype != np.int32 or b.shape != (channels,):
                self._fail(op, f"bias {bias.name!r} is {b.dtype} {b.shape}, expected int32 ({channels},)")
            b = np.ascontiguousarray(b, np.int32)
        lo, hi = self._act(op, out)
        return zx, b, (qm, shift, fscale, zy, lo, hi)

    def _filter(self, op, w, layout, what="filter"):
        """The constant filter ``w`` minus its zero point(s), int32, in a kernel's layout: ``"hwio"`` (CONV_2D,
        stored OHWI), ``"hwc"`` (DEPTHWISE_CONV_2D, stored ``[1, KH, KW, C]``) or ``"io"`` (FULLY_CONNECTED, or
        a 1x1 CONV_2D, as the matrix ``[K, C_out]``)."""
        q = np.asarray(self._const(op, w.index, what)).astype(np.int32)
        zw = w.quantization.zero_point.astype(np.int32)
        if layout == "hwc":
            return np.ascontiguousarray(q[0] - zw.reshape(-1))
        q = q - zw.reshape((-1,) + (1,) * (q.ndim - 1))
        if layout == "hwio":
            return np.ascontiguousarray(q.transpose(1, 2, 3, 0))
        return np.ascontiguousarray(q.reshape(len(q), -1).T)

    def _prep_conv_2d(self, op, ins, out):
        x, w, bias = (ins + [None])[:3]
        o = op.options
        wdata = self._const(op, w.index, "filter")
        cout, kh, kw, cin = wdata.shape
        zx, b, rq = self._conv_params(op, x, w, bias, out, cout, 0)
        wc = self._filter(op, w, "hwio")
        strides, dil = (o["stride_h"], o["stride_w"]), (o["dilation_h_factor"], o["dilation_w_factor"])
        conv = self._k["int_conv2d"]
        mode = self._mode
        pad_rule = o["padding"]

        def run(v):
            xv = v[x.index]
            pads = _pads(pad_rule, xv.shape[1], xv.shape[2], kh, kw, *strides, *dil)
            return conv(xv, zx, wc, b, strides, dil, pads, *rq[:3], rq[3], rq[4], rq[5], mode)
        return run

    def _prep_depthwise_conv_2d(self, op, ins, out):
        x, w, bias = (ins + [None])[:3]
        o = op.options
        wdata = self._const(op, w.index, "filter")
        _, kh, kw, cout = wdata.shape
        cin = x.shape[3]
        if cout % cin:
            self._fail(op, f"{cout} output channels are not a multiple of {cin} input channels")
        mult = cout // cin
        zx, b, rq = self._conv_params(op, x, w, bias, out, cout, 3)
        wc = self._filter(op, w, "hwc")
        strides, dil = (o["stride_h"], o["stride_w"]), (o["dilation_h_factor"], o["dilation_w_factor"])
        conv = self._k["int_depthwise_conv2d"]
        mode = self._mode
        pad_rule = o["padding"]

        def run(v):
            xv = v[x.index]
            pads = _pads(pad_rule, xv.shape[1], xv.shape[2], kh, kw, *strides, *dil)
            return conv(xv, zx, wc, b, mult, strides, dil, pads, *rq[:3], rq[3], rq[4], rq[5], mode)
        return run

    def _prep_fully_connected(self, op, ins, out):
        x, w, bias = (ins + [None])[:3]
        if op.options.get("keep_num_dims"):
            self._fail(op, "keep_num_dims is not supported")
        wdata = self._const(op, w.index, "weights")
        cout, k = wdata.shape
        zx, b, rq = self._conv_params(op, x, w, bias, out, cout, 0)
        wc = self._filter(op, w, "io", "weights").reshape(1, 1, k, cout)
        conv = self._k["int_conv2d"]
        mode = self._mode
        if mode == FP.MODE_REFERENCE and w.quantization.per_channel and x.dtype == np.int8:
            mode = FP.MODE_SINGLE_ROUNDING   # measured: the reference int8 per-channel FC rounds once

        def run(v):
            xv = v[x.index].reshape(-1, 1, 1, k)
            y = conv(xv, zx, wc, b, (1, 1), (1, 1), (0, 0, 0, 0), *rq[:3], rq[3], rq[4], rq[5], mode)
            return y.reshape(-1, cout)
        return run

    def _prep_average_pool_2d(self, op, ins, out):
        x = ins[0]
        sx, zx = self._quant(op, x, "input")
        sy, zy = self._quant(op, out, "output")
        if sx != sy or zx != zy:
            self._fail(op, "input and output quantization differ (TFLite requires them equal)")
        o = op.options
        lo, hi = self._act(op, out)
        fhw, strides = (o["filter_height"], o["filter_width"]), (o["stride_h"], o["stride_w"])
        pool = self._k["int_avg_pool"]
        pad_rule = o["padding"]

        def run(v):
            xv = v[x.index]
            pads = _pads(pad_rule, xv.shape[1], xv.shape[2], *fhw, *strides)
            return pool(xv, fhw, strides, pads, lo, hi)
        return run

    def _prep_add(self, op, ins, out):
        a, b = ins[:2]
        if a.shape != b.shape or a.data is not None or b.data is not None:
            self._fail(op, f"only ADD of two computed tensors of equal shape is supported ({a.shape}, {b.shape})")
        sa, za = self._quant(op, a, "first input")
        sb, zb = self._quant(op, b, "second input")
        sy, zy = self._quant(op, out, "output")
        lo, hi = self._act(op, out)
        if self._mode == FP.MODE_XNNPACK:
            ma, mb, shift = IO.add_params_xnnpack(sa, sb, sy)
            add_x = self._k["int_add_xnnpack"]
            return lambda v: add_x(v[a.index], v[b.index], za, zb, ma, mb, shift, zy, lo, hi)
        params = IO.add_params(sa, sb, sy)
        add = self._k["int_add"]
        return lambda v: add(v[a.index], v[b.index], za, zb, params, IO.ADD_LEFT_SHIFT, zy, lo, hi)

    def _prep_mean(self, op, ins, out):
        x, axes_t = ins[:2]
        axes = sorted(int(a) % 4 for a in np.asarray(self._const(op, axes_t.index, "axes")).reshape(-1))
        if len(x.shape) != 4 or axes != [1, 2]:
            self._fail(op, f"MEAN over axes {axes} of a rank-{len(x.shape)} tensor (only H, W of NHWC)")
        sx, zx = self._quant(op, x, "input")
        sy, zy = self._quant(op, out, "output")
        qm, shift = IO.mean_params(sx, sy, x.shape[1] * x.shape[2])
        fscale = IO.mean_scale_xnnpack(sx, sy, x.shape[1] * x.shape[2])
        lo, hi = FP.dtype_range(out.dtype)
        keep = op.options.get("keep_dims", False)
        mean = self._k["int_mean_hw"]
        mode = self._mode

        def run(v):
            y = mean(v[x.index], zx, qm, shift, fscale, zy, lo, hi, mode)
            return y[:, None, None, :] if keep else y
        return run

    def _prep_reshape(self, op, ins, out):
        x = ins[0]
        dst = out.shape
        batch_kept = keeps_batch(x, out)

        def run(v):
            xv = v[x.index]
            if batch_kept:
                return xv.reshape((xv.shape[0],) + tuple(dst[1:]))
            if xv.size != math.prod(dst):
                raise InputError(f"{op.name} to the fixed shape {dst} cannot take a tensor of shape {xv.shape}")
            return xv.reshape(dst)
        return run

    _prep_squeeze = _prep_reshape

    def _softmax_params(self, op, x, out):
        """``(table, s_y, z_y, uint8 output, qmin, qmax)``: the arguments :func:`~mobilenet_np.kernels.int_softmax`
        takes after its input, for the integer SOFTMAX ``op`` from ``x`` to ``out``."""
        sx, _ = self._quant(op, x, "input")
        sy, zy = self._quant(op, out, "output")
        lo, hi = FP.dtype_range(out.dtype)
        return IO.softmax_table(sx, op.options.get("beta", 1.0)), sy, zy, out.dtype == np.uint8, lo, hi

    def _prep_softmax(self, op, ins, out):
        x = ins[0]
        params = self._softmax_params(op, x, out)
        softmax = self._k["int_softmax"]

        def run(v):
            xv = v[x.index]
            y = softmax(xv.reshape(-1, xv.shape[-1]), *params)
            return y.reshape(xv.shape)
        return run

    def _prep_quantize(self, op, ins, out):
        x = ins[0]
        sy, zy = self._quant(op, out, "output")
        lo, hi = FP.dtype_range(out.dtype)
        if x.dtype == np.float32:
            quantize = self._k["int_quantize"]
            return lambda v: quantize(v[x.index], sy, zy, lo, hi)
        sx, zx = self._quant(op, x, "input")
        qm, shift = FP.quantize_multiplier(float(sx) / float(sy))
        requantize = self._k["int_requantize"]
        return lambda v: requantize(v[x.index], zx, qm, shift, zy, lo, hi)

    def _prep_dequantize(self, op, ins, out):
        x = ins[0]
        if x.dtype == np.float16:
            return lambda v: v[x.index].astype(np.float32)
        sx, zx = self._quant(op, x, "input")
        dequantize = self._k["int_dequantize"]
        return lambda v: dequantize(v[x.index], sx, zx)

    def _prep_pad(self, op, ins, out):
        x, p = ins[:2]
        paddings = np.asarray(self._const(op, p.index, "paddings")).reshape(-1, 2)
        if paddings.shape[0] != len(x.shape) or paddings[0].any():
            self._fail(op, f"paddings {paddings.tolist()} (the batch axis must not be padded)")
        value = out.zero_point if out.dtype in _INT_TYPES else 0
        return lambda v: IO.int_pad_numpy(v[x.index], paddings, value)

    # float .tflite files: the float kernels of mobilenet_np.kernels
    def _prepare_float(self, op, ins, out):
        fk = self._k
        o = op.options
        act = o.get("fused_activation_function", "NONE")
        if act not in ("NONE", "RELU6"):
            self._fail(op, f"float op with fused activation {act}")
        relu6 = act == "RELU6"
        x = ins[0]
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = np.asarray(self._const(op, ins[1].index, "filter"), np.float32)
            b = (np.asarray(self._const(op, ins[2].index, "bias"), np.float32) if len(ins) > 2 and ins[2]
                 else np.zeros(w.shape[0] if op.name == "CONV_2D" else w.shape[3], np.float32))
            if o["stride_h"] != o["stride_w"] or o["dilation_h_factor"] != 1 or o["dilation_w_factor"] != 1:
                self._fail(op, "float convolution with unequal strides or dilation")
            s = o["stride_h"]
            if op.name == "CONV_2D":
                kh, kw = w.shape[1:3]
                whwio = np.ascontiguousarray(w.transpose(1, 2, 3, 0))
                if kh == kw == 1 and s == 1:
                    wp = np.ascontiguousarray(whwio[0, 0])
                    return lambda v: fk["pointwise_conv2d"](np.ascontiguousarray(v[x.index]), wp, b, relu6)

                def run(v):
                    xv = np.ascontiguousarray(v[x.index])
                    return fk["conv2d"](xv, whwio, b, s, _pads(o["padding"], xv.shape[1], xv.shape[2], kh, kw, s, s),
                                        relu6)
                return run
            kh, kw, cout = w.shape[1:]
            mult = cout // x.shape[3]
            wd = np.ascontiguousarray(w[0].reshape(kh, kw, x.shape[3], mult))

            def run(v):
                xv = np.ascontiguousarray(v[x.index])
                return fk["depthwise_conv2d"](xv, wd, b, s, _pads(o["padding"], xv.shape[1], xv.shape[2], kh, kw,
                                                                  s, s), relu6)
            return run
        if op.name == "AVERAGE_POOL_2D":
            if (o["padding"] != "VALID" or (o["filter_height"], o["filter_width"]) != tuple(x.shape[1:3])
                    or act != "NONE"):
                self._fail(op, "float AVERAGE_POOL_2D other than a global (whole-map, VALID) pool")
            return lambda v: fk["global_avg_pool"](np.ascontiguousarray(v[x.index]))[:, None, None, :]
        if op.name in ("RESHAPE", "SQUEEZE"):
            return self._prep_reshape(op, ins, out)
        if op.name == "SOFTMAX":
            if o.get("beta", 1.0) != 1.0:
                self._fail(op, "float SOFTMAX with beta != 1")
            return lambda v: fk["softmax"](np.ascontiguousarray(v[x.index].reshape(-1, v[x.index].shape[-1])))\
                .reshape(v[x.index].shape)
        self._fail(op, "float version of this op is not supported")

    def _endpoint_names(self):
        names, used = {}, set()
        for op in self.tflite.operators:
            for i in op.outputs:
                t = self.tflite.tensors[i]
                name = slim_endpoint_name(t.name, op.name, self.family)
                if name is None or name in used:
                    name = t.name
                used.add(name)
                names[i] = name
        return names

    # --------------------------------------------------------------------------------------- execution
    def quantize_input(self, images):
        """Images as the input tensor's type (see the module doc for the float rules); checks shape and dtype."""
        x = np.asarray(images)
        t = self.input_tensor
        if x.ndim != 4:
            hint = " (for one image use images[None])" if x.ndim == 3 else ""
            raise InputError(f"images must have shape [batch, height, width, channels]; got {x.shape}{hint}")
        if tuple(x.shape[1:]) != tuple(t.shape[1:]):
            raise InputError(f"this model takes images of {t.shape[1]}x{t.shape[2]}x{t.shape[3]}; "
                             f"got {x.shape[1]}x{x.shape[2]}x{x.shape[3]}")
        want = t.dtype
        if x.dtype == want:
            return np.ascontiguousarray(x)
        if x.dtype.kind != "f":
            raise InputError(f"images must be {want} (as the model's input tensor) or float; got {x.dtype}")
        if want == np.float32:
            return np.ascontiguousarray(x, np.float32)
        if not np.all(np.isfinite(x)):
            raise InputError("images contain NaN or infinite values")
        lo, hi = FP.dtype_range(want)
        if self.float_input == "pixels":
            if x.size and (x.min() < 0.0 or x.max() > 1.0):
                raise InputError(f"float images must lie in [0, 1]; got range [{x.min():.4g}, {x.max():.4g}]")
            q = np.rint(x.astype(np.float64) * 255.0).astype(np.int64) + (lo if want == np.int8 else 0)
        else:
            q = IO.int_quantize_numpy(x.astype(np.float32), np.float32(t.scale), t.zero_point, lo, hi)
        return np.clip(q, lo, hi).astype(want)

    def run(self, images):
        """Every tensor computed for ``images``: ``{tensor index: array}`` (each in its tensor's dtype)."""
        return self.run_ops({self.input_tensor.index: self.quantize_input(images)}, 0)

    def run_ops(self, values, first):
        """Run operators ``first``, ``first + 1``, ... on the tensors in ``values`` (``{tensor index: array}``),
        adding their outputs to it; returns ``values``."""
        tensors = self.tflite.tensors
        for op, step in zip(self.tflite.operators[first:], self._steps[first:]):
            y = step(values)
            out = tensors[op.outputs[0]]
            values[out.index] = y.astype(out.dtype, copy=False) if out.dtype is not None else y
        return values

    def _value(self, images, t):
        """Tensor ``t``'s value for ``images`` (on the fast executor: only what it needs is computed)."""
        if self._executor is None:
            return self.run(images)[t.index]
        return finish(self._chain, self._executor, self, self.quantize_input(images), t.index)

    def endpoints(self, images):
        """``{slim endpoint name: integer tensor}`` for every op output, plus ``"output"`` (see module doc).

        As in the float :class:`~mobilenet_np.model.Model`, every V2 block has an endpoint: a block without a
        residual ADD (``expanded_conv``, strided blocks, ...) ends with its ``project`` tensor, which is then
        also returned under the block's name.
        """
        values = self.run(images)
        ends = {self.endpoint_names[i]: values[i] for i in self.endpoint_names}
        for name in list(ends):
            m = PROJECT_RE.match(name)
            if m and m.group(1) not in ends:
                ends[m.group(1)] = ends[name]
        ends["output"] = values[self.output_tensor.index]
        return ends

    def _batched(self, images, batch_size, fn):
        x = np.asarray(images)
        if x.ndim == 4 and len(x) > batch_size:
            return np.concatenate([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        return fn(x)

    def _dequantized(self, t, q):
        if t.dtype not in _INT_TYPES:
            return np.asarray(q, np.float32)
        return self._k["int_dequantize"](q, np.float32(t.scale), t.zero_point)

    def output(self, images, batch_size=DEFAULT_BATCH_SIZE):
        """The output tensor as TFLite returns it (uint8/int8/float32), ``[N, ...]``."""
        return self._batched(images, batch_size, lambda x: self._value(x, self.output_tensor))

    def classify(self, images, batch_size=DEFAULT_BATCH_SIZE):
        """The dequantized output ``[N, classes]`` — softmax probabilities (or logits, if the model ends there)."""
        t = self.output_tensor
        return self._batched(images, batch_size, lambda x: self._dequantized(t, self._value(x, t)))

    def predictions(self, images, batch_size=DEFAULT_BATCH_SIZE):
        """Class probabilities ``[N, classes]``: the dequantized softmax output, or the softmax of the dequantized
        logits when the model ends before its softmax."""
        scores = self.classify(images, batch_size)
        if self.tflite.operators and self.tflite.operators[-1].name == "SOFTMAX":
            return scores
        return self._k["softmax"](np.ascontiguousarray(scores.reshape(len(scores), -1), np.float32))

    @property
    def feature_tensor(self):
        """The pooled feature tensor: output of the last AVERAGE_POOL_2D or MEAN."""
        for op in reversed(self.tflite.operators):
            if op.name in ("AVERAGE_POOL_2D", "MEAN"):
                return self.tflite.tensors[op.outputs[0]]
        raise UnsupportedFormatError(f"{self._src}: no pooling op, so no feature vector")

    def features(self, images, batch_size=DEFAULT_BATCH_SIZE):
        """The dequantized pooled features ``[N, C]``."""
        t = self.feature_tensor

        def fn(x):
            q = self._value(x, t)
            return self._dequantized(t, q).reshape(len(q), -1)
        return self._batched(images, batch_size, fn)

    @property
    def input_size(self):
        return tuple(self.input_tensor.shape[1:3])

    @property
    def num_classes(self):
        return int(self.output_tensor.shape[-1])

    def __repr__(self):
        return (f"IntegerModel({self._src!r}, {len(self._steps)} ops, input {self.input_tensor.type_name} "
                f"{'x'.join(map(str, self.input_tensor.shape[1:]))}, rounding={self.rounding!r}, "
                f"engine={self.engine!r})")


def load_integer(path, rounding="reference", *, engine="numba", float_input="pixels", threads=1):
    """Read a ``.tflite`` file (TF-free reader) and return an :class:`IntegerModel`."""
    from weights_tools.tflite import read_tflite

    return IntegerModel(read_tflite(path), rounding, engine=engine, float_input=float_input, threads=threads)
