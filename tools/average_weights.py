"""The element-wise mean of several weights files fine-tuned from the same start ("model soup").

    python tools/average_weights.py A.safetensors B.safetensors [...] -o SOUP.safetensors

Runs fine-tuned from the same weights with the same recipe and different frames stay close
enough in weight space that their average is a working network, often better than each on data
none was tuned for (Wortsman et al., "Model soups", ICML 2022). Every floating tensor is averaged
in float32, batch-norm statistics included; counters are taken from the first file. The files
must agree on everything inference reads from the metadata (preset, training size, training
focal length): a mean of depth heads trained for different cameras means nothing. The output is
written atomically and never over one of the inputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydranet_ros.errors import HydraNetError  # noqa: E402
from hydranet_ros.model.checkpoints import LoadedWeights, load_safetensors, preset_metadata, save_safetensors  # noqa: E402

_OWN_FIELDS = ("format", "weights_sha256")


def average(paths: list[Path], out: Path) -> str:
    """Write the mean of ``paths`` to ``out``; returns its weights hash. ValueError says why not."""
    if len(paths) < 2:
        raise ValueError("give at least two weights files to average")
    if out.resolve() in {p.resolve() for p in paths}:
        raise ValueError(f"{out}: is one of the inputs; inputs are never overwritten")
    loaded = [load_safetensors(p) for p in paths]
    first = loaded[0]
    inherited = {k: v for k, v in first.metadata.items() if k not in _OWN_FIELDS}
    read_at_inference = set(preset_metadata(first.preset)) | {"input_size"}
    for other in loaded[1:]:
        theirs = {k: v for k, v in other.metadata.items() if k not in _OWN_FIELDS}
        differing = sorted(k for k in read_at_inference if inherited.get(k) != theirs.get(k))
        if not _same_focal(inherited.get("focal_px"), theirs.get("focal_px")):
            differing.append("focal_px")
        if differing:
            raise ValueError(f"{other.source}: differs from {first.source} in {', '.join(differing)}; "
                             "only weights for the same preset, size and camera can be averaged")
    state = {}
    for key, tensor in first.state_dict.items():
        if tensor.is_floating_point():
            mean = torch.stack([w.state_dict[key].float() for w in loaded]).mean(0)
            state[key] = mean.to(tensor.dtype)
        else:
            state[key] = tensor
    # Nothing here knows whether the runs started from the same weights; a mean of unrelated
    # networks is usually broken, so the result must at least give finite outputs on the check frame.
    # build_model loads the state as inference does and runs check_outputs.
    LoadedWeights(preset=first.preset, state_dict=state, sha256="", source=f"the mean of {', '.join(str(p) for p in paths)}").build_model()
    extra = {k: v for k, v in inherited.items() if k not in preset_metadata(first.preset)}  # the preset: save_safetensors writes it
    extra["averaged_from"] = ",".join(w.sha256 for w in loaded)
    return save_safetensors(out, state, first.preset, extra=extra)


def _same_focal(a: str | None, b: str | None) -> bool:
    """The training focal length, compared as a number ("223.0824" and "223.08240" agree)."""
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= 1e-6 * max(abs(float(a)), 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        digest = average(args.weights, args.out)
    except (ValueError, OSError, HydraNetError) as exc:  # a bad file: WeightsError names it and the problem
        print(f"average_weights: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: the mean of {len(args.weights)} files, weights sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
