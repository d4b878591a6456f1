"""CUDA graphs of TensorRT decoder steps, against the fake TensorRT and a fake device (issue #7).

The batched decoder enqueues a (bucket, k) batch of steps once as usual (TensorRT's
warm-up after shapes and addresses were set), captures it as one graph the next time,
and replays that graph from then on; close() destroys the graphs and runners.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from trt_fakes import FakeStream, FakeTensorRT  # tests/trt/trt_fakes.py

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from fake_device import FakeBuffer, FakeEvent, FakeGraph, install  # noqa: E402  # tests/engine/fake_device.py

from rtvoice.config import BatchingConfig, VoiceConfig  # noqa: E402
from rtvoice.cuda import Event, Stream  # noqa: E402
from rtvoice.engine.gpu_decoder import BatchedDecoder, Request  # noqa: E402
from rtvoice.trt.runner import TrtRunner  # noqa: E402


def test_a_batch_of_steps_is_captured_after_one_warm_up_and_replayed(
        tmp_path: Path, fake_trt: FakeTensorRT, monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)
    plan = tmp_path / "decoder_step.plan"
    plan.write_bytes(b"plan:decoder_step")
    config = VoiceConfig(name="fake", batching=BatchingConfig(max_rows=2, buckets=(1, 2)))
    ring = config.decoder.gate_check_interval
    runners: list[TrtRunner] = []

    def step_runner(rows: int, text_length: int) -> TrtRunner:
        runners.append(TrtRunner("decoder_step", plan, cast(Stream, FakeStream()), bound_contexts=ring).open())
        return runners[-1]

    decoder = BatchedDecoder(config, cast(Stream, FakeStream()), cast(Event, FakeEvent()), step_runner,
                             max_batch=2, text_length=16, capture=True)
    mel = FakeBuffer(4 * 3 * ring * config.decoder.n_mel_channels)
    member = decoder.join(10)
    masks = np.ones((ring, 1, 2, config.decoder.prenet_dim), np.float32)
    calls = None
    for batch in range(3):
        decoder.decode([Request(member, masks, mel.ptr, batch * ring)])
        calls = fake_trt.engines[0].calls
        if batch == 0:
            assert len(calls.executes) == ring and not FakeGraph.captured  # the warm-up: plain enqueues
            set_at_warm_up = (len(calls.shapes), len(calls.addresses))
    assert calls is not None and len(FakeGraph.captured) == 1  # one graph for the whole batch of steps
    graph = FakeGraph.captured[0]
    assert graph.launches == 2
    assert len(calls.executes) == 3 * ring  # each launch replays the k enqueues (the fake records them)
    assert (len(calls.shapes), len(calls.addresses)) == set_at_warm_up  # nothing re-set after the warm-up
    assert len(fake_trt.engines[0].contexts) == 1 + ring  # the main context and one per ring position
    decoder.close()
    assert graph.closed and not runners[0].is_open
