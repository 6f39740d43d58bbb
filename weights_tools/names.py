"""One table from every foreign naming scheme to TF-slim variable names.

Slim names (``MobilenetV1/Conv2d_3_depthwise/depthwise_weights``) are ours everywhere. Foreign schemes:

* **Keras applications** (``keras.applications.MobileNet`` / ``MobileNetV2``): one Keras layer per slim
  sub-scope, e.g. ``conv_dw_3`` -> ``Conv2d_3_depthwise``, ``block_5_expand_BN`` -> ``expanded_conv_5/expand/
  BatchNorm``; weight ``kernel`` -> ``weights``, ``depthwise_kernel`` -> ``depthwise_weights``, ``bias`` ->
  ``biases``, BN ``gamma/beta/moving_mean/moving_variance`` unchanged.
* **TFLite tensor names** carry the slim op scope (``MobilenetV1/MobilenetV1/Conv2d_3_depthwise/Relu6``),
  possibly several joined with ``;``: :func:`slim_endpoint_name` finds the endpoint inside the first part.
* **TF2 object-based checkpoints** record the original variable names (see ``saved_model.py``).
"""
import re

from mobilenet_np import architectures

KERAS_WEIGHT_LEAVES = {"kernel": "weights", "depthwise_kernel": "depthwise_weights", "bias": "biases",
                       "gamma": "BatchNorm/gamma", "beta": "BatchNorm/beta",
                       "moving_mean": "BatchNorm/moving_mean", "moving_variance": "BatchNorm/moving_variance"}

# Keras layer name -> slim layer scope (without the network scope). BN layers map to the conv they follow.
_KERAS_V1 = [(re.compile(r"^conv1(_bn)?$"), lambda m: "Conv2d_0"),
             (re.compile(r"^conv_dw_(\d+)(_bn)?$"), lambda m: f"Conv2d_{m.group(1)}_depthwise"),
             (re.compile(r"^conv_pw_(\d+)(_bn)?$"), lambda m: f"Conv2d_{m.group(1)}_pointwise"),
             (re.compile(r"^conv_preds$"), lambda m: "Logits/Conv2d_1c_1x1")]
_KERAS_V2 = [(re.compile(r"^(bn_)?Conv1$"), lambda m: "Conv"),
             (re.compile(r"^expanded_conv_(depthwise|project)(_BN)?$"), lambda m: f"expanded_conv/{m.group(1)}"),
             (re.compile(r"^block_(\d+)_(expand|depthwise|project)(_BN)?$"),
              lambda m: f"expanded_conv_{m.group(1)}/{m.group(2)}"),
             (re.compile(r"^Conv_1(_bn)?$"), lambda m: "Conv_1"),
             (re.compile(r"^(predictions|Logits)$"), lambda m: "Logits/Conv2d_1c_1x1")]
KERAS_LAYER_RULES = {architectures.V1: _KERAS_V1, architectures.V2: _KERAS_V2}


def keras_family(layer_names):
    """``mobilenet_v1`` or ``mobilenet_v2`` from a set of Keras layer names, else None."""
    names = set(layer_names)
    if "conv_dw_1" in names or "conv1" in names:
        return architectures.V1
    if "Conv1" in names or "block_1_expand" in names:
        return architectures.V2
    return None


def keras_to_slim(family, layer, weight):
    """Slim variable name for Keras ``layer``'s weight ``weight`` (e.g. ``kernel:0``), or None if not a model
    variable (activations, padding and pooling layers have none)."""
    leaf = weight.split("/")[-1].split(":")[0]
    if leaf not in KERAS_WEIGHT_LEAVES:
        return None
    for pattern, scope in KERAS_LAYER_RULES[family]:
        match = pattern.match(layer)
        if match:
            slim_scope = scope(match)
            target = KERAS_WEIGHT_LEAVES[leaf]
            if leaf in ("kernel", "depthwise_kernel") and slim_scope.endswith("depthwise"):
                target = "depthwise_weights"   # Keras 3 names a DepthwiseConv2D kernel plain "kernel"
            return f"{architectures.SCOPES[family]}/{slim_scope}/{target}"
    return None


_LAYER_RE = re.compile(r"^(Conv2d_\d+(?:_depthwise|_pointwise)?|Conv(?:_\d+)?|expanded_conv(?:_\d+)?)$")
_V2_PARTS = ("expand", "depthwise", "project")
PROJECT_RE = re.compile(r"^(expanded_conv(?:_\d+)?)/project$")


def slim_endpoint_name(tensor_name, op_name=None, family=None):
    """The TF-slim endpoint name of a TFLite tensor (see module doc), or ``None`` when there is none."""
    first = tensor_name.split(";")[0]
    parts = first.split("/")
    while parts and parts[0] in ("MobilenetV1", "MobilenetV2"):
        parts = parts[1:]
    if not parts:
        return None
    if parts[0] in ("Logits", "Predictions"):
        if parts[0] == "Predictions":
            return "Predictions"
        rest = parts[1:]
        if op_name in ("AVERAGE_POOL_2D", "MEAN") or (rest and rest[0].startswith("AvgPool")):
            if rest and rest[0] == "AvgPool_1a":
                return "AvgPool_1a"
            return "global_pool" if family == "MobilenetV2" else "AvgPool_1a"
        if rest and rest[0] == "Conv2d_1c_1x1":
            return "Logits/Conv2d_1c_1x1"
        if op_name in ("RESHAPE", "SQUEEZE"):
            return "Logits"
        return None
    if not _LAYER_RE.match(parts[0]):
        return None
    if parts[0].startswith("expanded_conv"):
        if len(parts) > 1 and parts[1] in _V2_PARTS:
            return f"{parts[0]}/{parts[1]}"
        if op_name == "ADD":
            return parts[0]
        return None
    return parts[0]
