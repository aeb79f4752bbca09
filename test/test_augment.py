"""Augmentation keeps image, labels and depth aligned; class-balance weights by hand."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydranet_ros.train.augment import (
    Augmenter, balanced_sample_weights, colour_jitter, crop, dappled_shadows, edge_padding, hflip,
    label_histogram, median_frequency_weights, rescale,
)
from hydranet_ros.train.synthetic import ROAD, SyntheticStreets

COLOURS = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]], np.uint8)
DEPTHS = np.array([2.0, 5.0, 11.0, 23.0], np.float32)  # class c lies at DEPTHS[c] metres


def block_frame(seed: int = 0, h: int = 48, w: int = 64) -> dict:
    """Blocks of classes; each class has its own colour and depth; some blocks are holes."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 5, (h // 8, w // 8))  # 4 = an unlabelled hole without depth
    labels = np.kron(blocks, np.ones((8, 8), np.int64))
    hole = labels == 4
    image = COLOURS[np.where(hole, 0, labels)]
    image[hole] = 0
    depth = np.where(hole, 0.0, DEPTHS[np.where(hole, 0, labels)]).astype(np.float32)
    k = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    return {"image": image, "labels": np.where(hole, 255, labels).astype(np.uint8), "depth_m": depth, "camera_k": k}


def assert_aligned(frame: dict, scale: float = 1.0, exact_image: bool = True) -> None:
    """Depth is the class's depth / scale everywhere; colour is the class's away from edges.

    Interpolating the image reaches about one source pixel, ``scale`` output pixels, past a
    pixel centre, so colours are checked where the labels agree that far around.
    """
    labels, depth, image = frame["labels"], frame["depth_m"], frame["image"]
    assert labels.shape == depth.shape == image.shape[:2]
    known = labels != 255
    np.testing.assert_allclose(depth[known], DEPTHS[labels[known]] / scale, rtol=1e-6)
    assert (depth[~known] == 0).all()
    r = 1 if exact_image else int(np.ceil(scale)) + 1
    pad = np.pad(labels, r, constant_values=254)  # unknown beyond the frame: not interior
    same = np.ones_like(known)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            same &= pad[r + dy: r + dy + labels.shape[0], r + dx: r + dx + labels.shape[1]] == labels
    interior = same & known
    if not interior.any():
        return  # a crop too small to hold a block interior: nothing to compare
    err = np.abs(image[interior].astype(int) - COLOURS[labels[interior]].astype(int)).max()
    assert err == 0 if exact_image else err <= 2


def test_block_frame_is_aligned_to_start_with():
    assert_aligned(block_frame())


def test_hflip_keeps_alignment_and_mirrors_k():
    f = block_frame(1)
    g = hflip(f)
    assert_aligned(g)
    np.testing.assert_array_equal(g["labels"], f["labels"][:, ::-1])
    assert g["camera_k"][0, 2] == 63 - 31.5
    np.testing.assert_array_equal(hflip(g)["camera_k"], f["camera_k"])


def test_crop_keeps_alignment_and_pads_with_ignore():
    f = block_frame(2)
    g = crop(f, -5, 10, 40, 50)  # reaches past the left and bottom edges
    assert g["labels"].shape == (50, 40)
    assert_aligned(g)
    assert (g["labels"][:, :5] == 255).all() and (g["depth_m"][:, :5] == 0).all() and (g["image"][:, :5] == 0).all()
    assert (g["labels"][38:] == 255).all()
    np.testing.assert_array_equal(g["labels"][:38, 5:], f["labels"][10:, :35])
    assert tuple(g["camera_k"][:2, 2]) == (36.5, 13.5)


@pytest.mark.parametrize("scale", [0.5, 0.75, 1.3, 2.0])
def test_rescale_divides_depth_and_keeps_alignment(scale):
    g = rescale(block_frame(3), scale)
    h, w = round(48 * scale), round(64 * scale)
    assert g["labels"].shape == (h, w)
    assert_aligned(g, (w / 64 + h / 48) / 2, exact_image=False)  # the scale sizes allow
    assert g["camera_k"][0, 0] == 50.0  # focal length unchanged: see augment's docstring


def test_rescale_keeps_nan_depth_invalid():
    f = block_frame(4)
    f["depth_m"][f["labels"] == 255] = np.nan
    g = rescale(f, 1.5)
    assert np.isnan(g["depth_m"][g["labels"] == 255]).all()
    assert np.isfinite(g["depth_m"][g["labels"] != 255]).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), lo=st.floats(0.5, 1.0), extra=st.floats(0.0, 1.0),
       cw=st.integers(16, 80), ch=st.integers(16, 60))
