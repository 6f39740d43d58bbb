"""The fake-quant ("quantops") float model: what a ``tf.contrib.quantize`` eval graph computes.

The ``_quant`` MobileNet V1 releases (checkpoint, frozen graph, the TF-Hub ``quantops`` modules) were trained
with simulated quantization. Their graph runs in float32 but rounds every weight and activation tensor to an
8-bit grid, so it predicts what the uint8 TFLite model computes. Per layer (SEMANTICS.md C.2/C.3)::

    m      = gamma * rsqrt(moving_variance + eps)            BN folded the way contrib.quantize folds it,
    w_fold = w * m;   b_fold = beta - moving_mean * m         float32 op by op (kernels/quant_fold.py)
    w_q    = FQ(w_fold, weights_quant/{min,max}, narrow_range=True)       [1, 255] grid
    y      = FQ(relu6(conv(x, w_q) + b_fold), act_quant/{min,max})        [0, 255] grid

and the head::

    pooled = mean over H, W of the last layer's fake-quantized output   (AvgPool_1a; no FQ after the pool)
    logits = FQ(pooled @ FQ(W, weights_quant, narrow) + b, Logits act_quant)    (the BiasAdd output is FQ'd)
    predictions = softmax(logits)

``FQ`` is TF's ``FakeQuantWithMinMaxVars`` (kernels/fake_quant.py). Every step is computed the way TF 2.21
computes it on x86-64 -- its ``Rsqrt`` (kernels/quant_fold.py), its convolution and pooling summation order
(fused multiply-add chains, kernels/fma_conv.py), separate bias adds -- so on such a CPU every endpoint is
bit-identical to TF running the released graph (tests/test_fake_quant.py). The ranges are the ``min``/``max``
scalars stored with the model (checkpoint variables or frozen-graph consts), never recomputed from the weights.
The biases are not quantized (TFLite makes them int32). Op names put the ranges under
``MobilenetV1/MobilenetV1/<layer>/{weights_quant,act_quant}/{min,max}`` for the body and
``MobilenetV1/Logits/Conv2d_1c_1x1/...`` for the logits.

Optional input fake-quant: the TF-Hub quantops modules of version 3 fake-quantize the [-1, 1] image with a range
widened by 0.05 % (``input_range=(-1.0005, 1.0005)``, SEMANTICS.md E.4); off by default, as in the ``_quant``
checkpoint and frozen graph, which feed the network directly.
"""
import math

import numpy as np

from . import architectures
from .errors import MobileNetError, UnsupportedFormatError, VariableMismatchError, WeightsError
from .kernels import same_pads
from .kernels.fake_quant import nudge_full
from .kernels.quant_fold import fold_batch_norm_quant
from .model import Model

#: The hub v3 quantops input range ("boundaries overestimated by 0.05 %"), for ``input_range=``.
HUB_V3_INPUT_RANGE = (-1.0005, 1.0005)
QUANT_KINDS = ("weights_quant", "act_quant")


def quant_contexts(architecture, layer):
    """Candidate op-name prefixes under which ``layer``'s fake-quant ranges live, most likely first.

    slim re-enters the network scope for the body (``MobilenetV1/MobilenetV1/Conv2d_0``) but not for the head
    (``MobilenetV1/Logits/Conv2d_1c_1x1``).
    """
    scope = architecture.scope
    nested, flat = f"{scope}/{scope}/{layer.name}", f"{scope}/{layer.name}"
    return (flat, nested) if layer.op == "logits" else (nested, flat)


def find_quant_ranges(architecture, variables):
    """``({layer name: {"weights_quant": (min, max), "act_quant": (min, max)}}, missing variable names)``."""
    ranges, missing = {}, []
    for layer in architecture.all_layers():
        contexts = quant_contexts(architecture, layer)
        ctx = next((c for c in contexts if f"{c}/act_quant/min" in variables or f"{c}/weights_quant/min" in variables),
                   contexts[0])
        found = {}
        for kind in QUANT_KINDS:
            names = [f"{ctx}/{kind}/{end}" for end in ("min", "max")]
            absent = [n for n in names if n not in variables]
            if absent:
                missing.extend(absent)
                continue
            found[kind] = tuple(_scalar(variables[n], n) for n in names)
        ranges[layer.name] = found
    return ranges, missing


