"""The SSML subset people ask for, parsed safely into segments the synthesizer speaks in order.

Accepted: ``<speak>``, ``<p>``, ``<s>``, ``<break time|strength>``, ``<prosody rate volume>``,
``<say-as interpret-as="characters|cardinal|ordinal|digits|date|time|telephone">``,
``<sub alias>`` and ``<emphasis>`` (read as plain text). ``<phoneme>``, ``<lang>``,
``<voice>``, ``<w>``, ``<token>``, ``<mark>`` and ``<audio>`` are read for their text
content (the fallback SSML itself defines), so no text goes unspoken; anything else is
refused, naming the element and its line and column.

Safety: SSML arrives from network clients. The XML is parsed by defusedxml with document
type declarations refused outright, so entity expansion ("billion laughs") and external
entities or DTDs (file and network reads) never happen; the document is bounded by the
voice's text limit before parsing, and nesting by :class:`~rtvoice.config.SsmlConfig`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from .config import RATE_RANGE, SSML, VOLUME_RANGE, SsmlConfig
from .errors import SsmlError
from .ssml_sayas import INTERPRETATIONS, SayAsError, say_as

__all__ = ["Break", "Segment", "Speech", "is_ssml", "parse"]

_LEADING_SPEAK: Final = re.compile(r"\s*(?:<speak[\s>/]|<\?xml[\s?]|<!DOCTYPE\s)")
_CONTENT_ONLY: Final = frozenset({"phoneme", "lang", "voice", "w", "token", "mark", "audio"})
_TIME: Final = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s)\s*")


@dataclass(frozen=True)
class Speech:
    """Text to speak, with its rate and volume as factors of the request's."""

    text: str
    rate: float = 1.0
    volume: float = 1.0
    continues: bool = False
    """Goes on the sentence before it (a ``<prosody>`` inside a sentence): no pause between."""


@dataclass(frozen=True)
class Break:
    """Silence between the speech around it, replacing the usual sentence pause."""

    seconds: float
    explicit: bool = True
    """False for the pause after a paragraph, which is dropped at the end of the document."""


Segment = Speech | Break


def is_ssml(text: str) -> bool:
    """True when ``text`` starts with ``<speak``, an XML declaration or a DOCTYPE.

    An XML prologue counts too, so that a document with a DTD is parsed (and refused)
    rather than read aloud as text.
    """
    return _LEADING_SPEAK.match(text) is not None


@dataclass
class _Node:
    tag: str
    attrib: dict[str, str]
    line: int
    column: int
    children: list[_Node | str]


class _Builder:
    """An expat target that keeps each element's position, for errors that point at it."""

    def __init__(self, config: SsmlConfig) -> None:
        self.parser: DefusedXMLParser | None = None
        self.stack: list[_Node] = []
        self.root: _Node | None = None
        self.max_depth = config.max_depth

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        assert self.parser is not None
        expat = self.parser.parser
        node = _Node(tag.rsplit("}", 1)[-1], dict(attrib), expat.CurrentLineNumber, expat.CurrentColumnNumber + 1,
                     [])
        if len(self.stack) >= self.max_depth:
            raise SsmlError(f"SSML nests deeper than {self.max_depth} elements at line {node.line}, column "
                            f"{node.column}.", line=node.line, column=node.column)
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node
        self.stack.append(node)

    def end(self, _tag: str) -> None:
        self.stack.pop()

    def data(self, text: str) -> None:
        if self.stack:
            self.stack[-1].children.append(text)

    def close(self) -> _Node | None:
        return self.root


def _parse_xml(text: str, config: SsmlConfig) -> _Node:
    builder = _Builder(config)
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder.parser = parser
    try:
        parser.feed(text)
        root: _Node | None = parser.close()
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":", 1)[0]
        raise SsmlError(f"Malformed SSML at line {line}, column {column + 1}: {reason}.", line=line,
                        column=column + 1) from None
    except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800") that no XML can carry
        raise SsmlError(f"SSML is not valid Unicode (a lone surrogate at offset {exc.start}).") from None
    except DefusedXmlException as exc:
        raise SsmlError(f"SSML refused: it declares a DTD or entities ({type(exc).__name__}), which could expand "
                        "without bound or read files; send SSML without <!DOCTYPE>.") from None
    if root is None:
        raise SsmlError("SSML has no <speak> element.")
    return root


def _where(node: _Node) -> str:
    return f"at line {node.line}, column {node.column}"


def _duration(node: _Node, config: SsmlConfig) -> float:
    strengths = dict(config.break_strengths_s)
    time, strength = node.attrib.get("time"), node.attrib.get("strength")
    if time is not None:
        m = _TIME.fullmatch(time)
        if m is None:
            raise SsmlError(f"<break time={time[:20]!r}> {_where(node)}: give a time like '500ms' or '1.5s'.",
                            line=node.line, column=node.column)
        seconds = float(m[1]) / (1000.0 if m[2] == "ms" else 1.0)
        if seconds > config.max_break_s:
            raise SsmlError(f"<break time={time!r}> {_where(node)} is longer than {config.max_break_s:g} s.",
                            line=node.line, column=node.column)
        return seconds
    if strength is not None:
        if strength not in strengths:
            raise SsmlError(f"<break strength={strength[:20]!r}> {_where(node)}: use one of "
                            f"{', '.join(strengths)}.", line=node.line, column=node.column)
        return strengths[strength]
    return strengths["medium"]


