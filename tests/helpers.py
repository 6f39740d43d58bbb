"""Small helpers shared by tests that need no TensorFlow."""
import numpy as np

from mobilenet_np import architectures
from mobilenet_np.weights import WeightSet


def random_weight_set(family="v1", alpha=0.25, num_classes=1001, seed=0, input_size=(128, 128)):
    """Variables with He-scaled kernels and BN statistics that keep activations O(1) (not calibrated)."""
    rng = np.random.default_rng(seed)
    arch = architectures.build(family, alpha, num_classes)
    variables = {}
    for name, shape in arch.variables().items():
        leaf = name.rsplit("/", 1)[-1]
        if leaf in ("weights", "depthwise_weights"):
            fan_in = shape[0] * shape[1] * (1 if leaf == "depthwise_weights" else shape[2])
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif leaf == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        else:  # beta, moving_mean, biases
            value = rng.normal(0.0, 0.1, shape)
        variables[name] = value.astype(np.float32)
    return WeightSet(variables, arch.family, alpha, num_classes, input_size, source_file="random")


def random_images(n, h, w, seed=0):
    """Smooth random images in [0, 1] (low-frequency noise, so convolutions see structure)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (n, h // 8 + 2, w // 8 + 2, 3))
    ys = np.linspace(0, coarse.shape[1] - 1.001, h)
    xs = np.linspace(0, coarse.shape[2] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[None, :, None, None], (xs - x0)[None, None, :, None]
    c = coarse
    img = (c[:, y0][:, :, x0] * (1 - fy) * (1 - fx) + c[:, y0 + 1][:, :, x0] * fy * (1 - fx)
           + c[:, y0][:, :, x0 + 1] * (1 - fy) * fx + c[:, y0 + 1][:, :, x0 + 1] * fy * fx)
    return np.clip(img, 0, 1).astype(np.float32)
