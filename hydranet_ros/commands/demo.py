"""`hydranet demo`: the pipeline on real sample frames with the best weights available."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from hydranet_ros.commands.common import add_pipeline_arguments, network_options, pipeline_from_args
from hydranet_ros.commands.infer import output_folder, process_source
from hydranet_ros.io import media

SAMPLE_DATA_ENV = "HYDRANET_SAMPLE_DATA"
INDOOR_PRESETS = ("nyud", "nyud_three", "nyud_kitti")


def sample_data_dir() -> Path | None:
    """$HYDRANET_SAMPLE_DATA, else the nearest shared/data folder above a source checkout."""
    if explicit := os.environ.get(SAMPLE_DATA_ENV):
        return Path(explicit)
    checkout = Path(__file__).resolve().parents[2]
    return next((p / "shared" / "data" for p in checkout.parents if (p / "shared" / "data").is_dir()), None)


@dataclass
class SampleFrames:
    """The camera frames chosen for the weights, and what was left out and why."""

    frames: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one phrase per reason


def choose_sample_frames(preset_name: str, data_dir: Path | None) -> SampleFrames:
    """Camera frames (not ground truth) from the sample folders that suit the weights' classes."""
    chosen = SampleFrames()
    if data_dir is None:
        return chosen
    street_only = preset_name not in INDOOR_PRESETS
    indoor_only = preset_name in ("nyud", "nyud_three")
    for folder in ("kitti", "nyud"):
        images = sorted((data_dir / folder).glob("*.png"))
        if not images:
            continue
        if (folder == "nyud" and street_only) or (folder == "kitti" and indoor_only):
            scene = "indoor" if folder == "nyud" else "street"
            chosen.skipped.append(f"{folder}/ ({len(images)} {scene} image(s): the {preset_name} weights do not "
                                  f"know those classes)")
            continue
        truth = [p for p in images if "_gt" in p.stem]
        chosen.frames += [p for p in images if p not in truth]
        if truth:
            chosen.skipped.append(f"{len(truth)} ground-truth image(s) in {folder}/ (*_gt.png: labels, depth, "
                                  "normals, not camera frames)")
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="hydranet_demo", help="folder for the results (default: hydranet_demo)")
    add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
    network_options(args)  # size, device, weights name: answered before torch loads
    out = output_folder(args.output)
    pipe = pipeline_from_args(args)
    print(f"weights: {pipe.info['weights']} (preset {pipe.preset.name}: {', '.join(pipe.preset.class_names[:8])}"
          f"{' ...' if pipe.preset.num_classes > 8 else ''})")
    print(f"running: {pipe.info['backend']} {pipe.info['precision']} on {pipe.info['device']}")
    data_dir = sample_data_dir()
    chosen = choose_sample_frames(pipe.preset.name, data_dir)
    frames = chosen.frames
    if chosen.skipped:
        print(f"skipped from {data_dir}: " + "; ".join(chosen.skipped))
    if frames:
        source = media.Source(path=frames[0].parent, images=frames, is_video=False, frame_count=len(frames))
        origin = f"{len(frames)} sample frame(s) from {frames[0].parent.parent}"
    else:
        source = _synthetic_source(out / "inputs")
        why = "no sample data found" if data_dir is None else f"no sample frames for these weights in {data_dir}"
        origin = f"{source.frame_count} synthetic street frames ({why}; set ${SAMPLE_DATA_ENV})"
    count = process_source(pipe, source, out)
    print(f"{origin}: {count} processed -> {out}/ (*_preview.png shows overlay and depth)")
    return 0


def _synthetic_source(folder: Path) -> media.Source:
    from hydranet_ros.train.synthetic import SyntheticStreets

    folder.mkdir(parents=True, exist_ok=True)
    scenes = SyntheticStreets(size=(640, 192), length=3, seed=2024)
    paths = []
    for index in range(len(scenes)):
        path = folder / f"synthetic_{index:03d}.png"
        media.write_png(path, scenes[index]["image"], rgb=True)
        paths.append(path)
    return media.Source(path=folder, images=paths, is_video=False, frame_count=len(paths))
