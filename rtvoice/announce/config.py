"""Settings of the MQTT announcer, as frozen data: the broker connection and the daemon.

:class:`BrokerSettings` says how to reach the broker (``mqtt://`` or ``mqtts://`` URL,
credentials, MQTT version, session). :class:`AnnouncerConfig` says what the daemon does
(topic prefix, Hermes, worker group, audio publishing, limits). :class:`Topics` derives
every topic name from them, in one place.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

from ..config import SynthesisConfig
from .errors import ConfigError

DEFAULT_PREFIX: Final = "rtvoice/"
DEFAULT_PORTS: Final = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}
Protocol = Literal["5", "3.1.1"]
AudioFormat = Literal["wav", "parts"]


def default_client_id() -> str:
    """``rtvoice-<host>-<pid>``: unique per process, stable across its reconnections."""
    return f"rtvoice-{socket.gethostname()[:32]}-{os.getpid()}"


def _check_topic_level(value: str, option: str) -> None:
    if not value or any(c in value for c in "/+#\0"):
        raise ConfigError(f"{option} {value!r} must be one non-empty MQTT topic level (no '/', '+', '#').",
                          option=option)


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and how to hold a session with it."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    """Connect with TLS, verifying the broker against the system CAs (or ``tls_ca_file``)."""
    tls_ca_file: str | None = None
    client_id: str = field(default_factory=default_client_id)
    """The MQTT client id; the broker keeps this client's session (subscriptions and
    queued QoS 1 messages) under it while the daemon is disconnected."""
    protocol: Protocol = "5"
    keepalive_s: int = 30
    session_expiry_s: int = 3600
    """MQTT 5: how long the broker keeps the session after a disconnection. (MQTT 3.1.1
    sessions without clean-session never expire unless the broker is told to.)"""
    reconnect_min_s: float = 0.5
    """First delay before reconnecting; it doubles per failed attempt (with jitter)."""
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("The broker host is empty.", option="--broker")
        if not 0 < self.port < 65536:
            raise ConfigError(f"Broker port {self.port} is out of range.", option="--broker")
        if self.protocol not in ("5", "3.1.1"):
            raise ConfigError(f"MQTT protocol must be '5' or '3.1.1', not {self.protocol!r}.", option="--protocol")
        if not self.client_id:
            raise ConfigError("The MQTT client id is empty.", option="--client-id")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ConfigError("Reconnect delays must satisfy 0 < min <= max.", option="reconnect")

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> BrokerSettings:
        """Parse ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS, port 8883).

        Args:
            url: The broker URL; a bare ``host[:port]`` is read as ``mqtt://``.
            **overrides: Fields that replace what the URL says (e.g. ``username`` given
                separately, ``tls=True``); ``None`` values are ignored.

        Raises:
            ConfigError: The URL has an unknown scheme, a bad port or no host.
        """
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in DEFAULT_PORTS:
            raise ConfigError(f"Broker URL {url!r} has scheme {parts.scheme!r}. Hint: use mqtt://HOST:PORT "
                              "or mqtts://HOST:PORT.", option="--broker")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise ConfigError(f"Broker URL {url!r} has a bad port: {exc}.", option="--broker") from exc
        if parts.path not in ("", "/") or parts.query:
            raise ConfigError(f"Broker URL {url!r} has a path or query; only mqtt://HOST:PORT is understood.",
                              option="--broker")
        values: dict[str, Any] = {
            "host": parts.hostname or "",
            "port": port,
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "tls": parts.scheme in ("mqtts", "ssl"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def describe(self) -> str:
        """``mqtt[s]://host:port`` without credentials, for logs."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class AnnouncerConfig:
    """What the announcement daemon does; see the README section "MQTT announcements" for the topics."""

    broker: BrokerSettings
    prefix: str = DEFAULT_PREFIX
    """Topic prefix of the native API, ending in ``/``."""
    group: str | None = None
    """Share ``say`` topics with other workers of this name (MQTT shared subscriptions):
    each announcement goes to one worker of the group."""
    hermes: bool = False
    """Also serve Rhasspy Hermes ``hermes/tts/say``."""
    site_ids: tuple[str, ...] = ()
    """The Hermes ``siteId`` values served; empty serves every site, as Rhasspy's own
    services do. A request for a site not listed is left to another service."""
    publish_audio: bool = False
    """Publish each native announcement's audio to ``<prefix>audio/<id>`` even when it is
    played locally. (Without an audible sink it is always published.)"""
    audio_format: AudioFormat = "wav"
    """``wav``: one WAV message on ``<prefix>audio/<id>`` (up to ``max_wav_bytes``).
    ``parts``: WAV parts on ``<prefix>audio/<id>/<n>`` as the audio is synthesized, then
    a JSON summary on ``<prefix>audio/<id>/end``; memory stays flat however long it is."""
    max_wav_bytes: int = 8 * 1024 * 1024
    """The largest single WAV message (about 190 s of 22.05 kHz audio). Longer native
    audio is published as parts instead; the ``finished`` event says which was done."""
    audio_part_bytes: int = 256 * 1024
    """Size of one part (about 6 s of 22.05 kHz audio; at most ``max_wav_bytes``); the
    last part may be shorter."""
    refusal_log_burst: int = 10
    """Refused messages logged (one line each) per ``refusal_log_window_s``; beyond that,
    one summary line per window counts those not logged (every one is still answered)."""
    refusal_log_window_s: float = 60.0
    synthesis: SynthesisConfig = SynthesisConfig()
    """Per-request synthesis settings used for every announcement."""
    max_payload_bytes: int = 64 * 1024
    """Larger ``say`` payloads are refused (``payload_too_large``) before decoding."""
    max_queued: int = 256
    """Announcements waiting to be spoken (besides the one being spoken; at least 1); more are refused
    (``queue_full``) when they arrive, so a publisher in a loop cannot grow the daemon's
    memory without bound or push everyone else's announcements back for ever."""
    shutdown_grace_s: float = 10.0
    """On shutdown, how long the announcement being spoken may take to finish before it
    is stopped (and reported ``failed`` with reason ``shutdown``)."""
    flush_timeout_s: float = 5.0
    """On shutdown, how long to wait for queued events to reach the broker."""
    requeue_interrupted: bool = True
    """An announcement interrupted by an urgent one is spoken again, from the start,
    ahead of its priority tier; otherwise it fails with reason ``interrupted``."""
    hermes_play_finished_extra_s: float = 0.25
    """Hermes without local playback waits for ``playFinished`` up to the audio's
    duration plus this, as Rhasspy's own TTS services do."""
    keep_session: bool = False
    """On shutdown, keep the broker session's subscriptions, so that announcements published
    while the daemon is stopped are spoken when it comes back with the same client id
    (within ``session_expiry_s``). Ignored in a group, whose other workers take over."""
    max_outbox_bytes: int = 32 * 1024 * 1024
    """While disconnected, outgoing messages wait in memory; beyond this size the oldest
    audio payloads are dropped (events never are)."""

    def __post_init__(self) -> None:
        if not self.prefix.endswith("/") or any(c in self.prefix for c in "+#\0") or self.prefix.startswith("$"):
            raise ConfigError(f"Topic prefix {self.prefix!r} must end with '/' and contain no wildcards.",
                              option="--prefix")
        if self.group is not None:
            _check_topic_level(self.group, "--group")
            _check_topic_level(self.broker.client_id, "--client-id")  # it names the worker's status topic
        for site in self.site_ids:
            _check_topic_level(site, "--site-id")
        if self.max_payload_bytes < 1 or self.shutdown_grace_s < 0 or self.flush_timeout_s < 0:
            raise ConfigError("Limits and timeouts must not be negative.")
        if self.max_queued < 1:
            raise ConfigError(f"max_queued (--max-queued) must be at least 1, got {self.max_queued}.",
                              option="--max-queued")
        if self.audio_format not in ("wav", "parts"):
            raise ConfigError(f"Audio format must be 'wav' or 'parts', not {self.audio_format!r}.",
                              option="--audio-format")
        if self.audio_part_bytes < 1024 or self.max_wav_bytes < 1024:
            raise ConfigError("Audio parts and WAV messages must be allowed 1 KiB at least.", option="--max-wav-mb")
        if self.refusal_log_burst < 1 or self.refusal_log_window_s <= 0:
            raise ConfigError("The refusal log needs a burst >= 1 and a window > 0.")

    @property
    def default_site(self) -> str:
        """The ``siteId`` of an answer to a Hermes request whose own could not be read."""
        return self.site_ids[0] if self.site_ids else "default"

    def with_broker(self, **changes: Any) -> AnnouncerConfig:
        """A copy with some broker settings changed (tests, the CLI)."""
        return replace(self, broker=replace(self.broker, **changes))


