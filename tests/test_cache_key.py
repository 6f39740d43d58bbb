"""Numba's cache must not outlive a change to code compiled into a cached function (kernels/cache_key.py)."""
import importlib
import os
import shutil

import pytest

from mobilenet_np.kernels import cache_key

MODULES = sorted(f[:-3] for f in os.listdir(cache_key.HERE)
                 if f.endswith(".py") and f not in ("__init__.py", "cache_key.py"))


@pytest.mark.parametrize("name", MODULES)
def test_each_kernel_module_states_the_digest_of_what_it_compiles_in(name):
    module = importlib.import_module(f"mobilenet_np.kernels.{name}")
    if not cache_key.compiled_in(name):
        assert not hasattr(module, "COMPILED_IN"), f"{name} compiles in no sibling module: drop COMPILED_IN"
        return
    expected = cache_key.digest(name)
    assert getattr(module, "COMPILED_IN", None) == expected, (
        f"{name}.py compiles in {cache_key.compiled_in(name)}, which changed: set COMPILED_IN = \"{expected}\" "
        f"there, so that Numba's cache of {name} is rebuilt")


def test_the_fast_kernels_depend_on_the_intrinsics_and_the_integer_helpers():
    # hand-checked against fused.py's imports: a digest that missed simd.py would let stale intrinsics run
    assert cache_key.compiled_in("fused") == ["integer_fixedpoint", "integer_ops", "simd"]
    assert cache_key.compiled_in("integer_ops") == ["integer_fixedpoint"]      # fused reaches it through here too


def test_a_change_to_a_dependency_changes_the_digest_and_the_own_line_does_not(tmp_path, monkeypatch):
    for f in os.listdir(cache_key.HERE):
        if f.endswith(".py"):
            shutil.copy(os.path.join(cache_key.HERE, f), tmp_path / f)
    monkeypatch.setattr(cache_key, "HERE", str(tmp_path))
    before = cache_key.digest("fused")
    with open(tmp_path / "fused.py", "a") as f:       # the caller's own code is covered by Numba itself
        f.write("\n# an edit of fused.py\n")
    assert cache_key.digest("fused") == before
    with open(tmp_path / "integer_ops.py", "r+") as f:  # another module's COMPILED_IN line is left out
        text = f.read().replace('COMPILED_IN = "', 'COMPILED_IN = "0')
        f.seek(0), f.write(text), f.truncate()
    assert cache_key.digest("fused") == before
    with open(tmp_path / "integer_fixedpoint.py", "a") as f:    # reached through integer_ops
        f.write("\n# an edit two imports away\n")
    assert cache_key.digest("fused") != before
