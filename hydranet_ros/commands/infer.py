"""`hydranet infer`: an image, a folder of images or a video -> labels, depth and pictures.

What it writes, and what it never does:
- <name>_labels.png, _depth.png, _color.png and _preview.png per frame (and <video>_preview.mp4
  or .webm), each frame's four files appearing together, complete, or not at all; the video only
  once every frame is in it. With --points, <name>_points.ply too (written, complete, right
  after the frame's PNGs). An interrupted run leaves hidden partial files at most (after SIGKILL), which
  the next run into the same folder removes.
- It never replaces an input file, nor one result with another: frames whose names differ only
  in their suffix (a.png, a.jpg) get the suffix in their results' names (a.png_labels.png), and
  when the results go into the input's own folder no existing file there is replaced (a clash is
  refused before any work, in one line).
- An image it cannot read is named and skipped; the others are processed, and the exit status
  is 1 at the end (2 when no frame could be read).
"""

from __future__ import annotations

import argparse
import glob
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydranet_ros.commands.common import (
    add_max_pixels_argument, add_pipeline_arguments, camera_focal_from_args, log, network_options, pipeline_from_args,
    say_depth_camera,
)
from hydranet_ros.errors import UsageError
from hydranet_ros.io import media, staging
from hydranet_ros.io.camera_info import CameraCalibration, read_camera_calibration
from hydranet_ros.outputs.choices import POINT_COLORS, CloudSettings
from hydranet_ros.runtime.choices import MAX_FRAME_PIXELS

# What `hydranet infer` writes for a frame (<name><suffix>.png): a folder holding an earlier run's
# results must not feed them back in as camera frames.
OUTPUT_SUFFIXES = ("_labels", "_depth", "_color", "_preview")
# Ground truth beside the frames, as the sample data and the datasets here name it.
GROUND_TRUTH_MARK = "_gt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="an image file, a folder of images, or a video file")
    parser.add_argument("-o", "--output", default="hydranet_out", help="folder for the results (default: hydranet_out)")
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the class colours in the overlay (0..1)")
    parser.add_argument("--all-images", action="store_true",
                        help="in a folder, also run on images named like our outputs (*_labels.png, ...) or ground "
                             "truth (*_gt*); skipped by default")
    add_max_pixels_argument(parser, default=MAX_FRAME_PIXELS)
    points = parser.add_argument_group("3D points")
    points.add_argument("--points", action="store_true",
                        help="also write <stem>_points.ply: every pixel with depth as a 3D point in the camera's optical "
                             "frame (x right, y down, z forward, metres) with its colour, label and confidence; needs "
                             "--camera-info (the whole calibration: K and P, not only the focal length)")
    points.add_argument("--points-stride", type=int, default=1, metavar="N",
                        help="every N-th pixel of every N-th row (default 1)")
    points.add_argument("--points-max-range", type=float, default=0.0, metavar="M",
                        help="leave out points farther than M metres from the camera (default 0: no limit)")
    points.add_argument("--points-color", choices=POINT_COLORS, default="class",
                        help="colour the points by class (default) or with the camera's pixel")
    add_pipeline_arguments(parser)


@dataclass(frozen=True)
class PointsRequest:
    """--points: the camera it is unprojected with and the cloud's settings (the node's, for
    semantic/points: sky left out, dense)."""

    camera: CameraCalibration
    settings: CloudSettings


