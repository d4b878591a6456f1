"""ONNX Runtime on the CPU: the four graphs run with host numpy arrays.

This backend works everywhere and is the reference the GPU backends are tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..config import VoiceConfig
from ..engine.protocol import Utterance, VocodeItem, group_indices
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
        d = config.decoder
        self._r = d.frames_per_step
        self._mel = np.zeros((d.frame_room(max_steps), d.n_mel_channels), np.float32)
        self._frame = np.zeros((1, d.step_width), np.float32)  # the last step's r frames; the graph reads the last
        self._frames = 0
        self._closed = False

    @property
    def frames(self) -> int:
        return self._frames

    def decode(self, prenet_masks: Array) -> Array:
        k, r = len(prenet_masks), self._r
        self._check_room(k)
        gates = np.empty(k * r, np.float32)
        run = self._sessions.decoder_step.run
        for i in range(k):
            outputs = run(None, {"decoder_input": self._frame, **self._state, **self._static,
                                 "prenet_masks": prenet_masks[i]})
            gates[i * r : (i + 1) * r] = outputs[1][0]
            self._step_outputs(outputs[0], DecoderIO.next_state(outputs))
        return gates

    def _check_room(self, steps: int) -> None:
        if self._frames + steps * self._r > len(self._mel):
            raise InternalError(f"decode past max steps ({self._frames}+{steps}x{self._r} > {len(self._mel)})")

    def _step_outputs(self, frames: Array, state: dict[str, Array]) -> None:
        """Take one step's results (r frames (1, r * n_mel) and next state) as our own."""
        self._frame = frames
        self._mel[self._frames : self._frames + self._r] = frames.reshape(self._r, -1)
        self._state = state
        self._frames += self._r

    def mel(self, start: int, stop: int) -> Array:
        return np.ascontiguousarray(self._mel[start:stop].T)

    def vocode(self, start: int, stop: int, limit: int, noise: Array, mel: Array | None = None) -> Array:
        c = self._config.decoder.postnet_context_frames
        lo, hi = max(0, start - c), min(limit, stop + c)
        frames = self._mel[lo:hi] if mel is None else mel
        refined = self._sessions.postnet.run(None, {"mel_frames": frames[None]})[0]
        window = np.ascontiguousarray(refined[:, :, start - lo : stop - lo])
        audio: Array = self._sessions.waveglow.run(None, {"mel": window, "noise": noise})[0][0]
        return audio

    def close(self) -> None:
        self._closed = True


def _frames(utterance: CpuUtterance, item: VocodeItem, lo: int, hi: int) -> Array:
    """The postnet's input of ``item``: its own frames (a time-scaled sentence) or the utterance's."""
    return utterance._mel[lo:hi] if item.mel is None else item.mel


def _pad(arrays: list[npt.NDArray[Any]], width: int, fill: object) -> npt.NDArray[Any]:
    """Stack (1, n_i, ...) arrays into (B, width, ...), filling the tail of each row."""
    first = arrays[0]
    out = np.full((len(arrays), width, *first.shape[2:]), fill, dtype=first.dtype)
    for row, a in enumerate(arrays):
        out[row, : a.shape[1]] = a[0]
    return out


def _stack_static(group: list[CpuUtterance]) -> dict[str, Array]:
    width = max(u._static["mask"].shape[1] for u in group)
    return {"memory": _pad([u._static["memory"] for u in group], width, 0.0),
            "processed_memory": _pad([u._static["processed_memory"] for u in group], width, 0.0),
            "mask": _pad([u._static["mask"] for u in group], width, True)}


