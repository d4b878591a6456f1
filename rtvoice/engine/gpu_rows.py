"""The device buffers of the batched GPU decoder: one row per open sentence.

Every per-sentence tensor of the decoder step lives in one row of a buffer shaped
``(max_rows, ...)``, so one graph run steps rows ``0..bucket-1`` at once:

- ``states[p][name]``: the recurrent state, two parity sets (step i reads ``i % 2``,
  writes the other); between batches the state is always in parity 0.
- ``memory``, ``processed``, ``mask``: the encoder output, padded to ``text_length``
  symbols; padded positions are masked, so they get exactly zero attention weight.
- ``ring``: ``(k + 1, max_rows, r * n_mel)``: each step's r mel frames; step i reads
  ``ring[i]`` (the graph feeds back its last frame) and writes ``ring[i + 1]``, so every
  step of a batch has fixed addresses (capturable as one graph). ``gates``
  ``(k, max_rows, r)`` and ``masks`` ``(k, max_rows, 2, prenet_dim)`` the same.
- ``park``: room to save the state of rows that a run covers but must not advance.
- ``done`` ``(max_rows,)`` int32 and ``steps_done`` (one int32): the persistent kernel's
  device-side gate stop (which rows count as finished before a launch; how many steps it ran).

Everything is allocated once (engine open) and zeroed; freed by :meth:`Rows.close`.
Decoder thread only.
"""

from __future__ import annotations

import math

from ..config import VoiceConfig
from ..cuda import DeviceBuffer, HostBuffer, Stream, copy_async, memset_async
from .gpu_runner import F32
from .graphs import state_shapes


class Rows:
    """The row buffers for ``rows`` sentences of up to ``text_length`` symbols, ``ring`` steps a batch."""

    def __init__(self, config: VoiceConfig, rows: int, text_length: int, ring: int, stream: Stream) -> None:
        d = config.decoder
        self.rows, self.text_length, self.ring_steps = rows, text_length, ring
        self.n_mel, self.prenet = d.n_mel_channels, d.prenet_dim
        self.r, self.width = d.frames_per_step, d.step_width  # frames, and floats, of one step's mel
        self.state_elems = {name: math.prod(shape) for name, shape in state_shapes(config, 1, text_length).items()}
        self._owned: list[DeviceBuffer | HostBuffer] = []
        self.states = [{name: self._dev(F32 * rows * n) for name, n in self.state_elems.items()} for _ in range(2)]
        self.park = {name: self._dev(F32 * rows * n) for name, n in self.state_elems.items()}
        self.park_frame = self._dev(F32 * rows * self.width)
        self.memory = self._dev(F32 * rows * text_length * d.encoder_embedding_dim)
        self.processed = self._dev(F32 * rows * text_length * d.attention_dim)
        self.mask = self._dev(rows * text_length)
        self.ring = self._dev(F32 * (ring + 1) * rows * self.width)
        self.gates = self._dev(F32 * ring * rows * self.r)
        self.masks = self._dev(F32 * ring * rows * 2 * self.prenet)
        self.gates_host = self._host(F32 * ring * rows * self.r)
        self.masks_host = self._host(F32 * ring * rows * 2 * self.prenet)
        self.done = self._dev(4 * rows)
        self.done_host = self._host(4 * rows)
        self.steps_done = self._dev(4)
        self.steps_host = self._host(4)
        for buffer in self._owned:
            if isinstance(buffer, DeviceBuffer):
                buffer.memset(0, stream)  # free rows hold zeros, never NaN: no warnings, no surprises

    def _dev(self, nbytes: int) -> DeviceBuffer:
        buffer = DeviceBuffer(nbytes)
        self._owned.append(buffer)
        return buffer

    def _host(self, nbytes: int) -> HostBuffer:
        buffer = HostBuffer(nbytes)
        self._owned.append(buffer)
        return buffer

    @property
    def nbytes(self) -> int:
        """Bytes of device memory held (for logs and tests)."""
        return sum(b.nbytes for b in self._owned if isinstance(b, DeviceBuffer))

    def frame(self, step: int, row: int = 0) -> int:
        """Address of ``ring[step][row]``: that step's r frames."""
        return self.ring.ptr + F32 * (step * self.rows + row) * self.width

    def gate(self, step: int, row: int = 0) -> int:
        """Address of ``gates[step][row]``: that step's r gate logits."""
        return self.gates.ptr + F32 * (step * self.rows + row) * self.r

    def carried(self) -> list[tuple[int, int]]:
        """(base address, bytes per row) of what a row carries between batches: state and last step's frames."""
        return [(self.states[0][name].ptr, F32 * n) for name, n in self.state_elems.items()] + [
            (self.ring.ptr, F32 * self.width)]

    def static(self) -> list[tuple[int, int]]:
        """(base address, bytes per row) of the encoder output of a row."""
        d_e = self.memory.nbytes // self.rows
        d_a = self.processed.nbytes // self.rows
        return [(self.memory.ptr, d_e), (self.processed.ptr, d_a), (self.mask.ptr, self.text_length)]

    def parked(self) -> list[tuple[int, int]]:
        """The park area, field by field in the order of :meth:`carried`."""
        return [(self.park[name].ptr, F32 * n) for name, n in self.state_elems.items()] + [
            (self.park_frame.ptr, F32 * self.width)]

    def copy_rows(self, dst: list[tuple[int, int]], src: list[tuple[int, int]], start: int, count: int,
                  to: int, stream: Stream) -> None:
        """Copy rows ``[start, start + count)`` of every field of ``src`` to row ``to`` onward of ``dst``."""
        for (d, size), (s, _) in zip(dst, src, strict=True):
            copy_async(d + size * to, s + size * start, size * count, stream)

    def finish_batch(self, steps: int, base: int, count: int, stream: Stream) -> None:
        """After ``steps`` steps of rows ``[base, base + count)``: last frames to ``ring[0]``, state to parity 0."""
        copy_async(self.frame(0, base), self.frame(steps, base), F32 * count * self.width, stream)
        if steps % 2:
            for name, n in self.state_elems.items():
                off = F32 * base * n
                copy_async(self.states[0][name].ptr + off, self.states[1][name].ptr + off, F32 * count * n, stream)

    def reset_row(self, row: int, stream: Stream) -> None:
        """A joining sentence: zero state and "go" frame; encoder output zero, mask all padding."""
        for base, size in self.carried():
            memset_async(base + size * row, 0, size, stream)
        for base, size in self.static():
            memset_async(base + size * row, 0, size, stream)
        memset_async(self.mask.ptr + self.text_length * row, 1, self.text_length, stream)  # True = padding

    def close(self) -> None:
        for buffer in self._owned:
            buffer.close()
        self._owned = []

