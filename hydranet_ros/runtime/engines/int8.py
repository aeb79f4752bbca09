"""What every CPU int8 build shares: calibration frames split from held-out gate frames, the
accuracy gate an int8 model must pass against fp32, and finding an int8 model built ahead (which
the TensorRT engine shares).

The gate compares what the pipeline would publish, not raw logits: labels (argmax of the logits
upsampled to the network input, as the pipeline does) and |depth|, int8 against fp32 of the same
runtime (which matches torch within 1e-4), on frames that calibration did not see. A model below
the gate is refused with the measured figures; the pipeline then falls back (fp32 of the same
runtime) or, with ``strict``, stops.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hydranet_ros.runtime.engines.base import EngineError

log = logging.getLogger(__name__)

MIN_LABELS_AGREE = 0.98  # fraction of pixels whose label equals fp32's
MAX_DEPTH_MEDIAN_REL = 0.03  # median of |depth_int8 - depth_fp32| / depth_fp32 over valid pixels
GATE_FRAMES = 16  # held out of calibration (fewer when the source has few frames)


class GateMissed(EngineError):
    """The int8 model is not accurate enough; the message carries the measured figures."""


@dataclass(frozen=True)
class Int8Frames:
    calibration: list[np.ndarray]  # normalised (1,3,H,W) float32 C-contiguous
    held_out: list[np.ndarray]
    digest: str  # identity of all of them: part of the int8 model's cache key


def int8_frames(source: str, *, frames: int, size: tuple[int, int], mean, std) -> Int8Frames:
    """Up to ``frames`` calibration frames and up to GATE_FRAMES held-out frames from ``source``
    (folder, video or bag), prepared exactly as the pipeline prepares a camera frame for an engine
    that takes any shape: each at the network size planned for it within the requested ``size``
    (padded to the stride only). The CPU engines' graphs have a dynamic height and width and
    per-tensor activation ranges, so one int8 model serves every shape the pipeline plans; the
    calibration and the gate see the shapes the camera's frames will have."""
    from hydranet_ros.runtime.calibration import batches_digest, calibration_batches, calibration_frames

    read = calibration_frames(source, limit=frames + GATE_FRAMES)
    batches = calibration_batches(read, size=size, mean=mean, std=std, fill_request=False)
    held, calib = split_held_out(len(batches))
    arrays = [b.numpy() for b in batches]
    return Int8Frames([arrays[i] for i in calib], [arrays[i] for i in held], batches_digest(batches))


def split_held_out(count: int) -> tuple[list[int], list[int]]:
    """(held-out indices, calibration indices) of ``count`` frames: a quarter, at most
    GATE_FRAMES, spread over the source; a single frame serves both (said in the log)."""
    if count < 2:
        log.warning("int8: only %d frame to calibrate and judge with; the accuracy gate is not held out", count)
        return list(range(count)), list(range(count))
    wanted = min(GATE_FRAMES, max(1, count // 4))
    step = count / wanted
    held = sorted({int(i * step + step / 2) for i in range(wanted)})
    return held, [i for i in range(count) if i not in set(held)]


@dataclass(frozen=True)
class GateFigures:
    labels_agree: float  # 0..1
    depth_median_rel: float  # 0..
    frames: int

    @property
    def passed(self) -> bool:
        return self.labels_agree >= MIN_LABELS_AGREE and self.depth_median_rel <= MAX_DEPTH_MEDIAN_REL

    def describe(self) -> str:
        return (f"labels equal to fp32 on {100 * self.labels_agree:.2f} % of pixels (gate >= {100 * MIN_LABELS_AGREE:g} %), "
                f"depth median relative error {100 * self.depth_median_rel:.2f} % (gate <= {100 * MAX_DEPTH_MEDIAN_REL:g} %), "
                f"on {self.frames} held-out frame(s)")

    def as_dict(self) -> dict:
        return asdict(self)


Forward = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def measure_gate(int8: Forward, fp32: Forward, frames: Sequence[np.ndarray]) -> GateFigures:
    """Labels and depth of ``int8`` against ``fp32`` on normalised (1,3,H,W) frames."""
    if not frames:
        raise EngineError("the int8 accuracy gate needs at least one frame")
    agree = total = 0
    errors = []
    for frame in frames:
        size = frame.shape[-2:]
        got, want = int8(frame), fp32(frame)
        labels_got, labels_want = (_labels(out["segm"], size) for out in (got, want))
        agree += int((labels_got == labels_want).sum())
        total += labels_want.numel()
        depth_got, depth_want = (_depth(out["depth"], size) for out in (got, want))
        relative = (depth_got - depth_want).abs() / depth_want
        relative[~torch.isfinite(depth_got)] = float("inf")  # int8 lost a depth fp32 has: the worst error
        errors.append(relative[torch.isfinite(depth_want) & (depth_want > 0)])
    relative = torch.cat(errors)
    median = float(relative.median()) if relative.numel() else float("inf")
    return GateFigures(labels_agree=agree / total, depth_median_rel=median, frames=len(frames))


def check_gate(figures: GateFigures, what: str) -> None:
    if figures.passed:
        log.info("%s passed the int8 accuracy gate: %s", what, figures.describe())
        return
    raise GateMissed(f"{what} missed the int8 accuracy gate: {figures.describe()}")


def _labels(logits: np.ndarray, size) -> torch.Tensor:
    # As the pipeline: bilinear upsampling of the logits to the network input, then argmax.
    x = F.interpolate(torch.as_tensor(np.asarray(logits, np.float32)), size=tuple(size), mode="bilinear", align_corners=False)
    return x.argmax(dim=1)


def _depth(depth: np.ndarray, size) -> torch.Tensor:
    x = F.interpolate(torch.as_tensor(np.asarray(depth, np.float32)), size=tuple(size), mode="bilinear", align_corners=False)
    return x.abs()


def built_ahead_digest(cache, key_without_data, suffix: str) -> str | None:
    """The calibration digest of an int8 model built ahead (``hydranet build-engine --precision
    int8 --calibration ...``) for this slot, if its metadata records one. The artifact is still
    checked against the complete key (versions, CPU) before use."""
    recorded = cache.recorded_key(key_without_data, suffix) or {}
    versions = recorded.get("library_versions")
    return versions.get("int8_calibration") if isinstance(versions, dict) else None


def no_calibration_error(backend: str) -> EngineError:
    return EngineError(f"{backend} int8 needs calibration frames (engine option 'calibration': a folder of images, "
                       f"a video or a rosbag2), or an int8 model built ahead: hydranet build-engine --backend {backend} "
                       f"--precision int8 --calibration DIR")


def describe_with_gate(info: dict[str, str], model_path, gate: dict | None) -> dict[str, str]:
    """A CPU engine's describe(): the model file, and the int8 gate figures it was cached with."""
    info = {**info, "model": str(model_path)}
    if gate:
        info["int8_gate"] = GateFigures(**gate).describe()
    return info


def check_cpu_build(backend: str, device: torch.device, precision: str) -> None:
    """What ONNX Runtime and OpenVINO builds refuse alike: another device, another precision."""
    if device.type != "cpu":
        raise EngineError(f"the {backend} backend runs on the CPU")
    if precision not in ("fp32", "int8"):
        raise EngineError(f"the {backend} backend runs fp32 or int8, not {precision}")
