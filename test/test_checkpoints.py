import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from hydranet_ros.model import HydraNet, get_preset
from hydranet_ros.model.checkpoints import (
    WeightsError, load_published, load_safetensors, load_weights, ours_to_published, published_to_ours,
    save_safetensors, weights_sha256,
)
from hydranet_ros.model.random_init import realistic_model
from hydranet_ros.model.reference import reference_forward
from support import published_state, save_published

PUBLISHED_KEYS = [
    "layer1.0.weight", "layer2.0.output.0.0.weight", "conv8.weight", "crp4.0.1_outvar_dimred.weight",
    "conv_adapt4.weight", "pre_segm.weight", "segm.weight", "segm.bias", "pre_depth.weight",
    "depth.weight", "depth.bias", "pre_normal.weight", "normal.weight",
]


def test_published_key_names_map_both_ways():
    ours = HydraNet(get_preset("nyud_three")).state_dict()
    published = {ours_to_published(k) for k in ours}
    assert set(PUBLISHED_KEYS) <= published
    for key in ours:
        assert published_to_ours(ours_to_published(key)) == key
    assert published_to_ours("module.segm.bias") == "heads.segm.out.bias"
    assert published_to_ours("crp1.0.4_outvar_dimred.weight") == "decoder.crp1.convs.3.weight"
    assert published_to_ours("fc.weight") is None


@pytest.mark.parametrize("preset_name", ["kitti", "nyud", "nyud_kitti", "nyud_three"])
@pytest.mark.parametrize("batch_counters", [True, False])
def test_published_round_trip_infers_preset(tmp_path, preset_name, batch_counters):
    model = HydraNet(get_preset(preset_name)).eval()
    path = save_published(tmp_path / "w.ckpt", model, batch_counters=batch_counters)
    loaded = load_published(path)
    assert loaded.preset.name == preset_name
    rebuilt = loaded.build_model().state_dict()
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(rebuilt[key], value), key


def test_numerical_contract_against_published_architecture(tmp_path):
    """A published-format checkpoint in our model == the published architecture, 1/4-res, 1e-5."""
    source = realistic_model(get_preset("kitti"), seed=3)
    published = published_state(source)
    path = tmp_path / "ExpKITTI_joint.ckpt"
    torch.save({"state_dict": published}, path)
    model = load_published(path).build_model()
    image = torch.randn(1, 3, 120, 160)
    with torch.inference_mode():
        ours, ref = model(image), reference_forward(published, image)
    for name in ("segm", "depth"):
        assert ours[name].shape[-2:] == (30, 40)
        torch.testing.assert_close(ours[name], ref[name], atol=1e-5, rtol=1e-5)


def test_mismatch_report_names_missing_unexpected_and_misshaped(tmp_path):
    state = published_state(HydraNet(get_preset("kitti")))
    del state["conv_adapt4.weight"]
    state["extra_head.weight"] = torch.zeros(3)
    state["conv8.weight"] = torch.zeros(128, 320, 1, 1)
    path = tmp_path / "bad.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(WeightsError) as info:
        load_published(path)
    message = str(info.value)
    assert str(path) in message
    assert "1 missing: conv_adapt4.weight" in message
    assert "1 unexpected: extra_head.weight" in message
    assert "conv8.weight (model (256, 320, 1, 1), file (128, 320, 1, 1))" in message


def test_explicit_preset_that_does_not_fit_is_refused(tmp_path):
    path = save_published(tmp_path / "k.ckpt", HydraNet(get_preset("kitti")))
    with pytest.raises(WeightsError, match="segm.weight"):
        load_published(path, preset="nyud")


def test_unknown_head_size_asks_for_a_preset(tmp_path):
    state = published_state(HydraNet(get_preset("kitti")))
    state["segm.weight"] = torch.zeros(7, 256, 3, 3)
    path = tmp_path / "seven.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(WeightsError, match="no preset has 7 classes"):
        load_published(path)


def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"layer1.0.weight": torch.zeros(1)}, "payload": Exploit()}, path)
    with pytest.raises(WeightsError, match="refused"):
        load_published(path)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "missing", "directory"])
def test_damaged_files_name_the_file_and_problem(tmp_path, damage):
    path = save_published(tmp_path / "w.ckpt", HydraNet(get_preset("kitti")))
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "missing":
        path.unlink()
    else:
        path.unlink()
        path.mkdir()
    with pytest.raises(WeightsError) as info:
        load_weights(str(path))
    assert str(path) in str(info.value)