def points_request(args: argparse.Namespace) -> PointsRequest | None:
    """The --points options, checked before torch loads; None without --points. The calibration
    is the same --camera-info file that gives depth its focal length."""
    if not args.points:
        return None
    if getattr(args, "camera_info", None) is None:
        raise UsageError("--points needs --camera-info FILE: the camera's calibration the depth is unprojected with"
                         + (" (--focal gives the focal length only)" if getattr(args, "focal", None) else ""))
    if args.points_stride < 1:
        raise UsageError(f"--points-stride must be at least 1, got {args.points_stride}")
    if not args.points_max_range >= 0:
        raise UsageError(f"--points-max-range must be >= 0 metres, got {args.points_max_range}")
    return PointsRequest(read_camera_calibration(args.camera_info),
                         CloudSettings(stride=args.points_stride, max_range_m=args.points_max_range,
                                       color=args.points_color))


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        raise UsageError(f"--alpha must be within 0..1, got {args.alpha}")
    network_options(args)  # size, device, weights name: answered before torch loads
    focal = camera_focal_from_args(args)  # --focal / --camera-info, checked before torch loads too
    points = points_request(args)
    source = media.open_source(args.input)
    out_dir = output_folder(args.output)
    if not source.is_video and source.path.is_dir() and not args.all_images:
        source = skip_known_non_frames(source)
    names = result_names(source, out_dir, points=points is not None)  # clashes refused before torch loads
    pipe = pipeline_from_args(args)
    say_depth_camera(pipe, focal)
    report = process_source(pipe, source, out_dir, alpha=args.alpha, focal=focal, max_pixels=args.max_pixels or None,
                            names=names, points=points)
    if report.unreadable and not report.written:  # nothing done: one line, as for any unusable input
        others = len(report.unreadable) - 1
        raise media.MediaError(report.unreadable[0][1] + (f" (and {others} more unreadable image(s))" if others else ""))
    print(f"{report.written} frame(s) -> {args.output}  ({pipe.info['backend']} {pipe.info['precision']} on "
          f"{pipe.info['device']}, weights {pipe.info['weights']})")
    if report.unreadable:
        for path, why in report.unreadable:
            print(f"hydranet infer: skipped {why}", file=sys.stderr)
        print(f"hydranet infer: error: {len(report.unreadable)} of {report.written + len(report.unreadable)} "
              f"image(s) could not be read: {', '.join(p.name for p, _ in report.unreadable[:5])}"
              f"{' ...' if len(report.unreadable) > 5 else ''}", file=sys.stderr)
        return 1
    return 0


def output_folder(path: str | Path) -> Path:
    """The results folder, made if missing; a UsageError in plain words if it cannot be one."""
    out_dir = Path(path)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o {out_dir}: that is a file, not a folder; name a folder for the results")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"-o {out_dir}: {parent} is a file, so the results folder cannot be made inside it")
            break
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def skip_known_non_frames(source: media.Source) -> media.Source:
    """The folder's images without our own outputs and recognised ground truth, saying what was left out."""
    ours = [p for p in source.images if p.stem.endswith(OUTPUT_SUFFIXES)]
    truth = [p for p in source.images if GROUND_TRUTH_MARK in p.stem and p not in ours]
    frames = [p for p in source.images if p not in ours and p not in truth]
    skipped = []
    if ours:
        skipped.append(f"{len(ours)} result image(s) of an earlier run (*{'/*'.join(OUTPUT_SUFFIXES)}.png)")
    if truth:
        skipped.append(f"{len(truth)} ground-truth image(s) (*{GROUND_TRUTH_MARK}*)")
    if skipped:
        print(f"{source.path}: skipped {' and '.join(skipped)}; --all-images runs on them too")
    if not frames:
        raise UsageError(f"{source.path}: no camera frames left after skipping {' and '.join(skipped)}; "
                         "pass --all-images to run on them anyway")
    return media.Source(path=source.path, images=frames, is_video=False, frame_count=len(frames))


def result_files(name: str, *, points: bool = False) -> list[str]:
    """The files written for a frame whose results are named ``name`` (the PNGs, then the PLY of --points)."""
    return [f"{name}{suffix}.png" for suffix in OUTPUT_SUFFIXES] + ([f"{name}_points.ply"] if points else [])


