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
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from hydranet_ros.errors import UsageError
from hydranet_ros.model.checkpoints import load_weights
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import Preset, class_group
from hydranet_ros.runtime.engines.base import Engine, indexed
from hydranet_ros.runtime.choices import (
    AUTO, ENGINES, MAX_BATCH, MAX_INPUT_SIDE, MIN_INPUT_SIDE, OUTPUT_SIZES, installed_backends, problems,
)
from hydranet_ros.runtime.fallback import build_engine, choose_runtime
from hydranet_ros.runtime.focal import CameraFocal, DepthScale, TrainingCamera, depth_scale, training_camera
from hydranet_ros.runtime.geometry import InputGeometry, plan_input
from hydranet_ros.runtime.lanes import Lanes
from hydranet_ros.runtime.network_input import fit_and_normalise, fit_and_normalise_host, normalisation
from hydranet_ros.runtime.network_output import (
    class_scores, depth_in_metres, depth_in_metres_host, labels_and_confidence, labels_and_confidence_host,
    unit_normals, unit_normals_host,
)
from hydranet_ros.runtime.result import ALL_OUTPUTS, KNOWN_OUTPUTS, FrameRequest, Result
from hydranet_ros.runtime.sizes import AUTO_SIZE

log = logging.getLogger(__name__)

# Frames are often read-only views on a message buffer (rosbags, rclpy). The pipeline only reads
# them, so torch's warning about non-writable arrays says nothing useful here.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

__all__ = ["ALL_OUTPUTS", "KNOWN_OUTPUTS", "FrameRequest", "Pipeline", "PipelineConfig", "PendingResult", "in_order",
           "validate_config"]


@dataclass(frozen=True)
class _Job:
    """A checked FrameRequest with the numbers the frame path needs."""

    request: FrameRequest
    geometry: InputGeometry
    scale: DepthScale
    out_hw: tuple[int, int]  # (height, width) of the outputs


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
    # The most frames (cameras) one network pass takes: engines built for a batch range (TensorRT)
    # are built for 1..max_batch; torch and cuda-graph take any batch and ignore it.
    max_batch: int = 1

    def __post_init__(self) -> None:
        if found := validate_config(self):
            raise UsageError("; ".join(found))


