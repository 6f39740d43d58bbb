"""Every Numba kernel against its NumPy twin on random shapes, and the twins against hand-derived values."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from mobilenet_np import kernels as K
from mobilenet_np.testing import assert_close

shapes = st.fixed_dictionaries(dict(
    n=st.integers(1, 4), h=st.integers(1, 19), w=st.integers(1, 19),
    cin=st.integers(1, 64), cout=st.integers(1, 64), stride=st.sampled_from([1, 2]),
    kernel=st.sampled_from([1, 3]), relu6=st.booleans(), seed=st.integers(0, 2**31 - 1)))


def _random(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@given(shapes)
def test_conv2d_matches_twin(s):
    rng = np.random.default_rng(s["seed"])
    x = _random(rng, s["n"], s["h"], s["w"], min(s["cin"], 8))
    w = _random(rng, s["kernel"], s["kernel"], x.shape[3], s["cout"], scale=0.5)
    b = _random(rng, s["cout"])
    pads = K.same_pads(s["h"], s["w"], s["kernel"], s["stride"])
    got = K.conv2d(x, w, b, s["stride"], pads, s["relu6"])
    assert_close(got, K.conv2d_numpy(x, w, b, s["stride"], pads, s["relu6"]), "kernel_vs_twin", "conv2d")
    assert got.shape[1:3] == (-(-s["h"] // s["stride"]), -(-s["w"] // s["stride"]))


@given(shapes, st.sampled_from([1, 2]))
def test_depthwise_matches_twin(s, mult):
    rng = np.random.default_rng(s["seed"])
    x = _random(rng, s["n"], s["h"], s["w"], s["cin"])
    w = _random(rng, s["kernel"], s["kernel"], s["cin"], mult)
    b = _random(rng, s["cin"] * mult)
    pads = K.same_pads(s["h"], s["w"], s["kernel"], s["stride"])
    got = K.depthwise_conv2d(x, w, b, s["stride"], pads, s["relu6"])
    assert_close(got, K.depthwise_conv2d_numpy(x, w, b, s["stride"], pads, s["relu6"]), "kernel_vs_twin", "depthwise")


@given(shapes)
def test_pointwise_matches_twin(s):
    rng = np.random.default_rng(s["seed"])
    x = _random(rng, s["n"], s["h"], s["w"], s["cin"])
    w = _random(rng, s["cin"], s["cout"], scale=0.3)
    b = _random(rng, s["cout"])
    got = K.pointwise_conv2d(x, w, b, s["relu6"])
    assert_close(got, K.pointwise_conv2d_numpy(x, w, b, s["relu6"]), "kernel_vs_twin", "pointwise")


@given(shapes)
def test_batch_norm_matches_twin(s):
    rng = np.random.default_rng(s["seed"])
    c = s["cout"]
    x = _random(rng, s["n"], s["h"], s["w"], c, scale=3)
    gamma, beta, mean = _random(rng, c), _random(rng, c), _random(rng, c)
    var = rng.uniform(0.01, 4, c).astype(np.float32)
    got = K.batch_norm(x, gamma, beta, mean, var, 1e-3)
    expected = gamma * (x.astype(np.float64) - mean) / np.sqrt(var.astype(np.float64) + 1e-3) + beta
    assert_close(got, K.batch_norm_numpy(x, gamma, beta, mean, var, 1e-3), "kernel_vs_twin", "batch_norm")
    assert_close(got, expected, "kernel_vs_twin", "batch_norm vs textbook formula")


@given(shapes)
def test_pool_activation_logits_softmax_match_twins(s):
    rng = np.random.default_rng(s["seed"])
    x = _random(rng, s["n"], s["h"], s["w"], s["cin"], scale=5)
    assert_close(K.relu6(x), K.relu6_numpy(x), "kernel_vs_twin", "relu6")
    assert_close(K.global_avg_pool(x), K.global_avg_pool_numpy(x), "kernel_vs_twin", "global_avg_pool")
    f = _random(rng, s["n"], s["cin"])
    w, b = _random(rng, s["cin"], s["cout"]), _random(rng, s["cout"])
    assert_close(K.logits(f, w, b), K.logits_numpy(f, w, b), "kernel_vs_twin", "logits")
    z = _random(rng, s["n"], s["cout"], scale=20)
    p = K.softmax(z)
    assert_close(p, K.softmax_numpy(z), "kernel_vs_twin", "softmax")
    assert_close(p.sum(axis=1), np.ones(s["n"]), "kernel_vs_twin", "softmax rows sum to 1")


@given(shapes)
def test_folding_bn_into_conv_equals_conv_then_bn(s):
    """conv(x, w*k) + (beta - mean*k) == BN(conv(x, w)): the identity load-time folding relies on."""
    rng = np.random.default_rng(s["seed"])
    x = _random(rng, s["n"], s["h"], s["w"], s["cin"])
    c = s["cin"]
    gamma, beta, mean = _random(rng, c), _random(rng, c), _random(rng, c)
    var = rng.uniform(0.01, 4, c).astype(np.float32)
    w = _random(rng, 3, 3, c, 1)
    pads = K.same_pads(s["h"], s["w"], 3, s["stride"])
    unfolded = K.batch_norm_numpy(K.depthwise_conv2d_numpy(x, w, np.zeros(c, np.float32), s["stride"], pads, False),
                                  gamma, beta, mean, var, 1e-3)
    wf, bf = K.fold_batch_norm(w, gamma, beta, mean, var, 1e-3, depthwise=True)
    folded = K.depthwise_conv2d_numpy(x, wf, bf, s["stride"], pads, False)
    assert_close(folded, unfolded, "kernel_vs_twin", "folded depthwise")
    wp = _random(rng, 1, 1, c, s["cout"])
    g2, b2, m2 = _random(rng, s["cout"]), _random(rng, s["cout"]), _random(rng, s["cout"])
    v2 = rng.uniform(0.01, 4, s["cout"]).astype(np.float32)
    unfolded = K.batch_norm_numpy(K.pointwise_conv2d_numpy(x, wp[0, 0], np.zeros(s["cout"], np.float32), False),
                                  g2, b2, m2, v2, 1e-3)
    wf, bf = K.fold_batch_norm(wp, g2, b2, m2, v2, 1e-3)
    assert_close(K.pointwise_conv2d_numpy(x, wf[0, 0], bf, False), unfolded, "kernel_vs_twin", "folded pointwise")


def test_same_padding_by_hand():
    # Worked by hand from out = ceil(n/s), total = (out-1)*s + k - n, before = total // 2.
    assert K.same_padding(224, 3, 2) == (112, 0, 1)
    assert K.same_padding(7, 3, 2) == (4, 1, 1)
    assert K.same_padding(8, 3, 1) == (8, 1, 1)
    assert K.same_padding(5, 1, 2) == (3, 0, 0)
    assert K.same_pads(10, 11, 3, 2) == (0, 1, 1, 1)


def test_depthwise_by_hand_stride2_pads_bottom_right():
    """A 4x4 ramp, a 3x3 kernel of ones, stride 2: SAME gives no top/left pad and one row/column bottom/right,
    so output (0,0) sums x[0:3, 0:3] and output (1,1) sums x[2:4, 2:4] (the rest is padding)."""
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    w = np.ones((3, 3, 1, 1), np.float32)
    for fn in (K.depthwise_conv2d, K.depthwise_conv2d_numpy):
        y = fn(x, w, np.zeros(1, np.float32), 2, K.same_pads(4, 4, 3, 2), False)[0, :, :, 0]
        assert y.tolist() == [[0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10, 2 + 3 + 6 + 7 + 10 + 11],
                              [8 + 9 + 10 + 12 + 13 + 14, 10 + 11 + 14 + 15]]


def test_relu6_and_softmax_by_hand():
    x = np.array([[-1.0, 0.0, 3.0, 6.0, 7.5]], np.float32)
    for fn in (K.relu6, K.relu6_numpy):
        assert fn(x).tolist() == [[0.0, 0.0, 3.0, 6.0, 6.0]]
    z = np.array([[0.0, np.log(3.0)]], np.float32)
    for fn in (K.softmax, K.softmax_numpy):
        np.testing.assert_allclose(fn(z), [[0.25, 0.75]], rtol=1e-6)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_kernel_set_has_every_kernel(engine):
    assert set(K.kernel_set(engine)) == set(K.KERNELS)
    with pytest.raises(ValueError):
        K.kernel_set("cuda")
