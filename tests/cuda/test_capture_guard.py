"""The capture guard: a capture excludes every other thread's GPU work, and only that."""

from __future__ import annotations

import threading
import time

import pytest

from rtvoice.cuda import CaptureGuard


def test_exclusive_waits_for_shared_holders_and_blocks_new_ones() -> None:
    guard = CaptureGuard()
    events: list[str] = []
    reader_in = threading.Event()
    release_reader = threading.Event()

    def reader() -> None:
        with guard.shared():
            events.append("reader in")
            reader_in.set()
            release_reader.wait(5)
            events.append("reader out")

    def writer() -> None:
        with guard.exclusive():
            events.append("capture")

    def late_reader() -> None:
        with guard.shared():
            events.append("late reader")

    t1 = threading.Thread(target=reader)
    t1.start()
    assert reader_in.wait(5)
    t2 = threading.Thread(target=writer)
    t2.start()
    time.sleep(0.05)  # the writer is now waiting
    t3 = threading.Thread(target=late_reader)
    t3.start()
    time.sleep(0.05)
    assert events == ["reader in"]  # neither the capture nor a new reader got in
    release_reader.set()
    for t in (t1, t2, t3):
        t.join(5)
    assert events == ["reader in", "reader out", "capture", "late reader"]


def test_shared_nests_within_a_thread_while_a_writer_waits() -> None:
    guard = CaptureGuard()
    inner_done = threading.Event()
    outer_in = threading.Event()
    go_inner = threading.Event()

    def reader() -> None:
        with guard.shared():
            outer_in.set()
            go_inner.wait(5)
            with guard.shared():  # must not deadlock behind the waiting writer
                inner_done.set()

    t = threading.Thread(target=reader)
    t.start()
    assert outer_in.wait(5)
    w = threading.Thread(target=lambda: guard.exclusive().__enter__())
    w.daemon = True
    w.start()
    time.sleep(0.05)
    go_inner.set()
    assert inner_done.wait(5)
    t.join(5)


def test_exclusive_inside_shared_is_refused_not_deadlocked() -> None:
    guard = CaptureGuard()
    with guard.shared(), pytest.raises(RuntimeError, match="deadlock"), guard.exclusive():
        pass
