"""A runnable MobileNet: an :class:`~mobilenet_np.architectures.Architecture` plus its weights.

The forward pass, for an image batch ``x`` in [0, 1]::

    x <- 2x - 1                                   (TF-Hub's input mapping)
    for each layer:  x <- act(BN(conv(x, w)))     (BN folded into w, b at load time unless fold_batch_norm=False)
                     V2: block output = project + block input where the block has a residual
    features = mean over H, W of the last layer   (AvgPool_1a / global_pool)
    logits   = features @ W + b                    (Logits/Conv2d_1c_1x1), Predictions = softmax(logits)

Endpoints are keyed by slim names: every layer's scope (``Conv2d_3_depthwise``, ``expanded_conv_4/project``),
V2 block outputs (``expanded_conv_4``), the pooled features (``AvgPool_1a`` or ``global_pool``, shape
``[N, 1, 1, C]``), ``Logits`` and ``Predictions``.
"""
import threading

import numpy as np

from .errors import MobileNetError
from .inputs import check_images
from .signatures import HubInterface
from .kernels import fold_batch_norm, kernel_set, same_pads

_BUILDING = threading.Lock()    # one fast executor per model, however many threads make its first call at once

DEFAULT_BATCH_SIZE = 64
ENGINES = ("numba", "layers", "numpy")


