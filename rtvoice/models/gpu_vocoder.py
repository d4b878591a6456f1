"""Postnet + WaveGlow on the GPU engine's vocoder stream (stream B), in fixed-size windows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..cuda import DeviceBuffer, Event, HostBuffer, copy_2d_async, copy_async, set_device
from .gpu_runner import F32, DeviceTensor, GraphRunner

if TYPE_CHECKING:
    from .gpu_engine import GpuEngine, _Slot


class Vocoder:
    """Postnet + WaveGlow on stream B, with the engine's vocoder buffers (vocoder thread only).

    Windows are zero-padded on the right to a few fixed sizes ("buckets"), each with its
    own runners. Why: ONNX Runtime's CUDA convolution re-plans whenever an input shape
    differs from its previous call; measured on an H200, full WaveGlow took 30 ms for a
    96-frame window called repeatedly and 3 s per call when 96 and 32 frames alternated.
    The padding lies beyond the window's right context (frames whose audio is dropped),
    so it changes nothing but the last few milliseconds of an utterance.
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
        s = engine.config.streaming
        self.buckets = sorted({s.first_chunk_frames + s.context_frames, s.chunk_frames + 2 * s.context_frames})
        self.runners: dict[int, tuple[GraphRunner, GraphRunner]] = {}
        for bucket in self.buckets:
            self._runners(bucket)

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

    def _runners(self, bucket: int) -> tuple[GraphRunner, GraphRunner]:
        if bucket not in self.runners:
            e = self.e
            folder, graphs = e.folder, e.config.graphs
            self.runners[bucket] = (e.factory("postnet", folder / graphs["postnet"], e.stream_b),
                                    e.factory("waveglow", folder / graphs["waveglow"], e.stream_b))
        return self.runners[bucket]

    def vocode(self, slot: _Slot, start: int, stop: int, limit: int,
               noise: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        e = self.e
        c = e.config
        m, hop = c.decoder.n_mel_channels, c.audio.hop_length
        ctx = c.decoder.postnet_context_frames
        lo, hi = max(0, start - ctx), min(limit, stop + ctx)
        w = stop - start
        bucket = self.bucket(w)
        t = bucket + 2 * ctx
        cols = noise.shape[2] // max(w, 1)
        postnet, waveglow = self._runners(bucket)
        set_device(e.device_index)
        self.postnet_in.ensure(F32 * m * t)
        self.postnet_out.ensure(F32 * m * t)
        self.window.ensure(F32 * m * bucket)
        self.noise.ensure(F32 * noise.shape[1] * cols * bucket)
        self.noise_host.ensure(F32 * noise.shape[1] * cols * bucket)
        self.audio.ensure(F32 * bucket * hop)
        self.audio_host.ensure(F32 * bucket * hop)
        b = e.stream_b
        b.wait(e.decoded)  # order after the decoder's writes of these frames, on the GPU
        # Postnet input: the real frames [lo, hi), then zeros (exactly what the whole
        # utterance's convolution padding sees at its end).
        self.postnet_in.memset(0, b, F32 * m * t)
        copy_async(self.postnet_in.ptr, slot.mel.ptr + F32 * m * lo, F32 * m * (hi - lo), b)
        postnet.run({"mel_frames": DeviceTensor(self.postnet_in.ptr, (1, t, m))},
                    {"mel_postnet": DeviceTensor(self.postnet_out.ptr, (1, m, t))})
        self.window.memset(0, b, F32 * m * bucket)
        copy_2d_async(self.window.ptr, F32 * bucket, self.postnet_out.ptr + F32 * (start - lo), F32 * t,
                      F32 * w, m, b)
        staged = self.noise_host.array(np.float32, (1, noise.shape[1], cols * bucket))
        staged[...] = 0.0
        staged[:, :, : noise.shape[2]] = noise
        copy_async(self.noise.ptr, self.noise_host.ptr, staged.nbytes, b)
        waveglow.run({"mel": DeviceTensor(self.window.ptr, (1, m, bucket)),
                      "noise": DeviceTensor(self.noise.ptr, staged.shape)},
                     {"audio": DeviceTensor(self.audio.ptr, (1, bucket * hop))})
        copy_async(self.audio_host.ptr, self.audio.ptr, F32 * w * hop, b)
        self.done.record(b)
        self.done.synchronize()  # the one host wait per chunk: the audio
        return self.audio_host.array(np.float32, (w * hop,)).copy()

    def close(self) -> None:
        for postnet, waveglow in self.runners.values():
            postnet.close()
            waveglow.close()
        self.runners = {}
        for owned in (self.postnet_in, self.postnet_out, self.window, self.noise, self.noise_host, self.audio,
                      self.audio_host, self.done):
            owned.close()