def result_names(source: media.Source, out_dir: Path, *, points: bool = False) -> dict[Path, str]:
    """The name each input image's results carry (a video's frames are named as they are read).

    Images whose names differ only in the suffix (a.png, a.jpg) would write the same files: their
    results keep the suffix (a.png_labels.png). A UsageError, before any work, when a result would
    replace an input, another result, or (results in the input's own folder) any existing file.
    """
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for path in source.images:
        by_stem[path.stem].append(path)
    names = {}
    for stem, paths in by_stem.items():
        for path in paths:
            names[path] = stem if len(paths) == 1 else path.name
    shared = [paths for paths in by_stem.values() if len(paths) > 1]
    if shared:
        example = shared[0]
        print(f"{len(shared)} name(s) shared by images of different types (e.g. {', '.join(p.name for p in example)}): "
              f"their results keep the suffix ({example[0].name}_labels.png, ...)")
    planned: dict[Path, str] = {}  # result file -> the input it is for
    for path, name in names.items():
        for result in result_files(name, points=points):
            if out_dir / result in planned:
                raise UsageError(f"{path.name} and {planned[out_dir / result]} would both write {out_dir / result}; "
                                 "rename one of them")
            planned[out_dir / result] = path.name
    if source.is_video:  # the preview video's suffix depends on the codec the OpenCV build has
        for suffix in {suffix for _, suffix, _ in media.VIDEO_CODECS}:
            planned[out_dir / f"{source.path.stem}_preview{suffix}"] = source.path.name
    inputs = {p.resolve() for p in (source.images or [source.path])}
    input_folder = (source.path if source.path.is_dir() else source.path.parent).resolve()
    in_input_folder = out_dir.resolve() == input_folder
    clashes = [(result, frame) for result, frame in planned.items()
               if result.resolve() in inputs or (in_input_folder and (result.exists() or result.is_symlink()))]
    if in_input_folder and source.is_video:  # its frames' results: <video>_<index>_labels.png, ...
        prefix = f"{source.path.stem}_"
        clashes += [(p, source.path.name) for p in sorted(out_dir.glob(f"{glob.escape(prefix)}*.png"))
                    if p.stem[len(prefix):].split("_")[0].isdigit() and p.stem.endswith(OUTPUT_SUFFIXES)]
    if clashes:
        result, frame = clashes[0]
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        what = "an input" if result.resolve() in inputs else "a file in the input folder"
        raise UsageError(f"the results for {frame} would replace {result.name}, {what}{more}; "
                         "inputs are never overwritten: choose another -o folder")
    return names


@dataclass
class InferReport:
    written: int = 0
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # (image, one line why)


