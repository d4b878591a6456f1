"""MQTT-triggered announcements: ``rtvoice mqtt`` as a library.

``async with Announcer(voice, AnnouncerConfig(BrokerSettings.from_url(url))) as a:``
serves ``<prefix>say`` / ``<prefix>cancel`` (and Rhasspy Hermes ``hermes/tts/say``),
speaks one announcement at a time by priority, and publishes status events and audio.
See docs/mqtt.md for the topics and payloads.
"""

from .announcer import Announcer
from .config import AnnouncerConfig, BrokerSettings, Topics
from .errors import ConfigError, MessageError, Reason
from .messages import Announcement, Priority
from .sinks import LocalPlayback, NullSink, Sink, local_playback

__all__ = [
    "Announcement",
    "Announcer",
    "AnnouncerConfig",
    "BrokerSettings",
    "ConfigError",
    "LocalPlayback",
    "MessageError",
    "NullSink",
    "Priority",
    "Reason",
    "Sink",
    "Topics",
    "local_playback",
]
