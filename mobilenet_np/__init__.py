"""mobilenet_np: MobileNet V1/V2 (TF-slim / TF-Hub) in NumPy + Numba, checked against TensorFlow.

    import mobilenet_np as mnp
    model = mnp.load("mobilenet_v1_0.25_224.h5")      # our HDF5, or any file weights_tools reads
    logits = model.classify(images)                    # float32 [N, H, W, 3] in [0, 1] -> [N, 1001]
    features = model.features(images)                  # [N, 256] for V1 0.25
    ends = model.endpoints(images)                     # {"Conv2d_0": ..., ..., "Logits": ...}
    image = mnp.load_image("cat.jpg", 224)             # float32 [224, 224, 3] in [0, 1]
"""
from . import architectures
from .errors import (ChecksumError, CorruptFileError, InputError, MobileNetError, UnsupportedFormatError,
                     VariableMismatchError, WeightsError, WeightsFileNotFoundError)
from .model import Model
from .preprocessing import load_image, load_images
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


def load(path, *, engine="numba", fold_batch_norm=True, input_size=None):
    """Load a model from ``path`` (see :func:`read_weights`) ready to ``classify``/``features``/``endpoints``."""
    weights = read_weights(path, input_size)
    return Model(weights.architecture(), weights.variables, engine=engine, fold_batch_norm=fold_batch_norm,
                 weights=weights)


__all__ = ["load", "read_weights", "load_image", "load_images", "Model", "WeightSet", "load_hdf5", "save_hdf5",
           "architectures", "MobileNetError", "InputError", "WeightsError", "WeightsFileNotFoundError",
           "CorruptFileError", "ChecksumError", "UnsupportedFormatError", "VariableMismatchError"]
