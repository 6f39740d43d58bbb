"""Read any supported TensorFlow weight file into a :class:`~mobilenet_np.weights.WeightSet` (no TensorFlow).

Supported now: TF-slim checkpoints (``PREFIX.index`` + ``PREFIX.data-*``; every entry's masked CRC32C is
checked) and frozen GraphDef ``.pb`` files (2017 form with batch norm as Mul/Add/Rsqrt, 2018 form with
FusedBatchNorm). The architecture, depth multiplier and class count are recognised from the variables'
names and shapes; the training input size from the graph's input placeholder or the release file name.
"""
import os
from pathlib import Path

from mobilenet_np import architectures
from mobilenet_np.errors import UnsupportedFormatError, WeightsFileNotFoundError
from mobilenet_np.weights import WeightSet, sha256_of

from .detect import infer_architecture, size_from_name

# Leaf names of model variables (and quantization ranges) that a converted file keeps from a checkpoint;
# optimizer slots, EMA shadows and EMA zero-debias helpers are left out.
MODEL_LEAVES = {"weights", "depthwise_weights", "biases", "beta", "gamma", "moving_mean", "moving_variance",
                "min", "max"}
SKIPPED_PARTS = ("ExponentialMovingAverage", "RMSProp", "Momentum", "/biased", "/local_step", "/Adam")


def source_kind(path):
    """``"checkpoint"`` or ``"frozen_graph"`` for ``path``, or raise :class:`UnsupportedFormatError`."""
    p = str(path)
    if p.endswith(".pb"):
        return "frozen_graph"
    if p.endswith(".index") or ".data-" in os.path.basename(p) or os.path.exists(p + ".index"):
        return "checkpoint"
    if not os.path.exists(p):
        raise WeightsFileNotFoundError(f"weights not found: {p} (no such file or checkpoint prefix)")
    raise UnsupportedFormatError(f"{p}: not a format mobilenet_np reads (expected our .h5, a checkpoint "
                                 "prefix/.index, or a frozen graph .pb)")


def is_model_variable(name):
    return name.rsplit("/", 1)[-1] in MODEL_LEAVES and not any(part in name for part in SKIPPED_PARTS)


def read_checkpoint_variables(path):
    """``(variables, file_for_hash)`` of the model variables in a TF-slim checkpoint."""
    from .tensor_bundle import TensorBundle

    bundle = TensorBundle(path)
    names = [n for n in bundle.keys() if is_model_variable(n)]
    return {n: bundle.read(n) for n in names}, bundle.prefix + ".index"


def read_source(path, input_size=None):
    """A validated :class:`WeightSet` from a checkpoint or frozen graph at ``path``."""
    kind = source_kind(path)
    notes = []
    eps = architectures.BATCH_NORM_EPSILON
    size = None
    if kind == "frozen_graph":
        from .graphdef import frozen_graph_variables

        if not os.path.exists(path):
            raise WeightsFileNotFoundError(f"frozen graph not found: {path}")
        found = frozen_graph_variables(path)
        variables, hashed = found.variables, path
        notes.extend(found.notes)
        if found.batch_norm_epsilon is not None:
            eps = float(found.batch_norm_epsilon)
        shape = found.input_shape
        if shape and len(shape) == 4 and shape[1] and shape[2] and shape[1] > 0 and shape[2] > 0:
            size = (int(shape[1]), int(shape[2]))
    else:
        variables, hashed = read_checkpoint_variables(path)
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
