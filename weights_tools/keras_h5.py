"""Keras ``keras.applications.MobileNet`` / ``MobileNetV2`` weight files, read with h5py (no Keras, no TF).

Three layouts exist:

* **Keras 2 weight files** (``save_weights("x.h5")``, the released ``mobilenet_*_tf_no_top.h5``): root
  attribute ``layer_names``; each layer group lists ``weight_names`` (``conv1/kernel:0``) that are dataset
  paths inside it.
* **Full-model ``.h5``** (``model.save("x.h5")``, Keras 2 or 3): the same under the group ``model_weights``,
  and the model's JSON config (input shape) in the root attribute ``model_config``.
* **Keras 3 ``.weights.h5``**: ``layers/<class name>[_k]/vars/<i>``. Layer names are not stored; layers are
  numbered per class in creation order, which for these models is network order. We map the k-th
  ``conv2d`` / ``depthwise_conv2d`` / ``batch_normalization`` to the k-th such layer of the slim table
  (shapes are then validated, so a different order cannot go unnoticed).

Keras's 1000-class head becomes our 1001-class layout by an explicit rule: Keras class ``i`` is slim class
``i + 1``; the slim "background" class 0 gets zero weights and bias ``BACKGROUND_BIAS`` = -1e4, so its
softmax probability is exactly 0 in float32 and every other probability equals Keras's.
"""
import json
import re

import numpy as np

from mobilenet_np import architectures
from mobilenet_np.errors import CorruptFileError, UnsupportedFormatError
from mobilenet_np.weights import H5_ERRORS

from .names import keras_family, keras_to_slim

BACKGROUND_BIAS = -1.0e4
_V1_FILE = re.compile(r"mobilenet_(\d)_(\d+)_(\d+)_tf")                  # mobilenet_2_5_224_tf_no_top.h5
_V2_FILE = re.compile(r"mobilenet_v2_.*?_(\d\.\d+)_(\d+)(?:_no_top)?\.h5")  # ..._0.35_96_no_top.h5


def is_keras_h5(f):
    """True for an open h5py file in one of the three Keras layouts."""
    return ("layer_names" in f.attrs or ("model_weights" in f and "layer_names" in f["model_weights"].attrs)
            or ("layers" in f and any("vars" in f["layers"][k] for k in list(f["layers"])[:5])))


def _decode(s):
    return s.decode("utf-8") if isinstance(s, (bytes, np.bytes_)) else str(s)


def _legacy_weights(group):
    """``{(layer, weight name): array}`` from a group with ``layer_names`` / ``weight_names`` attributes."""
    out = {}
    for layer in map(_decode, group.attrs["layer_names"]):
        g = group[layer]
        for weight in map(_decode, g.attrs.get("weight_names", [])):
            out[(layer, weight)] = np.asarray(g[weight][()])
    return out


def _keras3_weights(f):
    """Map a Keras 3 ``.weights.h5`` (class-numbered layers) to slim names by network order."""
    layers = f["layers"]

    def numbered(prefix):
        keys = [k for k in layers if k == prefix or re.fullmatch(prefix + r"_\d+", k)]
        return sorted(keys, key=lambda k: int(k.rsplit("_", 1)[1]) if k != prefix else 0)

    convs, depthwise, bns, dense = (numbered(p) for p in ("conv2d", "depthwise_conv2d", "batch_normalization",
                                                           "dense"))
    family = {13: architectures.V1, 17: architectures.V2}.get(len(depthwise))
    if family is None:
        raise UnsupportedFormatError(f"a Keras 3 weight file with {len(depthwise)} depthwise layers is not a "
                                     "MobileNet V1 (13) or V2 (17)")
    arch = architectures.build(family, 1.0)  # only the order and kinds of layers are used here
    scope = arch.scope
    variables = {}
    conv_iter, dw_iter, bn_iter = iter(convs), iter(depthwise), iter(bns)

    def vars_of(key):
        g = layers[key]["vars"]
        return [np.asarray(g[str(i)][()]) for i in range(len(g))]

    try:
        for layer in arch.layers:
            key = next(dw_iter) if layer.op == "depthwise" else next(conv_iter)
            kernel = vars_of(key)[0]
            variables[f"{scope}/{layer.name}/{'depthwise_weights' if layer.op == 'depthwise' else 'weights'}"] = kernel
            gamma, beta, mean, var = vars_of(next(bn_iter))
            for leaf, value in zip(("gamma", "beta", "moving_mean", "moving_variance"), (gamma, beta, mean, var)):
                variables[f"{scope}/{layer.name}/BatchNorm/{leaf}"] = value
        head = dense[0] if dense else next(conv_iter, None)
    except (StopIteration, ValueError) as e:
        raise CorruptFileError(f"Keras 3 weight file does not have the layers of {family}: {e}") from None
    if head is not None:
        w, b = vars_of(head)
        variables[f"{scope}/Logits/Conv2d_1c_1x1/weights"] = w
        variables[f"{scope}/Logits/Conv2d_1c_1x1/biases"] = b
    return family, variables


