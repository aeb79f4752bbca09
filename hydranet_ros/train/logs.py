"""Training logs: append-only CSV files and a PNG of the curves drawn with OpenCV.

No plotting library: cv2 and numpy are already dependencies, and a loss curve needs only lines,
axes and a legend.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from hydranet_ros.io import staging

# BGR colours for up to eight series, readable on white.
SERIES_COLOURS = ((200, 80, 20), (30, 30, 210), (40, 150, 40), (150, 40, 150), (20, 160, 200),
                  (90, 90, 90), (200, 160, 0), (0, 100, 180))


class CsvLog:
    """Rows of numbers keyed by column name; the header is fixed by the first row written.

    ``truncate_after(step)`` drops rows logged after the checkpoint a run resumes from, so a
    resumed run's log has each step once.
    """

    def __init__(self, *, path: str | Path) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.is_file():
            with self.path.open(newline="") as handle:
                self.columns = next(csv.reader(handle), None)

    def truncate_after(self, step: int) -> None:
        """Keep the rows up to ``step`` (a row cut short by a killed run has no step and goes too)."""
        if not self.path.is_file():
            return
        rows = self.read()
        kept = [r for r in rows if r.get("step", 0) <= step]
        text = io.StringIO(newline="")
        if self.columns:
            writer = csv.DictWriter(text, fieldnames=self.columns)
            writer.writeheader()
            for row in kept:
                writer.writerow({k: _fmt(row.get(k)) for k in self.columns})
        staging.write_atomic(self.path, text.getvalue().encode())

    def append(self, row: Mapping[str, float | int | None]) -> None:
        if self.columns is None:
            self.columns = list(row)
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow([_fmt(row.get(k)) for k in self.columns])

    def read(self) -> list[dict[str, float]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as handle:
            return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _fmt(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"


def _parse(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def draw_curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    title: str = "",
    size: tuple[int, int] = (900, 500),
    log_y: bool = True,
) -> Path:
    """Draw named (x, y) series into one chart and write it as PNG. Non-finite points are skipped;
    with ``log_y`` a series with non-positive values is drawn on a linear axis instead."""
    width, height = size
    left, right, top, bottom = 70, 20, 40, 45
    image = np.full((height, width, 3), 255, np.uint8)
    clean = {}
    for name, (xs, ys) in series.items():
        x = np.asarray(xs, np.float64)
        y = np.asarray(ys, np.float64)
        keep = np.isfinite(x) & np.isfinite(y)
        if keep.any():
            clean[name] = (x[keep], y[keep])
    all_y = np.concatenate([y for _, y in clean.values()]) if clean else np.array([1.0])
    use_log = log_y and bool((all_y > 0).all())
    transform = np.log10 if use_log else (lambda v: v)
    all_x = np.concatenate([x for x, _ in clean.values()]) if clean else np.array([0.0, 1.0])
    x_lo, x_hi = float(all_x.min()), float(all_x.max())
    y_lo, y_hi = float(transform(all_y).min()), float(transform(all_y).max())
    if x_hi <= x_lo:
        x_hi = x_lo + 1.0
    if y_hi <= y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    pad = 0.05 * (y_hi - y_lo)
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + (x - x_lo) / (x_hi - x_lo) * (width - left - right)
        py = height - bottom - (transform(y) - y_lo) / (y_hi - y_lo) * (height - top - bottom)
        return np.stack([px, py], axis=1).round().astype(np.int32)

    axis_colour, font = (0, 0, 0), cv2.FONT_HERSHEY_SIMPLEX
    cv2.rectangle(image, (left, top), (width - right, height - bottom), axis_colour, 1)
    for i in range(5):
        frac = i / 4
        yv = y_lo + frac * (y_hi - y_lo)
        py = int(round(height - bottom - frac * (height - top - bottom)))
        label = f"{10 ** yv:.3g}" if use_log else f"{yv:.3g}"
        cv2.line(image, (left - 4, py), (left, py), axis_colour, 1)
        cv2.putText(image, label, (4, py + 4), font, 0.4, axis_colour, 1, cv2.LINE_AA)
        xv = x_lo + frac * (x_hi - x_lo)
        px = int(round(left + frac * (width - left - right)))
        cv2.line(image, (px, height - bottom), (px, height - bottom + 4), axis_colour, 1)
        cv2.putText(image, f"{xv:.0f}", (px - 15, height - bottom + 18), font, 0.4, axis_colour, 1, cv2.LINE_AA)
    cv2.putText(image, "step", (width // 2 - 15, height - 8), font, 0.45, axis_colour, 1, cv2.LINE_AA)
    heading = title + ("  (log scale)" if use_log else "")
    cv2.putText(image, heading, (left, 25), font, 0.55, axis_colour, 1, cv2.LINE_AA)
    for index, (name, (x, y)) in enumerate(clean.items()):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        points = to_px(x, y)
        if len(points) > 1:
            cv2.polylines(image, [points.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
        else:
            cv2.circle(image, tuple(int(v) for v in points[0]), 3, colour, -1)
        legend_y = top + 18 + 18 * index
        cv2.line(image, (width - right - 150, legend_y - 4), (width - right - 125, legend_y - 4), colour, 2)
        cv2.putText(image, name, (width - right - 120, legend_y), font, 0.45, colour, 1, cv2.LINE_AA)
    return staging.write_image(path, image)
