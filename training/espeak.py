"""The teacher: espeak-ng speaking a sentence as 22050 Hz mono 16-bit PCM.

espeak-ng synthesises at 22050 Hz natively, the rate of rtvoice's voices, so nothing is
resampled; :func:`parse_wav` checks the rate, channels and sample width of every clip.
The text goes in on stdin (``--stdin``), so a sentence that begins with "-" is never read
as an option. Leading and trailing silence is trimmed to a short margin, so that
Tacotron 2's gate learns the end of speech rather than espeak-ng's fixed tail.

Benchmark (how long one sentence takes on one core)::

    python -m training.espeak --bench 200 [--espeak training/carry/espeak/espeak-ng]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 22050


class TeacherError(RuntimeError):
    """espeak-ng failed or wrote something other than 22050 Hz mono 16-bit PCM."""


@dataclass(frozen=True)
class Teacher:
    """How espeak-ng is run; every field is recorded in the dataset's manifest."""

    espeak: str = "espeak-ng"
    """The program: "espeak-ng" on PATH, or the bundled wrapper training/carry's tarball holds."""
    voice: str = "en-us"
    speed: int = 175
    """Words per minute (espeak-ng's default)."""
    threshold: float = 0.01
    """Trimming: a 256-sample block is speech where its peak exceeds this fraction of full scale."""
    margin_blocks: int = 4
    """Blocks (256 samples, 11.6 ms) of silence kept before the first and after the last speech."""

    def command(self) -> list[str]:
        return [self.espeak, "-v", self.voice, "-s", str(self.speed), "--stdout", "--stdin"]

    def speak(self, text: str) -> np.ndarray:
        """Speak ``text``; returns trimmed int16 samples at 22050 Hz."""
        try:
            done = subprocess.run(self.command(), input=text.encode(), capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TeacherError(f"Cannot run {self.espeak}: {exc}. Hint: bash training/fetch_espeak.sh, "
                               "then pass --espeak training/carry/espeak/espeak-ng (unpacked).") from exc
        if done.returncode != 0:
            raise TeacherError(f"{self.espeak} exited with {done.returncode} on {text[:60]!r}: "
                               f"{done.stderr.decode(errors='replace').strip()}")
        return trim(parse_wav(done.stdout), self.threshold, self.margin_blocks)


def parse_wav(data: bytes) -> np.ndarray:
    """A RIFF/WAVE byte string -> int16 samples, checking 22050 Hz mono 16-bit PCM.

    espeak-ng writing to stdout cannot seek back to fix the sizes, so the data chunk's
    size field may be a placeholder; the samples are whatever follows its header.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TeacherError(f"Not a WAV stream (starts {data[:12]!r}).")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = pos + 8
        if chunk == b"fmt ":
            fmt = data[body : body + 16]
        elif chunk == b"data":
            if fmt is None:
                raise TeacherError("WAV data chunk comes before its fmt chunk.")
            tag, channels = int.from_bytes(fmt[0:2], "little"), int.from_bytes(fmt[2:4], "little")
            rate, bits = int.from_bytes(fmt[4:8], "little"), int.from_bytes(fmt[14:16], "little")
            if (tag, channels, rate, bits) != (1, 1, SAMPLE_RATE, 16):
                raise TeacherError(f"espeak-ng wrote format {tag}, {channels} channel(s), {rate} Hz, {bits} bits. "
                                   f"Note: rtvoice's voices need PCM, 1 channel, {SAMPLE_RATE} Hz, 16 bits.")
            end = min(len(data), body + size)
            end -= (end - body) % 2
            return np.frombuffer(data[body:end], dtype="<i2").astype(np.int16)
        pos = body + size + (size % 2)
    raise TeacherError("WAV stream has no data chunk.")


def trim(samples: np.ndarray, threshold: float, margin_blocks: int, block: int = 256) -> np.ndarray:
    """Cut leading and trailing silence, keeping ``margin_blocks`` blocks of it on each side."""
    n = samples.size // block
    if n == 0:
        return samples
    peaks = np.abs(samples[: n * block].reshape(n, block).astype(np.int32)).max(axis=1)
    loud = np.flatnonzero(peaks > threshold * 32768)
    if loud.size == 0:
        return samples
    start = max(0, loud[0] - margin_blocks) * block
    stop = min(samples.size, (loud[-1] + 1 + margin_blocks) * block)
    return samples[start:stop]


def speak_many(job: tuple[Teacher, list[str]]) -> list[np.ndarray]:
    """Speak a list of sentences (one worker's share); picklable for multiprocessing."""
    teacher, texts = job
    return [teacher.speak(text) for text in texts]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.espeak", description=__doc__.split("\n\n")[0])
    p.add_argument("--espeak", default="espeak-ng", help="espeak-ng program (default: on PATH)")
    p.add_argument("--bench", type=int, default=100, help="sentences of the corpus to time")
    p.add_argument("--corpus", type=Path, default=Path(__file__).with_name("corpus.tsv"))
    args = p.parse_args(argv)
    teacher = Teacher(espeak=args.espeak)
    texts = [line.split("\t")[2] for line in args.corpus.read_text().splitlines()[1 : args.bench + 1]]
    start = time.perf_counter()
    clips = speak_many((teacher, texts))
    elapsed = time.perf_counter() - start
    seconds = sum(c.size for c in clips) / SAMPLE_RATE
    print(f"{len(texts)} sentences in {elapsed:.1f} s on one core: {1000 * elapsed / len(texts):.1f} ms each, "
          f"{seconds / len(texts):.2f} s of audio each (trimmed), {seconds / elapsed:.0f}x real time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
