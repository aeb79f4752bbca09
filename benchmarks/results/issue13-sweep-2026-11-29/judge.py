"""The rule of this folder's README, applied to two real_frame_check --mirror JSON files.

    python benchmarks/results/issue13-sweep-2026-11-29/judge.py SHIPPED.json CANDIDATE.json \
        --heldout SHIPPED_ABS_REL CANDIDATE_MIOU CANDIDATE_ABS_REL

Prints each clause with its figures and PASS/FAIL, and the verdict; exit 0 only if every clause passes.
"""
import argparse
import json

LAUNCH_SIZES = ("320x96", "640x192", "1226x370", "640x480")

parser = argparse.ArgumentParser()
parser.add_argument("shipped")
parser.add_argument("candidate")
parser.add_argument("--heldout", nargs=3, type=float, required=True, metavar=("SHIPPED_ABS_REL", "MIOU", "ABS_REL"))
args = parser.parse_args()
shipped, candidate = (json.load(open(path)) for path in (args.shipped, args.candidate))
views = lambda report: {(row["size"], row["view"]): row for row in report["sizes"]}  # noqa: E731
c, x = views(shipped), views(candidate)
assert set(c) == set(x) and len(c) == 24, "both files must hold the same 24 views"

clauses = []
mc, mx = shipped["means"], candidate["means"]
clauses.append(("1 mean mIoU >= shipped + 0.010", f"{mx['miou']:.3f} vs {mc['miou'] + 0.010:.3f}", mx["miou"] >= mc["miou"] + 0.010))
clauses.append(("1 mean road IoU >= shipped", f"{mx['road_iou']:.3f} vs {mc['road_iou']:.3f}", mx["road_iou"] >= mc["road_iou"]))
nc, nx = shipped["views_meeting_all_targets"], candidate["views_meeting_all_targets"]
clauses.append(("2 views meeting every target >= shipped + 2", f"{nx} vs {nc + 2}", nx >= nc + 2))
worst = min((x[v][k] - c[v][k], v, k) for v in c for k in ("miou", "road_iou"))
clauses.append(("3 no view below shipped by more than 0.08", f"worst {worst[0]:+.3f} ({' '.join(worst[1])}, {worst[2]})", worst[0] >= -0.08))
depth = "road_depth_median_rel_error"
clauses.append(("4 mean road depth error <= shipped + 0.01", f"{mx[depth]:.3f} vs {mc[depth] + 0.01:.3f}", mx[depth] <= mc[depth] + 0.01))
launch = [x[(size, "frame")][depth] for size in LAUNCH_SIZES]
clauses.append(("4 road depth error <= 0.15 at the launch sizes", " ".join(f"{v:.3f}" for v in launch), max(launch) <= 0.15))
shipped_abs_rel, miou, abs_rel = args.heldout
clauses.append(("5 held-out mIoU >= 0.90", f"{miou:.3f}", miou >= 0.90))
clauses.append(("5 held-out abs rel <= shipped + 0.005", f"{abs_rel:.3f} vs {shipped_abs_rel + 0.005:.3f}", abs_rel <= shipped_abs_rel + 0.005))
for name, figures, ok in clauses:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {figures}")
launch_ok = all(x[(size, "frame")]["ok"] for size in LAUNCH_SIZES)
print(f"issue 13's targets at the four launch sizes on the frame: {'all met' if launch_ok else 'NOT all met'}")
passed = all(ok for _, _, ok in clauses)
print(f"verdict: {'SHIP' if passed else 'do not ship'} ({candidate['weights']})")
raise SystemExit(0 if passed else 1)