def test_safetensors_round_trip_keeps_metadata_and_hash(tmp_path):
    model = realistic_model(get_preset("nyud_three"), seed=4)
    digest = save_safetensors(tmp_path / "m.safetensors", model.state_dict(), get_preset("nyud_three"))
    loaded = load_safetensors(tmp_path / "m.safetensors")
    assert loaded.sha256 == digest == weights_sha256(model.state_dict())
    assert loaded.preset == get_preset("nyud_three")
    assert loaded.metadata["format"] == "hydranet_ros/1"
    assert json.loads(loaded.metadata["class_names"])[0] == "wall"
    assert not list(tmp_path.glob("*.tmp")), "no temporary file left behind"


def test_fp16_safetensors_is_smaller_and_loads(tmp_path):
    model = realistic_model(get_preset("kitti"), seed=5)
    save_safetensors(tmp_path / "a.safetensors", model.state_dict(), get_preset("kitti"))
    save_safetensors(tmp_path / "b.safetensors", model.state_dict(), get_preset("kitti"), dtype=torch.float16)
    assert (tmp_path / "b.safetensors").stat().st_size < 0.6 * (tmp_path / "a.safetensors").stat().st_size
    half = load_safetensors(tmp_path / "b.safetensors").build_model()
    image = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(half(image)["depth"], model(image)["depth"], atol=0.05, rtol=0.01)


