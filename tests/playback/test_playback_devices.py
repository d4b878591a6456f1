"""Choosing a device and a rate, without PortAudio (issue #4).

The real PortAudio path is exercised by test_playback_stream.py and test_playback_cli.py;
here the device list and the rate check are stand-ins, so every branch runs.
"""

from __future__ import annotations

import pytest

from rtvoice.errors import AudioDeviceError
from rtvoice.playback import OutputDevice, _devices
from rtvoice.playback._devices import negotiate_rate, resolve_output_device

USB = OutputDevice(3, "USB Audio: Headset (hw:1,0)", "ALSA", 2, 48000.0, False)
HDMI = OutputDevice(5, "HDA Intel HDMI: 0 (hw:0,3)", "ALSA", 8, 44100.0, False)
PULSE = OutputDevice(7, "pulse", "ALSA", 32, 44100.0, True)


@pytest.fixture
def outputs(monkeypatch: pytest.MonkeyPatch) -> list[OutputDevice]:
    devices = [USB, HDMI, PULSE]
    monkeypatch.setattr(_devices, "list_output_devices", lambda: devices)
    return devices


@pytest.mark.parametrize(("spec", "expected"), [
    (None, PULSE), ("5", HDMI), (3, USB), ("pulse", PULSE), ("PULSE", PULSE), ("headset", USB), (" hdmi ", HDMI),
])
def test_resolve(outputs: list[OutputDevice], spec: str | int | None, expected: OutputDevice) -> None:
    assert resolve_output_device(spec) == expected


def test_exact_name_beats_substrings(outputs: list[OutputDevice]) -> None:
    outputs.append(OutputDevice(9, "pulse monitor", "ALSA", 2, 44100.0, False))
    assert resolve_output_device("pulse") == PULSE


def test_unknown_name_lists_the_outputs(outputs: list[OutputDevice]) -> None:
    with pytest.raises(AudioDeviceError, match=r"No output device matches 'speakers'.*3: USB Audio.*rtvoice devices"):
        resolve_output_device("speakers")


def test_unknown_index(outputs: list[OutputDevice]) -> None:
    with pytest.raises(AudioDeviceError, match="No output device has index 4"):
        resolve_output_device("4")


def test_ambiguous_name(outputs: list[OutputDevice]) -> None:
    with pytest.raises(AudioDeviceError, match=r"2 output devices match 'hw:'.*index or the full name"):
        resolve_output_device("hw:")


def test_no_output_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_devices, "list_output_devices", lambda: [])
    with pytest.raises(AudioDeviceError, match="No audio output device found.*Hint"):
        resolve_output_device(None)


def test_no_default_takes_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_devices, "list_output_devices", lambda: [USB, HDMI])
    assert resolve_output_device(None) == USB


def accepting(*rates: int) -> _devices.RateCheck:
    def check(device: int, rate: int, channels: int) -> None:
        if rate not in rates:
            raise AudioDeviceError("Invalid sample rate")
    return check


def test_the_voice_rate_when_the_device_takes_it() -> None:
    assert negotiate_rate(USB, 22050, 2, accepting(22050, 48000)) == 22050


def test_the_device_default_when_it_refuses_the_voice_rate() -> None:
    assert negotiate_rate(USB, 22050, 2, accepting(48000)) == 48000
    assert negotiate_rate(HDMI, 22050, 2, accepting(48000, 44100)) == 44100


def test_common_rates_when_even_the_default_is_refused() -> None:
    odd = OutputDevice(1, "odd", "ALSA", 2, 96000.0, False)
    assert negotiate_rate(odd, 22050, 2, accepting(44100)) == 44100


def test_every_rate_refused_is_a_clear_error() -> None:
    refused = r"refuses the sample rate.*22050 Hz \(Invalid.*48000 Hz.*44100 Hz.*Hint"
    with pytest.raises(AudioDeviceError, match=refused):
        negotiate_rate(USB, 22050, 2, accepting())


def test_a_forced_rate_is_not_negotiated() -> None:
    assert negotiate_rate(USB, 22050, 2, accepting(22050, 48000), forced=48000) == 48000
    with pytest.raises(AudioDeviceError, match="32000 Hz"):
        negotiate_rate(USB, 22050, 2, accepting(22050), forced=32000)
