import numpy as np
import pytest

from hydranet_ros.io import visuals
from hydranet_ros.presets import palettes
from hydranet_ros.model import PRESETS


def test_palettes_have_the_documented_sizes_and_colours():
    assert len(palettes.KITTI6) == 6 and palettes.KITTI6[2] == (128, 64, 128)
    assert len(palettes.CITYSCAPES19) == len(palettes.CITYSCAPES19_CLASSES) == 19
    voc = palettes.pascal_voc()
    assert voc[:4] == ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)) and voc[255] == (224, 224, 192)
    assert palettes.NYU40[0] == voc[1] and len(palettes.NYU40) == 40
    for preset in PRESETS.values():
        assert len(preset.palette) == preset.num_classes


def test_colorize_labels_and_void_ids():
    labels = np.array([[0, 5], [6, 255]], np.uint8)
    rgb = visuals.colorize_labels(labels, palettes.KITTI6)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert tuple(rgb[0, 1]) == palettes.KITTI6[5]
    assert tuple(rgb[1, 0]) == (0, 0, 0) and tuple(rgb[1, 1]) == (0, 0, 0)


def test_overlay_blends_and_resizes():
    frame = np.full((8, 8, 3), 200, np.uint8)
    labels = np.zeros((4, 4), np.uint8)
    out = visuals.overlay(frame, labels, palettes.KITTI6, alpha=0.5)
    assert out.shape == (4, 4, 3)
    assert abs(int(out[0, 0, 0]) - (128 + 200) // 2) <= 1
    with pytest.raises(ValueError):
        visuals.overlay(frame, labels, palettes.KITTI6, alpha=1.5)


def test_depth_colours_are_fixed_range_and_no_estimate_is_grey_not_far():
    depth = np.array([[np.nan, 0.0, 1.0, 79.0, 500.0]], np.float32)
    rgb = visuals.colorize_depth(depth, (0.0, 80.0))
    grey = {visuals.INVALID_LIGHT, visuals.INVALID_DARK}
    assert tuple(rgb[0, 0]) in grey and tuple(rgb[0, 1]) in grey
    assert not np.array_equal(rgb[0, 2], rgb[0, 3])
    # no depth colour is grey: "no estimate" cannot be read as "far"
    ramp = visuals.colorize_depth(np.linspace(0.01, 80, 512, dtype=np.float32)[None], (0.0, 80.0))[0]
    assert min(np.abs(ramp.astype(int) - np.array(g)).sum(axis=1).min() for g in grey) > 40
    # Beyond the range clamps to the far colour; the same metres always get the same colour.
    np.testing.assert_array_equal(visuals.colorize_depth(np.array([[80.0]], np.float32), (0, 80))[0, 0], rgb[0, 4])


def test_preview_has_a_legend_of_present_classes_and_a_depth_bar():
    from hydranet_ros.presets import get_preset

    preset = get_preset("kitti")
    labels = np.zeros((120, 300), np.uint8)
    labels[60:] = 2  # sky and road only
    depth = np.full((120, 300), 20.0, np.float32)
    frame = np.zeros((120, 300, 3), np.uint8)
    out = visuals.preview(frame, labels, visuals.colorize_labels(labels, preset.palette), depth, preset)
    assert out.shape == (160, 2 * 400 + 170, 3)  # enlarged to 160 rows so the text is legible
    panel = out[:, 800:]
    legend = panel[:80]
    for cls in (0, 2):  # the swatches of the classes present, and no others
        assert (np.abs(legend.astype(int) - preset.palette[cls]).sum(axis=2) == 0).sum() > 20
    assert (np.abs(legend.astype(int) - preset.palette[5]).sum(axis=2) == 0).sum() == 0
    bar = panel[80:]
    assert len({tuple(c) for c in bar[:, 10]}) > 30  # a colour ramp


def test_side_by_side_matches_heights():
    a = np.zeros((10, 20, 3), np.uint8)
    b = np.zeros((5, 5, 3), np.uint8)
    assert visuals.side_by_side(a, b).shape == (10, 30, 3)
