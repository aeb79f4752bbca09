"""Another source tree's Pipeline in a process of its own, run one frame at a time on request:
bench_pipeline.py --before TREE times the code before a change in turn with the code after it,
frame by frame, in one run (a drift of the machine falls on both alike).

Started by bench_pipeline.py as `python benchmarks/tree_worker.py` with PYTHONPATH=TREE, so that
`hydranet_ros` is TREE's. Reads one JSON command per line on stdin, answers one JSON line:
  {"op": "setup", "size": [w, h], "threads": n, "image": path}  -> {"module": <hydranet_ros file>}
  {"op": "run"}                                                  -> {"ms": <Pipeline.process time>}
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    import cv2
    import numpy as np
    import torch

    import hydranet_ros
    from hydranet_ros.model.checkpoints import load_weights
    from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig

    pipe = frame = None
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "setup":
            torch.set_num_threads(int(command["threads"]))
            size = tuple(command["size"])
            weights = load_weights("default")
            pipe = Pipeline.from_model(weights.build_model(), weights.preset, PipelineConfig(device="cpu", input_size=size))
            image = cv2.imread(command["image"])[..., ::-1] if command.get("image") else \
                np.random.default_rng(0).integers(0, 255, (370, 1226, 3), np.uint8)
            frame = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
            answer = {"module": hydranet_ros.__file__, "weights": weights.source}
        elif command["op"] == "run":
            start = time.perf_counter()
            pipe.process(frame)
            answer = {"ms": (time.perf_counter() - start) * 1e3}
        else:
            answer = {"error": f"unknown op {command['op']!r}"}
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
