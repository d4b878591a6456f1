"""Streams and events on a real GPU: ordering across streams, waits, timing."""

from __future__ import annotations

import numpy as np
import pytest

from rtvoice import cuda
from rtvoice.cuda import DeviceBuffer, Event, HostBuffer, Stream

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda.is_available(), reason="needs a CUDA GPU and driver"),
]
MIB = 1 << 20


def test_stream_handle_is_a_nonzero_int() -> None:
    with Stream() as s:
        assert isinstance(s.handle, int)
        assert s.handle != 0  # Not the legacy default stream.


def test_stream_b_waits_for_an_event_recorded_on_stream_a() -> None:
    nbytes = 256 * MIB  # Large enough that stream A is still busy when B is queued.
    with (
        Stream() as a,
        Stream() as b,
        Event() as written,
        DeviceBuffer(nbytes) as dev,
        HostBuffer(nbytes) as host,
    ):
        dev.memset(0, a)
        a.synchronize()
        for value in [*range(1, 21), 7]:  # Keeps stream A busy for a few milliseconds.
            dev.memset(value, a)
        written.record(a)
        b.wait(written)
        dev.copy_to_host(host, b)
        b.synchronize()

        assert written.query() is True
        assert np.all(host.array(np.uint8, nbytes) == 7)


def test_event_synchronize_then_query() -> None:
    with Stream() as s, Event() as e, DeviceBuffer(64 * MIB) as dev:
        dev.memset(5, s)
        e.record(s)
        e.synchronize()

        assert e.query() is True


def test_unrecorded_event_counts_as_done() -> None:
    with Event() as e:
        assert e.query() is True


def test_elapsed_ms_between_timing_events() -> None:
    with (
        Stream() as s,
        Event(timing=True) as start,
        Event(timing=True) as end,
        DeviceBuffer(64 * MIB) as dev,
    ):
        start.record(s)
        dev.memset(1, s)
        end.record(s)
        end.synchronize()

        assert start.elapsed_ms(end) >= 0.0


def test_elapsed_ms_rejects_events_without_timing() -> None:
    with Event() as start, Event() as end, pytest.raises(ValueError, match="timing"):
        start.elapsed_ms(end)
