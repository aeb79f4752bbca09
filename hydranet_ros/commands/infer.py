"""`hydranet infer`: an image, a folder of images or a video -> labels, depth and pictures."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from hydranet_ros.commands.common import add_pipeline_arguments, camera_focal_from_args, log, pipeline_from_args, say_depth_camera
from hydranet_ros.io import media, visuals
from hydranet_ros.runtime.focal import CameraFocal
from hydranet_ros.runtime.pipeline import Pipeline, in_order


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="an image file, a folder of images, or a video file")
    parser.add_argument("-o", "--output", default="hydranet_out", help="folder for the results (default: hydranet_out)")
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the class colours in the overlay (0..1)")
    add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be within 0..1, got {args.alpha}")
    focal = camera_focal_from_args(args)
    source = media.open_source(args.input)
    pipe = pipeline_from_args(args)
    say_depth_camera(pipe, focal)
    written = process_source(pipe, source, Path(args.output), alpha=args.alpha, focal=focal)
    print(f"{written} frame(s) -> {args.output}  ({pipe.info['backend']} {pipe.info['precision']} on {pipe.info['device']}, weights {pipe.info['weights']})")
    return 0


def process_source(pipe: Pipeline, source: media.Source, out_dir: Path, *, alpha: float = 0.5,
                   focal: CameraFocal | None = None) -> int:
    """Write <stem>_labels.png (uint8 ids), <stem>_depth.png (uint16 metres x 256, 0 = no estimate,
    65535 = 256 m or farther), <stem>_color.png, <stem>_preview.png (overlay, depth, legend and
    colour bar) for each frame, and <video stem>_preview.mp4 (H.264) or .webm (VP8) for a video."""
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
