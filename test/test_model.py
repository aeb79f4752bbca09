import pytest
import torch

from hydranet_ros.model import PRESETS, HydraNet, get_preset
from hydranet_ros.model.fold import fold_batchnorm
from hydranet_ros.model.random_init import realistic_model
from hydranet_ros.model.reference import reference_forward
from support import published_state


@pytest.mark.parametrize("preset_name", list(PRESETS))
def test_outputs_per_preset(preset_name):
    preset = get_preset(preset_name)
    model = HydraNet(preset).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 64, 96))
    expected = {"segm": preset.num_classes, "depth": 1} | ({"normals": 3} if preset.with_normals else {})
    assert {k: v.shape[1] for k, v in out.items()} == expected
    assert all(v.shape[-2:] == (16, 24) for v in out.values())


@pytest.mark.parametrize("width,height", [(1226, 370), (641, 479), (32, 32)])
def test_awkward_sizes_give_quarter_resolution(width, height):
    model = HydraNet(get_preset("kitti")).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, height, width))
    # Stride-2 convs round up, so the stride-4 maps are ceil(size / 4).
    assert out["segm"].shape[-2:] == ((height + 3) // 4, (width + 3) // 4)
    assert out["depth"].shape == (1, 1, (height + 3) // 4, (width + 3) // 4)


def test_parameter_count_matches_published_size():
    count = sum(p.numel() for p in HydraNet(get_preset("kitti")).parameters())
    assert 2.9e6 < count < 3.1e6  # the paper's "about 3.0 M"


@pytest.mark.parametrize("preset_name", ["kitti", "nyud_three"])
def test_matches_independent_reference_within_1e5(preset_name):
    """Our module tree and the functional reference (published key names) agree exactly."""
    preset = get_preset(preset_name)
    model = realistic_model(preset, seed=1)
    image = torch.randn(1, 3, 96, 128)
    with torch.inference_mode():
        ours = model(image)
        ref = reference_forward(published_state(model), image)
    assert ours.keys() == ref.keys()
    for name in ours:
        scale = ref[name].abs().max().item()
        assert scale > 0.1, "weights too small for a meaningful comparison"
        torch.testing.assert_close(ours[name], ref[name], atol=1e-5 * max(1.0, scale), rtol=1e-5)


def test_bn_folding_is_equivalent_within_1e4():
    model = realistic_model(get_preset("kitti"), seed=2)
    image = torch.randn(1, 3, 96, 128)
    with torch.inference_mode():
        expected = model(image)
        folded = fold_batchnorm(realistic_model(get_preset("kitti"), seed=2))
        got = folded(image)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-4, rtol=1e-4)


def test_folding_refuses_training_mode():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(HydraNet(get_preset("kitti")).train())


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("height, width", [(7, 9), (1, 1), (2, 3), (15, 20)])
def test_crp_pool_is_a_5x5_same_size_max_pool_in_either_layout(layout, height, width):
    """The CUDA form (shifted maxima) checked here on the CPU, where both forms run."""
    from hydranet_ros.model.refinenet import max_pool_5x5, shifted_max_pool_5x5

    x = torch.randn(1, 8, height, width).contiguous(memory_format=layout)
    expected = torch.nn.functional.max_pool2d(x.contiguous(), 5, 1, 2)
    for pool in (max_pool_5x5, shifted_max_pool_5x5):
        out = pool(x)
        assert torch.equal(out, expected)
        assert out.is_contiguous(memory_format=layout)


def test_encoder_returns_named_features_as_its_table_says():
    """The encoder's contract: names, channels and strides from the t, c, n, s table, checked
    against the maps it actually returns."""
    from hydranet_ros.model.mobilenetv2 import FeatureInfo, MobileNetV2Encoder

    encoder = MobileNetV2Encoder().eval()
    assert encoder.features == {
        "layer3": FeatureInfo(24, 4), "layer4": FeatureInfo(32, 8), "layer5": FeatureInfo(64, 16),
        "layer6": FeatureInfo(96, 16), "layer7": FeatureInfo(160, 32), "layer8": FeatureInfo(320, 32),
    }
    with torch.inference_mode():
        maps = encoder(torch.randn(1, 3, 64, 96))
    assert list(maps) == list(encoder.features)
    for name, info in encoder.features.items():
        assert maps[name].shape == (1, info.channels, 64 // info.stride, 96 // info.stride), name


def test_decoder_sizes_itself_from_the_encoder_table():
    from hydranet_ros.model.mobilenetv2 import STAGES, feature_table
    from hydranet_ros.model.refinenet import RefineNetDecoder

    wider = tuple((t, c * 2, n, s) for t, c, n, s in STAGES)  # another table: the decoder follows it
    features = feature_table(wider)
    decoder = RefineNetDecoder(features)
    assert decoder.conv8.in_channels == 640 and decoder.conv3.in_channels == 48
    maps = {name: torch.randn(1, info.channels, 64 // info.stride, 96 // info.stride) for name, info in features.items()}
    with torch.inference_mode():
        assert decoder(maps).shape == (1, 256, 16, 24)


def test_decoder_refuses_features_that_do_not_fit_its_fusion():
    from hydranet_ros.model.mobilenetv2 import STAGES, feature_table
    from hydranet_ros.model.refinenet import RefineNetDecoder

    no_last_stride = tuple((t, c, n, 1 if index == 5 else s) for index, (t, c, n, s) in enumerate(STAGES))
    with pytest.raises(ValueError, match="strides"):
        RefineNetDecoder(feature_table(no_last_stride))  # layer7/layer8 at stride 16: levels no longer halve
    with pytest.raises(ValueError, match="encoder returns"):
        RefineNetDecoder(feature_table(min_stride=8))  # no stride-4 map


def test_module_names_keep_the_published_checkpoint_keys():
    """Renaming a module would stop the published weights (and our shipped ones) from loading."""
    from hydranet_ros.model.checkpoints import ours_to_published, published_to_ours

    keys = HydraNet(get_preset("kitti")).state_dict()
    published = {ours_to_published(k) for k in keys}
    assert {"layer1.0.weight", "layer8.0.output.2.1.running_var", "conv8.weight", "conv3.weight",
            "crp4.0.1_outvar_dimred.weight", "crp1.0.4_outvar_dimred.weight", "conv_adapt2.weight",
            "pre_segm.weight", "segm.bias", "pre_depth.weight", "depth.bias"} <= published
    assert all(published_to_ours(ours_to_published(k)) == k for k in keys)