def _factor(node: _Node, name: str, names: dict[str, float], bounds: tuple[float, float]) -> float:
    """``<prosody rate|volume>`` as a factor: a word, "150%", "+10%", "1.5", or for volume "+6dB"."""
    value = node.attrib.get(name)
    if value is None:
        return 1.0
    text = value.strip().lower()
    factor: float | None = names.get(text)
    if factor is None:
        m = re.fullmatch(r"([+-]?)(\d+(?:\.\d+)?)\s*(%|db)?", text)
        if m is not None:
            number = float(m[2])
            if m[3] == "db" and name == "volume":
                factor = 10 ** ((-number if m[1] == "-" else number) / 20)
            elif m[3] == "%":
                factor = 1 + (-number if m[1] == "-" else number) / 100 if m[1] else number / 100
            elif m[3] is None and not m[1]:
                factor = number
    low, high = bounds
    if factor is None or not math.isfinite(factor) or not low <= factor <= high:
        words = ", ".join(names)
        raise SsmlError(f"<prosody {name}={value[:20]!r}> {_where(node)}: use {words}, a percentage or a factor "
                        f"from {low:g} to {high:g}" + (", or a change in dB" if name == "volume" else "") + ".",
                        line=node.line, column=node.column)
    return factor


class _Walker:
    """Turns the element tree into segments: text runs with one prosody, and breaks."""

    def __init__(self, config: SsmlConfig) -> None:
        self.config = config
        self.segments: list[Segment] = []
        self.buffer: list[str] = []
        self.rate = 1.0
        self.volume = 1.0
        self.joined = False
        self.silence = 0.0

    def flush(self, boundary: bool) -> None:
        """Emit the text gathered so far; ``boundary``: what follows starts a new sentence."""
        text = " ".join("".join(self.buffer).split())
        self.buffer = []
        if text:
            self.segments.append(Speech(text, self.rate, self.volume, self.joined))
            self.joined = True
        if boundary:
            self.joined = False

    def walk(self, node: _Node) -> None:
        tag = node.tag
        if tag in ("speak", "emphasis") or tag in _CONTENT_ONLY:
            self.children(node)
        elif tag in ("p", "s"):
            self.flush(True)
            self.children(node)
            self.flush(True)
            if tag == "p":
                self.segments.append(Break(self.config.paragraph_pause_s, explicit=False))
        elif tag == "break":
            self.flush(False)
            seconds = _duration(node, self.config)
            self.silence += seconds
            if self.silence > self.config.max_breaks_s:
                raise SsmlError(f"SSML asks for more than {self.config.max_breaks_s:g} s of breaks in all "
                                f"({_where(node)}).", line=node.line, column=node.column)
            self.segments.append(Break(seconds))
        elif tag == "prosody":
            rate = _factor(node, "rate", dict(self.config.rate_names), RATE_RANGE)
            volume = _factor(node, "volume", dict(self.config.volume_names), VOLUME_RANGE)
            self.flush(False)
            outer = self.rate, self.volume
            self.rate, self.volume = self.rate * rate, self.volume * volume
            self.children(node)
            self.flush(False)
            self.rate, self.volume = outer
        elif tag == "say-as":
            self.say_as(node)
        elif tag == "sub":
            alias = node.attrib.get("alias")
            if alias is None:
                raise SsmlError(f"<sub> {_where(node)} needs an alias attribute.", line=node.line, column=node.column)
            self.buffer.append(f" {alias} ")
        else:
            raise SsmlError(f"Unsupported SSML element <{tag}> {_where(node)}. Supported: speak, p, s, break, "
                            "prosody, say-as, sub, emphasis.", line=node.line, column=node.column)

    def children(self, node: _Node) -> None:
        for child in node.children:
            if isinstance(child, str):
                self.buffer.append(child)
            else:
                self.walk(child)

    def say_as(self, node: _Node) -> None:
        kind = node.attrib.get("interpret-as", "")
        if kind not in INTERPRETATIONS:
            raise SsmlError(f"<say-as interpret-as={kind[:20]!r}> {_where(node)}: use one of "
                            f"{', '.join(INTERPRETATIONS)}.", line=node.line, column=node.column)
        if any(not isinstance(c, str) for c in node.children):
            raise SsmlError(f"<say-as> {_where(node)} must contain only text.", line=node.line, column=node.column)
        content = "".join(c for c in node.children if isinstance(c, str))
        try:
            words = say_as(kind, content, node.attrib.get("format"))
        except SayAsError as exc:
            raise SsmlError(f"<say-as interpret-as={kind!r}> {_where(node)}: {exc}.", line=node.line,
                            column=node.column) from None
        self.buffer.append(f" {words} ")


def parse(text: str, config: SsmlConfig = SSML) -> list[Segment]:
    """Parse an SSML document into speech and break segments, in order.

    Raises:
        SsmlError: malformed XML (with its line and column), a DTD or entity declaration,
            an unsupported element or attribute value, or a root other than ``<speak>``.
    """
    root = _parse_xml(text, config)
    if root.tag != "speak":
        raise SsmlError(f"The SSML root element is <{root.tag}> {_where(root)}; it must be <speak>.",
                        line=root.line, column=root.column)
    walker = _Walker(config)
    walker.walk(root)
    walker.flush(True)
    return walker.segments
