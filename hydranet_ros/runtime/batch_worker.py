"""Several cameras, one network: the newest frame of each camera, run together in one batch.

The multi-camera sibling of frame_worker.FrameWorker. Each camera keeps ONE pending frame: a new
frame replaces an older one not yet started (counted as dropped, reason ``superseded``), so no
queue grows and no output is late by a queue's length. A single worker thread runs every pending
frame as one batch when

- every live camera has a new frame, or
- ``batch_timeout_s`` has passed since the oldest pending frame arrived,

whichever comes first (``batch_due``, a plain function). A camera is live from its first frame
until it has been silent for ``stale_after_s`` (1 s, or twice the timeout if longer): a camera that stops holds the others back by the
timeout at most, and once it counts as stopped not at all; when it comes back its frames join
the next batch. A slow camera delays the others by at most the timeout per batch; while a batch
runs, every camera's newest frame waits for the next one, which then usually finds all cameras.

The producers (one ROS subscription callback per camera, a bag reader, a test) never wait for
inference: ``camera(name)`` gives each an object with FrameWorker's ``submit``/``reject``, so
runtime/intake.offer serves both workers. Nothing here imports ROS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Mapping, Sequence, TypeVar

from hydranet_ros.runtime.frame_worker import FrameWorker, WorkerStats, WorkerThread

__all__ = ["BatchWorker", "BatchStats", "batch_due", "live_cameras"]

_log = logging.getLogger(__name__)

Item = TypeVar("Item")
Output = TypeVar("Output")

SUPERSEDED = "superseded"  # a newer frame of the same camera replaced it before a batch took it
STOPPED = "stopped"  # the worker stopped (or was not started) with the frame still waiting
# A camera silent this long no longer holds batches (or twice the batch timeout, if longer): long
# enough that a camera at a few Hz still counts, short enough that an unplugged one costs the
# others its timeout for about a second only.
STALE_AFTER_S = 1.0


def live_cameras(last_seen: Mapping[str, float], now: float, stale_after_s: float) -> set[str]:
    """The cameras that delivered a frame within the last ``stale_after_s`` seconds."""
    return {camera for camera, seen in last_seen.items() if now - seen <= stale_after_s}


def batch_due(pending_since: Mapping[str, float], live: Iterable[str], now: float, timeout_s: float) -> float | None:
    """When to run the next batch: 0.0 = now, > 0 = in that many seconds, None = nothing waits.

    ``pending_since``: camera -> when its pending frame arrived; ``live``: the cameras a batch
    waits for. Now when every live camera has a frame waiting, else at the oldest pending frame's
    arrival plus ``timeout_s``.
    """
    if not pending_since:
        return None
    if set(live) <= set(pending_since):
        return 0.0
    return max(0.0, min(pending_since.values()) + timeout_s - now)


@dataclass(frozen=True)
class BatchStats:
    """How the cameras were batched since the worker was made."""

    cameras: int = 0
    batches: int = 0
    frames: int = 0  # frames taken into batches
    timed_out: int = 0  # batches run at the deadline with a live camera missing
    largest: int = 0

    @property
    def mean_size(self) -> float:
        return self.frames / self.batches if self.batches else 0.0


class _Camera:
    """One camera's slot and counters (guarded by the worker's lock)."""

    def __init__(self, latency_window: int) -> None:
        self.pending: tuple[object, float] | None = None  # (item, arrival)
        self.last_seen: float | None = None
        self.received = self.processed = self.errors = 0
        self.dropped: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.last_error = ""
        self.in_batch = False
        self.latencies_ms: deque[float] = deque(maxlen=latency_window)


class CameraInput:
    """What one camera's producer sees: FrameWorker's producer side, for this camera only."""

    def __init__(self, worker: "BatchWorker", name: str) -> None:
        self._worker, self.name = worker, name

    def submit(self, item: object) -> bool:
        return self._worker.submit(self.name, item)

    def reject(self, reason: str) -> None:
        self._worker.reject(self.name, reason)


class BatchWorker(WorkerThread, Generic[Item, Output]):
    """Runs ``process_batch([(camera, item), ...])`` on the newest item of each camera, in one
    background thread, and ``on_result(camera, item, output)`` for each of them.

    ``process_batch`` returns one output per item, in order. When it raises for a batch of several
    frames, each frame is run again alone (_run_batch); an exception for a frame alone counts
    against that frame (as a rejection under its ``reason`` when it has a short string
    ``reason``, else as an error, reported to ``on_error(camera, item, exc)``); one from
    ``on_result`` only against its own camera. The worker thread never dies of user code.
    """

    _what = "batch worker"

    def __init__(
        self,
        *,
        cameras: Sequence[str],
        process_batch: Callable[[list[tuple[str, Item]]], Sequence[Output]],
        on_result: Callable[[str, Item, Output], None] | None = None,
        on_error: Callable[[str, Item, BaseException], None] | None = None,
        batch_timeout_s: float,
        stale_after_s: float | None = None,
        name: str = "hydranet-batch-worker",
        latency_window: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must be distinct names, at least one: {list(cameras)}")
        if not batch_timeout_s >= 0:  # also refuses NaN
            raise ValueError(f"batch_timeout_s must be >= 0, got {batch_timeout_s}")
        if stale_after_s is None:
            stale_after_s = max(STALE_AFTER_S, 2 * batch_timeout_s)
        if not stale_after_s >= batch_timeout_s:
            raise ValueError(f"stale_after_s ({stale_after_s}) must be at least batch_timeout_s ({batch_timeout_s})")
        if latency_window < 1:
            raise ValueError(f"latency_window must be >= 1, got {latency_window}")
        self.cameras = tuple(cameras)
        self._process_batch = process_batch
        self._on_result = on_result
        self._on_error = on_error
        self._timeout = float(batch_timeout_s)
        self._stale_after = float(stale_after_s)
        self._name = name
        self._clock = clock
        self._cond = threading.Condition()
        self._slots = {camera: _Camera(latency_window) for camera in self.cameras}
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._batches = self._frames = self._timed_out = self._largest = 0

    def _drop_waiting(self) -> None:
        for slot in self._slots.values():
            if slot.pending is not None:
                slot.pending = None
                slot.dropped[STOPPED] += 1

    # -- producer side (never blocks on inference) ---------------------------------------------

    def camera(self, name: str) -> CameraInput:
        if name not in self._slots:
            raise KeyError(f"unknown camera {name!r}; cameras: {', '.join(self.cameras)}")
        return CameraInput(self, name)

    def submit(self, camera: str, item: Item) -> bool:
        """Offer ``camera``'s newest frame; replaces (and counts as dropped) its older frame not
        yet taken into a batch. False when the worker is stopped or not started (dropped)."""
        now = self._clock()
        with self._cond:
            slot = self._slots[camera]
            slot.received += 1
            slot.last_seen = now
            if self._stopping or self._thread is None:
                slot.dropped[STOPPED] += 1
                return False
            if slot.pending is not None:
                slot.dropped[SUPERSEDED] += 1
            slot.pending = (item, now)
            self._cond.notify()
        return True

    def reject(self, camera: str, reason: str) -> None:
        """Count a frame of ``camera`` refused before submission (undecodable, too large, ...)."""
        with self._cond:
            slot = self._slots[camera]
            slot.received += 1
            slot.rejected[reason] += 1

    # -- observers ------------------------------------------------------------------------------

    def stats(self, camera: str) -> WorkerStats:
        """``camera``'s counters, in FrameWorker's terms (outputs/diagnostics reports them)."""
        with self._cond:
            slot = self._slots[camera]
            latencies = list(slot.latencies_ms)
            return WorkerStats(
                received=slot.received, processed=slot.processed, dropped=sum(slot.dropped.values()),
                dropped_reasons=dict(slot.dropped), rejected=dict(slot.rejected), errors=slot.errors,
                last_error=slot.last_error, pending=slot.pending is not None, busy=slot.in_batch,
                running=self._thread is not None and self._thread.is_alive() and not self._stopping,
                latency=FrameWorker._latency_stats(latencies),
            )

    def batch_stats(self) -> BatchStats:
        with self._cond:
            return BatchStats(cameras=len(self.cameras), batches=self._batches, frames=self._frames,
                              timed_out=self._timed_out, largest=self._largest)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no frame waits and no batch runs (for tests and offline tools)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._busy or any(slot.pending is not None for slot in self._slots.values()):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # -- worker thread ----------------------------------------------------------------------

    def _take_batch(self) -> tuple[list[tuple[str, Item, float]], bool] | None:
        """Wait until a batch is due (lock held by the caller's ``with``); None when stopping."""
        while True:
            if self._stopping:
                return None
            now = self._clock()
            pending = {camera: slot.pending[1] for camera, slot in self._slots.items() if slot.pending is not None}
            live = live_cameras({c: s.last_seen for c, s in self._slots.items() if s.last_seen is not None},
                                now, self._stale_after)
            wait = batch_due(pending, live, now, self._timeout)
            if wait == 0.0:
                break
            self._cond.wait(wait)  # None: until a frame arrives; else until the deadline (or a frame)
        batch = []
        for camera in self.cameras:  # the configured order: each camera in the same place of every batch
            slot = self._slots[camera]
            if slot.pending is not None:
                item, arrived = slot.pending
                batch.append((camera, item, arrived))
                slot.pending = None
                slot.in_batch = True
        return batch, not live <= set(pending)

    def _run(self) -> None:
        while True:
            with self._cond:
                taken = self._take_batch()
                if taken is None:
                    self._cond.notify_all()
                    return
                batch, timed_out = taken
                self._busy = True
                self._batches += 1
                self._frames += len(batch)
                self._timed_out += timed_out
                self._largest = max(self._largest, len(batch))
            self._run_batch(batch)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _run_batch(self, batch: list[tuple[str, Item, float]]) -> None:
        """process_batch, then on_result for each frame. A batch of several frames that fails is
        run again one frame at a time, so that one camera's bad frame (or a batch too big for the
        device's memory) costs that camera its frame and not every camera theirs."""
        try:
            outputs = list(self._process_batch([(camera, item) for camera, item, _ in batch]))
            if len(outputs) != len(batch):
                raise RuntimeError(f"process_batch returned {len(outputs)} outputs for {len(batch)} frames")
        except Exception as exc:  # noqa: BLE001 - user code must not kill the worker
            if len(batch) > 1:
                for entry in batch:
                    self._run_batch([entry])
                return
            [(camera, item, _)] = batch
            self._finish(camera, item, None, exc)
            return
        for (camera, item, arrived), output in zip(batch, outputs):
            failure = None
            try:
                if self._on_result is not None:
                    self._on_result(camera, item, output)
            except Exception as exc:  # noqa: BLE001
                failure = exc
            self._finish(camera, item, arrived, failure)

    def _finish(self, camera: str, item: Item, arrived: float | None, failure: BaseException | None) -> None:
        """Count one frame's outcome: processed (with its latency), rejected or an error."""
        reason = getattr(failure, "reason", None) if failure is not None else None
        finished = self._clock()
        with self._cond:
            slot = self._slots[camera]
            slot.in_batch = False
            if failure is None:
                slot.processed += 1
                slot.latencies_ms.append((finished - arrived) * 1000.0)
            elif isinstance(reason, str) and reason:
                slot.rejected[reason] += 1
            else:
                slot.errors += 1
                slot.last_error = f"{type(failure).__name__}: {failure}"
        if failure is not None and not (isinstance(reason, str) and reason):
            self._report_error(camera, item, failure)

    def _report_error(self, camera: str, item: Item, failure: BaseException) -> None:
        if self._on_error is None:
            _log.error("camera %s: frame processing failed: %s: %s", camera, type(failure).__name__, failure)
            return
        try:
            self._on_error(camera, item, failure)
        except Exception:  # noqa: BLE001 - an error reporter failing must not stop the worker
            _log.exception("batch worker error callback failed")