def process_source(pipe: Any, source: media.Source, out_dir: Path, *, alpha: float = 0.5, focal: Any = None,
                   max_pixels: int | None = MAX_FRAME_PIXELS, names: dict[Path, str] | None = None,
                   points: PointsRequest | None = None) -> InferReport:
    """Write <name>_labels.png (uint8 ids), <name>_depth.png (uint16 metres x 256, 0 = no estimate,
    65535 = 256 m or farther), <name>_color.png, <name>_preview.png (overlay, depth, legend and
    colour bar) for each frame, and <video stem>_preview.mp4 (H.264) or .webm (VP8) for a video
    (see the module notes). ``focal``: a runtime.focal.CameraFocal for metric depth, or None
    (training camera assumed). With ``points``, <name>_points.ply too."""
    from tqdm import tqdm

    from hydranet_ros.io import visuals
    from hydranet_ros.runtime.pipeline import ALL_OUTPUTS, in_order

    out_dir.mkdir(parents=True, exist_ok=True)
    staging.remove_abandoned_in(out_dir)  # hidden partial files of a killed run
    preview_video = media.PreviewVideo(out_dir / f"{source.path.stem}_preview", source.fps) if source.is_video else None
    report = InferReport()
    finished = False
    try:
        frames = tqdm(media.iter_frames(source, max_pixels=max_pixels, names=names, unreadable=report.unreadable),
                      total=source.frame_count, unit="frame", disable=None, desc="infer")
        # Frames go in ahead: on a GPU the next frame is read, uploaded and run while this one's
        # pictures are encoded and written.
        outputs = ALL_OUTPUTS | {"confidence"} if points is not None else ALL_OUTPUTS
        for (name, frame), result in in_order(pipe, (((name, frame), frame, "rgb") for name, frame in frames),
                                              focal=focal, outputs=outputs):
            colour = visuals.colorize_labels(result.labels, pipe.preset.palette)
            preview = visuals.preview(frame, result.labels, colour, result.depth_m, pipe.preset, alpha=alpha)
            labels, depth, color, preview_png = (out_dir / f for f in result_files(name))
            media.write_pngs({labels: (result.labels, False), depth: (media.depth_to_png(result.depth_m), False),
                              color: (colour, True), preview_png: (preview, True)})
            if points is not None:
                if report.written == 0 and result.labels.shape != (points.camera.height, points.camera.width):
                    print(f"note: the calibration is for {points.camera.width}x{points.camera.height} images and the "
                          f"outputs are {result.labels.shape[1]}x{result.labels.shape[0]}: its intrinsics are scaled "
                          "as for a resized image (a cropped image needs a calibration of its own)")
                write_points(out_dir / f"{name}_points.ply", frame, result, pipe.preset, points)
            if preview_video is not None:
                preview_video.write(preview)
            report.written += 1
            log.debug("%s: %s", name, {k: round(v, 1) for k, v in result.timings_ms.items()})
        finished = True
    finally:
        if preview_video is not None:
            if finished:
                preview_video.finish()
            else:
                preview_video.discard()
    if preview_video is not None and preview_video.codec is not None:
        print(f"preview video: {preview_video.path} ({preview_video.codec})")
        if preview_video.note:
            print(f"note: {preview_video.note}")
    return report


def write_points(path: Path, frame: Any, result: Any, preset: Any, request: PointsRequest) -> int:
    """<stem>_points.ply for one frame, unprojected with the calibration scaled to the outputs'
    size by the same function as the node's published CameraInfo. Returns the number of points."""
    import numpy as np

    from hydranet_ros.io.camera_info import CameraInfoRejected, scale_camera_info
    from hydranet_ros.io.ply import VERTEX_DTYPE, write_ply
    from hydranet_ros.outputs import cloud
    from hydranet_ros.outputs.choices import point_classes
    from hydranet_ros.outputs.fields import overlay_base

    height, width = result.labels.shape
    try:
        camera = scale_camera_info(request.camera, width, height)
    except CameraInfoRejected as exc:
        raise UsageError(f"--camera-info: {exc}") from None
    settings, intrinsics = request.settings, cloud.Intrinsics.from_camera_info(camera)
    camera_rgb = overlay_base(frame, "rgb", (width, height)) if settings.color == "camera" else None
    points = cloud.settings_cloud(result.depth_m, result.labels, result.confidence, intrinsics, settings,
                                  classes=point_classes(settings, preset), palette=preset.palette, camera_rgb=camera_rgb)
    vertices = np.zeros(len(points), VERTEX_DTYPE)
    for name in ("x", "y", "z", "label", "confidence"):
        vertices[name] = points[name]
    packed = points["rgb"].view(np.uint32)
    vertices["red"], vertices["green"], vertices["blue"] = packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF
    comments = [
        "hydranet_ros: camera optical frame (x right, y down, z forward), metres",
        f"intrinsics at {width}x{height}: fx {intrinsics.fx:.4f} fy {intrinsics.fy:.4f} cx {intrinsics.cx:.4f} "
        f"cy {intrinsics.cy:.4f}",
        *(f"label {class_id} {name}" for class_id, name in enumerate(preset.class_names) if name.isascii()),
    ]
    write_ply(path, vertices, comments=comments)
    return len(vertices)
