"""Continuous batching of decoder steps on the GPU (issue #7).

Open sentences occupy rows ``0..n-1`` of :class:`~rtvoice.engine.gpu_rows.Rows`. A batch
of ``k`` steps for some of them runs the decoder-step graph at the smallest bucket that
covers their rows, bound once per (bucket, ring position), so no binding happens in the
loop. Rows the run covers but that are not in the batch are parked (state and last frame
copied aside) and restored afterwards, so they do not advance.

After the ``k`` steps: per sentence one 2-D copy of its new frames from the ring into its
own mel buffer (what the vocoder reads), one copy of the gate ring to the host, and the
one host wait. A step makes ``frames_per_step`` (r) frames and r gate logits; the ring
holds a step's r frames per row, and the graph feeds back the last of them. A sentence
that leaves (closed, on the vocoder thread) is only queued; the decoder thread then moves
the last row into its place (compaction).

CUDA graphs: backends whose runs only enqueue (TensorRT) get the ``k`` steps of a
(bucket, k) captured as one graph after one ordinary warm-up run; ONNX Runtime captures
its own graphs per step inside the runner.

Several steps a launch (:class:`MultiStepRunner`, the cuda backend's persistent kernel):
the ``k`` steps of a batch are one launch that walks the same ring by strides, so it runs
*between* the host's row-management points (join, leave, park, compaction, the gate
read), never across one: rows, ring, parking and the streaming contract stay exactly
those of per-step runs, and only the launch count changes. Members that opted in
(``stop_at_gate``, for consumers that never use frames past a fired gate) let the launch
stop on the device once each of them has fired; the steps it skipped are never decoded,
their gates read +inf, and the member may not decode again (``ended``).

Threads: everything runs on the decoder thread (stream A) except :meth:`BatchedDecoder.leave`.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..config import VoiceConfig
from ..cuda import CudaGraph, Event, Stream, copy_2d_async, copy_async
from ..errors import BackendError, CudaError, InternalError
from .gpu_rows import Rows
from .gpu_runner import F32, BoundRun, DeviceTensor, GraphRunner, StepRunnerFactory
from .protocol import group_indices

log = logging.getLogger("rtvoice.gpu")
I32 = 4
"""Bytes of an int32: the persistent launch's per-row done flags and its count of steps run."""

class Member:
    """A sentence's place in the batch: its row, which moves when rows are compacted."""

    def __init__(self, row: int, length: int) -> None:
        self.row = row
        self.length = length
        self.left = False
        self.stop_at_gate = False
        """Whether a multi-step launch may stop once this row's gate fired (frames past it unused)."""
        self.ended = False
        """The device stopped at this row's gate: steps were skipped, so it may not decode again."""


@dataclass(frozen=True)
class Request:
    """``len(masks)`` steps for ``member``, their frames written to ``mel_ptr`` from frame ``first``."""

    member: Member
    masks: npt.NDArray[np.float32]
    mel_ptr: int
    first: int


@dataclass(frozen=True)
class Ring:
    """What a launch of several steps needs beyond step 0's tensors (:class:`~.gpu_rows.Rows`' layout).

    Strides in floats between consecutive steps' frames, gates and masks; the addresses of
    the rows' "finished" flags (int32, 1 = may stop) and of the count of steps run (int32).
    """

    frame_step: int
    gate_step: int
    drop_step: int
    row_done: int
    steps_done: int


class MultiStepRun(Protocol):
    def run(self, steps: int, stop_on_gate: bool) -> None:
        """Enqueue ``steps`` steps in one launch; with ``stop_on_gate``, stop after the step where all rows are done."""


@runtime_checkable
class MultiStepRunner(Protocol):
    """A step runner that can also run many steps a launch (the cuda backend's persistent kernel)."""

    @property
    def multi_step(self) -> bool:
        """Whether the decoder should use :meth:`bind_steps` instead of one bound run per step."""

    def bind_steps(self, inputs: Mapping[str, DeviceTensor], outputs: Mapping[str, DeviceTensor],
                   ring: Ring) -> MultiStepRun: ...


