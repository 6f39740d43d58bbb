"""The kernels as compiled for a CPU without AVX-512.

Numba compiles for the machine it runs on, and the fast executor chooses its shapes by what it finds
(``fused.WIDE``: 64-wide register tiles, the planar stem and the stem tiles with AVX-512; 16-wide blocks and
the GEMM stem with AVX2 and the like). A test run on an AVX-512 host therefore never executes the code that
every AVX2 laptop runs. This test runs the kernel tests once more in a child process compiled for Haswell
(AVX2 + FMA, the baseline of x86-64 machines since 2013) with an empty Numba cache of its own: the fused
kernels against their NumPy twins, whole models against the layer-by-layer path, and the integer epilogues
against TFLite's scalar formulas. About a minute, most of it compiling.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mobilenet_np.kernels import fused

ROOT = Path(__file__).resolve().parent.parent
HASWELL = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+pclmul,+popcnt,"
           "+sahf,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave")
TESTS = ["tests/test_fused.py",
         "tests/test_integer.py::test_vector_requantization_and_add_match_the_scalar_formulas",
         "tests/test_integer.py::test_integer_conv_kernels_match_twins",
         "tests/test_integer.py::test_integer_elementwise_kernels_match_twins"]


def _host_runs_avx2():
    import llvmlite.binding as ll
    features = ll.get_host_cpu_features()
    return all(features.get(f, False) for f in ("avx2", "fma", "f16c", "bmi2", "movbe"))


def test_kernel_tests_pass_when_compiled_for_avx2(tmp_path):
    if not fused.WIDE:
        pytest.skip("this host compiles without AVX-512 already: the main run tests that code")
    if not _host_runs_avx2():
        pytest.skip("this CPU cannot run code compiled for Haswell (AVX2)")
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=HASWELL,
               NUMBA_CACHE_DIR=str(tmp_path / "numba"), MOBILENET_NP_FIXTURES=str(tmp_path / "no-fixtures"))
    wide = subprocess.run([sys.executable, "-c", "from mobilenet_np.kernels import fused; print(fused.WIDE)"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert wide.stdout.strip() == "False", f"the child should compile without AVX-512: {wide.stdout}{wide.stderr}"
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-rs", *TESTS]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    tail = (run.stdout[-6000:] + run.stderr[-2000:]).strip()
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    print(f"AVX2 build: {summary}")
    assert run.returncode == 0, f"the AVX2 build failed its kernel tests:\n{tail}"
    assert " passed" in summary and "skipped" not in summary, f"every test must run in the AVX2 build:\n{tail}"
