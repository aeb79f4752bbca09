"""Camera frame in, Result out: preprocess, engine, postprocess, all on the engine's device.

Data flows one way: uint8 HxWx3 (RGB or BGR) -> device tensor -> scale (aspect kept) + normalise
+ pad to the stride -> network -> upsample logits and depth, cut back to the frame's area ->
labels (argmax) and |depth| x focal ratio -> host numpy. Only the uint8 labels and the float
depth come back to the host. On CPU the outputs are already on the host: the same arithmetic runs
in numpy and OpenCV (network_output's *_host functions), much cheaper there than torch's. The geometry (runtime/geometry.py) and the depth's focal correction
(runtime/focal.py) are plain functions; each Result carries the ones it was made with.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch

from hydranet_ros.errors import UsageError
from hydranet_ros.model.checkpoints import load_weights
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import Preset, class_group
from hydranet_ros.runtime.engines.base import Engine, indexed
from hydranet_ros.runtime.choices import (
    AUTO, MAX_INPUT_SIDE, MIN_INPUT_SIDE, OUTPUT_SIZES, installed_backends, problems,
)
from hydranet_ros.runtime.fallback import build_engine, choose_runtime
from hydranet_ros.runtime.focal import CameraFocal, DepthScale, TrainingCamera, depth_scale, training_camera
from hydranet_ros.runtime.geometry import InputGeometry, plan_input
from hydranet_ros.runtime.network_input import fit_and_normalise, fit_and_normalise_host, normalisation
from hydranet_ros.runtime.network_output import (
    class_scores, depth_in_metres, depth_in_metres_host, labels_and_confidence, labels_and_confidence_host,
    unit_normals, unit_normals_host,
)
from hydranet_ros.runtime.result import Result
from hydranet_ros.runtime.sizes import AUTO_SIZE

log = logging.getLogger(__name__)

# Frames are often read-only views on a message buffer (rosbags, rclpy). The pipeline only reads
# them, so torch's warning about non-writable arrays says nothing useful here.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

ALL_OUTPUTS = frozenset({"labels", "depth", "normals"})
# What a frame may ask for: ALL_OUTPUTS plus the labels' confidence, which costs a softmax over
# the upsampled class scores and is computed only when asked for.
KNOWN_OUTPUTS = ALL_OUTPUTS | {"confidence"}


@dataclass(frozen=True)
class PipelineConfig:
    """What to run and at which size.

    input_size: (width, height): each frame is scaled, its aspect ratio kept, to the largest size
        that fits inside, then padded to multiples of 32 (runtime/geometry.py); None runs each
        frame at its own scale; "auto" fits it inside the size the weights were trained at when
        their metadata says, else runs it at its own scale.
    output_size: 'network' gives outputs at the scaled frame's size (the network's resolution,
        without the padding); 'input' at the camera frame's size.
    """

    weights: str = "default"
    backend: str = AUTO  # the fastest engine installed for the device (fallback.AUTO_ORDER)
    device: str = "auto"
    precision: str = "fp32"
    input_size: tuple[int, int] | None | str = (640, 480)
    output_size: str = "network"
    strict: bool = False
    # Labels from one class group only (presets.CLASS_GROUPS: 'nyud' or 'kitti' for the
    # joint nyud_kitti weights); 'all' = the argmax over every class.
    classes: str = "all"
    # Backend-specific build options, e.g. {"compile": True} for torch, {"calibration": "frames/",
    # "cache_dir": "/opt/engines"} for tensorrt; dropped when a fallback runs another backend.
    engine_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if found := validate_config(self):
            raise UsageError("; ".join(found))


def validate_config(cfg: PipelineConfig) -> list[str]:
    found = problems(backend=cfg.backend, device=cfg.device, precision=cfg.precision, options=cfg.engine_options)
    if cfg.output_size not in OUTPUT_SIZES:
        found.append(f"output_size {cfg.output_size!r} is not one of {', '.join(OUTPUT_SIZES)}")
    if isinstance(cfg.input_size, str):
        if cfg.input_size != AUTO_SIZE:
            found.append(f"input_size {cfg.input_size!r} must be (width, height), None or {AUTO_SIZE!r}")
    elif cfg.input_size is not None:
        if len(cfg.input_size) != 2 or not all(isinstance(v, (int, np.integer)) for v in cfg.input_size):
            found.append(f"input_size {cfg.input_size!r} must be (width, height) integers")
        elif not all(MIN_INPUT_SIDE <= v <= MAX_INPUT_SIDE for v in cfg.input_size):
            found.append(f"input_size {cfg.input_size[0]}x{cfg.input_size[1]} is impossible: "
                            f"each side must be {MIN_INPUT_SIDE}..{MAX_INPUT_SIDE}")
    return found


class Pipeline:
    def __init__(self, *, engine: Engine, preset: Preset, config: PipelineConfig, weights_source: str, weights_sha256: str,
                 warnings: tuple[str, ...] = (), training_camera: TrainingCamera | None = None) -> None:
        self.engine = engine
        self.preset = preset
        self.config = config
        self.warnings = warnings
        # The camera the weights learned metric depth with; None: depth is never rescaled.
        self.training_camera = training_camera
        self._geometries: dict[tuple[int, int], InputGeometry] = {}
        self._class_range = class_group(preset.name, config.classes)  # ValueError for an unknown group
        self.info = {
            **engine.describe(),
            "weights": weights_source,
            "weights_sha256": weights_sha256,
            "preset": preset.name,
            "training_focal": (f"{training_camera.focal_px:.1f} px at {training_camera.width_px} px wide"
                               if training_camera else "unknown (depth not rescaled)"),
        }
        device = engine.device
        self._scale, self._shift = normalisation(preset.mean, preset.std, device)
        self._is_cuda = device.type == "cuda"
        self._stream = self._upload_stream = self._download_stream = None
        self._staging: list[_Staging | None] = [None] * STAGING_SLOTS
        self._next_slot = 0
        if self._is_cuda:
            # Three streams, so that one frame's copies overlap another frame's compute when frames
            # are submitted ahead (see submit): uploads, compute, downloads. The compute stream is
            # also the frame path's own: it neither waits for nor blocks other CUDA work in the
            # process (a second camera's pipeline, visualisation) on the default stream.
            self._stream = torch.cuda.Stream(device)
            self._upload_stream = torch.cuda.Stream(device)
            self._download_stream = torch.cuda.Stream(device)
            self._stream.wait_stream(torch.cuda.current_stream(device))  # the engine's weights were uploaded there

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def create(cls, config: PipelineConfig) -> "Pipeline":
        """Load weights and build the engine; raises WeightsError, EngineError or FallbackRefused."""
        weights = load_weights(config.weights)
        if config.input_size == AUTO_SIZE:
            config = dataclasses.replace(config, input_size=weights.trained_input_size)
        return cls.from_model(weights.build_model(), weights.preset, config, weights_source=weights.source,
                              weights_sha256=weights.sha256,
                              training_camera=training_camera(weights.metadata, weights.preset.name))

    @classmethod
    def from_model(cls, model: HydraNet, preset: Preset, config: PipelineConfig, *, weights_source: str = "<in memory>",
                   weights_sha256: str = "", training_camera: TrainingCamera | None = None) -> "Pipeline":
        if config.input_size == AUTO_SIZE:  # an in-memory model records no training size
            config = dataclasses.replace(config, input_size=None)
        choice = choose_runtime(
            backend=config.backend, device=config.device, precision=config.precision, strict=config.strict,
            cuda_available=torch.cuda.is_available(), installed=installed_backends(),
            fixed_input_size=config.input_size is not None,
        )
        if choice.reason:
            log.info(choice.reason)
        for warning in choice.warnings:
            log.warning(warning)
        device = indexed(torch.device(config.device if config.device.startswith("cuda:") and choice.device == "cuda" else choice.device))
        # A backend that exists but fails to build (TensorRT out of memory, unsupported version)
        # steps down to eager torch like a missing one, unless strict.
        # Built with its device current: TensorRT and graph capture work on the current device,
        # which for device "cuda:1" is not the one asked for.
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            engine, build_warnings = build_engine(
                choice, model.eval(), device=device, input_size=config.input_size, weights_sha256=weights_sha256,
                strict=config.strict, requested_backend=config.backend, options=config.engine_options,
            )
        pipe = cls(engine=engine, preset=preset, config=config, weights_source=weights_source,
                   weights_sha256=weights_sha256, warnings=choice.warnings + build_warnings,
                   training_camera=training_camera)
        pipe.info["requested_backend"] = config.backend
        return pipe

    # --- sizes --------------------------------------------------------------------------------
    def geometry_for(self, width: int, height: int) -> InputGeometry:
        """How a width x height frame maps into the network (one plan per frame size)."""
        key = (int(width), int(height))
        geometry = self._geometries.get(key)
        if geometry is None:
            geometry = plan_input(key, self.config.input_size, fill_request=self.engine.fixed_input_size)
            if len(self._geometries) > 16:  # a camera has one size; a folder of images may have many
                self._geometries.clear()
            self._geometries[key] = geometry
        return geometry

    def network_size_for(self, width: int, height: int) -> tuple[int, int]:
        """The network's input size (padding included) for a width x height frame."""
        return self.geometry_for(width, height).network_size

    def output_size_for(self, width: int, height: int) -> tuple[int, int]:
        """The outputs' size: the frame's, or the scaled frame's (network resolution, no padding)."""
        return (int(width), int(height)) if self.config.output_size == "input" else self.geometry_for(width, height).scaled_size

    def depth_scale_for(self, geometry: InputGeometry, focal_px: float | None) -> DepthScale:
        """The factor on the network's depth for a frame with this geometry and focal length
        (frame pixels; None assumes the training camera's field of view)."""
        return depth_scale(self.training_camera, frame_width=geometry.frame_size[0], scale=geometry.mean_scale,
                           focal_frame_px=focal_px)

    # --- the frame path -----------------------------------------------------------------------
    def process(self, frame: np.ndarray, *, color_order: str = "rgb", outputs: frozenset[str] = ALL_OUTPUTS,
                focal_px: float | None = None) -> Result:
        """One camera frame (uint8 HxWx3) -> Result. ``outputs`` (names in KNOWN_OUTPUTS) skips
        unwanted post-processing (a skipped output is None in the Result); "confidence" is
        computed only when named. ``focal_px``: the camera's focal length in frame pixels
        (CameraInfo's K), for metric depth; None assumes the training camera."""
        return self.submit(frame, color_order=color_order, outputs=outputs, focal_px=focal_px).result()

    def submit(self, frame: np.ndarray, *, color_order: str = "rgb", outputs: frozenset[str] = ALL_OUTPUTS,
               focal_px: float | None = None) -> "PendingResult":
        """Queue one frame and return at once on CUDA; ``.result()`` waits for it.

        The frame is copied before this returns, so the caller may reuse its buffer. Frames
        complete in the order submitted. Submitting frame N+1 before asking for N's result
        keeps the GPU busy while the host finishes N (see ``in_order``). On CPU the work is
        done here and the result is ready. One thread at a time per Pipeline (the engines'
        static buffers and the staging ring are not shared between threads).
        """
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be uint8 HxWx3, got {frame.dtype} {frame.shape}")
        if color_order not in ("rgb", "bgr"):
            raise ValueError(f"color_order must be 'rgb' or 'bgr', not {color_order!r}")
        if not outputs <= KNOWN_OUTPUTS:
            raise ValueError(f"unknown outputs {sorted(outputs - KNOWN_OUTPUTS)}; known: {', '.join(sorted(KNOWN_OUTPUTS))}")
        height, width = frame.shape[:2]
        geometry = self.geometry_for(width, height)
        out_w, out_h = self.output_size_for(width, height)
        scale = self.depth_scale_for(geometry, focal_px)
        if not self._is_cuda:
            return self._run_on_cpu(frame, color_order, geometry, scale, (out_h, out_w), outputs)
        return self._queue_on_cuda(frame, color_order, geometry, scale, (out_h, out_w), outputs)

    def _run_on_cpu(self, frame, color_order, geometry, scale, out_hw, outputs) -> "PendingResult":
        t0 = time.perf_counter()
        image = self._preprocess(frame, color_order, geometry)
        t1 = time.perf_counter()
        raw = self.engine(image)
        t2 = time.perf_counter()
        result = Result(**self._postprocess_on_host(raw, geometry, scale.factor, out_hw, outputs),
                        geometry=geometry, depth_scale=scale)
        t3 = time.perf_counter()
        result.timings_ms = {
            "preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3,
        }
        return PendingResult(result=result)

    def _queue_on_cuda(self, frame, color_order, geometry, scale, out_hw, outputs) -> "PendingResult":
        marks = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
        with torch.cuda.stream(self._stream):
            image = self._preprocess(frame, color_order, geometry, start=marks[0])
            marks[1].record()
            raw = self.engine(image)
            marks[2].record()
            device_outputs = self._postprocess(raw, geometry, scale.factor, out_hw, outputs)
        # Downloads on their own stream: the next frame's compute, queued right after this
        # returns, does not wait behind this frame's copies.
        copies = self._download_stream
        copies.wait_stream(self._stream)
        host = {}
        with torch.cuda.stream(copies):
            for name, t in device_outputs.items():
                if t is None:
                    continue
                t.record_stream(copies)  # the allocator must not hand t out again before the copy
                # Pinned blocks come from torch's caching host allocator: reused once a Result is
                # dropped, never re-pinned (pinning costs far more than the copy).
                host[name] = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
                host[name].copy_(t, non_blocking=True)
            done = torch.cuda.Event(enable_timing=True)
            done.record()
        return PendingResult(host=host, names=tuple(device_outputs), marks=marks, done=done,
                             extras={"geometry": geometry, "depth_scale": scale})

    def _preprocess(self, frame: np.ndarray, color_order: str, geometry: InputGeometry, *, start: torch.cuda.Event | None = None) -> torch.Tensor:
        if not self._is_cuda:
            # Written by numpy straight into the engine's layout (network_input.fit_and_normalise_host:
            # the same arithmetic, a fraction of torch's host time on a CPU).
            x = fit_and_normalise_host(frame, geometry, self._scale, self._shift, bgr=color_order == "bgr",
                                       channels_last=self.engine.channels_last)
            return x if self.engine.dtype == torch.float32 else x.to(self.engine.dtype)
        pixels = self._upload(frame, start)
        # HWC viewed as NCHW is already channels-last: no copy until the float conversion.
        x = pixels.permute(2, 0, 1).unsqueeze(0)
        if color_order == "bgr":
            x = x.flip(1)
        x = fit_and_normalise(x.float(), geometry, self._scale, self._shift)
        memory_format = torch.channels_last if self.engine.channels_last else torch.contiguous_format
        return x.to(dtype=self.engine.dtype, memory_format=memory_format)

    def _upload(self, frame: np.ndarray, start: torch.cuda.Event | None = None) -> torch.Tensor:
        """uint8 frame -> device, through a ring of pinned buffers reused frame after frame
        (pinning memory costs far more than the copy). The copy runs on the upload stream and
        the current stream waits for it: the host never blocks, and with frames submitted ahead
        it overlaps the compute of the frame before."""
        slot = self._staging_slot(frame.shape)
        slot.free.synchronize()  # the upload that last read this buffer (two frames ago) is over
        if start is not None:
            # Recorded before the host copy: the idle upload stream passes it at once, so the
            # frame's GPU-timed span starts when the host starts working on it.
            start.record(self._upload_stream)
        np.copyto(slot.array, frame)  # also gathers strided views (rgba8 without alpha, flipped)
        consumer = torch.cuda.current_stream(self.engine.device)
        with torch.cuda.stream(self._upload_stream):
            pixels = slot.tensor.to(self.engine.device, non_blocking=True)
            slot.free.record()
        consumer.wait_stream(self._upload_stream)
        pixels.record_stream(consumer)  # allocated on the upload stream, read on the consumer's
        return pixels

    def _staging_slot(self, shape: tuple[int, ...]) -> "_Staging":
        index = self._next_slot
        self._next_slot = (index + 1) % STAGING_SLOTS
        slot = self._staging[index]
        if slot is None or slot.array.shape != shape:
            if slot is not None:
                slot.free.synchronize()  # its last upload must finish before the memory goes
            tensor = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
            slot = self._staging[index] = _Staging(tensor, tensor.numpy(), torch.cuda.Event())
        return slot

    def _postprocess(self, raw: dict[str, torch.Tensor], geometry: InputGeometry, depth_factor: float,
                     size: tuple[int, int], outputs: frozenset[str]) -> dict[str, torch.Tensor | None]:
        """Network outputs -> {'labels', 'depth_m', 'normals', 'confidence'} at ``size`` (height,
        width) on the engine's device (None where not asked for), cut back to the frame's area, by
        runtime/network_output.py, which evaluation runs too."""
        with torch.inference_mode():
            labels = depth = normals = confidence = None
            if "labels" in outputs or "confidence" in outputs:
                segm, first = raw["segm"], 0
                if self._class_range is not None:  # one dataset's classes only (joint weights)
                    first, stop = self._class_range
                    segm = segm[:, first:stop]
                # The confidence is over the same classes as the argmax (one dataset's, for
                # joint weights restricted to it).
                labels, confidence = labels_and_confidence(
                    class_scores(segm, size, geometry), labels="labels" in outputs, confidence="confidence" in outputs)
                labels = labels[0] if labels is not None else None
                confidence = confidence[0] if confidence is not None else None
                if first and labels is not None:
                    labels += first
            if "depth" in outputs:
                depth = depth_in_metres(raw["depth"], size, geometry, depth_factor)[0]
            if "normals" in outputs and "normals" in raw:
                normals = unit_normals(raw["normals"], size, geometry)[0].permute(1, 2, 0)
            return {"labels": labels, "depth_m": depth, "normals": normals, "confidence": confidence}

    def _postprocess_on_host(self, raw: dict[str, torch.Tensor], geometry: InputGeometry, depth_factor: float,
                             size: tuple[int, int], outputs: frozenset[str]) -> dict[str, np.ndarray | None]:
        """_postprocess for a CPU engine, in numpy and OpenCV (network_output's *_host functions:
        the same arithmetic, a fraction of torch's host time). The engine's outputs are read in
        place (no copy of the logits), whatever their layout."""
        labels = depth = normals = confidence = None
        if "labels" in outputs or "confidence" in outputs:
            segm, first = raw["segm"][0].numpy(), 0
            if self._class_range is not None:  # one dataset's classes only (joint weights)
                first, stop = self._class_range
                segm = segm[first:stop]
            labels, confidence = labels_and_confidence_host(
                segm, size, geometry, labels="labels" in outputs, confidence="confidence" in outputs)
            if first and labels is not None:
                labels += first
        if "depth" in outputs:
            depth = depth_in_metres_host(raw["depth"][0].numpy(), size, geometry, depth_factor)
        if "normals" in outputs and "normals" in raw:
            normals = unit_normals_host(raw["normals"][0].numpy(), size, geometry)
        return {"labels": labels, "depth_m": depth, "normals": normals, "confidence": confidence}