class BatchedDecoder:
    """The rows, bound runs and graphs of one GPU engine's decoder step."""

    def __init__(self, config: VoiceConfig, stream: Stream, done: Event, runner_for: StepRunnerFactory, *,
                 max_batch: int, text_length: int, capture: bool) -> None:
        """Allocate the rows; runners are made per bucket when a batch first needs one.

        ``done`` is the engine's event recorded after each batch (the vocoder's stream
        waits on it); ``max_batch`` caps the buckets (a backend's profile); ``capture``
        allows CUDA graphs of whole batches of steps. A batch whose rows do not fit the
        largest bucket steps its sentences one by one, each at its own row.
        """
        self.config = config
        self.stream = stream
        self._runner_for = runner_for
        self.buckets = tuple(b for b in config.batching.effective_buckets() if b <= max_batch) or (1,)
        self.max_rows = config.batching.max_rows
        self.ring = max(config.decoder.gate_check_interval, 1)
        self.text_length = text_length
        self.capture = capture
        self.rows = Rows(config, self.max_rows, text_length, self.ring, stream)
        self.done = done
        self._members: list[Member] = []  # row -> member, rows 0..n-1
        self._leaving: list[Member] = []
        self._lock = threading.Lock()  # guards _leaving (appended on the vocoder thread)
        self._runners: dict[int, GraphRunner] = {}
        self._runs: dict[tuple[int, int], list[BoundRun]] = {}
        self._graphs: dict[tuple[int, int, int], CudaGraph] = {}
        self._multi: dict[tuple[int, int], MultiStepRun] = {}
        self._warm: set[tuple[int, int, int]] = set()

    @property
    def active(self) -> int:
        """Sentences holding a row (those that left but are not compacted yet excluded)."""
        return sum(not m.left for m in self._members)

    def join(self, length: int) -> Member:
        """Give a new sentence of ``length`` symbols a zeroed row; the encoder then writes into it."""
        self._compact()
        if length > self.text_length:
            raise BackendError(f"A sentence of {length} symbols is longer than the GPU decoder's rows. Note: rows "
                               f"hold {self.text_length} symbols. Hint: raise profiles.text_length.max in "
                               "voice.json (and rebuild TensorRT plans).", backend="gpu")
        if len(self._members) >= self.max_rows:
            raise BackendError(f"More than {self.max_rows} sentences are open on this GPU engine. Hint: raise "
                               "batching.max_rows in voice.json, or lower the concurrency.", backend="gpu")
        member = Member(len(self._members), length)
        self._members.append(member)
        self.rows.reset_row(member.row, self.stream)
        return member

    def leave(self, member: Member) -> None:
        """Give the row back; any thread. The decoder thread compacts before its next use."""
        with self._lock:
            if not member.left:
                member.left = True
                self._leaving.append(member)

    def static_tensors(self, member: Member) -> dict[str, DeviceTensor]:
        """Where the encoder writes this member's output: the start of its row, (1, length, ...)."""
        r, n = self.rows, member.length
        (memory, m_size), (processed, p_size), (mask, k_size) = r.static()
        d = self.config.decoder
        return {"memory": DeviceTensor(memory + m_size * member.row, (1, n, d.encoder_embedding_dim)),
                "processed_memory": DeviceTensor(processed + p_size * member.row, (1, n, d.attention_dim)),
                "mask": DeviceTensor(mask + k_size * member.row, (1, n), np.bool_)}

    def _compact(self) -> None:
        with self._lock:
            leaving, self._leaving = self._leaving, []
        r = self.rows
        for member in leaving:
            row, last = member.row, len(self._members) - 1
            if self._members[row] is not member:
                raise InternalError("a leaving sentence does not own its row")
            if row != last:
                moved = self._members[last]
                r.copy_rows(r.carried(), r.carried(), last, 1, row, self.stream)
                r.copy_rows(r.static(), r.static(), last, 1, row, self.stream)
                moved.row = row
                self._members[row] = moved
            self._members.pop()
            member.row = -1

    def decode(self, requests: Sequence[Request]) -> list[npt.NDArray[np.float32]]:
        """Run every request's steps; requests asking the same number of steps run together."""
        self._compact()
        for q in requests:
            if q.member.left or q.member.row < 0:
                raise InternalError("decode() of a closed utterance")
            if q.member.ended:
                raise InternalError("decode() after the device stopped this sentence at its gate")
        r = self.rows.r
        gates = [np.full(len(q.masks) * r, np.inf, np.float32) for q in requests]  # +inf: never decoded
        for k, group in sorted(group_indices([len(q.masks) for q in requests]).items(), reverse=True):
            for start in range(0, k, self.ring):
                live = [i for i in group if not requests[i].member.ended]
                if not live:
                    break
                steps = min(self.ring, k - start)
                out = self._batch([requests[i] for i in live], start, steps)
                for i, g in zip(live, out, strict=True):
                    gates[i][start * r : start * r + len(g)] = g
        return gates

    def _batch(self, requests: Sequence[Request], start: int, steps: int) -> list[npt.NDArray[np.float32]]:
        """``steps`` steps (masks ``[start, start + steps)``) of ``requests``, ending in the host wait.

        Each request's gates are those of the steps that ran: fewer than ``steps`` only when a
        multi-step launch stopped on its gate (its member is then ``ended``).
        """
        top = max(q.member.row for q in requests) + 1
        if top > self.buckets[-1]:  # batching capped (max_batch, a profile): one sentence at a time
            return [g for q in requests for g in self._batch_at([q], q.member.row, 1, start, steps)]
        bucket = self.buckets[bisect.bisect_left(self.buckets, top)]
        return self._batch_at(requests, 0, bucket, start, steps)

    def _batch_at(self, requests: Sequence[Request], base: int, bucket: int, start: int, steps: int
                  ) -> list[npt.NDArray[np.float32]]:
        """The steps of rows ``[base, base + bucket)``; rows in it not requested are parked."""
        r, s = self.rows, self.stream
        mine = {q.member.row for q in requests}
        idle = _runs([row for row in range(base, min(base + bucket, len(self._members))) if row not in mine])
        width = 2 * r.prenet
        host = r.masks_host.array(np.float32, (self.ring, r.rows, width))
        for q in requests:
            host[:steps, q.member.row] = q.masks[start:start + steps].reshape(steps, width)
        copy_2d_async(r.masks.ptr + F32 * base * width, F32 * r.rows * width,
                      r.masks_host.ptr + F32 * base * width, F32 * r.rows * width, F32 * bucket * width, steps, s)
        for first, count in idle:
            r.copy_rows(r.parked(), r.carried(), first, count, first, s)
        stop = self._launch(requests, base, bucket, steps)
        for q in requests:  # frames ring[1..steps] of its row -> its own mel buffer, r frames a step
            copy_2d_async(q.mel_ptr + F32 * r.n_mel * (q.first + start * r.r), F32 * r.width,
                          r.frame(1, q.member.row), F32 * r.rows * r.width, F32 * r.width, steps, s)
        r.finish_batch(steps, base, bucket, s)
        for first, count in idle:
            r.copy_rows(r.carried(), r.parked(), first, count, first, s)
        copy_async(r.gates_host.ptr, r.gates.ptr, F32 * steps * r.rows * r.r, s)
        self.done.record(s)
        self.done.synchronize()  # the one host wait per batch of steps: the gate logits
        out = r.gates_host.array(np.float32, (self.ring, r.rows, r.r))
        ran = self._steps_ran(steps) if stop else steps
        if ran < steps:  # every requested row's gate fired: the rest was never decoded
            for q in requests:
                q.member.ended = True
        return [out[:ran, q.member.row].reshape(-1).copy() for q in requests]

    def _launch(self, requests: Sequence[Request], base: int, bucket: int, steps: int) -> bool:
        """Enqueue the steps: one multi-step launch where the runner has one, else a run (or graph) a step.

        Returns whether the launch may stop at the gate: a multi-step launch whose requested
        members all opted in. The rows it covers but does not serve count as done from the start.
        """
        if not self._multi_step(bucket):
            self._steps(bucket, base, steps)
            return False
        r, s = self.rows, self.stream
        stop = all(q.member.stop_at_gate for q in requests)
        if stop:
            done = r.done_host.array(np.int32, (r.rows,))
            done[base:base + bucket] = 1
            for q in requests:
                done[q.member.row] = 0
            copy_async(r.done.ptr + I32 * base, r.done_host.ptr + I32 * base, I32 * bucket, s)
        self._bound_steps(bucket, base).run(steps, stop)
        if stop:
            copy_async(r.steps_host.ptr, r.steps_done.ptr, I32, s)
        return stop

    def _steps_ran(self, steps: int) -> int:
        """How many of ``steps`` a launch that may stop ran (read after the host wait)."""
        ran = int(self.rows.steps_host.array(np.int32, (1,))[0])
        if not 1 <= ran <= steps:
            raise InternalError(f"the decoder kernel reports {ran} of {steps} steps run")
        return ran

    def _runner(self, bucket: int) -> GraphRunner:
        runner = self._runners.get(bucket)
        if runner is None:
            runner = self._runners[bucket] = self._runner_for(bucket, self.text_length)
        return runner

    def _multi_step(self, bucket: int) -> bool:
        runner = self._runner(bucket)
        return isinstance(runner, MultiStepRunner) and runner.multi_step

    def _bound_steps(self, bucket: int, base: int) -> MultiStepRun:
        """One launch of up to ``ring`` steps of rows ``[base, base + bucket)``: ring slot 0's tensors and strides."""
        run = self._multi.get((bucket, base))
        if run is None:
            runner = self._runner(bucket)
            if not isinstance(runner, MultiStepRunner):
                raise InternalError("multi-step launch on a runner without bind_steps")
            r = self.rows
            ring = Ring(frame_step=r.rows * r.width, gate_step=r.rows * r.r, drop_step=r.rows * 2 * r.prenet,
                        row_done=r.done.ptr + 4 * base, steps_done=r.steps_done.ptr)
            run = self._multi[(bucket, base)] = runner.bind_steps(*self._tensors(0, bucket, base), ring)
        return run

    def _steps(self, bucket: int, base: int, steps: int) -> None:
        runs = self._bound(bucket, base)
        key = (bucket, base, steps)
        graph = self._graphs.get(key)
        if graph is None and self.capture and key in self._warm and self._runners[bucket].enqueue_only:
            try:
                graph = CudaGraph.capture(self.stream, lambda: _enqueue(runs, steps))
            except CudaError:
                log.warning("capturing the decoder steps as a CUDA graph failed; running them without graphs",
                            exc_info=True)
                self.capture = False
            else:
                self._graphs[key] = graph
                log.debug("captured %d decoder steps of %d rows as one CUDA graph", steps, bucket)
        if graph is not None:
            graph.launch(self.stream)
            return
        self._warm.add(key)  # TensorRT wants one ordinary enqueue before a capture
        _enqueue(runs, steps)

    def _bound(self, bucket: int, base: int) -> list[BoundRun]:
        """The ring's ``k`` bound runs of rows ``[base, base + bucket)``: step i reads ring[i], parity i % 2."""
        runs = self._runs.get((bucket, base))
        if runs is None:
            runner = self._runner(bucket)
            runs = self._runs[(bucket, base)] = [runner.bind(*self._tensors(i, bucket, base))
                                                 for i in range(self.ring)]
        return runs

    def _tensors(self, i: int, bucket: int, base: int) -> tuple[dict[str, DeviceTensor], dict[str, DeviceTensor]]:
        """Inputs and outputs of ring step ``i`` of rows ``[base, base + bucket)``."""
        r, d, n, b, o = self.rows, self.config.decoder, self.text_length, bucket, base
        shapes = {name: (b, elems) for name, elems in r.state_elems.items()}
        (memory, m_row), (processed, p_row), (mask, k_row) = r.static()
        src, dst = r.states[i % 2], r.states[1 - i % 2]
        return ({"decoder_input": DeviceTensor(r.frame(i, o), (b, r.width)),
                 **{name: DeviceTensor(src[name].ptr + F32 * o * e, shapes[name])
                    for name, e in r.state_elems.items()},
                 "memory": DeviceTensor(memory + m_row * o, (b, n, d.encoder_embedding_dim)),
                 "processed_memory": DeviceTensor(processed + p_row * o, (b, n, d.attention_dim)),
                 "mask": DeviceTensor(mask + k_row * o, (b, n), np.bool_),
                 "prenet_masks": DeviceTensor(r.masks.ptr + F32 * (i * r.rows + o) * 2 * r.prenet,
                                              (b, 2, r.prenet))},
                {"mel_frame": DeviceTensor(r.frame(i + 1, o), (b, r.width)),
                 "gate": DeviceTensor(r.gate(i, o), (b, r.r)),
                 **{f"next_{name}": DeviceTensor(dst[name].ptr + F32 * o * e, shapes[name])
                    for name, e in r.state_elems.items()}})

    def close(self) -> None:
        """Free graphs, runners and rows (after the stream's queued work; the engine syncs first)."""
        for graph in self._graphs.values():
            graph.close()
        self._graphs, self._runs, self._warm, self._multi = {}, {}, set(), {}
        for runner in self._runners.values():
            runner.close()
        self._runners = {}
        self.rows.close()
        self._members = []


def _enqueue(runs: list[BoundRun], steps: int) -> None:
    for i in range(steps):
        runs[i].run()


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted rows -> (first, count) of each run of consecutive rows."""
    out: list[tuple[int, int]] = []
    for row in rows:
        if out and out[-1][0] + out[-1][1] == row:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((row, 1))
    return out
