"""Read any supported TensorFlow/Keras weight file into a :class:`~mobilenet_np.weights.WeightSet`, no TensorFlow.

Formats (``source_kind``):

=================  ============================================================================================
``checkpoint``     TF-slim checkpoint, ``PREFIX.index`` + ``PREFIX.data-*`` (every entry's CRC32C checked)
``frozen_graph``   frozen GraphDef ``.pb`` (BN as FusedBatchNorm, as Mul/Add/Rsqrt, or contrib.quantize-folded)
``saved_model``    a SavedModel directory: TF1 hub module (name-based keys) or TF2 (object-based keys)
``keras``          Keras ``keras.applications`` MobileNet/MobileNetV2 weights (``.h5``, ``.weights.h5``)
``tflite``         a TF-slim ``.tflite`` (float, or uint8/int8 dequantized; BN is already folded in it)
``archive``        an official release ``.tgz``/``.tar``/``.zip``; the best source inside is used
``ours``           our own HDF5 (handled by :func:`mobilenet_np.weights.load_hdf5`)
=================  ============================================================================================

The architecture, depth multiplier and class count are recognised from names and shapes
(:mod:`weights_tools.detect`); the training input size from the file (placeholder shape, hub image info,
Keras config) or its release name, else 224 with a note.
"""
import os
from pathlib import Path

import numpy as np

from mobilenet_np import architectures
from mobilenet_np.errors import UnsupportedFormatError, WeightsError, WeightsFileNotFoundError
from mobilenet_np.weights import HDF5_SIGNATURE, WeightSet, is_weights_file, sha256_of

from .detect import infer_architecture, size_from_name

# Leaf names of model variables (and quantization ranges) that a converted file keeps from a checkpoint;
# optimizer slots, EMA shadows and EMA zero-debias helpers are left out.
MODEL_LEAVES = {"weights", "depthwise_weights", "biases", "beta", "gamma", "moving_mean", "moving_variance",
                "min", "max"}
SKIPPED_PARTS = ("ExponentialMovingAverage", "RMSProp", "Momentum", "/biased", "/local_step", "/Adam")
EMA_SUFFIX = "/ExponentialMovingAverage"


def source_kind(path):
    """Which reader handles ``path`` (see the module table), or raise."""
    p = str(path)
    if os.path.isdir(p):
        if os.path.isfile(os.path.join(p, "saved_model.pb")):
            return "saved_model"
        raise UnsupportedFormatError(f"{p}: a folder, but not a SavedModel (no saved_model.pb)")
    from .archive import is_archive

    if is_archive(p):
        if not os.path.exists(p):
            raise WeightsFileNotFoundError(f"weights not found: {p}")
        return "archive"
    if p.endswith(".index") or ".data-" in os.path.basename(p) or os.path.exists(p + ".index"):
        return "checkpoint"
    if not os.path.exists(p):
        raise WeightsFileNotFoundError(f"weights not found: {p} (no such file or checkpoint prefix)")
    if os.path.basename(p) == "saved_model.pb":
        return "saved_model"
    if p.endswith(".pb"):
        return "frozen_graph"
    with open(p, "rb") as f:
        head = f.read(8)
    if head == HDF5_SIGNATURE:
        return "ours" if is_weights_file(p) else "keras"
    if head[4:8] == b"TFL3":
        return "tflite"
    raise UnsupportedFormatError(f"{p}: not a format mobilenet_np reads (expected our .h5, a checkpoint "
                                 "prefix/.index, a frozen graph .pb, a SavedModel folder, a Keras .h5 or a "
                                 "release archive)")


def is_model_variable(name):
    return name.rsplit("/", 1)[-1] in MODEL_LEAVES and not any(part in name for part in SKIPPED_PARTS)


def select_variables(all_names, read, ema=False):
    """Model variables among ``all_names`` (read with ``read(name)``), with EMA shadows instead if ``ema``."""
    names = [n for n in all_names if is_model_variable(n)]
    if not ema:
        return {n: read(n) for n in names}, []
    present = set(all_names)
    shadowed = [n for n in names if n + EMA_SUFFIX in present]
    if not shadowed:
        raise WeightsError("--ema: the file has no ExponentialMovingAverage shadow variables")
    variables = {n: read(n + EMA_SUFFIX if n + EMA_SUFFIX in present else n) for n in names}
    return variables, [f"--ema: {len(shadowed)} of {len(names)} variables taken from their moving averages"]


def _read_checkpoint(path, ema):
    from .tensor_bundle import TensorBundle

    bundle = TensorBundle(path)
    variables, notes = select_variables(bundle.keys(), bundle.read, ema)
    return variables, bundle.prefix + ".index", None, notes, architectures.BATCH_NORM_EPSILON


def _read_frozen_graph(path, ema):
    from .graphdef import frozen_graph_variables

    if ema:
        raise WeightsError("--ema: a frozen graph holds only the values it was frozen with")
    found = frozen_graph_variables(path)
    shape, size = found.input_shape, None
    if shape and len(shape) == 4 and shape[1] and shape[2] and shape[1] > 0 and shape[2] > 0:
        size = (int(shape[1]), int(shape[2]))
    eps = architectures.BATCH_NORM_EPSILON if found.batch_norm_epsilon is None else float(found.batch_norm_epsilon)
    return found.variables, path, size, list(found.notes), eps