STAGING_SLOTS = 2  # one frame uploading while the one before is read: enough for in_order's two in flight


@dataclass
class _Staging:
    tensor: torch.Tensor  # pinned host memory
    array: np.ndarray  # the same memory as numpy, for np.copyto
    free: "torch.cuda.Event"  # recorded after the upload that reads it


class PendingResult:
    """A submitted frame. ``result()`` waits until its outputs are in host memory (at once on CPU).

    On CUDA the timings come from CUDA events, so they need no synchronisation between stages:
    'preprocess' from the host's copy into pinned memory to the normalised input, 'postprocess'
    to the end of the downloads, 'total' the whole span. With frames submitted ahead each also
    holds the wait behind the frame before (queueing is latency), but never the caller's own work
    between submit and result().
    """

    def __init__(self, *, result: Result | None = None, host=None, names=(), marks=(), done=None, extras=None) -> None:
        self._result = result
        self._host, self._names, self._marks, self._done = host, names, marks, done
        self._extras = extras or {}

    def done(self) -> bool:
        return self._result is not None or self._done.query()

    def result(self) -> Result:
        if self._result is None:
            self._done.synchronize()
            result = Result(**{k: self._host[k].numpy() if k in self._host else None for k in self._names}, **self._extras)
            start, prepared, inferred = self._marks
            result.timings_ms = {
                "preprocess": start.elapsed_time(prepared), "inference": prepared.elapsed_time(inferred),
                "postprocess": inferred.elapsed_time(self._done), "total": start.elapsed_time(self._done),
            }
            self._result, self._host, self._marks, self._done = result, None, (), None
        return self._result