def test_tampered_safetensors_fails_the_hash(tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors(path, HydraNet(get_preset("kitti")).state_dict(), get_preset("kitti"))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    tensors["heads.segm.out.bias"] = tensors["heads.segm.out.bias"] + 1
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(WeightsError, match="hash does not match"):
        load_safetensors(path)


def test_safetensors_without_our_metadata_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(WeightsError, match="no hydranet_ros metadata"):
        load_weights(str(path))


def test_weight_specs_that_cannot_resolve(tmp_path):
    with pytest.raises(WeightsError, match="hydranet weights download nyud"):
        load_weights("nyud")
    with pytest.raises(WeightsError, match="not a preset name"):
        load_weights(str(tmp_path / "nothing_here"))
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unknown weights format"):
        load_weights(str(tmp_path / "w.onnx"))


def test_default_prefers_cached_published_weights(tmp_path):
    from hydranet_ros.model.download import cached_weights_path

    model = HydraNet(get_preset("kitti"))
    save_safetensors(cached_weights_path("kitti"), model.state_dict(), get_preset("kitti"))
    assert load_weights("default").source == str(cached_weights_path("kitti"))


def test_hash_ignores_memory_format():
    state = realistic_model(get_preset("kitti"), seed=6).state_dict()
    channels_last = {k: (v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v) for k, v in state.items()}
    assert weights_sha256(channels_last) == weights_sha256(state)


def test_text_file_named_ckpt_is_a_weights_error(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("these are my notes, not a checkpoint\n" * 10)
    with pytest.raises(WeightsError) as info:
        load_weights(str(path))
    assert str(path) in str(info.value)


# -- weights that load must be weights that work (issue 12, items 9-11) -------------------------------


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("valid") / "kitti.safetensors"
    torch.manual_seed(2)
    save_safetensors(path, HydraNet(get_preset("kitti")).state_dict(), get_preset("kitti"))
    return path


def with_metadata(valid_file, tmp_path, name: str, **changes) -> str:
    """A copy of a valid kitti file whose metadata fields are replaced (None removes one)."""
    from safetensors import safe_open

    path = tmp_path / f"{name}.safetensors"
    with safe_open(str(valid_file), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(valid_file))
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    save_file(tensors, str(path), metadata=meta)
    return str(path)


METADATA_FAULTS = {
    "palette value 300": ("palette", json.dumps([[300, 0, 0]] + [[0, 0, 0]] * 5)),
    "palette value -1": ("palette", json.dumps([[-1, 0, 0]] + [[0, 0, 0]] * 5)),
    "palette colour of 2": ("palette", json.dumps([[0, 0]] * 6)),
    "palette of 5 colours": ("palette", json.dumps([[0, 0, 0]] * 5)),
    "std 0": ("std", json.dumps([0.0, 0.224, 0.225])),
    "std of 2 values": ("std", json.dumps([0.229, 0.224])),
    "mean NaN": ("mean", json.dumps([float("nan"), 0.456, 0.406])),
    "mean on the 0..255 scale": ("mean", json.dumps([123.7, 116.3, 103.5])),
    "std Infinity": ("std", "[Infinity, 0.2, 0.2]"),
    "depth range reversed": ("depth_range_m", json.dumps([80.0, 0.0])),
    "class names not a list": ("class_names", '"sky,road"'),
    "with_normals not a bool": ("with_normals", '"yes"'),
    "input_size not a size": ("input_size", "wide"),
    "mean not JSON": ("mean", "[0.4, 0.4"),
    "mean nested 100000 deep": ("mean", "[" * 100000 + "]" * 100000),
    "focal_px NaN": ("focal_px", "nan"),
    "focal_px 0": ("focal_px", "0"),
    "focal_px negative": ("focal_px", "-721.5"),
}


@pytest.mark.parametrize("name", sorted(METADATA_FAULTS))
def test_metadata_that_would_make_outputs_meaningless_is_refused_naming_the_field(valid_file, tmp_path, name):
    field, value = METADATA_FAULTS[name]
    path = with_metadata(valid_file, tmp_path, "bad", **{field: value})
    with pytest.raises(WeightsError) as caught:
        load_weights(path)
    message = str(caught.value)
    assert message.startswith(path) and f"'{field}'" in message and "\n" not in message, message


def test_missing_weights_hash_is_refused(valid_file, tmp_path):
    """The README promises a hash check; a file without the hash must not skip it silently."""
    path = with_metadata(valid_file, tmp_path, "nohash", weights_sha256=None)
    with pytest.raises(WeightsError) as caught:
        load_weights(path)
    assert "'weights_sha256' is missing" in str(caught.value) and str(caught.value).startswith(path)


def rehashed(tmp_path, name: str, change) -> str:
    """A kitti file whose tensors ``change`` edits, saved with a matching hash (as a tool would)."""
    torch.manual_seed(2)
    state = HydraNet(get_preset("kitti")).state_dict()
    change(state)
    path = tmp_path / f"{name}.safetensors"
    save_safetensors(path, state, get_preset("kitti"))
    return str(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_holding_nan_or_inf_are_refused(tmp_path, value):
    path = rehashed(tmp_path, "nan", lambda s: s["heads.depth.out.weight"].view(-1)[3:5].fill_(value))
    with pytest.raises(WeightsError, match=r"hold NaN or Inf values \(heads.depth.out.weight\)"):
        load_weights(path)


def test_finite_weights_whose_outputs_overflow_are_refused_at_load(tmp_path):
    """Every tensor finite, yet the network's output is Inf: caught by the forward on a test frame."""
    def blow_up(state):
        for head in ("segm", "depth"):  # each finite (float32 reaches 3.4e38), the sums they make are not
            state[f"heads.{head}.pre.weight"].fill_(1e30)  # saturates the head's ReLU6 at 6
            state[f"heads.{head}.out.weight"].fill_(3e38)

    path = rehashed(tmp_path, "overflow", blow_up)
    weights = load_weights(path)  # the tensors themselves are finite
    with pytest.raises(WeightsError, match="output on a test frame is not finite"):
        weights.build_model()


def test_a_refused_pickle_is_one_line_of_ours_and_never_advises_the_unsafe_option(tmp_path, capfd):
    from hydranet_ros.cli import main

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"layer1.0.weight": torch.zeros(1)}, "payload": Exploit()}, path)
    capfd.readouterr()
    frame = tmp_path / "frame.png"
    frame.write_bytes(__import__("cv2").imencode(".png", __import__("numpy").zeros((32, 32, 3), "uint8"))[1].tobytes())
    assert main(["infer", str(frame), "-o", str(tmp_path / "out"), "--weights", str(path)]) == 2
    err = capfd.readouterr().err
    [line] = err.strip().splitlines()
    assert line.startswith(f"hydranet infer: error: {path}: refused") and "would run code" in line
    assert "it calls posix.system" in line or "it calls os.system" in line
    assert "weights_only" not in err and "\x1b[" not in err and "trust" not in err
    assert not (tmp_path / "pwned").exists()


def test_a_training_state_holding_code_is_refused_in_one_line(tmp_path):
    from hydranet_ros.train.checkpointing import CheckpointError, load_training_state

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "step_0000010.state.pt"
    torch.save({"optimizer": {}, "payload": Exploit()}, path)
    with pytest.raises(CheckpointError) as caught:
        load_training_state(path)
    assert "would run code" in str(caught.value) and "weights_only" not in str(caught.value)
    assert "\n" not in str(caught.value) and not (tmp_path / "pwned").exists()
