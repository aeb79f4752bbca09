"""tools/average_weights.py: the mean of weights files fine-tuned from the same start."""
import importlib.util
from pathlib import Path

import pytest
import torch

from hydranet_ros.errors import HydraNetError
from hydranet_ros.model.checkpoints import load_safetensors, save_safetensors
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("average_weights", REPO / "tools" / "average_weights.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def weights(path: Path, seed: int, **extra) -> Path:
    torch.manual_seed(seed)
    model = HydraNet(get_preset("kitti"))
    with torch.no_grad():  # batch-norm statistics too: they are averaged like every float
        for name, buf in model.named_buffers():
            if buf.is_floating_point():
                buf.uniform_(0.5, 1.5)
    save_safetensors(path, model.state_dict(), model.preset,
                     extra={"input_size": "384x128", "focal_px": "223.0824", **extra})
    return path


def test_the_mean_of_two_files_is_their_element_wise_mean_and_loads(tmp_path):
    a, b = weights(tmp_path / "a.safetensors", 1, step="1200"), weights(tmp_path / "b.safetensors", 2)
    out = tmp_path / "soup" / "g.safetensors"
    assert tool.main([str(a), str(b), "-o", str(out)]) == 0
    soup, wa, wb = (load_safetensors(p) for p in (out, a, b))
    for key, tensor in soup.state_dict.items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, (wa.state_dict[key] + wb.state_dict[key]) / 2, rtol=0, atol=1e-6)
        else:
            assert torch.equal(tensor, wa.state_dict[key])
    assert soup.metadata["focal_px"] == "223.0824" and soup.trained_input_size == (384, 128)
    assert soup.metadata["averaged_from"] == f"{wa.sha256},{wb.sha256}"
    soup.build_model()  # a working network: finite outputs on the check frame


@pytest.mark.parametrize("field, value", [("focal_px", "500.0"), ("input_size", "320x96")])
def test_files_for_different_cameras_or_sizes_are_refused_with_the_reason(tmp_path, capsys, field, value):
    a = weights(tmp_path / "a.safetensors", 1)
    b = weights(tmp_path / "b.safetensors", 2, **{field: value})
    out = tmp_path / "g.safetensors"
    assert tool.main([str(a), str(b), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert field in err and str(b) in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_the_same_focal_length_written_differently_is_the_same_camera(tmp_path):
    a = weights(tmp_path / "a.safetensors", 1)
    b = weights(tmp_path / "b.safetensors", 2, focal_px="223.08240")
    assert tool.main([str(a), str(b), "-o", str(tmp_path / "g.safetensors")]) == 0


def test_a_mean_that_is_not_a_working_network_is_refused_and_not_written(tmp_path):
    """Nothing tells whether two files started from the same weights; a mean whose outputs are
    not finite (here: one file's weights are huge) is refused before anything is written."""
    a = weights(tmp_path / "a.safetensors", 1)
    torch.manual_seed(3)
    model = HydraNet(get_preset("kitti"))
    state = {k: (v * 1e30 if v.is_floating_point() and k.endswith("weight") else v) for k, v in model.state_dict().items()}
    b = tmp_path / "b.safetensors"
    save_safetensors(b, state, model.preset, extra={"input_size": "384x128", "focal_px": "223.0824"})
    out = tmp_path / "g.safetensors"
    with pytest.raises(HydraNetError, match="mean of"):
        tool.average([a, b], out)
    assert not out.exists()


def test_an_input_is_never_overwritten_and_a_bad_file_is_named(tmp_path, capsys):
    a, b = weights(tmp_path / "a.safetensors", 1), weights(tmp_path / "b.safetensors", 2)
    before = a.read_bytes()
    assert tool.main([str(a), str(b), "-o", str(a)]) == 2
    assert "never overwritten" in capsys.readouterr().err and a.read_bytes() == before
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    assert tool.main([str(a), str(bad), "-o", str(tmp_path / "g.safetensors")]) == 2
    assert str(bad) in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least two"):
        tool.average([a], tmp_path / "g.safetensors")
