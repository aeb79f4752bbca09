"""The rule of this folder's README, applied to one candidate.

    python benchmarks/results/issue13-depth-2026-11-29/judge.py SHIPPED_24VIEWS.json CANDIDATE_24VIEWS.json \
        HELDOUT.json SHIPPED_KEY CANDIDATE_KEY

The 24-view files are tools/real_frame_check.py --mirror JSONs; HELDOUT.json is heldout_two.py's,
holding both weights under the keys given. Prints each clause with its figures and PASS/FAIL and
the verdict; exit 0 only if every clause passes.
"""
import argparse
import json

LAUNCH_SIZES = ("320x96", "640x192", "1226x370", "640x480")

parser = argparse.ArgumentParser()
parser.add_argument("shipped")
parser.add_argument("candidate")
parser.add_argument("heldout")
parser.add_argument("shipped_key")
parser.add_argument("candidate_key")
args = parser.parse_args()
shipped, candidate, heldout = (json.load(open(path)) for path in (args.shipped, args.candidate, args.heldout))
hs, hc = heldout[args.shipped_key], heldout[args.candidate_key]
views = lambda report: {(row["size"], row["view"]): row for row in report["sizes"]}  # noqa: E731
s, c = views(shipped), views(candidate)
assert set(s) == set(c) and len(s) == 24, "both files must hold the same 24 views"

clauses = []
today, filed = (hc["today"], hs["today"]), (hc["issue_filed"], hs["issue_filed"])
clauses.append(("1 held-out today: abs rel <= shipped - 0.005", f"{today[0]['abs_rel']:.4f} vs {today[1]['abs_rel'] - 0.005:.4f}",
                today[0]["abs_rel"] <= today[1]["abs_rel"] - 0.005))
clauses.append(("1 held-out today: mIoU >= 0.90", f"{today[0]['miou']:.3f}", today[0]["miou"] >= 0.90))
clauses.append(("2 held-out issue filed: abs rel <= shipped", f"{filed[0]['abs_rel']:.4f} vs {filed[1]['abs_rel']:.4f}",
                filed[0]["abs_rel"] <= filed[1]["abs_rel"]))
clauses.append(("2 held-out issue filed: mIoU >= 0.90", f"{filed[0]['miou']:.3f}", filed[0]["miou"] >= 0.90))
launch = [c[(size, "frame")] for size in LAUNCH_SIZES]
clauses.append(("3 all targets met at the four launch sizes (frame)",
                " ".join(f"{row['miou']:.3f}/{row['road_iou']:.3f}/{row['road_depth_median_rel_error']:.3f}" for row in launch),
                all(row["ok"] for row in launch)))
ms, mc = shipped["means"], candidate["means"]
for key, name in (("miou", "mIoU"), ("road_iou", "road IoU")):
    clauses.append((f"4 mean {name} >= shipped - 0.010", f"{mc[key]:.3f} vs {ms[key] - 0.010:.3f}", mc[key] >= ms[key] - 0.010))
ns, nc = shipped["views_meeting_all_targets"], candidate["views_meeting_all_targets"]
clauses.append(("4 views meeting every target >= shipped - 2", f"{nc} vs {ns - 2}", nc >= ns - 2))
worst = min((c[v][k] - s[v][k], v, k) for v in s for k in ("miou", "road_iou"))
clauses.append(("4 no view below shipped by more than 0.08", f"worst {worst[0]:+.3f} ({' '.join(worst[1])}, {worst[2]})", worst[0] >= -0.08))
depth = "road_depth_median_rel_error"
clauses.append(("4 mean road depth error <= shipped + 0.01", f"{mc[depth]:.3f} vs {ms[depth] + 0.01:.3f}", mc[depth] <= ms[depth] + 0.01))
for name, figures, ok in clauses:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {figures}")
passed = all(ok for _, _, ok in clauses)
print(f"verdict: {'passes' if passed else 'fails'} ({candidate['weights']}); "
      f"issue 13's abs rel <= 0.10 {'reached' if today[0]['abs_rel'] <= 0.10 else 'not reached'} ({today[0]['abs_rel']:.3f})")
raise SystemExit(0 if passed else 1)