@dataclass(frozen=True)
class Topics:
    """Every topic the announcer uses, derived from its config."""

    prefix: str
    worker: str
    group: str | None = None

    @classmethod
    def of(cls, config: AnnouncerConfig) -> Topics:
        return cls(config.prefix, config.broker.client_id, config.group)

    def shared(self, topic: str) -> str:
        """``topic`` as this worker subscribes to it: ``$share/<group>/topic`` in a group."""
        return f"$share/{self.group}/{topic}" if self.group else topic

    @property
    def say(self) -> str:
        return f"{self.prefix}say"

    @property
    def cancel(self) -> str:
        return f"{self.prefix}cancel"

    @property
    def status(self) -> str:
        """Retained ``online``/``offline`` (the Last Will); one per worker in a group."""
        return f"{self.prefix}status/{self.worker}" if self.group else f"{self.prefix}status"

    def event(self, kind: str) -> str:
        return f"{self.prefix}{kind}"

    def audio(self, announcement_id: str) -> str:
        return f"{self.prefix}audio/{announcement_id}"

    def audio_part(self, announcement_id: str, part: int | str) -> str:
        """``<prefix>audio/<id>/<n>`` (n = 0, 1, ...), and ``<prefix>audio/<id>/end`` after the last."""
        return f"{self.prefix}audio/{announcement_id}/{part}"
