"""The newest-frame-wins worker: ordering, dropping, counting, concurrency and a clean stop."""

from __future__ import annotations

import threading
import time

import pytest

from hydranet_ros.runtime.frame_worker import FrameWorker


class Gate:
    """A process() that blocks until released, so tests control when the worker is busy."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.seen: list[int] = []

    def __call__(self, item: int) -> int:
        self.seen.append(item)
        self.entered.set()
        assert self.release.wait(5), "test never released the worker"
        return item * 10


def balanced(stats) -> bool:
    return stats.received == stats.processed + stats.dropped + stats.rejected_total + stats.errors


def test_processes_and_hands_results_to_callback():
    results = []
    with FrameWorker(process=lambda x: x + 1, on_result=lambda item, out: results.append((item, out))) as worker:
        worker.submit(1)
        assert worker.wait_idle(5)
        worker.submit(2)
        assert worker.wait_idle(5)
    assert results == [(1, 2), (2, 3)]
    stats = worker.stats()
    assert (stats.received, stats.processed, stats.dropped, stats.errors) == (2, 2, 0, 0)
    assert stats.latency.count == 2 and stats.latency.max_ms >= stats.latency.p50_ms >= 0


def test_newest_frame_wins_while_busy():
    gate = Gate()
    results = []
    worker = FrameWorker(process=gate, on_result=lambda item, out: results.append(out)).start()
    try:
        worker.submit(0)
        assert gate.entered.wait(5)  # worker now busy with 0
        for item in (1, 2, 3, 4):
            assert worker.submit(item) is True  # never blocks, although the worker is busy
        stats = worker.stats()
        assert stats.busy and stats.pending and stats.dropped == 3  # 1, 2, 3 replaced
        gate.release.set()
        assert worker.wait_idle(5)
    finally:
        worker.stop()
    assert gate.seen == [0, 4]
    assert results == [0, 40]
    stats = worker.stats()
    assert stats.processed == 2 and stats.dropped == 3 and balanced(stats)


def test_submit_does_not_wait_for_slow_processing():
    release = threading.Event()
    worker = FrameWorker(process=lambda item: release.wait(5)).start()
    try:
        worker.submit(0)
        started = time.monotonic()
        for item in range(200):
            worker.submit(item)
        elapsed = time.monotonic() - started
    finally:
        release.set()
        worker.stop()
    assert elapsed < 0.5, f"200 submits took {elapsed:.3f} s while the worker was busy"


def test_concurrent_submitters_keep_counts_balanced_and_bounded():
    processed_items = []

    def slow(item):
        time.sleep(0.002)
        return item

    worker = FrameWorker(process=slow, on_result=lambda item, out: processed_items.append(out)).start()
    per_thread = 300
    barrier = threading.Barrier(4)

    def produce(offset: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            worker.submit((offset, i))
            if i % 50 == 0:
                worker.reject("bad_step")

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert worker.wait_idle(10)
    assert worker.stop()
    stats = worker.stats()
    rejects = 4 * len(range(0, per_thread, 50))
    assert stats.received == 4 * per_thread + rejects
    assert stats.rejected == {"bad_step": rejects}
    assert stats.processed == len(processed_items) >= 1
    assert stats.dropped > 0  # a 2 ms process cannot keep up with four free-running producers
    assert balanced(stats)
    # Per producer, frames come out in submission order: a worker never goes back in time.
    for offset in range(4):
        sequence = [i for (o, i) in processed_items if o == offset]
        assert sequence == sorted(sequence)


def test_errors_are_counted_and_worker_survives():
    errors = []

    def flaky(item):
        if item == "boom":
            raise RuntimeError("engine fell over")
        return item

    results = []
    with FrameWorker(process=flaky, on_result=lambda i, o: results.append(o),
                     on_error=lambda item, exc: errors.append((item, str(exc)))) as worker:
        worker.submit("boom")
        assert worker.wait_idle(5)
        worker.submit("ok")
        assert worker.wait_idle(5)
    stats = worker.stats()
    assert stats.errors == 1 and stats.processed == 1
    assert "engine fell over" in stats.last_error
    assert errors == [("boom", "engine fell over")]
    assert results == ["ok"]
    assert balanced(stats)


def test_exception_with_reason_counts_as_rejection():
    class TooBig(ValueError):
        reason = "too_large"

    def refuse(item):
        raise TooBig("frame of 10000x10000 pixels")

    with FrameWorker(process=refuse) as worker:
        worker.submit(1)
        assert worker.wait_idle(5)
    stats = worker.stats()
    assert stats.rejected == {"too_large": 1} and stats.errors == 0 and balanced(stats)


def test_result_callback_failure_is_an_error_not_a_crash():
    def broken_publish(item, output):
        raise OSError("publisher gone")

    with FrameWorker(process=lambda x: x, on_result=broken_publish, on_error=lambda i, e: None) as worker:
        worker.submit(1)
        assert worker.wait_idle(5)
        worker.submit(2)
        assert worker.wait_idle(5)
    stats = worker.stats()
    assert stats.errors == 2 and stats.processed == 0 and "publisher gone" in stats.last_error


def test_error_callback_failure_does_not_stop_worker():
    def bad_reporter(item, exc):
        raise RuntimeError("logger broken")

    with FrameWorker(process=lambda x: 1 / x, on_error=bad_reporter) as worker:
        worker.submit(0)
        assert worker.wait_idle(5)
        worker.submit(1)
        assert worker.wait_idle(5)
    stats = worker.stats()
    assert stats.errors == 1 and stats.processed == 1


def test_stop_is_clean_and_drops_pending_frame():
    gate = Gate()
    worker = FrameWorker(process=gate).start()
    worker.submit(1)
    assert gate.entered.wait(5)
    worker.submit(2)  # pending, never started

    stopper_done = threading.Event()

    def stop_then_flag():
        worker.stop(timeout=5)
        stopper_done.set()

    stopper = threading.Thread(target=stop_then_flag)
    stopper.start()
    time.sleep(0.05)
    assert not stopper_done.is_set()  # stop() waits for the frame in progress
    gate.release.set()
    stopper.join(5)
    assert stopper_done.is_set()
    stats = worker.stats()
    assert gate.seen == [1]  # the pending frame was dropped, not processed after stop
    assert stats.processed == 1 and stats.dropped == 1 and not stats.running and balanced(stats)
    assert not any(t.name == "hydranet-frame-worker" and t.is_alive() for t in threading.enumerate())


def test_submit_after_stop_is_refused_and_counted():
    worker = FrameWorker(process=lambda x: x).start()
    worker.stop()
    assert worker.submit(1) is False
    stats = worker.stats()
    assert stats.received == 1 and stats.dropped == 1 and balanced(stats)


def test_submit_before_start_is_refused():
    worker = FrameWorker(process=lambda x: x)
    assert worker.submit(1) is False
    assert worker.stats().dropped == 1


def test_stop_is_idempotent_and_start_twice_fails():
    worker = FrameWorker(process=lambda x: x).start()
    with pytest.raises(RuntimeError):
        worker.start()
    assert worker.stop() and worker.stop()


def test_stop_times_out_on_hung_process():
    hang, entered = threading.Event(), threading.Event()

    def process(x):
        entered.set()
        return hang.wait(10)

    worker = FrameWorker(process=process, name="hung-worker").start()
    worker.submit(1)
    assert entered.wait(5)  # the frame is in process (a sleep here raced a loaded scheduler)
    assert worker.stop(timeout=0.1) is False
    hang.set()


def test_stop_from_result_callback_does_not_deadlock():
    holder = {}

    def on_result(item, output):
        holder["joined"] = holder["worker"].stop()

    worker = FrameWorker(process=lambda x: x, on_result=on_result).start()
    holder["worker"] = worker
    worker.submit(1)
    deadline = time.monotonic() + 5
    while "joined" not in holder and time.monotonic() < deadline:
        time.sleep(0.01)
    assert holder.get("joined") is True
    assert worker.stop(timeout=5)


def test_latency_uses_injected_clock_and_window_is_bounded():
    ticks = iter(range(0, 10_000, 1))
    lock = threading.Lock()

    def clock():
        with lock:
            return next(ticks) / 1000.0  # each call advances 1 ms

    worker = FrameWorker(process=lambda x: x, clock=clock, latency_window=4).start()
    for item in range(10):
        worker.submit(item)
        assert worker.wait_idle(5)
    worker.stop()
    latency = worker.stats().latency
    assert latency.count == 4  # bounded window, not every frame ever
    assert latency.last_ms == pytest.approx(1.0)  # submit read the clock once, finish once


def test_invalid_latency_window():
    with pytest.raises(ValueError):
        FrameWorker(process=lambda x: x, latency_window=0)
