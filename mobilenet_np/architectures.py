"""MobileNet V1 and V2 as data: layer tables, depth rules, variable names, multiply-add counts.

Names are the TF-slim ones everywhere: a layer's ``name`` is its variable scope inside the network scope
(``Conv2d_3_depthwise``, ``expanded_conv_5/expand``, ``Logits/Conv2d_1c_1x1``), which is also the endpoint
name our model reports and the HDF5 group its variables live in. Grep for it in a TF checkpoint, a TFLite
file or our weights and you find the same layer.

Every convolution uses TF 'SAME' padding and, except the logits, has batch norm (epsilon 0.001). Activation
is ReLU6 except on V2's linear ``project`` layers and the logits.
"""
from dataclasses import dataclass, field
from typing import Optional, Tuple

from .kernels.padding import same_padding

V1 = "mobilenet_v1"
V2 = "mobilenet_v2"
SCOPES = {V1: "MobilenetV1", V2: "MobilenetV2"}
FEATURE_ENDPOINTS = {V1: "AvgPool_1a", V2: "global_pool"}
BATCH_NORM_EPSILON = 0.001   # slim default; neither mobilenet_v1_arg_scope nor V2's training_scope overrides it
MIN_INPUT_SIZE = 32          # total stride is 32: below this the last layers would see a 0-pixel map
BATCH_NORM_VARIABLES = ("beta", "gamma", "moving_mean", "moving_variance")

# MobileNet V1 (slim mobilenet_v1.py _CONV_DEFS): a 3x3 stride-2 conv, then 13 depthwise-separable blocks
# given as (stride of the depthwise 3x3, base depth of the pointwise 1x1).
V1_STEM = (3, 2, 32)  # kernel, stride, base depth of Conv2d_0
V1_BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
             (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))

# MobileNet V2 (slim mobilenet_v2.py V2_DEF), torchvision-style legend:
# t = expansion factor, c = base output depth, n = repeats, s = stride of the first repeat.
V2_STEM = (3, 2, 32)
V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
V2_LAST_CONV = 1280


def v1_depth(base, depth_multiplier, min_depth=8):
    """V1 depth rule: ``max(int(base * alpha), min_depth)`` (``int`` truncates)."""
    return max(int(base * depth_multiplier), min_depth)


