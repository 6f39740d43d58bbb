"""mobilenet_np: MobileNet V1/V2 (TF-slim / TF-Hub) in NumPy + Numba, checked against TensorFlow.

    import mobilenet_np as mnp
    model = mnp.load("mobilenet_v1_0.25_224.h5")      # our HDF5, or any file weights_tools reads
    logits = model.classify(images)                    # float32 [N, H, W, 3] in [0, 1] -> [N, 1001]
    features = model.features(images)                  # [N, 256] for V1 0.25
    ends = model.endpoints(images)                     # {"Conv2d_0": ..., ..., "Logits": ...}
    image = mnp.load_image("cat.jpg", 224)             # float32 [224, 224, 3] in [0, 1]
"""
import os

from . import architectures
from .errors import (ChecksumError, CorruptFileError, InputError, MobileNetError, UnsupportedFormatError,
                     VariableMismatchError, WeightsError, WeightsFileNotFoundError)
from .model import Model
from .preprocessing import load_image, load_images
from .signatures import get_expected_image_size
from .weights import WeightSet, load_hdf5, save_hdf5

__version__ = "0.1.0"


def read_weights(path, input_size=None, ema=False):
    """A :class:`WeightSet` from our HDF5 or, through ``weights_tools``, any supported TensorFlow/Keras file.

    ``input_size`` overrides the training size recorded in the file; ``ema`` takes a checkpoint's
    ExponentialMovingAverage shadow values instead of the raw variables.
    """
    from .weights import is_weights_file

    if is_weights_file(path) and not ema:
        weights = load_hdf5(path)
    else:
        from weights_tools.convert import read_source
        weights = read_source(path, ema=ema)
    if input_size is not None:
        weights.input_size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    return weights


MODES = ("float", "fake_quant", "uint8")


def load(path, *, mode=None, engine="numba", fold_batch_norm=True, input_size=None, ema=False,
         batch_norm_momentum=None, rounding="reference", threads=1):
    """Load a model ready to ``classify`` / ``features`` / ``endpoints`` / ``signatures``.

    ``path``: our HDF5, any file ``weights_tools`` reads, a ``.tflite``, or a TF-Hub handle / short name
    (``google/imagenet/mobilenet_v1_025_128/quantops/classification/3``, ``mobilenet_v2_050_160``), which is
    downloaded and cached on first use (:mod:`mobilenet_np.hub`).

    ``mode``: ``"float"`` (default), ``"fake_quant"`` (the quantops forward: folded BN, fake-quantized weights
    and activations; default for ``quantops``/``_quant`` handles) or ``"uint8"`` (TFLite integer arithmetic,
    bit-exact; covers int8 models too; ``rounding`` picks ``"reference"`` or ``"xnnpack"``).
    ``batch_norm_momentum`` is accepted as the v3/v4 hub modules accept it; it only matters for training.
    ``threads``: how many threads share the images of a batch (float and uint8 models; Numba's thread pool).
    ``engine`` for uint8 models: ``"numba"`` (the fast executor where the model fits it), ``"layers"`` (the
    per-op kernels) or ``"numpy"``.
    """
    from . import hub

    handle = None
    if not os.path.exists(str(path)) and hub.looks_like_handle(path):
        handle = hub.resolve(path)
        mode = mode or ("fake_quant" if handle.entry.quant else "float")
        path = hub.fetch_tflite(path) if mode == "uint8" else hub.fetch(path)
    mode = mode or ("uint8" if str(path).endswith(".tflite") else "float")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "uint8":
        from .integer import load_integer
        model = load_integer(path, rounding=rounding, engine="ops" if engine == "layers" else engine,
                             threads=threads)
    elif mode == "fake_quant":
        from .quantized import load_fake_quant
        model = load_fake_quant(path, engine=engine, input_size=input_size)
    else:
        weights = read_weights(path, input_size, ema)
        model = Model(weights.architecture(), weights.variables, engine=engine, fold_batch_norm=fold_batch_norm,
                      weights=weights, threads=threads)
    if handle is not None:
        model.module_kind = handle.kind
    model.batch_norm_momentum = batch_norm_momentum
    return model


def decode_predictions(logits, top=5, labels=None):
    """``[[(index, label, probability), ...] per image]`` of the ``top`` classes (softmax of ``logits``).

    ``labels`` is a list or a labels file; by default the labels are found as :func:`labels.find_labels` says.
    """
    import numpy as np

    from .kernels import softmax_numpy
    from .labels import find_labels, top_k

    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2:
        raise InputError(f"logits must be [N, num_classes]; got shape {logits.shape}")
    names = list(labels) if isinstance(labels, (list, tuple)) else find_labels(logits.shape[1], labels)
    return [[(t["index"], t["label"], t["score"]) for t in row] for row in top_k(softmax_numpy(logits), names, top)]


__all__ = ["load", "read_weights", "decode_predictions", "get_expected_image_size", "MODES", "load_image", "load_images", "Model", "WeightSet", "load_hdf5", "save_hdf5",
           "architectures", "MobileNetError", "InputError", "WeightsError", "WeightsFileNotFoundError",
           "CorruptFileError", "ChecksumError", "UnsupportedFormatError", "VariableMismatchError"]
