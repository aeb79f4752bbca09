"""Weights in and out: the authors' published checkpoints and the project's own safetensors.

Published checkpoints are pickles (``{'state_dict': ...}``) and are read only with
``torch.load(weights_only=True)``, which refuses to run code. Our own format is safetensors with
the preset (classes, palette, normalisation, depth range) and a hash of the weights as metadata,
so a file says what its outputs mean.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hydranet_ros.errors import first_line
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.locate import WeightsError, locate_weights
from hydranet_ros.presets import Preset, get_preset, preset_for_heads

FORMAT = "hydranet_ros/1"

# Top-level module of a published key -> where it lives in our model.
_PUBLISHED_HEADS = {
    "pre_segm": "heads.segm.pre", "segm": "heads.segm.out",
    "pre_depth": "heads.depth.pre", "depth": "heads.depth.out",
    "pre_normal": "heads.normals.pre", "normal": "heads.normals.out",
}
_OUR_HEADS = {ours: published for published, ours in _PUBLISHED_HEADS.items()}
_DECODER_TOP = re.compile(r"^(conv[3-8]|conv_adapt[2-4]|crp[1-4])$")
# crpK.0.{i}_outvar_dimred.weight (i from 1) <-> decoder.crpK.convs.{i-1}.weight
_PUBLISHED_CRP = re.compile(r"^crp([1-4])\.0\.(\d+)_outvar_dimred\.(.+)$")
_OUR_CRP = re.compile(r"^decoder\.crp([1-4])\.convs\.(\d+)\.(.+)$")


def published_to_ours(key: str) -> str | None:
    """Our state-dict key for a published one, or None if it belongs to no part of HydraNet."""
    if key.startswith("module."):  # saved from nn.DataParallel
        key = key[len("module."):]
    top, _, rest = key.partition(".")
    if m := _PUBLISHED_CRP.match(key):
        return f"decoder.crp{m[1]}.convs.{int(m[2]) - 1}.{m[3]}"
    if re.fullmatch(r"layer[1-8]", top):
        return f"encoder.stages.{key}"
    if _DECODER_TOP.match(top):
        return f"decoder.{key}"
    if top in _PUBLISHED_HEADS and rest:
        return f"{_PUBLISHED_HEADS[top]}.{rest}"
    return None


def ours_to_published(key: str) -> str:
    """The published name of one of our keys (used to report problems in the user's terms)."""
    if m := _OUR_CRP.match(key):
        return f"crp{m[1]}.0.{int(m[2]) + 1}_outvar_dimred.{m[3]}"
    for prefix in ("encoder.stages.", "decoder."):
        if key.startswith(prefix):
            return key[len(prefix):]
    for ours, published in _OUR_HEADS.items():
        if key.startswith(ours + "."):
            return published + key[len(ours):]
    return key


@dataclass
class KeyReport:
    """How a state dict lines up with the model: every key and shape accounted for, or not."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        if self.ok:
            return "all keys and shapes match"
        lines = []
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                lines.append(f"{len(items)} {title}: " + ", ".join(items[:12]) + (" ..." if len(items) > 12 else ""))
        if self.mismatched:
            shown = [f"{k} (model {tuple(a)}, file {tuple(b)})" for k, a, b in self.mismatched[:12]]
            lines.append(f"{len(self.mismatched)} with the wrong shape: " + ", ".join(shown))
        return "; ".join(lines)


def compare_state(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], *, rename=lambda k: k) -> KeyReport:
    """Compare key sets and shapes; ``rename`` maps our keys to the names shown in the report."""
    report = KeyReport()
    for key, ref in expected.items():
        if key not in state:
            report.missing.append(rename(key))
        elif tuple(state[key].shape) != tuple(ref.shape):
            report.mismatched.append((rename(key), tuple(ref.shape), tuple(state[key].shape)))
    report.unexpected = [rename(k) for k in state if k not in expected]
    return report


def _fill_batch_counters(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Older torch releases did not save BN's num_batches_tracked; it plays no part in inference."""
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)


