"""`hydranet demo`: the pipeline on real sample frames with the best weights available."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hydranet_ros.commands.common import add_pipeline_arguments, pipeline_from_args
from hydranet_ros.commands.infer import process_source
from hydranet_ros.io import media

SAMPLE_DATA_ENV = "HYDRANET_SAMPLE_DATA"


def sample_data_dir() -> Path | None:
    """$HYDRANET_SAMPLE_DATA, else the nearest shared/data folder above a source checkout."""
    if explicit := os.environ.get(SAMPLE_DATA_ENV):
        return Path(explicit)
    checkout = Path(__file__).resolve().parents[2]
    return next((p / "shared" / "data" for p in checkout.parents if (p / "shared" / "data").is_dir()), None)


def sample_frames(preset_name: str, data_dir: Path | None) -> list[Path]:
    """Camera frames (not ground truth) from the sample folders that suit the weights' classes."""
    if data_dir is None:
        return []
    folders = ["nyud"] if preset_name.startswith("nyud") and preset_name != "nyud_kitti" else ["kitti", "nyud"]
    if preset_name not in ("nyud", "nyud_three", "nyud_kitti"):
        folders = ["kitti"]  # street-scene weights: indoor frames would only mislead
    frames = []
    for folder in folders:
        frames += sorted(p for p in (data_dir / folder).glob("*.png") if "_gt" not in p.stem)
    return frames


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="hydranet_demo", help="folder for the results (default: hydranet_demo)")
    add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
    pipe = pipeline_from_args(args)
    print(f"weights: {pipe.info['weights']} (preset {pipe.preset.name}: {', '.join(pipe.preset.class_names[:8])}"
          f"{' ...' if pipe.preset.num_classes > 8 else ''})")
    print(f"running: {pipe.info['backend']} {pipe.info['precision']} on {pipe.info['device']}")
    frames = sample_frames(pipe.preset.name, sample_data_dir())
    out = Path(args.output)
    if frames:
        source = media.Source(path=frames[0].parent, images=frames, is_video=False, frame_count=len(frames))
        origin = f"{len(frames)} sample frame(s) from {frames[0].parent.parent}"
    else:
        source = _synthetic_source(out / "inputs")
        origin = f"{source.frame_count} synthetic street frames (no sample data found; set ${SAMPLE_DATA_ENV})"
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
