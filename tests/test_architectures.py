"""Layer tables against published facts (slim docstrings, the TF-Hub pages, the papers)."""
import pytest

from mobilenet_np import architectures as A


def test_v1_body_totals_match_slim_docstring():
    # slim mobilenet_v1.py docstring: MobileNet 1.0/224 body has 3,185,088 conv weights and 567,716,352 MACs.
    arch = A.mobilenet_v1(1.0, num_classes=0)
    rows = arch.layer_table(224, 224)
    assert sum(r["params"] for r in rows) == 3_185_088
    assert sum(r["macs"] for r in rows) == 567_716_352
    assert len(rows) == 27


def test_v1_025_totals_match_published_values():
    arch = A.mobilenet_v1(0.25)
    assert round(arch.total_macs(128, 128) / 1e6, 2) == 13.57   # issue 2, slim table "14 M"
    assert round(arch.total_macs(224, 224) / 1e6, 2) == 41.03   # slim table "41 M"
    # the 2018 frozen graph holds 475,801 float values (kernels, BN statistics and logits)
    assert arch.stored_values() == 475_801
    assert arch.num_features == 256


def test_v1_025_192_is_30_2_million_not_34():
    # The slim README lists 34 M MACs for 0.25/192; counting layer by layer gives 30.2 M. TensorFlow's own
    # shape inference on the real 192 frozen graph agrees with the layer count (tests/test_tf_oracle.py).
    assert round(A.mobilenet_v1(0.25).total_macs(192, 192) / 1e6, 1) == 30.2


def test_v1_depth_rule():
    assert A.v1_depth(32, 0.25) == 8
    assert A.v1_depth(64, 0.25) == 16
    assert A.v1_depth(32, 0.1) == 8            # min_depth
    assert A.v1_depth(1024, 0.75) == 768
    arch = A.mobilenet_v1(0.5)
    assert [l.out_channels for l in arch.layers if l.op != "depthwise"] == [16, 32, 64, 64, 128, 128, 256] + [256] * 5 + [512, 512]


def test_make_divisible_worked_examples():
    # By hand from the rule in slim mobilenet.py: nearest multiple of 8, halves up, +8 if below 90%.
    assert A.make_divisible(12) == 16       # 24 * 0.5: 12 + 4 = 16 -> 16
    assert A.make_divisible(11.2) == 16     # 32 * 0.35: int(15.2) // 8 * 8 = 8 < 0.9 * 11.2 -> 16
    assert A.make_divisible(8) == 8
    assert A.make_divisible(3) == 8         # min_value
    assert A.make_divisible(1280 * 1.4) == 1792
    assert A.make_divisible(96 * 0.35) == 32   # 33.6 -> 32 (>= 0.9 * 33.6)


def test_v2_050_table_matches_semantics_b2():
    arch = A.mobilenet_v2(0.5)
    by_name = {l.name: l for l in arch.layers}
    assert by_name["Conv"].out_channels == 16
    assert "expanded_conv/expand" not in by_name                    # first block has no expansion
    assert by_name["expanded_conv/project"].out_channels == 8
    assert by_name["expanded_conv_1/expand"].out_channels == 48
    assert by_name["expanded_conv_16/project"].out_channels == 160
    assert by_name["Conv_1"].out_channels == 1280                     # not multiplied for alpha < 1
    residual = [l.block for l in arch.layers if l.residual]
    assert residual == ["expanded_conv_2", "expanded_conv_4", "expanded_conv_5", "expanded_conv_7",
                        "expanded_conv_8", "expanded_conv_9", "expanded_conv_11", "expanded_conv_12",
                        "expanded_conv_14", "expanded_conv_15"]
    assert arch.num_features == 1280
    plan = arch.spatial_plan(160, 160)
    assert plan[-2][2] == (5, 5)


def test_v2_totals_match_slim_readme():
    # slim nets/mobilenet/README.md table (MACs in millions, truncated, logits included; params in millions).
    for alpha, size, macs, params in [(1.0, 224, 300, 3.47), (0.5, 160, 50, 1.95), (1.4, 224, 582, 6.06),
                                      (0.35, 96, 11, 1.66), (0.75, 192, 153, 2.61), (1.3, 224, 509, 5.34),
                                      (0.35, 224, 59, 1.66)]:
        arch = A.mobilenet_v2(alpha)
        rows = arch.layer_table(size, size)
        assert int(arch.total_macs(size, size) / 1e6) == macs, (alpha, size)
        assert round(sum(r["params"] for r in rows) / 1e6, 2) == params, (alpha, size)


def test_variable_names_are_slim_names():
    v = A.mobilenet_v1(0.25).variables()
    assert v["MobilenetV1/Conv2d_0/weights"] == (3, 3, 3, 8)
    assert v["MobilenetV1/Conv2d_3_depthwise/depthwise_weights"] == (3, 3, 32, 1)
    assert v["MobilenetV1/Conv2d_13_pointwise/BatchNorm/moving_variance"] == (256,)
    assert v["MobilenetV1/Logits/Conv2d_1c_1x1/biases"] == (1001,)
    assert len(v) == 27 * 5 + 2
    v2 = A.mobilenet_v2(0.5).variables()
    assert v2["MobilenetV2/expanded_conv_5/expand/weights"] == (1, 1, 16, 96)
    assert v2["MobilenetV2/Conv_1/BatchNorm/gamma"] == (1280,)


def test_non_square_and_small_inputs():
    arch = A.mobilenet_v1(0.25)
    plan = arch.spatial_plan(33, 97)
    assert plan[0][2] == (17, 49)
    assert plan[-2][2] == (2, 4)      # ceil(33/32), ceil(97/32)
    with pytest.raises(ValueError):
        A.build("v3", 1.0)
    with pytest.raises(ValueError):
        A.mobilenet_v1(0)