def read_pickle_of_tensors(path: str | os.PathLike):
    """torch.load(weights_only=True), which refuses to run code; every failure is one line of ours.

    torch's own refusal is several lines that end by suggesting ``weights_only=False``, the one
    thing that would run the file's code: it is never passed on. What the pickle wanted to call
    (``builtins.open``, ``os.system``) is named instead.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's loading advice is not for our users
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        wanted = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it calls {wanted[1]})" if wanted else ""
        raise WeightsError(path, f"refused: the pickle holds more than tensors and would run code{what}; "
                                 "only plain tensors are read from pickles") from None
    except (EOFError, zipfile.BadZipFile, RuntimeError) as exc:
        raise WeightsError(path, f"truncated or not a PyTorch checkpoint ({first_line(exc)})") from None
    except PermissionError:
        raise WeightsError(path, "permission denied") from None
    except OSError as exc:
        raise WeightsError(path, f"cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # a damaged pickle can fail in any way inside the unpickler
        raise WeightsError(path, f"not a PyTorch checkpoint ({type(exc).__name__}: {first_line(exc)})") from None


def read_published_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The raw state dict of a published checkpoint, read without running any code in it."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(path, "no such file" if not path.exists() else "not a regular file")
    obj = read_pickle_of_tensors(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(path, "not a state dict: expected {'state_dict': {name: tensor}} or {name: tensor}")
    return obj


def convert_published(published: dict[str, torch.Tensor], *, source: str, preset: Preset | str | None = None) -> tuple[dict[str, torch.Tensor], Preset]:
    """Map a published state dict onto ours, strictly. The preset is inferred from the heads if not given."""
    if isinstance(preset, str):
        preset = get_preset(preset)
    if preset is None:
        segm = published.get("segm.weight", published.get("module.segm.weight"))
        if segm is None or segm.ndim != 4:
            raise WeightsError(source, "no segmentation head (segm.weight): not a HydraNet checkpoint")
        with_normals = "normal.weight" in published or "module.normal.weight" in published
        try:
            preset = preset_for_heads(int(segm.shape[0]), with_normals)
        except ValueError as exc:
            raise WeightsError(source, str(exc)) from None
    state: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in published.items():
        ours = published_to_ours(key)
        if ours is None:
            unknown.append(key)
        else:
            state[ours] = tensor
    expected = HydraNet(preset).state_dict()
    _fill_batch_counters(state, expected)
    report = compare_state(expected, state, rename=ours_to_published)
    report.unexpected += unknown
    if not report.ok:
        raise WeightsError(source, f"does not match the HydraNet '{preset.name}' architecture: {report}")
    _check_finite(source, state)
    return state, preset


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """A hash of names, dtypes, shapes and values: the identity of a set of weights."""
    digest = hashlib.sha256()
    for key in sorted(state):
        if key.endswith("num_batches_tracked"):
            continue  # bookkeeping, not weights; old and new checkpoints must hash alike
        t = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        # reshape(-1): channels-last tensors with size-1 dims are "contiguous" with odd strides.
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def preset_metadata(preset: Preset) -> dict[str, str]:
    return {
        "preset": preset.name,
        "class_names": json.dumps(list(preset.class_names)),
        "palette": json.dumps([list(c) for c in preset.palette]),
        "with_normals": json.dumps(preset.with_normals),
        "mean": json.dumps(list(preset.mean)),
        "std": json.dumps(list(preset.std)),
        "depth_range_m": json.dumps(list(preset.depth_range_m)),
    }


class _BadField(ValueError):
    """One metadata field that cannot be used: ``field`` names it, the message says why."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"metadata field {field!r} {problem}")
        self.field = field


def _field(meta: dict[str, str], name: str):
    if name not in meta:
        raise _BadField(name, "is missing")
    try:
        return json.loads(meta[name]) if name != "preset" else meta[name]
    except (TypeError, ValueError, RecursionError):
        raise _BadField(name, f"is not JSON ({str(meta[name])[:40]!r})") from None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(meta: dict[str, str], name: str, count: int, low: float, high: float, *, strict_low: bool = False) -> tuple:
    values = _field(meta, name)
    if not isinstance(values, list) or len(values) != count or not all(_number(v) for v in values):
        raise _BadField(name, f"must be {count} finite numbers, is {meta[name][:60]}")
    if not all((v > low if strict_low else v >= low) and v <= high for v in values):
        side = "above" if strict_low else "at least"
        raise _BadField(name, f"must be {side} {low} and at most {high}, is {meta[name][:60]}")
    return tuple(float(v) for v in values)


