"""Which tasks should be learned together? Train single-task and pairwise multi-task networks for
the same budget on the same data and compare each task with its single-task network.

The table follows Standley et al. ("Which Tasks Should Be Learned Together in Multi-task
Learning?", ICML 2020): row i = the task trained together with, column j = the task measured;
entry = relative change (%) of task j's metric in the network trained on {i, j} against the
network trained on j alone, signed so that positive means better. The diagonal is the single-task
reference. The "average" column says how much task i helps the others; the "average" row says how
much task j gains from a partner.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import Dataset

from hydranet_ros.train.config import ConfigError, TrainConfig
from hydranet_ros.train.data import build_dataset
from hydranet_ros.train.trainer import Trainer

LOG = logging.getLogger(__name__)

# task -> (headline metric, True when higher is better)
TASK_METRICS = {"segm": ("miou", True), "depth": ("abs_rel", False), "normals": ("normals_mean_deg", False)}


@dataclass
class AffinityReport:
    tasks: tuple[str, ...]
    steps: int
    variants: dict[str, dict[str, float]]  # variant name ("segm+depth") -> summary metrics
    table: dict[str, dict[str, float | None]]  # row task -> column task -> relative change %
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "tasks": list(self.tasks), "steps_per_variant": self.steps,
            "metrics": {t: {"name": TASK_METRICS[t][0], "higher_is_better": TASK_METRICS[t][1]} for t in self.tasks},
            "variants": {k: {m: clean(v) for m, v in d.items()} for k, d in self.variants.items()},
            "relative_change_percent": {r: {c: clean(v) for c, v in row.items()} for r, row in self.table.items()},
            "notes": self.notes,
        }


def variant_name(tasks: Sequence[str]) -> str:
    return "+".join(tasks)


def relative_change(multi: float, single: float, *, higher_is_better: bool) -> float:
    """Percent change of ``multi`` against ``single``, positive = better."""
    if not (math.isfinite(multi) and math.isfinite(single)) or single == 0:
        return math.nan
    change = (multi - single) / abs(single) * 100.0
    return change if higher_is_better else -change


def affinity_table(tasks: Sequence[str], variants: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """Rows/columns over ``tasks`` plus "average"; diagonal None (the single-task reference)."""
    table: dict[str, dict[str, float | None]] = {}
    for row in tasks:
        table[row] = {}
        for col in tasks:
            if row == col:
                table[row][col] = None
                continue
            pair = variant_name([t for t in tasks if t in (row, col)])
            metric, higher = TASK_METRICS[col]
            table[row][col] = relative_change(variants[pair][metric], variants[col][metric], higher_is_better=higher)
        off = [v for c, v in table[row].items() if c != row and v is not None and math.isfinite(v)]
        table[row]["average"] = sum(off) / len(off) if off else math.nan
    table["average"] = {}
    for col in [*tasks, "average"]:
        values = [table[r][col] for r in tasks if table[r][col] is not None and math.isfinite(table[r][col])]
        table["average"][col] = sum(values) / len(values) if values else math.nan
    return table


def format_affinity(report: AffinityReport) -> str:
    columns = [*report.tasks, "average"]
    width = max(10, *(len(c) + 2 for c in columns))
    lines = [f"relative change (%) vs the single-task network, positive = better; {report.steps} steps each",
             "rows: trained together with; columns: task measured (" +
             ", ".join(f"{t}: {TASK_METRICS[t][0]}" for t in report.tasks) + ")", ""]
    lines.append(f"{'':<12}" + "".join(f"{c:>{width}}" for c in columns))
    for row in [*report.tasks, "average"]:
        cells = []
        for col in columns:
            value = report.table[row].get(col)
            cells.append("—" if value is None else ("n/a" if not math.isfinite(value) else f"{value:+.1f}"))
        lines.append(f"{row:<12}" + "".join(f"{c:>{width}}" for c in cells))
    lines.append("")
    for name, metrics in report.variants.items():
        shown = ", ".join(f"{TASK_METRICS[t][0]} {metrics[TASK_METRICS[t][0]]:.4f}" for t in report.tasks
                          if TASK_METRICS[t][0] in metrics)
        lines.append(f"  {name:<22} {shown}")
    lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines)


def _has_normals(dataset: Dataset) -> bool:
    return len(dataset) > 0 and dataset[0].get("normals") is not None


def run_affinity(*, config: TrainConfig, tasks: Sequence[str], steps: int, out_dir: str | Path,
                 train_dataset: Dataset | None = None, val_dataset: Dataset | None = None,
                 progress: bool = True) -> AffinityReport:
    """Train every single task and every pair of ``tasks`` for ``steps`` steps each (same seed,
    same data, same schedule shape) and build the relative-performance table."""
    tasks = tuple(dict.fromkeys(tasks))
    if len(tasks) < 2 or any(t not in TASK_METRICS for t in tasks):
        raise ConfigError(f"affinity needs at least two of {list(TASK_METRICS)}, got {list(tasks)}")
    train_dataset = train_dataset if train_dataset is not None else build_dataset(config.data.train)
    if val_dataset is None:
        if config.data.val is None:
            raise ConfigError("affinity needs a validation set (data.val in the config)")
        val_dataset = build_dataset(config.data.val)
    notes = []
    if "normals" in tasks and not (_has_normals(train_dataset) and _has_normals(val_dataset)):
        tasks = tuple(t for t in tasks if t != "normals")
        notes.append("the data has no surface normals: normals left out of the study")
        LOG.warning(notes[-1])
        if len(tasks) < 2:
            raise ConfigError("fewer than two tasks left once normals are dropped")
    out_dir = Path(out_dir)
    task_sets = [(t,) for t in tasks] + list(itertools.combinations(tasks, 2))
    variants: dict[str, dict[str, float]] = {}
    for task_set in task_sets:
        name = variant_name(task_set)
        variant = copy.deepcopy(config)
        variant.tasks = list(task_set)
        variant.name = f"{config.name}-{name}"
        variant.out_dir = str(out_dir / name)
        variant.schedule.steps = steps
        variant.schedule.warmup_steps = min(config.schedule.warmup_steps, max(steps // 10, 0))
        variant.eval_every = 0
        variant.checkpoint_every = max(steps // 4, 1)
        variant.validate()
        LOG.info("affinity: training %s for %d steps", name, steps)
        trainer = Trainer(config=variant, train_dataset=train_dataset, val_dataset=val_dataset, progress=progress)
        summary = trainer.run(resume=True)  # an interrupted study picks up where it stopped
        variants[name] = summary.evaluation.summary() if summary.evaluation else {}
    report = AffinityReport(tasks=tasks, steps=steps, variants=variants, table=affinity_table(tasks, variants),
                            notes=notes)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "affinity.json").write_text(json.dumps(report.to_json(), indent=2))
    (out_dir / "affinity.txt").write_text(format_affinity(report) + "\n")
    return report
