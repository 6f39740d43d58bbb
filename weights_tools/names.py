"""One table from every foreign naming scheme to TF-slim variable names.

Slim names (``MobilenetV1/Conv2d_3_depthwise/depthwise_weights``) are ours everywhere. Foreign schemes:

* **Keras applications** (``keras.applications.MobileNet`` / ``MobileNetV2``): one Keras layer per slim
  sub-scope, e.g. ``conv_dw_3`` -> ``Conv2d_3_depthwise``, ``block_5_expand_BN`` -> ``expanded_conv_5/expand/
  BatchNorm``; weight ``kernel`` -> ``weights``, ``depthwise_kernel`` -> ``depthwise_weights``, ``bias`` ->
  ``biases``, BN ``gamma/beta/moving_mean/moving_variance`` unchanged.
* **TFLite tensor names** carry the slim op scope (``MobilenetV1/MobilenetV1/Conv2d_3_depthwise/Relu6``),
  possibly several joined with ``;``: :func:`slim_layer_of` finds the layer name inside.
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


_SLIM_LAYER = re.compile(r"(Conv2d_\d+_(?:depthwise|pointwise)|Conv2d_0|Conv2d_1c_1x1|"
                         r"expanded_conv(?:_\d+)?/(?:expand|depthwise|project)|expanded_conv(?:_\d+)?|Conv_1|Conv)"
                         r"(?=/|;|$)")


def slim_layer_of(tensor_name):
    """The slim layer scope inside a TFLite/TF tensor name (``Logits/Conv2d_1c_1x1`` for the logits), or None."""
    for part in tensor_name.split(";"):
        match = _SLIM_LAYER.search(part)
        if match:
            layer = match.group(1)
            return "Logits/Conv2d_1c_1x1" if layer == "Conv2d_1c_1x1" else layer
    return None