def preset_from_metadata(meta: dict[str, str]) -> Preset:
    """The preset a weights file's metadata describes, every field checked: values that load but
    make the network's output meaningless (a NaN mean, std 0, palette values past 255) are refused
    here, with the field's name, instead of turning every frame into one class or invalid depth.
    Raises ValueError naming the field."""
    name = _field(meta, "preset")
    if not isinstance(name, str) or not name:
        raise _BadField("preset", "must name the preset")
    class_names = _field(meta, "class_names")
    if (not isinstance(class_names, list) or not 1 <= len(class_names) <= 255
            or not all(isinstance(c, str) and c for c in class_names)):
        raise _BadField("class_names", "must be a list of 1 to 255 names (labels are uint8)")
    palette = _field(meta, "palette")
    if not isinstance(palette, list) or len(palette) != len(class_names):
        raise _BadField("palette", f"must hold one colour per class ({len(class_names)})")
    for colour in palette:
        if (not isinstance(colour, list) or len(colour) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in colour)):
            raise _BadField("palette", f"colours must be 3 integers in 0..255, found {json.dumps(colour)[:40]}")
    with_normals = _field(meta, "with_normals")
    if not isinstance(with_normals, bool):
        raise _BadField("with_normals", f"must be true or false, is {meta['with_normals'][:20]}")
    # The network sees pixels scaled to 0..1, then normalised: a mean or std on another scale
    # (0..255) or a std of 0 gives every frame the same (or an infinite) input.
    mean = _numbers(meta, "mean", 3, 0.0, 1.0)
    std = _numbers(meta, "std", 3, 0.0, 1.0, strict_low=True)
    depth_range = _numbers(meta, "depth_range_m", 2, 0.0, 1e4)
    if depth_range[0] >= depth_range[1]:
        raise _BadField("depth_range_m", f"must be near < far, is {meta['depth_range_m'][:40]}")
    if "input_size" in meta:
        width, _, height = str(meta["input_size"]).partition("x")
        if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
            raise _BadField("input_size", f"must be WIDTHxHEIGHT, is {str(meta['input_size'])[:20]!r}")
    if "focal_px" in meta:  # the training camera's focal length: metric depth is scaled by it
        try:
            focal = float(meta["focal_px"])
        except (TypeError, ValueError):
            focal = math.nan
        if not (math.isfinite(focal) and focal > 0):
            raise _BadField("focal_px", f"must be a focal length in pixels above 0, is {str(meta['focal_px'])[:20]!r}")
    return Preset(name=name, class_names=tuple(class_names), palette=tuple(tuple(c) for c in palette),
                  with_normals=with_normals, mean=mean, std=std, depth_range_m=depth_range)


