"""Every candidate judged under issue 13's held-out-depth rule (since 2026-11-29), side by side,
from the JSONs in the results folders (nothing is measured again):

    python benchmarks/results/issue13-fromv-2026-11-30/all_candidates.py

held-out: abs rel on today's 200 held-out frames (heldout_two.py); then the 24 real-frame views
(real_frame_check.py --mirror, torch backend): mean mIoU, mean road IoU, views meeting all three
targets, and how many of the four launch sizes (frame view) meet them: issue 13's item 3.
"""
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1]
LAUNCH_SIZES = ("320x96", "640x192", "1226x370", "640x480")
# name: (folder, held-out JSON, key in it, 24-view JSON)
CANDIDATES = {
    "shipped": ("issue13-fromv-2026-11-30", "heldout.json", "default", "../issue13-sweep-2026-11-29/shipped_fp16_24views.json"),
    "H": ("issue13-depth-2026-11-29", "heldout.json", "runs/depth_1129/model.safetensors", "run_h_24views.json"),
    "S (shipped+H)": ("issue13-depth-2026-11-29", "heldout.json", "runs/soup_h/model.safetensors", "run_s_24views.json"),
    "M": ("issue13-kittishare-2026-11-30", "heldout.json", "runs/kittishare_1130/model.safetensors", "run_kittishare_1130_24views.json"),
    "S (shipped+M)": ("issue13-kittishare-2026-11-30", "heldout.json", "runs/soup_m/model.safetensors", "run_soup_m_24views.json"),
    "N": ("issue13-kittishare-2026-11-30", "heldout_n.json", "runs/kittishare2_1130/model.safetensors", "run_kittishare2_1130_24views.json"),
    "T (S+N)": ("issue13-kittishare-2026-11-30", "heldout_n.json", "runs/soup_n/model.safetensors", "run_soup_n_24views.json"),
    "A (M+N)": ("issue13-both-2026-11-30", "heldout.json", "runs/soup_a/model.safetensors", "run_soup_a_24views.json"),
    "P": ("issue13-both-2026-11-30", "heldout.json", "runs/both_1130/model.safetensors", "run_both_1130_24views.json"),
    "Q (M+P)": ("issue13-both-2026-11-30", "heldout.json", "runs/soup_q/model.safetensors", "run_soup_q_24views.json"),
    "U (R+N)": ("issue13-both-2026-11-30", "heldout_uv.json", "runs/soup_u/model.safetensors", "run_soup_u_24views.json"),
    "V (R+P)": ("issue13-both-2026-11-30", "heldout_uv.json", "runs/soup_v/model.safetensors", "run_soup_v_24views.json"),
    "W": ("issue13-fromv-2026-11-30", "heldout.json", "runs/fromv_1130/model.safetensors", "run_fromv_1130_24views.json"),
    "X (V+W)": ("issue13-fromv-2026-11-30", "heldout.json", "runs/soup_x/model.safetensors", "run_soup_x_24views.json"),
    "Y": ("issue13-fromv-2026-11-30", "heldout_yz.json", "runs/wide_1130/model.safetensors", "run_wide_1130_24views.json"),
    "Z (W+Y)": ("issue13-fromv-2026-11-30", "heldout_yz.json", "runs/soup_z/model.safetensors", "run_soup_z_24views.json"),
}

print("| candidate | folder | held-out abs rel | mean mIoU | mean road IoU | views meeting all | launch sizes met |")
print("|---|---|---|---|---|---|---|")
for name, (folder, heldout, key, views) in CANDIDATES.items():
    abs_rel = json.loads((RESULTS / folder / heldout).read_text())[key]["today"]["abs_rel"]
    real = json.loads((RESULTS / folder / views).read_text())
    frame = {row["size"]: row for row in real["sizes"] if row["view"] == "frame"}
    met = sum(frame[size]["ok"] for size in LAUNCH_SIZES)
    print(f"| {name} | `{folder[8:]}` | {abs_rel:.3f} | {real['means']['miou']:.3f} | {real['means']['road_iou']:.3f} "
          f"| {real['views_meeting_all_targets']} of 24 | {met} of 4 |")