def make_divisible(value, divisor=8, min_value=None):
    """V2 depth rule: round to the nearest multiple of ``divisor`` (halves up), never below ``min_value``
    (default ``divisor``), and add one ``divisor`` if rounding lost more than 10 %."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass(frozen=True)
class Layer:
    """One convolution of the network.

    ``op`` is ``conv`` (full KxK), ``depthwise`` (KxK per channel, channel multiplier 1), ``pointwise`` (1x1)
    or ``logits`` (1x1 with biases on the pooled vector). ``block`` groups V2's expand/depthwise/project;
    ``ends_block`` marks the layer after which the block output exists, with ``residual`` saying whether the
    block input is added to it (stride 1 and equal depths).
    """
    name: str
    op: str
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    batch_norm: bool = True
    relu6: bool = True
    bias: bool = False
    block: Optional[str] = None
    ends_block: bool = False
    residual: bool = False

    def __post_init__(self):
        assert self.op in ("conv", "depthwise", "pointwise", "logits"), self.op
        assert self.stride in (1, 2), self.stride
        assert self.op != "depthwise" or self.in_channels == self.out_channels
        assert not self.residual or (self.stride == 1 and self.ends_block), self.name

    def weight_shape(self):
        """Shape of the stored kernel variable, TF layout (HWIO; depthwise [K, K, C, 1])."""
        if self.op == "depthwise":
            return (self.kernel, self.kernel, self.in_channels, 1)
        return (self.kernel, self.kernel, self.in_channels, self.out_channels)

    def variables(self, scope):
        """``{variable name: shape}`` of this layer as TF-slim names it."""
        prefix = f"{scope}/{self.name}/"
        names = {prefix + ("depthwise_weights" if self.op == "depthwise" else "weights"): self.weight_shape()}
        if self.batch_norm:
            names.update({prefix + "BatchNorm/" + v: (self.out_channels,) for v in BATCH_NORM_VARIABLES})
        if self.bias:
            names[prefix + "biases"] = (self.out_channels,)
        return names

    def macs(self, out_h, out_w):
        """Multiply-accumulates: one per kernel tap, input channel (1 for depthwise) and output element."""
        per_output = self.kernel * self.kernel * (1 if self.op == "depthwise" else self.in_channels)
        return out_h * out_w * self.out_channels * per_output


@dataclass(frozen=True)
class Architecture:
    """A MobileNet with a given depth multiplier: its body layers, pooled feature, optional logits."""
    family: str
    depth_multiplier: float
    layers: Tuple[Layer, ...]
    num_classes: int = 1001
    default_size: Tuple[int, int] = (224, 224)
    batch_norm_epsilon: float = BATCH_NORM_EPSILON
    logits: Optional[Layer] = field(default=None)

    @property
    def scope(self):
        return SCOPES[self.family]

    @property
    def feature_endpoint(self):
        return FEATURE_ENDPOINTS[self.family]

    @property
    def num_features(self):
        return self.layers[-1].out_channels

    def all_layers(self):
        return self.layers + ((self.logits,) if self.logits else ())

    def variables(self):
        """``{slim variable name: shape}`` of every variable the model needs, in network order."""
        names = {}
        for layer in self.all_layers():
            names.update(layer.variables(self.scope))
        return names

    def spatial_plan(self, height, width):
        """``[(layer, (in_h, in_w), (out_h, out_w))]`` for an input of ``height`` x ``width`` pixels."""
        plan, h, w = [], height, width
        for layer in self.layers:
            out_h, out_w = same_padding(h, layer.kernel, layer.stride)[0], same_padding(w, layer.kernel, layer.stride)[0]
            plan.append((layer, (h, w), (out_h, out_w)))
            h, w = out_h, out_w
        if self.logits:
            plan.append((self.logits, (1, 1), (1, 1)))
        return plan

    def layer_table(self, height=None, width=None):
        """Rows ``dict(name, op, stride, in_channels, out_channels, input, output, params, macs)``.

        ``params`` counts the kernel (and bias) values only; batch-norm statistics are counted separately by
        :meth:`stored_values`.
        """
        height, width = (height, width) if height else self.default_size
        rows = []
        for layer, (ih, iw), (oh, ow) in self.spatial_plan(height, width):
            kernel_values = 1
            for d in layer.weight_shape():
                kernel_values *= d
            rows.append(dict(name=layer.name, op=layer.op, kernel=layer.kernel, stride=layer.stride,
                             in_channels=layer.in_channels, out_channels=layer.out_channels,
                             input=(ih, iw, layer.in_channels), output=(oh, ow, layer.out_channels),
                             params=kernel_values + (layer.out_channels if layer.bias else 0),
                             macs=layer.macs(oh, ow)))
        return rows

    def total_macs(self, height=None, width=None, include_logits=True):
        rows = self.layer_table(height, width)
        return sum(r["macs"] for r in rows if include_logits or r["op"] != "logits")

    def stored_values(self):
        """Number of float values in the variables (kernels, biases and all four batch-norm vectors)."""
        total = 0
        for shape in self.variables().values():
            n = 1
            for d in shape:
                n *= d
            total += n
        return total


def mobilenet_v1(depth_multiplier=1.0, num_classes=1001, default_size=(224, 224), min_depth=8):
    """MobileNet V1: ``Conv2d_0`` then ``Conv2d_{i}_depthwise`` / ``Conv2d_{i}_pointwise`` for i = 1..13."""
    _check_multiplier(depth_multiplier)
    kernel, stride, base = V1_STEM
    depth = v1_depth(base, depth_multiplier, min_depth)
    layers = [Layer("Conv2d_0", "conv", kernel, stride, 3, depth)]
    for i, (stride, base) in enumerate(V1_BLOCKS, start=1):
        out = v1_depth(base, depth_multiplier, min_depth)
        layers.append(Layer(f"Conv2d_{i}_depthwise", "depthwise", 3, stride, depth, depth))
        layers.append(Layer(f"Conv2d_{i}_pointwise", "pointwise", 1, 1, depth, out))
        depth = out
    return Architecture(V1, float(depth_multiplier), tuple(layers), num_classes, _size2(default_size),
                        logits=_logits_layer(depth, num_classes))


def mobilenet_v2(depth_multiplier=1.0, num_classes=1001, default_size=(224, 224), finegrain_classification_mode=True):
    """MobileNet V2: ``Conv``, 17 ``expanded_conv[_k]`` blocks (expand 1x1 -> depthwise 3x3 -> linear project
    1x1, residual when stride 1 and depths match), ``Conv_1``.

    With ``finegrain_classification_mode`` (how every published V2 with alpha < 1 was built) the last conv keeps
    1280 channels for alpha < 1.
    """
    _check_multiplier(depth_multiplier)
    kernel, stride, base = V2_STEM
    depth = make_divisible(base * depth_multiplier)
    layers = [Layer("Conv", "conv", kernel, stride, 3, depth)]
    index = 0
    for t, c, n, s in V2_BLOCKS:
        out = make_divisible(c * depth_multiplier)
        for repeat in range(n):
            stride = s if repeat == 0 else 1
            block = "expanded_conv" if index == 0 else f"expanded_conv_{index}"
            # The first block expands by 1 with divisor 1, i.e. not at all, so it has no expand layer.
            inner = depth if t == 1 else make_divisible(depth * t)
            residual = stride == 1 and depth == out
            if inner > depth:
                layers.append(Layer(f"{block}/expand", "pointwise", 1, 1, depth, inner, block=block))
            layers.append(Layer(f"{block}/depthwise", "depthwise", 3, stride, inner, inner, block=block))
            layers.append(Layer(f"{block}/project", "pointwise", 1, 1, inner, out, relu6=False, block=block,
                                ends_block=True, residual=residual))
            depth = out
            index += 1
    last_base = V2_LAST_CONV / depth_multiplier if finegrain_classification_mode and depth_multiplier < 1 else V2_LAST_CONV
    last = make_divisible(last_base * depth_multiplier)
    layers.append(Layer("Conv_1", "pointwise", 1, 1, depth, last))
    return Architecture(V2, float(depth_multiplier), tuple(layers), num_classes, _size2(default_size),
                        logits=_logits_layer(last, num_classes))


def build(family, depth_multiplier, num_classes=1001, default_size=(224, 224)):
    """The architecture for ``family`` (``mobilenet_v1`` / ``mobilenet_v2``, or ``v1`` / ``v2``)."""
    family = {"v1": V1, "v2": V2}.get(str(family).lower(), family)
    if family == V1:
        return mobilenet_v1(depth_multiplier, num_classes, default_size)
    if family == V2:
        return mobilenet_v2(depth_multiplier, num_classes, default_size)
    raise ValueError(f"unknown architecture {family!r}: expected 'mobilenet_v1' or 'mobilenet_v2'")


def _logits_layer(in_channels, num_classes):
    if not num_classes:
        return None
    return Layer("Logits/Conv2d_1c_1x1", "logits", 1, 1, in_channels, num_classes,
                 batch_norm=False, relu6=False, bias=True)


def _check_multiplier(depth_multiplier):
    if not depth_multiplier > 0:
        raise ValueError(f"depth_multiplier must be positive, got {depth_multiplier}")


def _size2(size):
    return (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))


def format_layer_table(arch, height=None, width=None):
    """The per-layer table as text (what ``mobilenet-np inspect`` and ``layers`` print)."""
    height, width = (height, width) if height else arch.default_size
    rows = arch.layer_table(height, width)
    lines = [f"{arch.family} depth_multiplier={arch.depth_multiplier:g} input={height}x{width} "
             f"num_classes={arch.num_classes}",
             f"{'layer':<26}{'op':<10}{'s':>2} {'input':>14} {'output':>14} {'params':>10} {'MACs':>12}"]
    for r in rows:
        lines.append(f"{r['name']:<26}{r['op']:<10}{r['stride']:>2} {'x'.join(map(str, r['input'])):>14} "
                     f"{'x'.join(map(str, r['output'])):>14} {r['params']:>10,} {r['macs']:>12,}")
    body = sum(r["macs"] for r in rows if r["op"] != "logits")
    lines.append(f"total MACs {sum(r['macs'] for r in rows):,} (body {body:,}); "
                 f"kernel params {sum(r['params'] for r in rows):,}; stored float values {arch.stored_values():,}")
    return "\n".join(lines)
