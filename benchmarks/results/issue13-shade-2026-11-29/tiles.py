# Extent hypothesis: the same pixels labelled as 384x128 tiles vs inside the whole 1226x370 frame.
#   python benchmarks/results/issue13-shade-2026-11-29/tiles.py WEIGHTS   (from the repository root)
import sys
from pathlib import Path
import numpy as np
REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO)); sys.path.insert(0, str(REPO / "tools"))
import real_frame_check as rfc
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
from hydranet_ros.train.synthetic import SyntheticStreets
W = sys.argv[1]
whole = Pipeline.create(PipelineConfig(weights=W, backend="torch", device="cpu", input_size=(1226, 370), output_size="input"))
tile = Pipeline.create(PipelineConfig(weights=W, backend="torch", device="cpu", input_size=(384, 128), output_size="input"))
def road_iou(p, g):
    k = g != 255; a = (p == 2) & k; b = (g == 2) & k
    return (a & b).sum() / max((a | b).sum(), 1)
def tiles_pred(img, focal):
    out = np.zeros(img.shape[:2], np.uint8)
    for y in range(0, 370 - 128 + 1, 121):
        for x in range(0, 1226 - 384 + 1, 280):
            out[y:y+128, x:x+384] = tile.process(np.ascontiguousarray(img[y:y+128, x:x+384]), focal_px=focal).labels
    return out
st = SyntheticStreets(size=(1226, 370), length=3, seed=1000003)
for i in range(3):
    f = st[i]; fo = float(f["camera_k"][1, 1])
    w = whole.process(f["image"], focal_px=fo).labels; t = tiles_pred(f["image"], fo)
    print(f"synthetic {i}: road IoU whole {road_iou(w, f['labels']):.3f}  tiles {road_iou(t, f['labels']):.3f}")
img, gt, _, _ = rfc.judged_frame(rfc.DEFAULT_FRAME)
w = whole.process(img).labels; t = tiles_pred(img, None)
print(f"real: road IoU whole {road_iou(w, gt):.3f}  tiles {road_iou(t, gt):.3f}")
