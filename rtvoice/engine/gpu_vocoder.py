"""Postnet + WaveGlow on the GPU engine's vocoder stream (stream B), in fixed-size windows."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..cuda import DeviceBuffer, Event, HostBuffer, copy_2d_async, copy_async, set_device
from .gpu_runner import F32, DeviceTensor, GraphRunner
from .protocol import group_indices

if TYPE_CHECKING:
    from .gpu_engine import GpuEngine, _Slot

log = logging.getLogger("rtvoice.gpu")


@dataclass(frozen=True)
class VocoderJob:
    """One chunk for :meth:`Vocoder.vocode_batch`: ``Utterance.vocode``'s arguments, on a slot."""

    slot: _Slot
    start: int
    stop: int
    limit: int
    noise: npt.NDArray[np.float32]
    mel: npt.NDArray[np.float32] | None = None
    """Host frames (frames, n_mel) of the postnet's span in place of the slot's (a time-scaled sentence)."""


def _power_of_two_at_least(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


class Vocoder:
    """Postnet + WaveGlow on stream B, with the engine's vocoder buffers (vocoder thread only).

    Windows are zero-padded on the right to a few fixed sizes ("buckets"), each with its
    own runners. Why: ONNX Runtime's CUDA convolution re-plans whenever an input shape
    differs from its previous call; measured on an H200, full WaveGlow took 30 ms for a
    96-frame window called repeatedly and 3 s per call when 96 and 32 frames alternated.
    The padding lies beyond the window's right context (frames whose audio is dropped),
    so it changes nothing but the last few milliseconds of an utterance.

    Batches (issue #7) are padded the same way, with zero rows up to a power of two, so
    the runners are per (window bucket, batch size). A chunk's padding depends only on its
    own size, never on what shares its batch: batched audio equals unbatched audio (up to
    the convolution algorithms cuDNN picks for each batch size). Runners for batches above
    1 are made on first need (each holds its own copy of the weights), and windows longer
    than the largest bucket (whole utterances) are never batched.
    """

    def __init__(self, engine: GpuEngine) -> None:
        self.e = engine
        self.postnet_in = DeviceBuffer()
        self.postnet_out = DeviceBuffer()
        self.window = DeviceBuffer()
        self.noise = DeviceBuffer()
        self.noise_host = HostBuffer()
        self.audio = DeviceBuffer()
        self.audio_host = HostBuffer()
        self.done = Event()
        c = engine.config
        s = c.streaming
        self.buckets = sorted({s.first_chunk_frames + s.context_frames, s.chunk_frames + 2 * s.context_frames})
        # TensorRT plans take batches up to profiles.batch.max; ONNX Runtime keeps the same bound.
        limit = max(1, min(c.batching.vocoder_max, c.profiles.batch.max))
        self.max_batch = 1 << (limit.bit_length() - 1)
        """The largest batch one run takes: a power of two."""
        self.runners: dict[tuple[int, int], tuple[GraphRunner, GraphRunner]] = {}
        for bucket in self.buckets:
            self._runners(bucket, 1)

    def bucket(self, frames: int) -> int:
        """The fixed window size used for ``frames``.

        The smallest bucket that fits, else a multiple of the largest (whole-utterance
        windows).
        """
        for b in self.buckets:
            if frames <= b:
                return b
        top = self.buckets[-1]
        return -(-frames // top) * top

    def _runners(self, bucket: int, rows: int) -> tuple[GraphRunner, GraphRunner]:
        if (bucket, rows) not in self.runners:
            e = self.e
            folder, graphs = e.folder, e.config.graphs
            if rows > 1:
                log.info("vocoder: runners for %d rows of %d frames", rows, bucket)
            self.runners[bucket, rows] = (e.factory("postnet", folder / graphs["postnet"], e.stream_b),
                                          e.factory("waveglow", folder / graphs["waveglow"], e.stream_b))
        return self.runners[bucket, rows]

    def vocode(self, slot: _Slot, start: int, stop: int, limit: int, noise: npt.NDArray[np.float32],
               mel: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
        return self._run(self.bucket(stop - start), [VocoderJob(slot, start, stop, limit, noise, mel)])[0]

    def vocode_batch(self, jobs: Sequence[VocoderJob]) -> list[npt.NDArray[np.float32]]:
        """One run per window bucket and up to ``max_batch`` chunks; the audio of each job."""
        out: list[npt.NDArray[np.float32]] = [np.empty(0, np.float32)] * len(jobs)
        for bucket, indices in group_indices([self.bucket(job.stop - job.start) for job in jobs]).items():
            step = self.max_batch if bucket <= self.buckets[-1] else 1
            for first in range(0, len(indices), step):
                part = indices[first : first + step]
                for index, audio in zip(part, self._run(bucket, [jobs[i] for i in part]), strict=True):
                    out[index] = audio
        return out

    def _run(self, bucket: int, jobs: Sequence[VocoderJob]) -> list[npt.NDArray[np.float32]]:
        """Postnet + WaveGlow for ``jobs`` (all of window ``bucket``) in one run each."""
        e = self.e
        c = e.config
        m, hop, group = c.decoder.n_mel_channels, c.audio.hop_length, c.vocoder.n_group
        ctx = c.decoder.postnet_context_frames
        n = len(jobs)
        rows = _power_of_two_at_least(n)
        t = bucket + 2 * ctx
        cols = hop // group
        postnet, waveglow = self._runners(bucket, rows)
        set_device(e.device_index)
        self.postnet_in.ensure(F32 * rows * m * t)
        self.postnet_out.ensure(F32 * rows * m * t)
        self.window.ensure(F32 * rows * m * bucket)
        self.noise.ensure(F32 * rows * group * cols * bucket)
        self.noise_host.ensure(F32 * rows * group * cols * bucket)
        self.audio.ensure(F32 * rows * bucket * hop)
        self.audio_host.ensure(F32 * rows * bucket * hop)
        b = e.stream_b
        b.wait(e.decoded)  # order after the decoder's writes of these frames, on the GPU
        # Postnet input, per row: the real frames [lo, hi), then zeros (exactly what the
        # whole utterance's convolution padding sees at its end); padding rows are all zeros.
        self.postnet_in.memset(0, b, F32 * rows * m * t)
        spans = [(max(0, j.start - ctx), min(j.limit, j.stop + ctx)) for j in jobs]
        for row, (job, (lo, hi)) in enumerate(zip(jobs, spans, strict=True)):
            # A time-scaled sentence's frames come from the host (pageable: copied before this returns).
            source = job.slot.mel.ptr + F32 * m * lo if job.mel is None else int(job.mel.ctypes.data)
            copy_async(self.postnet_in.ptr + F32 * row * m * t, source, F32 * m * (hi - lo), b)
        postnet.run({"mel_frames": DeviceTensor(self.postnet_in.ptr, (rows, t, m))},
                    {"mel_postnet": DeviceTensor(self.postnet_out.ptr, (rows, m, t))})
        self.window.memset(0, b, F32 * rows * m * bucket)
        for row, (job, (lo, _)) in enumerate(zip(jobs, spans, strict=True)):
            copy_2d_async(self.window.ptr + F32 * row * m * bucket, F32 * bucket,
                          self.postnet_out.ptr + F32 * (row * m * t + job.start - lo), F32 * t,
                          F32 * (job.stop - job.start), m, b)
        staged = self.noise_host.array(np.float32, (rows, group, cols * bucket))
        staged[...] = 0.0
        for row, job in enumerate(jobs):
            staged[row, :, : job.noise.shape[2]] = job.noise[0]
        copy_async(self.noise.ptr, self.noise_host.ptr, staged.nbytes, b)
        waveglow.run({"mel": DeviceTensor(self.window.ptr, (rows, m, bucket)),
                      "noise": DeviceTensor(self.noise.ptr, staged.shape)},
                     {"audio": DeviceTensor(self.audio.ptr, (rows, bucket * hop))})
        copy_async(self.audio_host.ptr, self.audio.ptr, F32 * n * bucket * hop, b)
        self.done.record(b)
        self.done.synchronize()  # the one host wait per run: the audio of every chunk in it
        audio = self.audio_host.array(np.float32, (n, bucket * hop))
        return [audio[row, : (job.stop - job.start) * hop].copy() for row, job in enumerate(jobs)]

    def close(self) -> None:
        for postnet, waveglow in self.runners.values():
            postnet.close()
            waveglow.close()
        self.runners = {}
        for owned in (self.postnet_in, self.postnet_out, self.window, self.noise, self.noise_host, self.audio,
                      self.audio_host, self.done):
            owned.close()
