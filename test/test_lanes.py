"""runtime/lanes.Lanes: whole frames in daemon threads; a failed batch leaves nothing running
behind the caller, and dropped or closed lanes end their threads."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hydranet_ros.runtime.lanes import Lanes


def lane_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(name)]


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_results_come_back_in_order_and_run_in_parallel():
    lanes = Lanes(2, name="test-lane-order")
    started = threading.Barrier(2, timeout=5)  # both calls must be running at once to pass it

    def call(value):
        started.wait()
        return value * 10

    assert lanes.run_all([(call, (1,)), (call, (2,))]) == [10, 20]
    assert all(t.daemon for t in lane_threads("test-lane-order"))
    lanes.close()


def test_a_failing_call_cancels_the_waiting_ones_and_waits_for_the_running_ones():
    lanes = Lanes(1, name="test-lane-fail")
    ran, release = [], threading.Event()

    def slow(name):
        release.wait(5)
        ran.append(name)
        return name

    def bad():
        raise ValueError("bad frame")

    threading.Timer(0.2, release.set).start()
    with pytest.raises(ValueError, match="bad frame"):
        # One lane: 'first' runs, 'bad' fails after it, 'never' is skipped.
        lanes.run_all([(slow, ("first",)), (bad, ()), (slow, ("never",))])
    assert ran == ["first"]  # the waiting call was skipped, not run later behind the caller
    assert lanes.run_all([(slow, ("next",))]) == ["next"]  # the lane serves the next batch at once
    lanes.close()


def test_closed_or_dropped_lanes_end_their_threads():
    lanes = Lanes(2, name="test-lane-closed")
    assert wait_until(lambda: len(lane_threads("test-lane-closed")) == 2)
    lanes.close()
    lanes.close()  # idempotent
    assert wait_until(lambda: not lane_threads("test-lane-closed"))
    with pytest.raises(RuntimeError, match="closed"):
        lanes.submit(print)
    dropped = Lanes(2, name="test-lane-dropped")
    assert dropped.run_all([(abs, (-3,))]) == [3]
    del dropped
    gc.collect()
    assert wait_until(lambda: not lane_threads("test-lane-dropped"))


def test_a_hung_call_does_not_keep_the_process_alive():
    code = ("import threading, time\n"
            "from hydranet_ros.runtime.lanes import Lanes\n"
            "lanes = Lanes(1)\n"
            "lanes.submit(time.sleep, 60)\n"
            "time.sleep(0.2)\n"
            "print('exiting')\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "exiting", done.stderr
    assert time.monotonic() - started < 20


def test_a_process_that_ran_lanes_exits_cleanly():
    """Lane threads left to end on their own during the interpreter's teardown destroyed OpenVINO's
    per-thread infer requests too late and aborted the process ("terminate called without an
    active exception", exit 134) after every test had passed; closing now joins them. The lanes
    test of test_pipeline_batch.py, in a process of its own, is the case that showed it."""
    pytest.importorskip("openvino")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test/test_pipeline_batch.py",
                           "-k", "run_a_batch_in_lanes and openvino"],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert "terminate called" not in done.stderr