def validate_config(cfg: PipelineConfig) -> list[str]:
    found = problems(backend=cfg.backend, device=cfg.device, precision=cfg.precision, options=cfg.engine_options)
    if isinstance(cfg.max_batch, bool) or not isinstance(cfg.max_batch, int) or not 1 <= cfg.max_batch <= MAX_BATCH:
        found.append(f"max_batch must be an integer 1..{MAX_BATCH}, got {cfg.max_batch!r}")
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
        self._staging: list[_StagingHalf | None] = [None] * STAGING_SLOTS
        self._next_slot = 0
        self._lanes: Lanes | None = None  # made on the first batch for an engine with lanes
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
        # Engines built for one size (TensorRT) get the request padded to the stride from
        # build_engine (choices.build_size), which is what plan_input(fill_request=True) feeds them.
        options = dict(config.engine_options)
        if config.max_batch > 1 and "max_batch" in ENGINES[choice.backend].options:
            options.setdefault("max_batch", config.max_batch)  # built for a batch range; others take any batch
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            engine, build_warnings = build_engine(
                choice, model.eval(), device=device, input_size=config.input_size, weights_sha256=weights_sha256,
                strict=config.strict, requested_backend=config.backend, options=options,
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
        return self.submit_batch([FrameRequest(frame, color_order, outputs, focal_px)])[0]

    def process_batch(self, requests: Sequence[FrameRequest]) -> list[Result]:
        """Several cameras' frames through one network pass where they share its input size:
        the Results in the order of ``requests``, each equal to what ``process`` gives that frame."""
        return [pending.result() for pending in self.submit_batch(requests)]

    def submit_batch(self, requests: Sequence[FrameRequest]) -> list["PendingResult"]:
        """``submit`` for several frames (one per camera) at once, one PendingResult per request.

        Frames are grouped by network input size (runtime/geometry: each camera's frame scaled
        into the requested box, aspect kept, padded to the stride): each group runs as one
        batched forward, at most ``engine.max_batch`` frames at a time. Cameras of one size
        batch together; a camera of another aspect ratio runs in its own group, never padded to
        a common size, so that a frame's outputs do not depend on which cameras it was batched
        with. Pre- and post-processing (resize, cut-back, argmax, focal correction) stay per
        frame. A batch of one is exactly ``submit``. A CPU engine with lanes (ONNX Runtime and
        OpenVINO built for several cameras) runs each frame whole in a lane instead, any sizes
        mixed (_run_in_lanes).
        """
        jobs = [self._job(request) for request in requests]
        if len(jobs) > 1 and self.engine.lanes > 1 and not self._is_cuda:
            return self._run_in_lanes(jobs)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, job in enumerate(jobs):
            groups.setdefault(job.geometry.network_size, []).append(index)
        limit = self.engine.max_batch or len(jobs)
        pending: list[PendingResult | None] = [None] * len(jobs)
        for indices in groups.values():
            for start in range(0, len(indices), limit):
                chunk = indices[start:start + limit]
                run = self._run_on_cpu if not self._is_cuda else self._queue_on_cuda
                for index, result in zip(chunk, run([jobs[i] for i in chunk])):
                    pending[index] = result
        return pending  # type: ignore[return-value]

    def _job(self, request: FrameRequest) -> _Job:
        frame = request.pixels
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be uint8 HxWx3, got {getattr(frame, 'dtype', type(frame))} {getattr(frame, 'shape', '')}")
        if request.color_order not in ("rgb", "bgr"):
            raise ValueError(f"color_order must be 'rgb' or 'bgr', not {request.color_order!r}")
        if not request.outputs <= KNOWN_OUTPUTS:
            unknown = sorted(request.outputs - KNOWN_OUTPUTS)
            raise ValueError(f"unknown outputs {unknown}; known: {', '.join(sorted(KNOWN_OUTPUTS))}")
        height, width = frame.shape[:2]
        geometry = self.geometry_for(width, height)
        out_w, out_h = self.output_size_for(width, height)
        return _Job(request, geometry, self.depth_scale_for(geometry, request.focal_px), (out_h, out_w))

    def _run_on_cpu(self, jobs: list[_Job]) -> list["PendingResult"]:
        t0 = time.perf_counter()
        images, prepared_at = [], []
        for job in jobs:
            started = time.perf_counter()
            images.append(self._preprocess(job.request.pixels, job.request.color_order, job.geometry))
            prepared_at.append((started, time.perf_counter()))
        t1 = time.perf_counter()
        raw = self.engine(_stack(images))
        t2 = time.perf_counter()
        pending = []
        for index, job in enumerate(jobs):
            started = time.perf_counter()
            result = self._result_on_host(job, _item(raw, index, len(jobs)), len(jobs))
            finished = time.perf_counter()
            # Per frame: its own pre- and post-processing, the batch's one forward, and the span
            # from the batch's start to this frame's outputs (the other frames' work included).
            result.timings_ms = {
                "preprocess": (prepared_at[index][1] - prepared_at[index][0]) * 1e3, "inference": (t2 - t1) * 1e3,
                "postprocess": (finished - started) * 1e3, "total": (finished - t0) * 1e3,
            }
            pending.append(PendingResult(result=result))
        return pending

    def _run_in_lanes(self, jobs: list[_Job]) -> list["PendingResult"]:
        """A CPU engine with lanes (engines/base.Engine.lanes): each frame's pre-processing, forward
        and post-processing in its own lane thread, ``lanes`` frames at once, any sizes mixed. The
        same arithmetic as one frame alone, each forward on its lane's threads (Engine.lane_threads)."""
        if self._lanes is None:
            self._lanes = Lanes(self.engine.lanes)
        t0 = time.perf_counter()
        results = self._lanes.run_all([(self._one_in_lane, (job, t0, len(jobs))) for job in jobs])
        return [PendingResult(result=result) for result in results]

    def _one_in_lane(self, job: _Job, t0: float, batch_size: int) -> Result:
        started = time.perf_counter()
        image = self._preprocess(job.request.pixels, job.request.color_order, job.geometry)
        prepared = time.perf_counter()
        raw = self.engine.run_in_lane(image)
        inferred = time.perf_counter()
        result = self._result_on_host(job, raw, batch_size)
        finished = time.perf_counter()
        result.timings_ms = {"preprocess": (prepared - started) * 1e3, "inference": (inferred - prepared) * 1e3,
                             "postprocess": (finished - inferred) * 1e3, "total": (finished - t0) * 1e3}
        return result

    def _result_on_host(self, job: _Job, raw: dict, batch_size: int) -> Result:
        """A frame's Result from its engine outputs: numpy/OpenCV on them, read in place
        (_postprocess_on_host)."""
        return Result(**self._postprocess_on_host(raw, job.geometry, job.scale.factor, job.out_hw, job.request.outputs),
                      geometry=job.geometry, depth_scale=job.scale, batch_size=batch_size)

    def _queue_on_cuda(self, jobs: list[_Job]) -> list["PendingResult"]:
        starts = [torch.cuda.Event(enable_timing=True) for _ in jobs]
        prepared, inferred = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        staging = self._staging_half()
        with torch.cuda.stream(self._stream):
            images = [self._preprocess(job.request.pixels, job.request.color_order, job.geometry, start=start,
                                       staging=staging)
                      for job, start in zip(jobs, starts)]
            batch = _stack(images)
            prepared.record()
            raw = self.engine(batch)
            inferred.record()
            device_outputs = [self._postprocess(_item(raw, index, len(jobs)), job.geometry, job.scale.factor,
                                                job.out_hw, job.request.outputs)
                              for index, job in enumerate(jobs)]
        # Downloads on their own stream: the next frame's compute, queued right after this
        # returns, does not wait behind this frame's copies.
        copies = self._download_stream
        copies.wait_stream(self._stream)
        pending = []
        with torch.cuda.stream(copies):
            for job, start, outputs in zip(jobs, starts, device_outputs):
                host = {}
                for name, t in outputs.items():
                    if t is None:
                        continue
                    t.record_stream(copies)  # the allocator must not hand t out again before the copy
                    # Pinned blocks come from torch's caching host allocator: reused once a Result is
                    # dropped, never re-pinned (pinning costs far more than the copy).
                    host[name] = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
                    host[name].copy_(t, non_blocking=True)
                done = torch.cuda.Event(enable_timing=True)
                done.record()
                pending.append(PendingResult(
                    host=host, names=tuple(outputs), marks=(start, prepared, inferred), done=done,
                    extras={"geometry": job.geometry, "depth_scale": job.scale, "batch_size": len(jobs)}))
        return pending

    def _preprocess(self, frame: np.ndarray, color_order: str, geometry: InputGeometry, *,
                    start: torch.cuda.Event | None = None, staging: "_StagingHalf | None" = None) -> torch.Tensor:
        if not self._is_cuda:
            # Written by numpy straight into the engine's layout (network_input.fit_and_normalise_host:
            # the same arithmetic, a fraction of torch's host time on a CPU).
            x = fit_and_normalise_host(frame, geometry, self._scale, self._shift, bgr=color_order == "bgr",
                                       channels_last=self.engine.channels_last)
            return x if self.engine.dtype == torch.float32 else x.to(self.engine.dtype)
        pixels = self._upload(frame, start, staging if staging is not None else self._staging_half())
        # HWC viewed as NCHW is already channels-last: no copy until the float conversion.
        x = pixels.permute(2, 0, 1).unsqueeze(0)
        if color_order == "bgr":
            x = x.flip(1)
        x = fit_and_normalise(x.float(), geometry, self._scale, self._shift)
        memory_format = torch.channels_last if self.engine.channels_last else torch.contiguous_format
        return x.to(dtype=self.engine.dtype, memory_format=memory_format)

    def _upload(self, frame: np.ndarray, start: torch.cuda.Event | None, staging: "_StagingHalf") -> torch.Tensor:
        """uint8 frame -> device, through pinned buffers reused submit after submit (pinning
        memory costs far more than the copy). The copy runs on the upload stream and the current
        stream waits for it: the host never blocks, and with frames submitted ahead it overlaps
        the compute of the frame before."""
        slot = staging.slot_for(frame.shape)
        slot.free.synchronize()  # the upload that last read this buffer (two submits ago) is over
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

    def _staging_half(self) -> "_StagingHalf":
        """The pinned buffers for the next submit: two sets used in turn, so one submit's frames
        upload while the one before is read (in_order keeps two in flight)."""
        index = self._next_slot
        self._next_slot = (index + 1) % STAGING_SLOTS
        half = self._staging[index]
        if half is None:
            half = self._staging[index] = _StagingHalf()
        half.begin()
        return half

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


STAGING_SLOTS = 2  # one submit uploading while the one before is read: enough for in_order's two in flight


def _stack(images: list[torch.Tensor]) -> torch.Tensor:
    """(1,3,H,W) inputs of one size -> one (N,3,H,W) batch in the same memory format."""
    if len(images) == 1:
        return images[0]
    channels_last = images[0].is_contiguous(memory_format=torch.channels_last)
    batch = torch.cat(images)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch


def _item(raw: Mapping[str, torch.Tensor], index: int, count: int) -> dict[str, torch.Tensor]:
    """Frame ``index``'s slice (1,C,h,w) of a batch's network outputs (views, no copy)."""
    if count == 1:
        return dict(raw)
    return {name: t[index:index + 1] for name, t in raw.items()}


@dataclass
class _Staging:
    tensor: torch.Tensor  # pinned host memory
    array: np.ndarray  # the same memory as numpy, for np.copyto
    free: "torch.cuda.Event"  # recorded after the upload that reads it


class _StagingHalf:
    """The pinned buffers one submit uploads its frames through: one per frame of the batch,
    matched by shape so that cameras of different sizes keep their own buffers (re-pinning on
    every batch would cost more than the copies)."""

    def __init__(self) -> None:
        self.slots: list[_Staging] = []
        self._used: set[int] = set()

    def begin(self) -> None:
        self._used = set()

    def slot_for(self, shape: tuple[int, ...]) -> _Staging:
        free = [i for i in range(len(self.slots)) if i not in self._used]
        index = next((i for i in free if self.slots[i].array.shape == shape), None)
        if index is None:
            tensor = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
            fresh = _Staging(tensor, tensor.numpy(), torch.cuda.Event())
            if free:  # a buffer of another size that this submit does not need: replaced
                index = free[0]
                self.slots[index].free.synchronize()  # its last upload must finish before the memory goes
                self.slots[index] = fresh
            else:
                index = len(self.slots)
                self.slots.append(fresh)
        self._used.add(index)
        return self.slots[index]


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
