"""tools/average_weights.py: the mean of weights files fine-tuned from the same start."""
import importlib.util
from pathlib import Path

import pytest
import torch

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


def test_files_for_different_cameras_are_refused_with_the_reason(tmp_path, capsys):
    a = weights(tmp_path / "a.safetensors", 1)
    b = weights(tmp_path / "b.safetensors", 2, focal_px="500.0")
    out = tmp_path / "g.safetensors"
    assert tool.main([str(a), str(b), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "focal_px" in err and str(b) in err and len(err.splitlines()) == 1
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
