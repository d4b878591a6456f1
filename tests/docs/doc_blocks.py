"""Reading the docs the way tests/docs checks them: code blocks, their markers, links, CLI lines.

The convention is written at the top of docs/development.md ("Examples in these docs are
tested"); this module is its one implementation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

SHELL = frozenset({"sh", "bash", "shell"})
PYTHON = frozenset({"python", "py"})
SKIP_REASONS = frozenset({"gpu", "sound-card", "network", "daemon", "slow", "fragment", "checkpoint",
                          "install", "self"})
MODES = frozenset({"run", "skip", "server", "mqtt"})

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)")
_MARKER = re.compile(r"^<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
_MARKER_BODY = re.compile(r"^(?:skip\s+(?P<reason>[a-z-]+)(?:\s+\(.*\))?|(?P<mode>server|mqtt))$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int
    """1-based line of the opening fence."""
    info: str
    text: str
    marker: str | None
    """The text of a ``<!-- doc-test: ... -->`` on the line before the fence, if any."""

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def language(self) -> str | None:
        if self.info in SHELL:
            return "sh"
        if self.info in PYTHON:
            return "python"
        return None

    @property
    def mode(self) -> str:
        """``run``, ``skip``, ``server`` or ``mqtt``; raises ValueError for a malformed marker."""
        if self.marker is None:
            return "run"
        match = _MARKER_BODY.match(self.marker)
        if match is None:
            raise ValueError(f"{self.name}: malformed marker '<!-- doc-test: {self.marker} -->'")
        if match["mode"]:
            return match["mode"]
        if match["reason"] not in SKIP_REASONS:
            raise ValueError(f"{self.name}: unknown skip reason {match['reason']!r}; "
                             f"one of {sorted(SKIP_REASONS)}")
        return "skip"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``; raises ValueError for a marker that precedes no fence."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        marker = _MARKER.match(lines[i])
        if marker and not (i + 1 < len(lines) and _FENCE.match(lines[i + 1])):
            raise ValueError(f"{page.relative_to(ROOT)}:{i + 1}: a doc-test marker must be on the line "
                             "right before a code fence")
        if not fence:
            i += 1
            continue
        ticks, info = fence.group(1), fence.group(2).lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.match(rf"^ {{0,3}}{ticks[0]}{{{len(ticks)},}}\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        previous = _MARKER.match(lines[start - 1]) if start > 0 else None
        found.append(Block(page, start + 1, info, "\n".join(body) + "\n", previous.group(1) if previous else None))
        i += 1
    return found


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in blocks(page)]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link's text only
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def _prose_lines(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line of a page outside code blocks and their fences."""
    inside: str | None = None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        fence = _FENCE.match(line)
        if fence:
            if inside is None:
                inside = fence.group(1)
            elif fence.group(1).startswith(inside) and not fence.group(2):
                inside = None
            continue
        if inside is None:
            yield number, line


def anchors(page: Path) -> set[str]:
    """Anchors of every heading of a page (outside code blocks), with GitHub's -1, -2 suffixes."""
    seen: dict[str, int] = {}
    for _, line in _prose_lines(page):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            anchor = github_anchor(heading.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            if count:
                seen[f"{anchor}-{count}"] = 1
    return set(seen)


def links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every relative Markdown link of a page, outside code blocks."""
    found: list[tuple[int, str]] = []
    for number, line in _prose_lines(page):
        prose = re.sub(r"`[^`]*`", "", line)
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: are not ours
                found.append((number, target))
    return found


_COMMAND = re.compile(r"(?<![\w/.$-])(?:(rtvoice|build_engines\.py)|python3? -m ([a-z_][\w.]*))(?=[ \t]|$)(.*)")
_NOT_OURS = frozenset({"pytest", "pip", "venv", "http.server", "json.tool"})
"""``python -m`` modules that are not this repository's commands."""
_SEPARATOR = re.compile(r"\s(?:\|\|?|&&?|[;<>])(?=\s|$)|;|\$\(|\s#")
"""Where one shell command ends; a '|' inside a synopsis (``NAME|INDEX``) has no spaces around it."""


@dataclass(frozen=True)
class Command:
    """One command line of this repository in a code block: the program and its words."""

    program: str
    """``rtvoice``, ``build_engines.py``, or the module of ``python -m MODULE``."""
    words: tuple[str, ...]
    """What follows the program, up to the end of the shell command; quoted strings blanked."""


def command_lines(block: Block) -> list[Command]:
    """Each rtvoice, build_engines.py or ``python -m`` command of this repository in a block.

    Only shell blocks and blocks with no language (synopses) hold command lines; ``text``,
    ``json`` and Python blocks show output or code. ``python -m rtvoice`` is ``rtvoice``.
    """
    if not (block.language == "sh" or block.info == ""):
        return []
    text = re.sub(r"\\\n", " ", block.text)  # continuation lines
    found: list[Command] = []
    for line in text.splitlines():
        for match in _COMMAND.finditer(line):
            program = match.group(1) or match.group(2)
            if program in _NOT_OURS:
                continue
            rest = _SEPARATOR.split(_strip_quoted(match.group(3)), maxsplit=1)[0]
            found.append(Command(program, tuple(rest.split())))
    return found


def flags(words: list[str] | tuple[str, ...]) -> list[str]:
    """The options among a command's words: ``--long`` ones, and ``-x`` short ones (``-vv`` is ``-v``)."""
    return _flags(" ".join(words))


def _flags(text: str) -> list[str]:
    """The options in a command's words: ``--long`` ones, and ``-x`` short ones (``-vv`` is ``-v``)."""
    long = re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text)
    short = [f"-{letter}" for letter in re.findall(r"(?<![\w-])-([a-zA-Z])[a-zA-Z]*(?![\w-])", text)]
    return long + short


def _strip_quoted(text: str) -> str:
    """Blank out quoted strings, so text inside them is not read as flags or separators."""
    return re.sub(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"", "''", text)
