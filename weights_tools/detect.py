"""Recognise which MobileNet a set of slim-named variables belongs to: family, depth multiplier, classes,
and (from a file name like ``mobilenet_v1_0.25_128``) the input size it was trained at."""
import re

from mobilenet_np import architectures
from mobilenet_np.errors import UnsupportedFormatError, VariableMismatchError
from mobilenet_np.weights import check_variables

# Depth multipliers of every published checkpoint; tried when the shapes alone leave a choice.
PUBLISHED_MULTIPLIERS = {architectures.V1: (0.25, 0.5, 0.75, 1.0),
                         architectures.V2: (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)}
_NAME_PATTERN = re.compile(r"mobilenet_v([12])_(?:(\d+(?:\.\d+)?)_)?(\d{2,3})(?!\d)")


def infer_family(names):
    scopes = {n.split("/", 1)[0] for n in names}
    for family, scope in architectures.SCOPES.items():
        if scope in scopes:
            return family
    sample = ", ".join(sorted(names)[:5])
    raise UnsupportedFormatError(f"no MobilenetV1/ or MobilenetV2/ variables found (first names: {sample})")


def _candidate_multipliers(family, variables):
    scope = architectures.SCOPES[family]
    found = []
    if family == architectures.V1:
        w = variables.get(f"{scope}/Conv2d_13_pointwise/weights")
        if w is not None:
            found.append(w.shape[-1] / 1024)
    else:
        w = variables.get(f"{scope}/expanded_conv_16/project/weights")
        if w is not None:
            found.append(w.shape[-1] / 320)
    return found + [m for m in PUBLISHED_MULTIPLIERS[family] if m not in found]


def infer_architecture(variables, source=""):
    """``(family, depth_multiplier, num_classes)`` whose variable table fits ``variables`` exactly."""
    family = infer_family(variables)
    scope = architectures.SCOPES[family]
    biases = variables.get(f"{scope}/Logits/Conv2d_1c_1x1/biases")
    num_classes = int(biases.shape[0]) if biases is not None else 0
    first_error = None
    for alpha in _candidate_multipliers(family, variables):
        arch = architectures.build(family, alpha, num_classes)
        try:
            check_variables(arch, variables, source=source)
            return family, float(alpha), num_classes
        except VariableMismatchError as e:
            first_error = first_error or e
    raise first_error


def size_from_name(path):
    """Input size encoded in a release file name (``mobilenet_v1_0.25_128_quant.ckpt`` -> 128), else None."""
    match = _NAME_PATTERN.search(str(path).replace("\\", "/").split("/")[-1]) or _NAME_PATTERN.search(str(path))
    return int(match.group(3)) if match else None