def _to_slim_logits(variables, scope, notes):
    """Reshape a Dense head to a 1x1 conv and add the background class (module docstring rule)."""
    w_name, b_name = f"{scope}/Logits/Conv2d_1c_1x1/weights", f"{scope}/Logits/Conv2d_1c_1x1/biases"
    if w_name not in variables:
        return
    w = variables[w_name]
    if w.ndim == 2:
        w = w.reshape(1, 1, *w.shape)
    b = variables.get(b_name, np.zeros(w.shape[-1], np.float32))
    if w.shape[-1] == 1000:
        w = np.concatenate([np.zeros(w.shape[:3] + (1,), w.dtype), w], axis=3)
        b = np.concatenate([np.array([BACKGROUND_BIAS], b.dtype), b])
        notes.append("Keras 1000-class head mapped to 1001 classes: class i -> i+1, background (0) gets zero "
                     f"weights and bias {BACKGROUND_BIAS:g}")
    variables[w_name], variables[b_name] = w, b


def _input_size(f, path):
    config = f.attrs.get("model_config")
    if config is not None:
        try:
            text = json.dumps(json.loads(_decode(config)))
            match = re.search(r'"(?:batch_shape|batch_input_shape)": \[null, (\d+), (\d+), 3\]', text)
            if match:
                return int(match.group(1)), int(match.group(2))
        except ValueError:
            pass
    name = str(path).replace("\\", "/").split("/")[-1]
    m1, m2 = _V1_FILE.search(name), _V2_FILE.search(name)
    if m1:
        return int(m1.group(3)), int(m1.group(3))
    if m2:
        return int(m2.group(2)), int(m2.group(2))
    return None


def read_keras_h5(path):
    """``(family, slim variables, input size or None, notes)`` of a Keras MobileNet weight file."""
    import h5py

    notes = []
    try:
        with h5py.File(path, "r") as f:
            if not is_keras_h5(f):
                raise UnsupportedFormatError(f"{path}: an HDF5 file, but neither our weight format nor a Keras "
                                             "weight file")
            size = _input_size(f, path)
            if "layers" in f and "layer_names" not in f.attrs and "model_weights" not in f:
                family, variables = _keras3_weights(f)
                notes.append("Keras 3 .weights.h5: layers matched to the slim table by creation order")
            else:
                group = f if "layer_names" in f.attrs else f["model_weights"]
                raw = _legacy_weights(group)
                family = keras_family(layer for layer, _ in raw)
                if family is None:
                    raise UnsupportedFormatError(f"{path}: Keras layers are not those of keras.applications "
                                                 "MobileNet or MobileNetV2")
                variables = {}
                for (layer, weight), value in raw.items():
                    name = keras_to_slim(family, layer, weight)
                    if name is not None:
                        variables[name] = value
    except H5_ERRORS as e:
        raise CorruptFileError(f"cannot read Keras HDF5 file {path}: {e}") from e
    _to_slim_logits(variables, architectures.SCOPES[family], notes)
    return family, variables, size, notes