def _stack_state(group: list[CpuUtterance], width: int) -> dict[str, Array]:
    out = {}
    for name in group[0]._state:
        parts = [u._state[name] for u in group]
        out[name] = _pad(parts, width, 0.0) if name.startswith("attention_weights") else np.concatenate(parts)
    return out


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

    def decode_batch(self, items: Sequence[tuple[Utterance, Array]]) -> list[Array]:
        """Step several utterances together: one decoder-step run per step for all of them.

        Rows are padded to the longest text; padding is exact because the mask sends the
        attention energies of padded positions to -inf (weight 0), and the location
        convolution sees the same zeros the graph's own padding would give it. Utterances
        with fewer masks drop out as they finish (continuous batching).
        """
        if self._sessions is None:
            raise InternalError("engine used after close()")
        if len(items) == 1:
            return [items[0][0].decode(items[0][1])]
        ours = [u for u, _ in items if isinstance(u, CpuUtterance)]
        if len(ours) != len(items):
            raise InternalError("decode_batch() got an utterance of another engine")
        for utterance, (_, masks) in zip(ours, items, strict=True):
            utterance._check_room(len(masks))
        r = self.config.decoder.frames_per_step
        gates = [np.empty(len(masks) * r, np.float32) for _, masks in items]
        run = self._sessions.decoder_step.run
        static: tuple[tuple[int, ...], dict[str, Array]] | None = None
        for i in range(max(len(masks) for _, masks in items)):
            rows = [j for j, (_, masks) in enumerate(items) if i < len(masks)]
            group = [ours[j] for j in rows]
            key = tuple(rows)
            if static is None or static[0] != key:  # stack the encoder outputs once per membership
                static = (key, _stack_static(group))
            feeds = {"decoder_input": np.concatenate([u._frame for u in group]),
                     **_stack_state(group, static[1]["mask"].shape[1]), **static[1],
                     "prenet_masks": np.concatenate([items[j][1][i] for j in rows])}
            outputs = run(None, feeds)
            nxt = DecoderIO.next_state(outputs)
            for row, (j, u) in enumerate(zip(rows, group, strict=True)):
                n = u._static["mask"].shape[1]
                state = {name: np.ascontiguousarray(value[row : row + 1, :n])
                         if name.startswith("attention_weights") else value[row : row + 1]
                         for name, value in nxt.items()}
                gates[j][i * r : (i + 1) * r] = outputs[1][row]
                u._step_outputs(outputs[0][row : row + 1], state)
        return gates

    def vocode_batch(self, items: Sequence[VocodeItem]) -> list[Array]:
        """Postnet and WaveGlow over several chunks, one run per group of equal window sizes.

        Windows are stacked along the batch axis only when their sizes are equal. Why not
        pad them to one size: WaveGlow's receptive field reaches back from any padding
        into the audio that is kept, so a chunk would sound slightly different depending on
        what else happened to be batched with it. Rows of one run are independent, so each
        chunk gets exactly the audio ``item.vocode()`` gives it (up to float summation order).
        """
        if self._sessions is None:
            raise InternalError("engine used after close()")
        if len(items) == 1:
            return [items[0].vocode()]
        ours = [i.utterance for i in items if isinstance(i.utterance, CpuUtterance)]
        if len(ours) != len(items):
            raise InternalError("vocode_batch() got an utterance of another engine")
        c = self.config.decoder.postnet_context_frames
        spans = [(max(0, i.start - c), min(i.limit, i.stop + c)) for i in items]
        windows: list[Array] = [np.empty(0, np.float32)] * len(items)
        for rows in group_indices([hi - lo for lo, hi in spans]).values():
            mel = np.stack([_frames(ours[j], items[j], *spans[j]) for j in rows])
            refined = self._sessions.postnet.run(None, {"mel_frames": mel})[0]
            for row, j in enumerate(rows):
                lo = spans[j][0]
                windows[j] = refined[row, :, items[j].start - lo : items[j].stop - lo]
        audio: list[Array] = [np.empty(0, np.float32)] * len(items)
        for rows in group_indices([i.stop - i.start for i in items]).values():
            feeds = {"mel": np.stack([windows[j] for j in rows]),
                     "noise": np.concatenate([items[j].noise for j in rows])}
            out = self._sessions.waveglow.run(None, feeds)[0]
            for row, j in enumerate(rows):
                audio[j] = out[row]
        return audio

    def close(self) -> None:
        self._sessions = None
