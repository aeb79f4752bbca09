"""Newest-frame-wins inference worker.

A camera delivers frames at its own rate; inference may be slower. Queueing the surplus would
make every output late by the length of the queue, so a perception node keeps ONE pending frame:
a new frame replaces an unprocessed older one (which is counted as dropped), and a single worker
thread processes whatever is newest when it becomes free. The producer (a ROS subscription
callback, a bag reader, a soak test) never waits for inference.

Nothing here imports ROS: the node, the offline tools and the soak test share it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

__all__ = ["FrameWorker", "LatencyStats", "WorkerStats", "WorkerThread"]

_log = logging.getLogger(__name__)

Item = TypeVar("Item")
Output = TypeVar("Output")


@dataclass(frozen=True)
class LatencyStats:
    """Latency from submit() to the end of the result callback, over the last frames (ms)."""

    count: int = 0
    mean_ms: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    max_ms: float = 0.0
    last_ms: float = 0.0


@dataclass(frozen=True)
class WorkerStats:
    """Counters since the worker was made.

    Every frame offered (submit() or reject()) ends in exactly one of processed, dropped,
    rejected or errors, or is still pending/in progress; so once the worker is idle or stopped
    ``received == processed + dropped + sum(rejected.values()) + errors``.
    """

    received: int = 0
    processed: int = 0
    dropped: int = 0
    # Why frames were dropped: 'superseded' (a newer frame of the camera replaced it before it was
    # started), 'stopped' (the worker stopped, or was not running, with it waiting).
    dropped_reasons: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    last_error: str = ""
    pending: bool = False
    busy: bool = False
    running: bool = False
    latency: LatencyStats = field(default_factory=LatencyStats)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def _percentile(sorted_values: list[float], fraction: float) -> float:
    # Nearest-rank percentile: exact on small windows, no interpolation surprises.
    index = min(len(sorted_values) - 1, max(0, int(round(fraction * (len(sorted_values) - 1)))))
    return sorted_values[index]


class WorkerThread:
    """The life cycle FrameWorker and BatchWorker share: one daemon thread running ``_run``,
    started once; ``stop`` drops what waits (``_drop_waiting``, under the lock, counted as
    dropped), lets the work in progress finish and joins the thread."""

    _what = "worker"  # for the error of a second start
    _name: str
    _cond: threading.Condition
    _stopping: bool
    _thread: threading.Thread | None

    def _run(self) -> None:
        raise NotImplementedError

    def _drop_waiting(self) -> None:
        raise NotImplementedError

    def start(self):
        """Start the worker thread (once). Returns self so it can be chained."""
        with self._cond:
            if self._thread is not None:
                raise RuntimeError(f"{self._what} already started")
            self._stopping = False
            # Daemon: a hung inference (a wedged GPU driver) must not keep the process alive
            # after the node has shut down; stop() still joins it in the normal case.
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Stop taking frames, let the work in progress finish, join the thread.

        Frames waiting, never started, are counted as dropped (reason ``stopped``). Returns False
        only when the thread did not end within ``timeout`` seconds (it is left behind as a daemon).
        """
        with self._cond:
            self._stopping = True
            self._drop_waiting()
            self._cond.notify_all()
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class FrameWorker(WorkerThread, Generic[Item, Output]):
    """Runs ``process(item)`` on the newest submitted item in one background thread.

    ``on_result(item, output)`` is called in the worker thread after each successful
    ``process``. An exception from ``process`` (or ``on_result``) is counted: as a rejection
    under its ``reason`` when it carries a short string ``reason`` attribute (the project's
    convention for bad input), otherwise as an error, reported to ``on_error`` if given. The
    worker thread never dies of an exception in user code.
    """

    _what = "frame worker"

    def __init__(
        self,
        *,
        process: Callable[[Item], Output],
        on_result: Callable[[Item, Output], None] | None = None,
        on_error: Callable[[Item, BaseException], None] | None = None,
        name: str = "hydranet-frame-worker",
        latency_window: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if latency_window < 1:
            raise ValueError(f"latency_window must be >= 1, got {latency_window}")
        self._process = process
        self._on_result = on_result
        self._on_error = on_error
        self._name = name
        self._clock = clock
        self._cond = threading.Condition()
        # The single pending slot: (item, submit time) or None. This is the only buffer.
        self._pending: tuple[Item, float] | None = None
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._received = 0
        self._processed = 0
        self._dropped: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._errors = 0
        self._last_error = ""
        self._latencies_ms: deque[float] = deque(maxlen=latency_window)

    def _drop_waiting(self) -> None:
        if self._pending is not None:
            self._pending = None
            self._dropped["stopped"] += 1

    # -- producer side (never blocks on inference) ---------------------------------------------

    def submit(self, item: Item) -> bool:
        """Offer a frame. Replaces (and counts as dropped) an older frame not yet started.

        Returns False when the worker is stopped or not started: the frame is counted as
        dropped, since nothing will ever process it.
        """
        now = self._clock()
        with self._cond:
            self._received += 1
            if self._stopping or self._thread is None:
                self._dropped["stopped"] += 1
                return False
            if self._pending is not None:
                self._dropped["superseded"] += 1
            self._pending = (item, now)
            self._cond.notify()
        return True

    def reject(self, reason: str) -> None:
        """Count a frame refused before submission (undecodable message, too large, ...)."""
        with self._cond:
            self._received += 1
            self._rejected[reason] += 1

    # -- observers ------------------------------------------------------------------------------

    def stats(self) -> WorkerStats:
        with self._cond:
            latencies = list(self._latencies_ms)
            stats = WorkerStats(
                received=self._received,
                processed=self._processed,
                dropped=sum(self._dropped.values()),
                dropped_reasons=dict(self._dropped),
                rejected=dict(self._rejected),
                errors=self._errors,
                last_error=self._last_error,
                pending=self._pending is not None,
                busy=self._busy,
                running=self._thread is not None and self._thread.is_alive() and not self._stopping,
                latency=self._latency_stats(latencies),
            )
        return stats

    @staticmethod
    def _latency_stats(latencies: list[float]) -> LatencyStats:
        if not latencies:
            return LatencyStats()
        ordered = sorted(latencies)
        return LatencyStats(
            count=len(latencies),
            mean_ms=sum(latencies) / len(latencies),
            p50_ms=_percentile(ordered, 0.50),
            p95_ms=_percentile(ordered, 0.95),
            max_ms=ordered[-1],
            last_ms=latencies[-1],
        )

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or in progress (for tests and offline tools)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # -- worker thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    self._cond.notify_all()
                    return
                item, submitted_at = self._pending  # type: ignore[misc]
                self._pending = None
                self._busy = True
            outcome_reason: str | None = None
            failure: BaseException | None = None
            try:
                output = self._process(item)
                if self._on_result is not None:
                    self._on_result(item, output)
            except Exception as exc:  # noqa: BLE001 - user code must not kill the worker
                reason = getattr(exc, "reason", None)
                if isinstance(reason, str) and reason:
                    outcome_reason = reason
                else:
                    failure = exc
            finished_at = self._clock()
            with self._cond:
                self._busy = False
                if outcome_reason is not None:
                    self._rejected[outcome_reason] += 1
                elif failure is not None:
                    self._errors += 1
                    self._last_error = f"{type(failure).__name__}: {failure}"
                else:
                    self._processed += 1
                    self._latencies_ms.append((finished_at - submitted_at) * 1000.0)
                self._cond.notify_all()
            if failure is not None:
                self._report_error(item, failure)

    def _report_error(self, item: Item, failure: BaseException) -> None:
        if self._on_error is None:
            _log.error("frame processing failed: %s: %s", type(failure).__name__, failure)
            return
        try:
            self._on_error(item, failure)
        except Exception:  # noqa: BLE001 - an error reporter failing must not stop the worker
            _log.exception("frame worker error callback failed")