def _check_finite(source: str | os.PathLike, state: dict[str, torch.Tensor]) -> None:
    """Weights with NaN or Inf values make every output NaN: the file is damaged."""
    bad = [key for key, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise WeightsError(source, f"{len(bad)} tensor(s) hold NaN or Inf values ({', '.join(bad[:3])}"
                                   f"{' ...' if len(bad) > 3 else ''}): the weights are damaged")


# The test frame of the load-time check: small (a few ms on a CPU), a gradient so that every
# layer sees varied input, 64x64 so that the encoder's 32x downsampling leaves 2x2.
_TEST_FRAME_SIDE = 64


def check_outputs(model: HydraNet, preset: Preset, *, source: str | os.PathLike) -> None:
    """Run ``model`` once on a test frame normalised as the preset says; WeightsError unless every
    output is finite (weights that load but compute NaN or Inf would publish nonsense)."""
    side = _TEST_FRAME_SIDE
    ramp = torch.linspace(0.0, 1.0, side)
    frame = torch.stack([ramp.expand(side, side), ramp[:, None].expand(side, side), torch.full((side, side), 0.5)])
    mean, std = torch.tensor(preset.mean)[:, None, None], torch.tensor(preset.std)[:, None, None]
    with torch.inference_mode():
        outputs = model(((frame - mean) / std)[None])
    bad = sorted(name for name, value in outputs.items() if not torch.isfinite(value).all())
    if bad:
        raise WeightsError(source, f"the network's {', '.join(bad)} output on a test frame is not finite (NaN or Inf): "
                                   "the weights do not work")


def save_safetensors(path: str | os.PathLike, state: dict[str, torch.Tensor], preset: Preset, *, extra: dict[str, str] | None = None, dtype: torch.dtype | None = None) -> str:
    """Write weights + metadata atomically (temporary file, then rename); returns the weights hash.

    ``dtype`` (e.g. torch.float16) stores floating tensors smaller; the hash is of what is stored.
    """
    from safetensors.torch import save_file

    tensors = {}
    for key, t in state.items():
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point() and not key.endswith(("running_mean", "running_var")):
            t = t.to(dtype)
        tensors[key] = t.contiguous()
    digest = weights_sha256(tensors)
    meta = {"format": FORMAT, "weights_sha256": digest, **preset_metadata(preset), **(extra or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a node running as another user must read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


@dataclass
class LoadedWeights:
    """Weights ready for ``HydraNet(preset).load_state_dict(state_dict)``."""

    preset: Preset
    state_dict: dict[str, torch.Tensor]
    sha256: str
    source: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def trained_input_size(self) -> tuple[int, int] | None:
        """(width, height) the weights were trained at, when their metadata records it."""
        try:
            w, h = (int(v) for v in self.metadata.get("input_size", "").split("x"))
        except ValueError:
            return None
        return (w, h) if w > 0 and h > 0 else None

    def build_model(self) -> HydraNet:
        """The network with these weights, checked on a test frame (check_outputs)."""
        model = HydraNet(self.preset)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in self.state_dict.items()}, strict=True)
        model.eval()
        check_outputs(model, self.preset, source=self.source)
        return model


def load_safetensors(path: str | os.PathLike) -> LoadedWeights:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(path, "no such file" if not path.exists() else "not a regular file")
    try:
        open(path, "rb").close()  # safetensors reports a denied read as "No such file"
    except PermissionError:
        raise WeightsError(path, "permission denied") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(path, f"truncated or not a safetensors file ({first_line(exc)})") from None
    if meta.get("format") != FORMAT:
        raise WeightsError(path, f"no hydranet_ros metadata (format {meta.get('format')!r}); convert published checkpoints with `hydranet convert`")
    try:
        preset = preset_from_metadata(meta)
    except ValueError as exc:
        raise WeightsError(path, str(exc)) from None
    expected = HydraNet(preset).state_dict()
    _fill_batch_counters(state, expected)
    report = compare_state(expected, state)
    if not report.ok:
        raise WeightsError(path, f"does not match the HydraNet '{preset.name}' architecture: {report}")
    # Every file written by save_safetensors carries the hash of its weights; one without it was
    # altered after writing or made by another tool, and its weights cannot be told from damage.
    if "weights_sha256" not in meta:
        raise WeightsError(path, "metadata field 'weights_sha256' is missing (every file hydranet_ros writes has it): "
                                 "the file was altered or written by another tool; save it with save_safetensors")
    digest = weights_sha256(state)
    if meta["weights_sha256"] != digest:
        raise WeightsError(path, "weights hash does not match the metadata: the file was altered or damaged")
    _check_finite(path, state)
    return LoadedWeights(preset=preset, state_dict=state, sha256=digest, source=str(path), metadata=meta)


def load_published(path: str | os.PathLike, *, preset: Preset | str | None = None) -> LoadedWeights:
    published = read_published_file(path)
    state, preset = convert_published(published, source=str(path), preset=preset)
    return LoadedWeights(preset=preset, state_dict=state, sha256=weights_sha256(state), source=str(path))


def load_weights(spec: str | os.PathLike) -> LoadedWeights:
    """Weights from a file path, a preset name (downloaded and cached), or 'default'
    (model/locate.py says which file each means)."""
    found = locate_weights(spec)
    return load_published(found.path) if found.published else load_safetensors(found.path)
