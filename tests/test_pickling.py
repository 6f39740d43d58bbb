"""Models pickle, so that multiprocessing, Dask or Ray can send them to workers: what comes back computes the
same bytes, and the compiled executor's lock, plans and arenas are not part of the pickle."""
import pickle
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest

import mobilenet_np as mnp
from mobilenet_np.quantized import FakeQuantModel
from mobilenet_np.testing import fixture_path, missing_reason

from .helpers import random_images, random_weight_set
from .test_fake_quant import _quant_variables

QUANT_TFLITE = "models/mobilenet_v1_0.25_128_quant/mobilenet_v1_0.25_128_quant.tflite"


@pytest.fixture(scope="module")
def weights():
    return random_weight_set("v2", 0.35, seed=4, input_size=(64, 64))


@pytest.mark.parametrize("engine", ["numba", "layers", "numpy"])
def test_float_model_round_trip(weights, engine):
    model = mnp.Model(weights.architecture(), weights.variables, engine=engine, weights=weights)
    x = random_images(2, 64, 64, seed=2)
    logits, features = model.classify(x), model.features(x)      # the executor and its plan now exist
    data = pickle.dumps(model)
    raw = sum(np.asarray(v).nbytes for v in weights.variables.values())
    # the raw variables (in the WeightSet) and the folded ones, no arena or compiled code
    assert len(data) < 2.2 * raw, (len(data), raw)
    back = pickle.loads(data)
    assert np.array_equal(back.classify(x), logits) and np.array_equal(back.features(x), features)
    assert back.engine == engine and back.weights.input_size == weights.input_size
    if engine == "numba":
        assert back.executor is not model.executor and back.executor.plan(64, 64) is not None


def test_fake_quant_model_round_trip():
    weights = random_weight_set("v1", 0.25, seed=3)
    arch, variables = _quant_variables(weights, np.random.default_rng(0))
    model = FakeQuantModel(arch, variables)
    x = random_images(1, 64, 64, seed=1)
    back = pickle.loads(pickle.dumps(model))
    assert np.array_equal(back.classify(x), model.classify(x))
    assert back._k["global_avg_pool"] is model._k["global_avg_pool"]     # its own pool kernel, by name


def _features(model, x):
    return model.features(x)


def test_a_worker_process_computes_the_same_features(weights):
    """The real use: a model handed to another process (spawned, as on macOS and Windows, and as Dask's and
    Ray's workers are), which computes there and returns its results."""
    model = mnp.Model(weights.architecture(), weights.variables, weights=weights)
    x = random_images(3, 64, 64, seed=5)
    here = model.features(x)            # used first, as a model usually is before it is sent anywhere
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        there = pool.submit(_features, model, x).result(timeout=300)
    assert np.array_equal(there, here)


def test_integer_model_round_trip():
    path = fixture_path(QUANT_TFLITE)
    if path is None:
        pytest.skip(missing_reason(QUANT_TFLITE))
    model = mnp.load(path, rounding="xnnpack")
    model.module_kind = "classification"
    x = (random_images(2, 128, 128, seed=6) * 255).astype(np.uint8)
    out = model.classify(x)
    back = pickle.loads(pickle.dumps(model))
    assert np.array_equal(back.classify(x), out)
    assert (back.rounding, back.fast_path, back.module_kind) == ("xnnpack", model.fast_path, "classification")