def _scalar(value, name):
    a = np.asarray(value)
    if a.size != 1 or a.dtype.kind != "f":
        raise WeightsError(f"fake-quant range {name} must be one float, got dtype {a.dtype} shape {a.shape}")
    return float(np.float32(a.reshape(())))


def _check_range(lo, hi, what, error=WeightsError):
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise error(f"{what}: range [{lo}, {hi}] is not finite")
    if lo > hi:
        raise error(f"{what}: min {lo} is above max {hi}")
    if lo == hi and lo != 0.0:
        raise error(f"{what}: empty range min == max == {lo} (fake quantization would give NaN)")


class FakeQuantModel(Model):
    """MobileNet V1 with tf.contrib.quantize's fake quantization: same public methods and endpoint names as
    :class:`~mobilenet_np.model.Model`, each endpoint being the fake-quantized activation TF computes.

    ``input_range``: ``None`` (default; the ``_quant`` checkpoint and frozen graph have no input fake-quant) or
    ``(min, max)`` to fake-quantize the [-1, 1] image first, e.g. :data:`HUB_V3_INPUT_RANGE` for the TF-Hub
    quantops v3 modules. ``num_bits`` (8) and ``weights_narrow_range`` (True; the attr of every
    ``weights_quant`` node in the released graphs) describe the fake-quant ops, which checkpoints do not record.
    """

    def __init__(self, architecture, variables, *, engine="numba", weights=None, input_range=None, num_bits=8,
                 weights_narrow_range=True):
        if architecture.family != architectures.V1:
            raise UnsupportedFormatError(
                f"fake-quant models are implemented for MobileNet V1 only (got {architecture.family}); V2's "
                "contrib.quantize graph adds residual-add ranges that no reference model here lets us check")
        self.num_bits = int(num_bits)
        self.weights_narrow_range = bool(weights_narrow_range)
        if input_range is not None:
            lo, hi = (float(v) for v in input_range)
            _check_range(lo, hi, "input_range", MobileNetError)
            input_range = (lo, hi)
        self.input_range = input_range
        ranges, missing = find_quant_ranges(architecture, variables)
        if missing:
            source = f" in {weights.source_file}" if weights is not None and weights.source_file else ""
            layers = sorted({n.rsplit("/", 3)[-3] for n in missing})
            hint = (" -- no fake-quant ranges at all: these are float weights, not a quantization-aware "
                    "(_quant) model; use mobilenet_np.load" if len(missing) == 4 * len(ranges) else "")
            raise VariableMismatchError(
                f"fake-quant ranges missing{source} for {len(layers)} layer(s) ({', '.join(layers[:6])}"
                f"{' ...' if len(layers) > 6 else ''}): {len(missing)} variables, e.g. "
                f"{', '.join(missing[:4])}{hint}", missing=missing)
        for name, kinds in ranges.items():
            for kind, (lo, hi) in kinds.items():
                _check_range(lo, hi, f"{name}/{kind}")
        self.quant_ranges = ranges
        self.folded = {}       # layer name -> (w_fold HWIO, b_fold): before weight fake-quant, for inspection
        super().__init__(architecture, variables, engine=engine, fold_batch_norm=True, weights=weights)
        # AvgPool_1a the way TF sums it (a float32 running sum, then / (H W)); Model._forward calls this entry.
        self._k["global_avg_pool"] = self._k["avg_pool_sequential"]

    # ---------------------------------------------------------------------------------------------- layers
    def _prepare(self, layer, variables):
        arch = self.architecture
        prefix = f"{arch.scope}/{layer.name}/"
        w = np.asarray(variables[prefix + ("depthwise_weights" if layer.op == "depthwise" else "weights")],
                       dtype=np.float32)
        if layer.batch_norm:
            stats = [np.asarray(variables[prefix + "BatchNorm/" + v], dtype=np.float32)
                     for v in ("gamma", "beta", "moving_mean", "moving_variance")]
            w, bias, _ = fold_batch_norm_quant(w, *stats, arch.batch_norm_epsilon, depthwise=layer.op == "depthwise")
        else:
            bias = (np.asarray(variables[prefix + "biases"], dtype=np.float32) if layer.bias
                    else np.zeros(layer.out_channels, np.float32))
        self.folded[layer.name] = (w, bias)
        w_min, w_max = self.quant_ranges[layer.name]["weights_quant"]
        wq = self._k["fake_quant"](w, w_min, w_max, self.num_bits, self.weights_narrow_range)
        if layer.op in ("pointwise", "logits"):
            wq = wq.reshape(wq.shape[2], wq.shape[3])
        act = self.quant_ranges[layer.name]["act_quant"]
        return layer, np.ascontiguousarray(wq), np.ascontiguousarray(bias), act

    def _conv(self, step, x):
        # TF's ops in TF's order: conv with the fake-quantized kernel (FMA chain, kernels/fma_conv.py), then
        # the folded bias as a separate add (add_fold), ReLU6, activation fake-quant.
        layer, wq, bias, (a_min, a_max) = step
        k = self._k
        if layer.op == "pointwise":
            y = k["pointwise_conv2d_fma"](x, wq)
        else:
            pads = same_pads(x.shape[1], x.shape[2], layer.kernel, layer.stride)
            fn = k["depthwise_conv2d_fma"] if layer.op == "depthwise" else k["conv2d_fma"]
            y = fn(x, wq, layer.stride, pads)
        y = y + bias
        if layer.relu6:
            y = k["relu6"](y)
        return k["fake_quant"](y, a_min, a_max, self.num_bits, False)

    def _map_input(self, x):
        x = super()._map_input(x)
        if self.input_range is not None:
            x = self._k["fake_quant"](x, self.input_range[0], self.input_range[1], self.num_bits, False)
        return x

    def _logits(self, pooled):
        layer, wq, bias, (a_min, a_max) = self._steps[-1]
        n, c = pooled.shape
        z = self._k["pointwise_conv2d_fma"](np.ascontiguousarray(pooled).reshape(n, 1, 1, c), wq).reshape(n, -1)
        return self._k["fake_quant"](z + bias, a_min, a_max, self.num_bits, False)

    # ---------------------------------------------------------------------------------------------- public
    def quantized_weights(self, name):
        """The fake-quantized kernel of layer ``name`` in TF's layout (HWIO; depthwise ``[K, K, C, 1]``)."""
        w_fold, _ = self.folded[name]
        step = next(s for s in self._steps if s[0].name == name)
        return step[1].reshape(w_fold.shape)

    def activation_quant(self, name):
        """``(nudged_min, nudged_max, scale, zero_point)`` of the activation grid of layer or endpoint ``name``
        (``"Logits"`` = the logits layer; the pooled features share the last layer's grid in TFLite, though
        their mean is not fake-quantized)."""
        arch = self.architecture
        layer = {"Logits": arch.logits.name if arch.logits else None,
                 arch.feature_endpoint: arch.layers[-1].name}.get(name, name)
        if layer not in self.quant_ranges:
            raise KeyError(f"no activation range for {name!r}")
        lo, hi = self.quant_ranges[layer]["act_quant"]
        nudged_min, nudged_max, scale, _, zero_point = nudge_full(lo, hi, self.num_bits, False)
        return float(nudged_min), float(nudged_max), float(scale), zero_point

    def __repr__(self):
        a = self.architecture
        extra = f", input_range={self.input_range}" if self.input_range else ""
        return (f"FakeQuantModel({a.family}, depth_multiplier={a.depth_multiplier:g}, input_size={a.default_size}, "
                f"num_classes={a.num_classes}, engine={self.engine!r}{extra})")


def load_fake_quant(path, *, engine="numba", input_size=None, input_range=None, **kw):
    """A :class:`FakeQuantModel` from anything :func:`mobilenet_np.read_weights` reads (the ``_quant``
    checkpoint, its frozen graph, our HDF5 converted from either). Raises :class:`VariableMismatchError` naming
    the missing ``act_quant``/``weights_quant`` ranges when the file has none (float weights)."""
    from . import read_weights

    weights = read_weights(path, input_size)
    return FakeQuantModel(weights.architecture(), weights.variables, engine=engine, weights=weights,
                          input_range=input_range, **kw)
