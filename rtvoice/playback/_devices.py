"""Output devices through sounddevice (PortAudio): listing, choosing, rate negotiation, opening.

This is the only module of rtvoice that imports ``sounddevice``. It is imported lazily, so
``import rtvoice`` works on machines without PortAudio, and every failure of PortAudio
becomes an :class:`~rtvoice.errors.AudioDeviceError` with a hint.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..errors import AudioDeviceError

log = logging.getLogger("rtvoice.playback")

FALLBACK_RATES = (48000, 44100)
"""Rates tried, after the voice's and the device's default, for a device that refuses both."""


@dataclass(frozen=True)
class OutputDevice:
    """One PortAudio device that can play audio."""

    index: int
    """PortAudio's index, valid until PortAudio is re-initialised (see :func:`rescan_devices`)."""
    name: str
    hostapi: str
    """The host API (ALSA, JACK, PulseAudio, Core Audio, WASAPI...)."""
    max_channels: int
    default_rate: float
    """The rate the device prefers, in Hz; the fallback when it refuses the voice's rate."""
    is_default: bool

    def __str__(self) -> str:
        return f"{self.index}: {self.name} ({self.hostapi})"


def sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing Python package or PortAudio library into our error."""
    try:
        sd = importlib.import_module("sounddevice")
    except ImportError as exc:
        raise AudioDeviceError(
            "Playback needs the sounddevice package. Hint: pip install 'sounddevice>=0.5,<0.6'."
        ) from exc
    except OSError as exc:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise AudioDeviceError(
            f"The PortAudio library could not be loaded: {exc}. "
            "Hint: install it (Debian/Ubuntu: apt-get install libportaudio2; Fedora: dnf install portaudio)."
        ) from exc
    return sd


def list_output_devices() -> list[OutputDevice]:
    """Every device PortAudio can play on, in PortAudio's order.

    Raises:
        AudioDeviceError: PortAudio is not installed or cannot enumerate devices.
    """
    sd = sounddevice()
    try:
        devices: list[dict[str, Any]] = list(sd.query_devices())
        hostapis: list[dict[str, Any]] = list(sd.query_hostapis())
        default = _default_output_index(sd)
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"PortAudio could not list the audio devices: {exc}") from exc
    return [
        OutputDevice(i, str(d["name"]), str(hostapis[d["hostapi"]]["name"]), int(d["max_output_channels"]),
                     float(d["default_samplerate"]), i == default)
        for i, d in enumerate(devices)
        if d["max_output_channels"] > 0
    ]


def _default_output_index(sd: ModuleType) -> int:
    index = sd.default.device[1]
    if index is None or (isinstance(index, int) and index < 0):
        return -1
    try:
        return int(sd.query_devices(index)["index"])
    except (ValueError, sd.PortAudioError):
        return -1


def resolve_output_device(spec: str | int | None) -> OutputDevice:
    """Find the device named by ``--audio-device``.

    Args:
        spec: ``None`` for the system default; an index (int, or a string of digits); or a
            name: an exact (case-insensitive) name wins, otherwise a unique substring.

    Raises:
        AudioDeviceError: there is no output device, or none / several match ``spec``.
    """
    outputs = list_output_devices()
    if not outputs:
        raise AudioDeviceError(
            "No audio output device found. Note: PortAudio sees no device that can play. "
            "Hint: check that a sound card or a sound server (PulseAudio, PipeWire) is available to this "
            "user (aplay -l lists ALSA cards), then run: rtvoice devices."
        )
    listing = "; ".join(str(d) for d in outputs)
    if spec is None:
        default = [d for d in outputs if d.is_default]
        if default:
            return default[0]
        log.warning("no default output device; using %s", outputs[0])
        return outputs[0]
    text = str(spec).strip()
    if text.isdigit():
        matches = [d for d in outputs if d.index == int(text)]
        if not matches:
            raise AudioDeviceError(f"No output device has index {text}. Note: the outputs are {listing}. "
                                   "Hint: rtvoice devices lists them.")
        return matches[0]
    exact = [d for d in outputs if d.name.lower() == text.lower()]
    if exact:
        return exact[0]
    matches = [d for d in outputs if text.lower() in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AudioDeviceError(f"No output device matches {text!r}. Note: the outputs are {listing}. "
                               "Hint: pass a name or an index from: rtvoice devices.")
    raise AudioDeviceError(f"{len(matches)} output devices match {text!r}: "
                           f"{'; '.join(str(d) for d in matches)}. Hint: pass the index or the full name.")


RateCheck = Callable[[int, int, int], None]
"""``check(device_index, rate, channels)`` raises when the device refuses the rate."""


def negotiate_rate(device: OutputDevice, wanted: int, channels: int, check: RateCheck,
                   forced: int | None = None) -> int:
    """The rate to open ``device`` at: the voice's own if the device takes it, else a rate it does.

    Why: playing at the voice's rate avoids resampling; a device that refuses it (many USB
    and HDMI outputs take only 44.1/48 kHz) gets audio resampled by soxr, which sounds better
    than the linear resampler some host APIs would otherwise apply.

    Args:
        device: the output device.
        wanted: the voice's sample rate, in Hz.
        channels: channels the stream will be opened with.
        check: tests one rate (see :data:`RateCheck`); PortAudio's in :func:`open_stream`.
        forced: open at exactly this rate (refusal is then an error, not a fallback).

    Raises:
        AudioDeviceError: the device refuses every candidate rate.
    """
    candidates = [forced] if forced is not None else [wanted, round(device.default_rate), *FALLBACK_RATES]
    refused: list[str] = []
    for rate in dict.fromkeys(candidates):
        try:
            check(device.index, rate, channels)
        except (AudioDeviceError, ValueError) as exc:
            refused.append(f"{rate} Hz ({exc})")
            continue
        if rate != wanted:
            log.info("%s refuses %d Hz; playing at %d Hz, resampled with soxr", device, wanted, rate)
        return rate
    raise AudioDeviceError(
        f"Audio device {device.name!r} refuses the sample rate. Note: tried {'; '.join(refused)}. "
        "Hint: pick another device with --audio-device (rtvoice devices lists them), or use a sound "
        "server's device (pulse, pipewire, default), which converts rates."
    )


def portaudio_check(device: int, rate: int, channels: int) -> None:
    """PortAudio's own test of a rate (a :data:`RateCheck`)."""
    sd = sounddevice()
    try:
        sd.check_output_settings(device=device, samplerate=rate, channels=channels, dtype="float32")
    except sd.PortAudioError as exc:
        raise AudioDeviceError(str(exc)) from exc