def test_augmenter_keeps_alignment(seed, lo, extra, cw, ch):
    aug = Augmenter(crop_size=(cw, ch), scale_range=(lo, lo + extra), flip_prob=0.5,
                    brightness=0, contrast=0, saturation=0, white_balance=0)
    f = block_frame(seed % 7)
    rng = np.random.default_rng(seed)
    g = aug(f, rng)
    assert g["labels"].shape == (ch, cw) and g["image"].shape == (ch, cw, 3)
    assert g["image"].dtype == np.uint8 and g["depth_m"].dtype == np.float32
    # Recover the drawn scale from the same random stream.
    s = np.random.default_rng(seed).uniform(lo, lo + extra)
    known = g["labels"] != 255
    if known.any():
        ratio = DEPTHS[g["labels"][known]] / g["depth_m"][known]
        sx, sy = round(64 * s) / 64, round(48 * s) / 48
        np.testing.assert_allclose(ratio, (sx + sy) / 2, rtol=1e-5)
        assert_aligned(g, (sx + sy) / 2, exact_image=False)


def test_colour_jitter_touches_only_the_image():
    f = block_frame(5)
    g = Augmenter(brightness=0.4, contrast=0.4, saturation=0.4, flip_prob=0.0)(f, np.random.default_rng(0))
    np.testing.assert_array_equal(g["labels"], f["labels"])
    np.testing.assert_array_equal(g["depth_m"], f["depth_m"])
    assert not np.array_equal(g["image"], f["image"])
    same = colour_jitter(f["image"], np.random.default_rng(0), brightness=0, contrast=0, saturation=0, white_balance=0)
    assert np.abs(same.astype(int) - f["image"]).max() <= 1


def test_zoomed_street_keeps_camera_height_and_focal_length():
    f = SyntheticStreets(size=(160, 48), length=1, seed=2)[0]
    g = crop(rescale(f, 2.0), 40, 20, 160, 60)
    k = g["camera_k"]
    assert k[1, 1] == f["camera_k"][1, 1]
    rows, _ = np.nonzero(g["labels"] == ROAD)
    assert rows.size
    depth = g["depth_m"][g["labels"] == ROAD]
    # Depth / s keeps X and Y: the ground stays 1.65 m below a camera of the same focal length
    # whose principal point moved with the zoom. Nearest-row sampling can be off by half a
    # source row, i.e. one output row.
    expected = k[1, 1] * 1.65 / (rows - k[1, 2])
    assert (np.abs(depth / expected - 1) <= 1.0 / (rows - k[1, 2])).all()


def test_bad_augmenter_settings():
    with pytest.raises(ValueError):
        Augmenter(scale_range=(0.0, 1.0))
    with pytest.raises(ValueError):
        Augmenter(flip_prob=1.5)
    with pytest.raises(ValueError):
        rescale(block_frame(), -1.0)
    with pytest.raises(ValueError):
        Augmenter(shadow_prob=-0.1)
    with pytest.raises(ValueError):
        Augmenter(shadow_strength=1.0)  # a shade that is black everywhere it falls
    with pytest.raises(ValueError):
        Augmenter(pad_prob=2.0)
    with pytest.raises(ValueError):
        Augmenter(pad_max_fraction=0.0)


@pytest.mark.parametrize("seed", range(4))
def test_dappled_shadows_only_darken_surfaces_in_patches(seed):
    """Shade darkens (never brightens, never shifts a hue's ratio beyond rounding), falls on part
    of the surfaces and never on the sky; the same generator state gives the same shade."""
    image = np.full((96, 160, 3), (180, 150, 120), np.uint8)
    surfaces = np.zeros((96, 160), bool)
    surfaces[40:] = True  # the upper rows are sky
    shaded = dappled_shadows(image, np.random.default_rng(seed), strength=0.6, surfaces=surfaces)
    assert shaded.shape == image.shape and shaded.dtype == np.uint8
    assert (shaded <= image).all()
    assert (shaded[:40] == image[:40]).all()
    dark = (image[40:].astype(int) - shaded[40:]).max(axis=2) >= 10
    assert 0.1 <= dark.mean() <= 0.75, dark.mean()
    assert shaded[40:][dark][:, 0].min() >= 180 * 0.4 - 1  # at most 1 - strength of the light
    np.testing.assert_array_equal(shaded, dappled_shadows(image, np.random.default_rng(seed), strength=0.6,
                                                          surfaces=surfaces))


class _ExtremeDraws:
    """A generator whose uniform draws are their lower bounds (4 px patches, the crispest edge)
    and whose grid alternates 0 and 1 (the cubic resize overshoots it): the field lies far from
    the threshold, where the logistic's exp overflowed float32."""

    def uniform(self, low, high):
        return low

    def random(self, shape):
        return (np.indices(shape).sum(axis=0) % 2).astype(np.float64)


def test_dappled_shadows_with_the_crispest_edges_raise_no_overflow():
    image = np.full((96, 160, 3), 200, np.uint8)
    with np.errstate(over="raise", invalid="raise"):
        shaded = dappled_shadows(image, _ExtremeDraws(), strength=0.6)
    assert (shaded <= image).all() and (shaded < image).any()
    assert shaded.min() >= 200 * (1 - 0.3 * 0.6) - 1  # the gain drawn at its lower bound, 0.3 * strength


