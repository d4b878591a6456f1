"""Live playback through PortAudio (sounddevice), with soxr resampling when a device needs it.

This is the only package of rtvoice that imports ``sounddevice`` and ``soxr``, and it imports
them lazily: ``import rtvoice.playback`` works without PortAudio; using a device then raises
:class:`~rtvoice.errors.AudioDeviceError` with the install hint.

- :func:`play_chunks` wraps a chunk iterator (``rtvoice say --play``).
- :class:`Player` is the output stream itself: ``write``/``awrite`` with backpressure,
  ``drain``/``adrain``, ``flush`` for barge-in, :class:`PlaybackStats` with underruns.
- :func:`list_output_devices` / :func:`resolve_output_device` (``rtvoice devices``,
  ``--audio-device NAME|INDEX``).
"""

from ._devices import OutputDevice, list_output_devices, rescan_devices, resolve_output_device
from ._play import play_chunks
from ._player import MAX_VOLUME, PlaybackStats, Player

__all__ = [
    "MAX_VOLUME",
    "OutputDevice",
    "PlaybackStats",
    "Player",
    "list_output_devices",
    "play_chunks",
    "rescan_devices",
    "resolve_output_device",
]
