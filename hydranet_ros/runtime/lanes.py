"""Lane threads: a CPU engine's lanes (engines/base.Engine.lanes) each run whole frames at once.

Daemon threads, not a concurrent.futures.ThreadPoolExecutor: Python joins an executor's threads at
exit, after they have run every frame still queued, so a forward that hangs, or a batch in
flight, would keep a stopping node or a Ctrl-C'd bag replay alive. The node's FrameWorker is a
daemon thread for the same reason. Closing (``close``, the object dropped, or the interpreter
exiting) still waits up to JOIN_TIMEOUT_S for the threads to end: a lane thread left running into
the interpreter's teardown holds its engine's per-thread objects (OpenVINO infer requests), and
destroying those that late aborted the process ("terminate called without an active exception").
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from concurrent.futures import Future, wait
from typing import Any, Callable, Sequence

_STOP = None
JOIN_TIMEOUT_S = 10.0  # a forward at 1920x1080 on one slow core takes a few seconds
_SKIPPED = object()


class Lanes:
    """``count`` daemon threads that run submitted calls, any lane taking the next one."""

    def __init__(self, count: int, *, name: str = "hydranet-lane") -> None:
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._jobs = jobs
        # The threads hold the queue, not this object: dropping the object ends the threads.
        threads = [threading.Thread(target=_serve, args=(jobs,), name=f"{name}-{index}", daemon=True)
                   for index in range(count)]
        for thread in threads:
            thread.start()
        self._close = weakref.finalize(self, _stop, jobs, threads)  # also runs at interpreter exit

    def run_all(self, calls: Sequence[tuple[Callable[..., Any], tuple]]) -> list[Any]:
        """Run ``fn(*args)`` for each of ``calls`` in the lanes; their results in order. When one
        raises, the calls of the batch not yet started are skipped and the running ones waited
        for before the first exception (in order) is raised: nothing of a failed batch runs on
        behind the caller."""
        failed = threading.Event()  # set by the lane whose call raised, before it takes another

        def guarded(fn: Callable[..., Any], args: tuple) -> Any:
            if failed.is_set():
                return _SKIPPED
            try:
                return fn(*args)
            except BaseException:
                failed.set()
                raise

        futures = [self.submit(guarded, fn, args) for fn, args in calls]
        wait(futures)
        return [future.result() for future in futures]  # the first exception in order, if any

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if not self._close.alive:
            raise RuntimeError("the lanes are closed")
        future: Future = Future()
        self._jobs.put((future, fn, args))
        return future

    def close(self) -> None:
        """End the threads once the calls already queued have run, waiting up to JOIN_TIMEOUT_S;
        idempotent."""
        self._close()


def _serve(jobs: queue.SimpleQueue) -> None:
    while (job := jobs.get()) is not _STOP:
        future, fn, args = job
        if not future.set_running_or_notify_cancel():
            continue  # cancelled while it waited
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - goes to the caller through the future
            future.set_exception(exc)


def _stop(jobs: queue.SimpleQueue, threads: list[threading.Thread]) -> None:
    for _ in threads:
        jobs.put(_STOP)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for thread in threads:
        if thread is not threading.current_thread():  # dropped from a lane thread's own call
            thread.join(max(0.0, deadline - time.monotonic()))