def in_order(pipeline: "Pipeline", items: Iterable[tuple[Any, np.ndarray, str]], *,
             outputs: frozenset[str] = ALL_OUTPUTS, in_flight: int = 2, focal: "CameraFocal | None" = None) -> Iterator[tuple[Any, Result]]:
    """(tag, frame, color_order) in -> (tag, Result) out, in the same order, with up to
    ``in_flight`` frames queued on the device: while the GPU runs frame N, the host reads and
    uploads N+1 and the caller writes N-1's outputs. For offline work (bags, videos, folders),
    where every frame counts; a live camera wants the newest frame instead (FrameWorker).
    On CPU every frame is done when submitted: plain sequential processing. ``focal``: the
    camera's focal length for metric depth (None: the training camera is assumed)."""
    if in_flight < 1:
        raise ValueError(f"in_flight must be >= 1, got {in_flight}")
    queued: collections.deque[tuple[Any, PendingResult]] = collections.deque()
    source = iter(items)
    while True:
        try:
            item = next(source, None)
        except Exception:
            # The source failed (an unreadable image, a broken video): the frames already queued
            # are still delivered before the error, as they would be one frame at a time.
            while queued:
                tag, pending = queued.popleft()
                yield tag, pending.result()
            raise
        if item is None:
            break
        tag, frame, color_order = item
        focal_px = None if focal is None else focal.for_width(frame.shape[1])
        queued.append((tag, pipeline.submit(frame, color_order=color_order, outputs=outputs, focal_px=focal_px)))
        if len(queued) >= in_flight:
            tag, pending = queued.popleft()
            yield tag, pending.result()
    while queued:
        tag, pending = queued.popleft()
        yield tag, pending.result()
