"""Postnet + WaveGlow on the GPU engine's vocoder stream (stream B), in fixed-size windows."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..chunking import chunk_sizes
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


@dataclass(frozen=True)
class _Row:
    """One row of a WaveGlow run: frames [start, stop) of job ``job``, padded to ``bucket``.

    ``right``: the real frames end at the row's end (zero padding before them, not after),
    so that a sentence's last frame meets the same edge it meets in a whole, unpadded run.
    """

    job: int
    start: int
    stop: int
    bucket: int
    right: bool


class Vocoder:
    """Postnet + WaveGlow on stream B, with the engine's vocoder buffers (vocoder thread only).

    Windows are zero-padded to a few fixed sizes ("buckets"), each with its own runners.
    Why: ONNX Runtime's CUDA convolution re-plans whenever an input shape differs from its
    previous call; measured on an H200, full WaveGlow took 30 ms for a 96-frame window
    called repeatedly and 3 s per call when 96 and 32 frames alternated.

    Where the padding goes matters. Zero mel frames are not silence, and a convolution
    padded in its *input* differs from one that ends there: next to padding, the postnet's
    last ``postnet_context_frames`` frames and WaveGlow's receptive field (a frame-rate
    WaveGlow of 8 flows reaches ~100 frames, decaying) change. Padding after a window's
    right context is harmless (that audio is dropped); padding after a sentence's last frame
    changed its last ~100 ms (the default voice: GPU against CPU 25.5 dB SNR over a sentence,
    error -44 to -57 dBFS in the last 100 ms). So a window that ends the sentence is padded
    on the left instead (its left edge is context, dropped), and a window holding a
    sentence's first and last frames (short sentences, whole utterances) runs twice: padded
    after (its head exact) and, in a second row of at most the largest bucket, before (its
    tail exact); the two meet mid-way through the second row. See docs/design.md.

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
        later = chunk_sizes(s.chunk_frames, s.max_chunk_frames)
        self.buckets = sorted({s.first_chunk_frames + s.context_frames, *(n + 2 * s.context_frames for n in later)})
        self.granule = s.chunk_frames + 2 * s.context_frames
        """Windows above the largest bucket (whole utterances) take a multiple of this: TensorRT's
        mel_frames profile (up to 512) fits the same whole windows as before chunks doubled."""
        # TensorRT plans take batches up to profiles.batch.max; ONNX Runtime keeps the same bound.
        limit = max(1, min(c.batching.vocoder_max, c.profiles.batch.max))
        self.max_batch = 1 << (limit.bit_length() - 1)
        """The largest batch one run takes: a power of two."""
        self.runners: dict[tuple[int, int], tuple[GraphRunner, GraphRunner]] = {}
        for bucket in self.buckets:
            self._runners(bucket, 1)

    def bucket(self, frames: int) -> int:
        """The fixed window size used for ``frames``.

        The smallest bucket that fits, else a multiple of :attr:`granule` (whole-utterance
        windows).
        """
        for b in self.buckets:
            if frames <= b:
                return b
        return -(-frames // self.granule) * self.granule

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
        return self.vocode_batch([VocoderJob(slot, start, stop, limit, noise, mel)])[0]

    def rows(self, job: VocoderJob) -> list[_Row]:
        """The rows that vocode ``job``: one, or two for a window holding both ends of a sentence."""
        n, c = job.stop - job.start, self.e.config.decoder.postnet_context_frames
        bucket = self.bucket(n)
        if job.stop + c < job.limit:  # the postnet reads real frames past the window: pad after them
            return [_Row(0, job.start, job.stop, bucket, False)]
        if job.start > 0 and bucket <= self.buckets[-1]:  # the left edge is context: pad there
            return [_Row(0, job.start, job.stop, bucket, True)]
        tail = min(n, self.buckets[-1])  # whole windows: the rows meet half a bucket from padding
        return [_Row(0, job.start, job.stop, bucket, False),
                _Row(0, job.stop - tail, job.stop, self.bucket(tail), True)]

    def vocode_batch(self, jobs: Sequence[VocoderJob]) -> list[npt.NDArray[np.float32]]:
        """One run per window bucket and up to ``max_batch`` rows; the audio of each job."""
        rows = [_Row(i, r.start, r.stop, r.bucket, r.right) for i, job in enumerate(jobs) for r in self.rows(job)]
        out: list[npt.NDArray[np.float32]] = [np.empty(0, np.float32)] * len(rows)
        for bucket, indices in group_indices([row.bucket for row in rows]).items():
            step = self.max_batch if bucket <= self.buckets[-1] else 1
            for first in range(0, len(indices), step):
                part = indices[first : first + step]
                for index, samples in zip(part, self._run(bucket, jobs, [rows[i] for i in part]), strict=True):
                    out[index] = samples
        hop = self.e.config.audio.hop_length
        audio: list[npt.NDArray[np.float32]] = [np.empty(0, np.float32)] * len(jobs)
        for i, row in enumerate(rows):
            if i == 0 or rows[i - 1].job != row.job:
                audio[row.job] = out[i]
            else:  # a job's second row, its tail: its second half replaces the first row's, near padding
                cut = (row.start + (row.stop - row.start) // 2 - jobs[row.job].start) * hop
                head = audio[row.job]
                audio[row.job] = np.concatenate((head[:cut], out[i][cut - (row.start - jobs[row.job].start) * hop :]))
        return audio

    def _run(self, bucket: int, jobs: Sequence[VocoderJob], rows: Sequence[_Row]) -> list[npt.NDArray[np.float32]]:
        """Postnet + WaveGlow for ``rows`` (all of window ``bucket``) in one run; each row's audio."""
        e = self.e
        c = e.config
        m, hop, group = c.decoder.n_mel_channels, c.audio.hop_length, c.vocoder.n_group
        ctx = c.decoder.postnet_context_frames
        n = len(rows)
        height = _power_of_two_at_least(n)
        t = bucket + 2 * ctx
        cols = hop // group
        postnet, waveglow = self._runners(bucket, height)
        set_device(e.device_index)
        self.postnet_in.ensure(F32 * height * m * t)
        self.postnet_out.ensure(F32 * height * m * t)
        self.window.ensure(F32 * height * m * bucket)
        self.noise.ensure(F32 * height * group * cols * bucket)
        self.noise_host.ensure(F32 * height * group * cols * bucket)
        self.audio.ensure(F32 * height * bucket * hop)
        self.audio_host.ensure(F32 * height * bucket * hop)
        b = e.stream_b
        b.wait(e.decoded)  # order after the decoder's writes of these frames, on the GPU
        # Postnet input, per row: the real frames [lo, hi) and zeros, at the start of the row,
        # or at its end for a right-aligned row (the sentence's end then meets the row's end,
        # as in a whole utterance's convolution); padding rows are all zeros.
        self.postnet_in.memset(0, b, F32 * height * m * t)
        spans = [(max(0, r.start - ctx), min(jobs[r.job].limit, r.stop + ctx)) for r in rows]
        places = [t - (hi - lo) if r.right else 0 for r, (lo, hi) in zip(rows, spans, strict=True)]
        for i, (r, (lo, hi), at) in enumerate(zip(rows, spans, places, strict=True)):
            job = jobs[r.job]
            if job.mel is None:
                source = job.slot.mel.ptr + F32 * m * lo
            else:  # a time-scaled sentence's frames come from the host (pageable: copied before this returns)
                first = lo - max(0, job.start - ctx)
                source = int(job.mel.ctypes.data) + F32 * m * first
            copy_async(self.postnet_in.ptr + F32 * (i * m * t + m * at), source, F32 * m * (hi - lo), b)
        postnet.run({"mel_frames": DeviceTensor(self.postnet_in.ptr, (height, t, m))},
                    {"mel_postnet": DeviceTensor(self.postnet_out.ptr, (height, m, t))})
        self.window.memset(0, b, F32 * height * m * bucket)
        shifts = [bucket - (r.stop - r.start) if r.right else 0 for r in rows]
        for i, (r, (lo, _), at, shift) in enumerate(zip(rows, spans, places, shifts, strict=True)):
            copy_2d_async(self.window.ptr + F32 * (i * m * bucket + shift), F32 * bucket,
                          self.postnet_out.ptr + F32 * (i * m * t + at + r.start - lo), F32 * t,
                          F32 * (r.stop - r.start), m, b)
        staged = self.noise_host.array(np.float32, (height, group, cols * bucket))
        staged[...] = 0.0
        for i, (r, shift) in enumerate(zip(rows, shifts, strict=True)):
            job = jobs[r.job]
            z = job.noise[0, :, (r.start - job.start) * cols : (r.stop - job.start) * cols]
            staged[i, :, shift * cols : shift * cols + z.shape[1]] = z
        copy_async(self.noise.ptr, self.noise_host.ptr, staged.nbytes, b)
        waveglow.run({"mel": DeviceTensor(self.window.ptr, (height, m, bucket)),
                      "noise": DeviceTensor(self.noise.ptr, staged.shape)},
                     {"audio": DeviceTensor(self.audio.ptr, (height, bucket * hop))})
        copy_async(self.audio_host.ptr, self.audio.ptr, F32 * n * bucket * hop, b)
        self.done.record(b)
        self.done.synchronize()  # the one host wait per run: the audio of every chunk in it
        audio = self.audio_host.array(np.float32, (n, bucket * hop))
        return [audio[i, shift * hop : (shift + r.stop - r.start) * hop].copy()
                for i, (r, shift) in enumerate(zip(rows, shifts, strict=True))]

    def close(self) -> None:
        for postnet, waveglow in self.runners.values():
            postnet.close()
            waveglow.close()
        self.runners = {}
        for owned in (self.postnet_in, self.postnet_out, self.window, self.noise, self.noise_host, self.audio,
                      self.audio_host, self.done):
            owned.close()
