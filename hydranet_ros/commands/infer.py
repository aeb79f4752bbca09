"""`hydranet infer`: an image, a folder of images or a video -> labels, depth and pictures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hydranet_ros.commands.common import (
    add_pipeline_arguments, camera_focal_from_args, log, network_options, pipeline_from_args, say_depth_camera,
)
from hydranet_ros.errors import UsageError
from hydranet_ros.io import media

# What `hydranet infer` writes for a frame (<stem><suffix>.png): a folder holding an earlier run's
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
    add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        raise UsageError(f"--alpha must be within 0..1, got {args.alpha}")
    network_options(args)  # size, device, weights name: answered before torch loads
    focal = camera_focal_from_args(args)  # --focal / --camera-info, checked before torch loads too
    source = media.open_source(args.input)
    out_dir = output_folder(args.output)
    if not source.is_video and source.path.is_dir() and not args.all_images:
        source = skip_known_non_frames(source)
    pipe = pipeline_from_args(args)
    say_depth_camera(pipe, focal)
    written = process_source(pipe, source, out_dir, alpha=args.alpha, focal=focal)
    print(f"{written} frame(s) -> {args.output}  ({pipe.info['backend']} {pipe.info['precision']} on {pipe.info['device']}, weights {pipe.info['weights']})")
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


def process_source(pipe: Any, source: media.Source, out_dir: Path, *, alpha: float = 0.5,
                   focal: Any = None) -> int:
    """Write <stem>_labels.png (uint8 ids), <stem>_depth.png (uint16 metres x 256, 0 = no estimate,
    65535 = 256 m or farther), <stem>_color.png, <stem>_preview.png (overlay, depth, legend and
    colour bar) for each frame, and <video stem>_preview.mp4 (H.264) or .webm (VP8) for a video.
    ``focal``: a runtime.focal.CameraFocal for metric depth, or None (training camera assumed)."""
    from tqdm import tqdm

    from hydranet_ros.io import visuals
    from hydranet_ros.runtime.pipeline import in_order

    out_dir.mkdir(parents=True, exist_ok=True)
    preview_video = media.PreviewVideo(out_dir / f"{source.path.stem}_preview", source.fps) if source.is_video else None
    count = 0
    try:
        frames = tqdm(media.iter_frames(source), total=source.frame_count, unit="frame", disable=None, desc="infer")
        # Frames go in ahead: on a GPU the next frame is read, uploaded and run while this one's
        # pictures are encoded and written.
        for (stem, frame), result in in_order(pipe, (((stem, frame), frame, "rgb") for stem, frame in frames),
                                              focal=focal):
            colour = visuals.colorize_labels(result.labels, pipe.preset.palette)
            preview = visuals.preview(frame, result.labels, colour, result.depth_m, pipe.preset, alpha=alpha)
            media.write_png(out_dir / f"{stem}_labels.png", result.labels)
            media.write_png(out_dir / f"{stem}_depth.png", media.depth_to_png(result.depth_m))
            media.write_png(out_dir / f"{stem}_color.png", colour, rgb=True)
            media.write_png(out_dir / f"{stem}_preview.png", preview, rgb=True)
            if preview_video is not None:
                preview_video.write(preview)
            count += 1
            log.debug("%s: %s", stem, {k: round(v, 1) for k, v in result.timings_ms.items()})
    finally:
        if preview_video is not None:
            preview_video.close()
            if preview_video.codec is not None:
                print(f"preview video: {preview_video.path} ({preview_video.codec})")
            if preview_video.note:
                print(f"note: {preview_video.note}")
    return count
