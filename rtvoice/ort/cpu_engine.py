"""ONNX Runtime on the CPU: the four graphs run with host numpy arrays.

This backend works everywhere and is the reference the GPU backends are tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..config import VoiceConfig
from ..errors import InternalError
from .sessions import DecoderIO, GraphSessions, open_sessions

Array = npt.NDArray[np.float32]


class CpuUtterance:
    """Decoder state and mel for one sentence, all in host memory."""

    def __init__(self, sessions: GraphSessions, config: VoiceConfig, ids: Sequence[int], max_steps: int) -> None:
        self._sessions = sessions
        self._config = config
        text = np.asarray([list(ids)], dtype=np.int64)
        memory, processed, mask = sessions.encoder.run(
            None, {"text": text, "text_lengths": np.asarray([len(ids)], np.int64)}
        )
        self._static = {"memory": memory, "processed_memory": processed, "mask": mask}
        self._state = DecoderIO.zero_state(config, 1, len(ids))
        self._mel = np.zeros((max_steps, config.decoder.n_mel_channels), np.float32)
        self._frame = np.zeros((1, config.decoder.n_mel_channels), np.float32)
        self._frames = 0
        self._closed = False

    @property
    def frames(self) -> int:
        return self._frames

    def decode(self, prenet_masks: Array) -> Array:
        k = len(prenet_masks)
        if self._frames + k > len(self._mel):
            raise InternalError(f"decode past max steps ({self._frames}+{k} > {len(self._mel)})")
        gates = np.empty(k, np.float32)
        run = self._sessions.decoder_step.run
        for i in range(k):
            outputs = run(None, {"decoder_input": self._frame, **self._state, **self._static,
                                 "prenet_masks": prenet_masks[i]})
            self._frame = outputs[0]
            self._mel[self._frames] = outputs[0][0]
            gates[i] = outputs[1][0, 0]
            self._state = DecoderIO.next_state(outputs)
            self._frames += 1
        return gates

    def mel(self, start: int, stop: int) -> Array:
        return np.ascontiguousarray(self._mel[start:stop].T)

    def vocode(self, start: int, stop: int, limit: int, noise: Array) -> Array:
        c = self._config.decoder.postnet_context_frames
        lo, hi = max(0, start - c), min(limit, stop + c)
        refined = self._sessions.postnet.run(None, {"mel_frames": self._mel[None, lo:hi]})[0]
        window = np.ascontiguousarray(refined[:, :, start - lo : stop - lo])
        audio: Array = self._sessions.waveglow.run(None, {"mel": window, "noise": noise})[0][0]
        return audio

    def close(self) -> None:
        self._closed = True


class CpuEngine:
    """ONNX Runtime CPUExecutionProvider over a voice folder's four graphs."""

    name = "onnxruntime"
    device = "cpu"

    def __init__(self, folder: Path, config: VoiceConfig) -> None:
        self.config = config
        self._sessions: GraphSessions | None = open_sessions(folder, config, providers=["CPUExecutionProvider"])

    def open_utterance(self, ids: Sequence[int], max_steps: int) -> CpuUtterance:
        if self._sessions is None:
            raise InternalError("engine used after close()")
        return CpuUtterance(self._sessions, self.config, ids, max_steps)

    def close(self) -> None:
        self._sessions = None
