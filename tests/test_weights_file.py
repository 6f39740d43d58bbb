"""Our HDF5 weight format: round trip, validation, atomic writes, corrupt files."""
import os

import h5py
import numpy as np
import pytest

import mobilenet_np as mnp
from mobilenet_np.weights import FORMAT_VERSION, check_variables, load_hdf5, save_hdf5

from .helpers import random_images, random_weight_set


def test_round_trip_is_bit_exact_and_keeps_metadata(tmp_path):
    ws = random_weight_set("v2", 0.5, input_size=(160, 160))
    ws.labels = ["background"] + [f"c{i}" for i in range(1000)]
    path = save_hdf5(ws, tmp_path / "w.h5")
    back = load_hdf5(path)
    assert back.variables.keys() == ws.variables.keys()
    for name, value in ws.variables.items():
        assert back.variables[name].dtype == np.float32 and np.array_equal(back.variables[name], value), name
    assert (back.family, back.depth_multiplier, back.num_classes, back.input_size) == ("mobilenet_v2", 0.5, 1001, (160, 160))
    assert back.labels == ws.labels
    with h5py.File(path) as f:
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert f["MobilenetV2/expanded_conv_3/expand/weights"].shape == (1, 1, 16, 96)
    images = random_images(1, 160, 160)
    np.testing.assert_array_equal(mnp.load(path).classify(images),
                                  mnp.Model(ws.architecture(), ws.variables).classify(images))


def test_validation_names_missing_unexpected_and_misshaped():
    ws = random_weight_set()
    arch = ws.architecture()
    v = dict(ws.variables)
    del v["MobilenetV1/Conv2d_4_depthwise/BatchNorm/gamma"]
    v["MobilenetV1/Conv2d_5_pointwise/weights"] = np.zeros((1, 1, 64, 65), np.float32)
    v["MobilenetV1/Conv2d_99/weights"] = np.zeros(3, np.float32)
    with pytest.raises(mnp.VariableMismatchError) as info:
        check_variables(arch, v, strict=True)
    e = info.value
    assert e.missing == ["MobilenetV1/Conv2d_4_depthwise/BatchNorm/gamma"]
    assert e.unexpected == ["MobilenetV1/Conv2d_99/weights"]
    assert e.mismatched == [("MobilenetV1/Conv2d_5_pointwise/weights", (1, 1, 64, 64), (1, 1, 64, 65))]
    for text in ("Conv2d_4_depthwise/BatchNorm/gamma", "(1, 1, 64, 65)", "Conv2d_99"):
        assert text in str(e)
    del v["MobilenetV1/Conv2d_99/weights"]
    with pytest.raises(mnp.VariableMismatchError):
        check_variables(arch, v)   # missing and misshaped fail even when not strict


def test_failed_save_leaves_nothing_behind(tmp_path):
    ws = random_weight_set()
    del ws.variables["MobilenetV1/Conv2d_0/weights"]
    target = tmp_path / "out.h5"
    with pytest.raises(mnp.VariableMismatchError):
        save_hdf5(ws, target)
    assert os.listdir(tmp_path) == []


def test_save_replaces_atomically(tmp_path):
    target = tmp_path / "out.h5"
    target.write_bytes(b"old")
    save_hdf5(random_weight_set(), target)
    assert load_hdf5(target).family == "mobilenet_v1"
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]


def test_corrupt_and_foreign_files_raise_specific_errors(tmp_path):
    good = save_hdf5(random_weight_set(), tmp_path / "good.h5")
    data = open(good, "rb").read()
    with pytest.raises(mnp.WeightsFileNotFoundError):
        load_hdf5(tmp_path / "nope.h5")
    for cut in (8, 100, len(data) // 2, len(data) - 1000):
        (tmp_path / "cut.h5").write_bytes(data[:cut])
        with pytest.raises(mnp.CorruptFileError):
            load_hdf5(tmp_path / "cut.h5")
    (tmp_path / "text.h5").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(mnp.CorruptFileError, match="signature"):
        load_hdf5(tmp_path / "text.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(mnp.WeightsError, match="not a mobilenet_np weight file"):
        load_hdf5(tmp_path / "foreign.h5")
    with h5py.File(good, "r+") as f:
        del f["MobilenetV1/Conv2d_7_pointwise/weights"]
    with pytest.raises(mnp.VariableMismatchError, match="Conv2d_7_pointwise/weights"):
        load_hdf5(good)