def open_stream(device: OutputDevice, rate: int, channels: int, callback: Callable[..., None],
                finished: Callable[[], None]) -> Any:
    """Open and start a float32 callback stream; returns the started ``sounddevice.OutputStream``.

    Raises:
        AudioDeviceError: PortAudio could not open or start the device.
    """
    sd = sounddevice()
    stream = None
    try:
        stream = sd.OutputStream(device=device.index, samplerate=rate, channels=channels, dtype="float32",
                                 callback=callback, finished_callback=finished)
        stream.start()
    except (sd.PortAudioError, ValueError) as exc:
        if stream is not None:
            stream.close(ignore_errors=True)
        raise AudioDeviceError(
            f"Could not open audio device {device}: {exc}. Note: {rate} Hz, {channels} channel(s), float32. "
            "Hint: is it in use by another program, or gone? rtvoice devices lists what is there now."
        ) from exc
    return stream


def close_stream(stream: Any, device: OutputDevice, play_out: bool) -> None:
    """Stop and close a stream from :func:`open_stream`. Never raises: a failure is logged.

    Args:
        stream: the stream.
        device: its device, for the log.
        play_out: let the device play what it already holds (``stop``) rather than drop it
            (``abort``); only for a device that is still alive.
    """
    sd = sounddevice()
    try:
        if play_out:
            stream.stop(ignore_errors=False)
        else:
            stream.abort(ignore_errors=True)
    except sd.PortAudioError as exc:  # cleanup goes on; the failure is logged, not hidden
        log.warning("stopping the stream on %s failed: %s", device, exc)
    finally:
        stream.close(ignore_errors=True)


def rescan_devices() -> None:
    """Re-initialise PortAudio so that devices plugged in (or out) since start-up are seen.

    Only call this while no stream is open. It uses sounddevice's private ``_terminate`` /
    ``_initialize``, the documented way to refresh its device list (sounddevice issue #125).
    """
    sd = sounddevice()
    sd._terminate()
    sd._initialize()