def _read_saved_model(path, ema):
    from .saved_model import read_saved_model

    folder = os.path.dirname(path) if os.path.basename(str(path)) == "saved_model.pb" else path
    found = read_saved_model(folder)
    variables, notes = select_variables(list(found.variables), found.variables.__getitem__, ema)
    kind = "TF1 hub module" if found.is_hub_module else ("TF2 SavedModel" if found.object_based else "TF1 SavedModel")
    return (variables, found.bundle_prefix + ".index", found.image_size, [f"read as a {kind}"] + found.notes + notes,
            architectures.BATCH_NORM_EPSILON)


def _read_keras(path, ema):
    from .keras_h5 import read_keras_h5

    if ema:
        raise WeightsError("--ema: Keras weight files have no moving-average shadows")
    _family, variables, size, notes = read_keras_h5(path)
    return variables, path, size, notes, architectures.BATCH_NORM_EPSILON


def _dequantized(t):
    """A constant tensor's real values: ``scale * (q - zero_point)``, per channel along its quantized axis."""
    q = t.quantization
    data = np.asarray(t.data)
    if not q.is_quantized or data.dtype.kind == "f":
        return data.astype(np.float32)
    shape = [1] * data.ndim
    if q.per_channel:
        shape[q.quantized_dimension] = -1
    scale = q.scale.astype(np.float64).reshape(shape)
    zero = q.zero_point.astype(np.float64).reshape(shape) if q.zero_point.size else 0.0
    return ((data.astype(np.float64) - zero) * scale).astype(np.float32)


def _read_tflite(path, ema):
    """Float weights of a TF-slim ``.tflite`` (uint8/int8 weights dequantized). Its batch norm is already folded
    into the kernels and biases, so each layer gets an identity batch norm holding the bias (gamma 1, mean 0,
    variance ``1 - eps``, which makes ``var + eps`` exactly 1.0 in float32)."""
    from .names import slim_endpoint_name
    from .tflite import read_tflite

    if ema:
        raise WeightsError("--ema: a .tflite file holds only its converted values")
    model = read_tflite(path)
    family = next((f for f in ("MobilenetV1", "MobilenetV2") if any(t.name.startswith(f + "/") for t in model.tensors)),
                  None)
    if family is None:
        raise UnsupportedFormatError(f"{path}: tensor names are not TF-slim MobileNet names; run it as is with "
                                     "mobilenet_np.load(path, mode='uint8')")
    variables, eps = {}, architectures.BATCH_NORM_EPSILON
    quantized = False
    for op in model.operators:
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        out = model.tensors[op.outputs[0]]
        layer = slim_endpoint_name(out.name, op.name, family)
        kernel, bias = model.tensors[op.inputs[1]], model.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if layer is None or kernel.data is None:
            raise UnsupportedFormatError(f"{path}: cannot name the layer of operator {op.index} ({out.name})")
        quantized |= kernel.quantization.is_quantized and np.asarray(kernel.data).dtype.kind != "f"
        w = _dequantized(kernel)
        w = w.reshape(1, 1, *w.shape[::-1]) if op.name == "FULLY_CONNECTED" else np.transpose(w, (1, 2, 3, 0))
        b = _dequantized(bias) if bias is not None and bias.data is not None else np.zeros(w.shape[-1], np.float32)
        prefix = f"{family}/{layer}/"
        variables[prefix + ("depthwise_weights" if op.name == "DEPTHWISE_CONV_2D" else "weights")] = \
            np.ascontiguousarray(w)
        if layer.startswith("Logits"):
            variables[prefix + "biases"] = b
            continue
        c = b.shape[0]
        variables.update({prefix + "BatchNorm/gamma": np.ones(c, np.float32), prefix + "BatchNorm/beta": b,
                          prefix + "BatchNorm/moving_mean": np.zeros(c, np.float32),
                          prefix + "BatchNorm/moving_variance": np.full(c, 1.0 - eps, np.float32)})
    size = tuple(model.tensors[model.inputs[0]].shape[1:3])
    notes = ["batch norm is folded in a .tflite: stored as identity batch norm around the folded bias"]
    if quantized:
        notes.append("uint8/int8 weights dequantized to float (for the integer arithmetic itself use mode='uint8')")
    return variables, path, size, notes, eps


READERS = {"checkpoint": _read_checkpoint, "frozen_graph": _read_frozen_graph, "saved_model": _read_saved_model,
           "keras": _read_keras, "tflite": _read_tflite}


def read_source(path, input_size=None, ema=False):
    """A validated :class:`WeightSet` from any supported file at ``path`` (see the module docstring)."""
    kind = source_kind(path)
    if kind == "ours":
        from mobilenet_np.weights import load_hdf5
        return load_hdf5(path)
    if kind == "archive":
        from .archive import unpacked

        with unpacked(path) as inner:
            weights = read_source(inner, input_size or size_from_name(path), ema)
        weights.notes.insert(0, f"archive member {os.path.relpath(inner, os.path.dirname(inner))} used")
        weights.source_file, weights.source_sha256 = Path(path).name, sha256_of(path)
        return weights
    variables, hashed, size, notes, eps = READERS[kind](path, ema)
    family, alpha, num_classes = infer_architecture(variables, source=str(path))
    if input_size:
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if size is None:
        named = size_from_name(path)
        size = (named, named) if named else (224, 224)
        if not named:
            notes.append("input size not recorded in the file; assuming 224 (set it with --input-size)")
    return WeightSet(variables=variables, family=family, depth_multiplier=alpha, num_classes=num_classes,
                     input_size=size, batch_norm_epsilon=eps, source_file=Path(path).name,
                     source_sha256=sha256_of(hashed), notes=notes)
