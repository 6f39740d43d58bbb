"""``same_padding`` checked against TensorFlow's own 'SAME' convolution, measured empirically.

The pads are read off TF: the input's pixel values encode their position (1..n, 0 = padding) and a one-hot
kernel bank copies every tap to its own output channel, so each output shows exactly which input rows its window
covered. A second check rebuilds SAME as VALID on an explicitly padded input, and a third shows that symmetric
padding gives a different answer (so these tests can fail).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobilenet_np.kernels.padding import same_padding, same_pads

tf = pytest.importorskip("tensorflow")

SIZES = dict(n=st.integers(1, 64), k=st.integers(1, 7), s=st.integers(1, 4))


def tf_same_padding(n, k, s):
    """``(out, before, after)`` of TF 'SAME' along one axis, measured from ``tf.nn.conv2d``."""
    x = np.arange(1, n + 1, dtype=np.float32).reshape(1, n, 1, 1)      # value = position + 1
    bank = np.zeros((k, 1, 1, k), np.float32)
    bank[np.arange(k), 0, 0, np.arange(k)] = 1.0                         # channel j reads tap j
    taps = tf.nn.conv2d(x, bank, strides=[1, s, 1, 1], padding="SAME").numpy()[0, :, 0, :]
    out = taps.shape[0]
    positions = taps.astype(np.int64) - 1                                # -1 where the tap hit padding
    first = positions[0]
    before = int(np.argmax(first >= 0))                                  # leading taps of window 0 in padding
    assert first[before] == 0                                            # ... and then the first pixel
    last = positions[-1]
    inside = np.nonzero(last >= 0)[0]
    after = k - 1 - int(inside[-1]) if last[inside[-1]] == n - 1 else 0  # trailing taps past the last pixel
    # The whole map is consistent with a window starting at o*s - before:
    expected = np.arange(out)[:, None] * s + np.arange(k)[None, :] - before
    np.testing.assert_array_equal(positions, np.where((expected >= 0) & (expected < n), expected, -1))
    return out, before, after


@pytest.mark.parametrize("n,k,s,expected", [(224, 3, 2, (112, 0, 1)), (112, 3, 1, (112, 1, 1)),
                                            (7, 1, 1, (7, 0, 0)), (4, 3, 2, (2, 0, 1)), (5, 3, 2, (3, 1, 1)),
                                            (1, 7, 4, (1, 3, 3)), (10, 3, 2, (5, 0, 1))])
def test_named_cases(n, k, s, expected):
    assert same_padding(n, k, s) == expected
    assert tf_same_padding(n, k, s) == expected


@settings(max_examples=120)
@given(**SIZES)
def test_same_padding_matches_tf(n, k, s):
    assert same_padding(n, k, s) == tf_same_padding(n, k, s)


@settings(max_examples=60)
@given(h=st.integers(1, 40), w=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1))
def test_same_equals_valid_on_explicit_pads(h, w, k, s, seed):
    """TF SAME == TF VALID on ``np.pad(x, same_pads(...))``, 2-D, non-square, random data."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, h, w, 2)).astype(np.float32)
    kernel = rng.standard_normal((k, k, 2, 3)).astype(np.float32)
    top, bottom, left, right = same_pads(h, w, k, s)
    same = tf.nn.conv2d(x, kernel, s, "SAME").numpy()
    valid = tf.nn.conv2d(np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))), kernel, s, "VALID").numpy()
    assert same.shape == valid.shape == (1, same_padding(h, k, s)[0], same_padding(w, k, s)[0], 3)
    np.testing.assert_allclose(valid, same, rtol=1e-5, atol=1e-5)


def test_symmetric_padding_differs_at_stride_2():
    """At 224/k3/s2 one row+column on every side (PyTorch-style) is not what TF computes."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 224, 224, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    same = tf.nn.conv2d(x, kernel, 2, "SAME").numpy()
    symmetric = tf.nn.conv2d(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), kernel, 2, "VALID").numpy()
    assert symmetric.shape == same.shape == (1, 112, 112, 4)
    assert np.abs(symmetric - same).max() > 0.5
    assert same_padding(224, 3, 2) != (112, 1, 1)


MUTANTS = {
    "symmetric (k-1)//2 each side": lambda n, k, s: (-(-n // s), (k - 1) // 2, (k - 1) // 2),
    "extra pad on top/left": lambda n, k, s: (lambda out, total: (out, total - total // 2, total // 2))(
        -(-n // s), max((-(-n // s) - 1) * s + k - n, 0)),
    "floor output size": lambda n, k, s: (lambda out: (out, *same_padding(n, k, s)[1:]))(max(n // s, 1)),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_plausible_wrong_rules_are_caught(mutant):
    """Each common porting mistake disagrees with TF's measured padding somewhere on a small grid."""
    wrong = MUTANTS[mutant]
    grid = [(n, k, s) for n in (7, 8, 15, 224) for k in (1, 3, 4) for s in (1, 2, 3)]
    assert any(wrong(*case) != tf_same_padding(*case) for case in grid)