def test_augmenter_shadows_keep_labels_and_depth_and_spare_frames_without_surface():
    frame = block_frame(3)
    out = Augmenter(flip_prob=0.0, brightness=0.0, contrast=0.0, saturation=0.0, white_balance=0.0,
                    shadow_prob=1.0)(frame, np.random.default_rng(0))
    np.testing.assert_array_equal(out["labels"], frame["labels"])
    np.testing.assert_array_equal(out["depth_m"], frame["depth_m"])
    assert (out["image"] <= frame["image"]).all() and (out["image"] < frame["image"]).any()
    hole = frame["depth_m"] == 0  # no surface there: untouched
    np.testing.assert_array_equal(out["image"][hole], frame["image"][hole])


@pytest.mark.parametrize("seed", range(6))
def test_edge_padding_repeats_the_edges_like_the_pipeline_and_ignores_the_bands(seed):
    frame = block_frame(seed, h=64, w=96)
    out = edge_padding(frame, np.random.default_rng(seed), max_fraction=0.25)
    changed = (out["labels"] != frame["labels"]) | (out["depth_m"] != frame["depth_m"])
    bands = out["labels"] == 255
    rows = np.flatnonzero((out["labels"] == 255).all(axis=1) & (frame["labels"] != 255).any(axis=1))
    cols = np.flatnonzero((out["labels"] == 255).all(axis=0) & (frame["labels"] != 255).any(axis=0))
    assert bool(rows.size) != bool(cols.size)  # one pair of opposite edges
    across = rows if rows.size else cols
    size = 64 if rows.size else 96
    n = np.ones(size, bool)
    n[across] = False
    first, last = np.flatnonzero(n)[[0, -1]]
    # Centred (the two bands differ by at most a pixel), at most the fraction, touching the edges.
    assert abs(first - (size - 1 - last)) <= 1 and 2 <= first + size - 1 - last <= 0.25 * size + 1
    inner = (slice(first, last + 1), slice(None)) if rows.size else (slice(None), slice(first, last + 1))
    np.testing.assert_array_equal(out["image"][inner], frame["image"][inner])  # the frame itself untouched
    np.testing.assert_array_equal(out["labels"][inner], frame["labels"][inner])
    assert (out["depth_m"][bands] == 0).all() and not changed[inner].any()
    # The bands repeat the frame's edge pixels, as network_input's replicate padding does.
    image = out["image"] if rows.size else out["image"].transpose(1, 0, 2)  # edges first either way
    assert (image[:first] == image[first]).all() and (image[last + 1:] == image[last]).all()


def test_augmenter_pads_after_the_camera_when_asked():
    frame = block_frame(2, h=64, w=96)
    plain = Augmenter(flip_prob=0.0, brightness=0.0, contrast=0.0, saturation=0.0, white_balance=0.0)
    padded = Augmenter(flip_prob=0.0, brightness=0.0, contrast=0.0, saturation=0.0, white_balance=0.0, pad_prob=1.0)
    assert (plain(frame, np.random.default_rng(0))["labels"] == frame["labels"]).all()
    assert ((padded(frame, np.random.default_rng(0))["labels"] == 255) & (frame["labels"] != 255)).any()


# -- class balance, against hand-computed numbers ---------------------------------------------

def test_label_histogram_ignores_255_and_out_of_range():
    labels = np.array([[0, 0, 1], [255, 2, 7]], np.uint8)
    assert label_histogram(labels, 3).tolist() == [2, 1, 1]


def test_median_frequency_weights_by_hand():
    hist = np.array([[6, 2, 0], [4, 0, 4]])
    # freq: class 0 10/16, class 1 2/8 (only image 1), class 2 4/8 (only image 2); median 0.5.
    np.testing.assert_allclose(median_frequency_weights(hist), [0.8, 2.0, 1.0])
    np.testing.assert_allclose(median_frequency_weights(np.array([[3, 0, 1]])), [0.5 / 0.75, 0.0, 0.5 / 0.25])
    with pytest.raises(ValueError):
        median_frequency_weights(np.zeros((2, 3)))


def test_balanced_sample_weights_by_hand():
    hist = np.array([[5, 0, 0], [3, 1, 0], [2, 0, 6], [0, 0, 0]])
    # Classes appear in 3/3, 1/3, 1/3 labelled frames: rarity 1, 3, 3 (power 1); the unlabelled
    # frame weighs 1. Raw weights 1, 3, 3, 1 -> mean 2.
    np.testing.assert_allclose(balanced_sample_weights(hist, power=1.0), [0.5, 1.5, 1.5, 0.5])
    np.testing.assert_allclose(balanced_sample_weights(hist, power=0.0), [1, 1, 1, 1])
    w = balanced_sample_weights(hist)  # power 0.5: sqrt(3)
    np.testing.assert_allclose(w / w[0], [1, np.sqrt(3), np.sqrt(3), 1])