class Model(HubInterface):
    """MobileNet V1/V2 inference in NumPy + Numba.

    ``engine``:

    * ``"numba"`` (default): the fast executor (:mod:`mobilenet_np.executor`): the whole network in one
      compiled call, fused and register-tiled kernels, no Python between layers;
    * ``"layers"``: the per-layer Numba kernels, called layer by layer from Python (the textbook path);
    * ``"numpy"``: their readable NumPy twins.

    All three give the same results up to float32 rounding. ``fold_batch_norm=False`` keeps batch norm as a
    separate step after each convolution (for study; slower; runs the per-layer kernels). ``threads`` > 1 lets
    the fast executor share the images of a batch among that many threads (Numba's thread pool); 1 (default)
    stays on the calling thread.
    """

    def __init__(self, architecture, variables, *, engine="numba", fold_batch_norm=True, weights=None, threads=1):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.architecture = architecture
        self.engine = engine
        self.fold_batch_norm = fold_batch_norm
        self.weights = weights  # the WeightSet it came from (metadata: source file, labels, input size)
        self._k = kernel_set("numba" if engine == "layers" else engine)
        self._steps = [self._prepare(layer, variables) for layer in architecture.all_layers()]
        self._executor = None
        self.threads = threads

    # ----------------------------------------------------------------------------------------------------
    def _prepare(self, layer, variables):
        arch = self.architecture
        prefix = f"{arch.scope}/{layer.name}/"
        w = np.asarray(variables[prefix + ("depthwise_weights" if layer.op == "depthwise" else "weights")],
                       dtype=np.float32)
        bias = (np.asarray(variables[prefix + "biases"], dtype=np.float32) if layer.bias
                else np.zeros(layer.out_channels, np.float32))
        bn = None
        if layer.batch_norm:
            stats = [np.asarray(variables[prefix + "BatchNorm/" + v], dtype=np.float32)
                     for v in ("gamma", "beta", "moving_mean", "moving_variance")]
            if self.fold_batch_norm:
                w, bias = fold_batch_norm(w, *stats, arch.batch_norm_epsilon, depthwise=layer.op == "depthwise")
            else:
                bn = stats
        if layer.op in ("pointwise", "logits"):
            w = w.reshape(w.shape[2], w.shape[3])
        return layer, np.ascontiguousarray(w), np.ascontiguousarray(bias), bn

    def _conv(self, step, x):
        layer, w, bias, bn = step
        k = self._k
        relu6_now = layer.relu6 and bn is None   # with unfolded BN the activation comes after it
        if layer.op == "pointwise":
            y = k["pointwise_conv2d"](x, w, bias, relu6_now)
        else:
            pads = same_pads(x.shape[1], x.shape[2], layer.kernel, layer.stride)
            fn = k["depthwise_conv2d"] if layer.op == "depthwise" else k["conv2d"]
            y = fn(x, w, bias, layer.stride, pads, relu6_now)
        if bn is not None:
            y = k["batch_norm"](y, *bn, self.architecture.batch_norm_epsilon)
            if layer.relu6:
                y = k["relu6"](y)
        return y

    def _map_input(self, x):
        """Images in [0, 1] to the network's [-1, 1] (TF-Hub's ``2x - 1``); subclasses may add to it."""
        return x * np.float32(2.0) - np.float32(1.0)

    # ---------------------------------------------------------------------------------------- pickling
    def __getstate__(self):
        """Models pickle (``multiprocessing``, Dask and Ray send them to workers): the fast executor, with its
        lock, plans and arenas, is left out and rebuilt on first use; kernels travel as their names."""
        state = self.__dict__.copy()
        state["_executor"] = None
        state["_k"] = {name: _qualified_name(f) for name, f in self._k.items()}
        return state

    def __setstate__(self, state):
        state = dict(state, _k={name: _by_qualified_name(ref) for name, ref in state["_k"].items()})
        self.__dict__.update(state)

    # ---------------------------------------------------------------------------------------- fast path
    @property
    def threads(self):
        return self._threads

    @threads.setter
    def threads(self, value):
        value = int(value)
        if value < 1:
            raise ValueError(f"threads must be at least 1, got {value}")
        self._threads = value
        if self._executor is not None:
            self._executor.threads = value

    def _uses_executor(self):
        """The fast executor runs plain folded float models; subclasses that change a layer's arithmetic
        (e.g. fake quantization) keep the layer-by-layer path."""
        cls = type(self)
        overridable = ("_prepare", "_conv", "_map_input", "_logits", "_forward_layers", "_logits_layers")
        return (self.engine == "numba" and self.fold_batch_norm
                and all(getattr(cls, name) is getattr(Model, name) for name in overridable))

    @property
    def executor(self):
        """The :class:`~mobilenet_np.executor.FastExecutor` (built on first use), or ``None`` for engines and
        models it does not serve."""
        if self._executor is None and self._uses_executor():
            from .executor import FastExecutor
            with _BUILDING:
                if self._executor is None:
                    self._executor = FastExecutor(self.architecture, self._steps, threads=self._threads)
        return self._executor

    def _forward(self, x, keep):
        """Run the body on a checked batch; returns (pooled features [N, C], endpoints dict or None)."""
        executor = self.executor
        if executor is None:
            return self._forward_layers(x, keep)
        if not keep:
            return executor.features(x), None
        pooled, _, ends = executor.run(x, record=True)
        ends[self.architecture.feature_endpoint] = pooled[:, None, None, :]
        return pooled, ends

    def _logits(self, pooled):
        executor = self.executor
        if executor is None:
            return self._logits_layers(pooled)
        if self.architecture.logits is None:
            raise MobileNetError("this model has no classification layer (num_classes = 0): use features()")
        return executor.logits(pooled)

    # ------------------------------------------------------------------------------------ layer by layer
    def _forward_layers(self, x, keep):
        """The body layer by layer from Python, one kernel call per layer (engines "layers" and "numpy")."""
        ends = {} if keep else None
        x = self._map_input(x)
        block, block_input = None, None
        for step in self._steps:
            layer = step[0]
            if layer.op == "logits":
                break
            if layer.block != block:
                block, block_input = layer.block, x
            x = self._conv(step, x)
            if keep:
                ends[layer.name] = x
            if layer.ends_block:
                if layer.residual:
                    x = x + block_input
                if keep:
                    ends[layer.block] = x
        pooled = self._k["global_avg_pool"](x)
        if keep:
            ends[self.architecture.feature_endpoint] = pooled[:, None, None, :]
        return pooled, ends

    def _logits_layers(self, pooled):
        if self.architecture.logits is None:
            raise MobileNetError("this model has no classification layer (num_classes = 0): use features()")
        _, w, bias, _ = self._steps[-1]
        return self._k["logits"](pooled, w, bias)

    def _batched(self, images, batch_size, fn):
        # The fast executor checks the values while it reads them (one pass less); the others check here.
        x = check_images(images, values=self.executor is None)
        if len(x) <= batch_size:
            return fn(x)
        return np.concatenate([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    # ---------------------------------------------------------------------------------------------- public
    def classify(self, images, batch_size=DEFAULT_BATCH_SIZE):
        """Logits ``[N, num_classes]`` (class 0 is "background") for float images ``[N, H, W, 3]`` in [0, 1]."""
        executor = self.executor
        if executor is not None:
            if self.architecture.logits is None:
                raise MobileNetError("this model has no classification layer (num_classes = 0): use features()")
            return self._batched(images, batch_size, executor.classify)
        return self._batched(images, batch_size, lambda x: self._logits(self._forward(x, False)[0]))

    def features(self, images, batch_size=DEFAULT_BATCH_SIZE):
        """The pooled feature vector ``[N, C]`` (256 for V1 0.25, 1280 for V2 0.5)."""
        executor = self.executor
        if executor is not None:
            return self._batched(images, batch_size, executor.features)
        return self._batched(images, batch_size, lambda x: self._forward(x, False)[0])

    def predictions(self, images, batch_size=DEFAULT_BATCH_SIZE):
        """Softmax probabilities ``[N, num_classes]``."""
        return self._k["softmax"](self.classify(images, batch_size))

    def endpoints(self, images):
        """``{slim endpoint name: array}`` for every layer, the pooled features, ``Logits`` and ``Predictions``."""
        pooled, ends = self._forward(check_images(images, values=self.executor is None), True)
        if self.architecture.logits is not None:
            ends["Logits"] = self._logits(pooled)
            ends["Predictions"] = self._k["softmax"](ends["Logits"])
        return ends

    @property
    def num_classes(self):
        return self.architecture.num_classes

    @property
    def num_features(self):
        return self.architecture.num_features

    @property
    def input_size(self):
        """The size the weights were trained at ``(height, width)``; other sizes ≥ 32 also run."""
        return self.architecture.default_size

    def __repr__(self):
        a = self.architecture
        return (f"Model({a.family}, depth_multiplier={a.depth_multiplier:g}, input_size={a.default_size}, "
                f"num_classes={a.num_classes}, engine={self.engine!r})")


def _qualified_name(function):
    """``(module, qualified name)`` of a module-level kernel (a Numba dispatcher or a plain function)."""
    function = getattr(function, "py_func", function)
    return function.__module__, function.__qualname__


def _by_qualified_name(ref):
    import importlib

    module, name = ref
    return getattr(importlib.import_module(module), name)
