"""Reading the docs the way tests/docs checks them: code blocks, their markers, links, CLI lines.

The convention is written at the top of docs/development.md ("Examples in these docs are
tested"); this module is its one implementation.
"""

from __future__ import annotations

import re
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


def anchors(page: Path) -> set[str]:
    """Anchors of every heading of a page (outside code blocks), with GitHub's -1, -2 suffixes."""
    seen: dict[str, int] = {}
    inside: str | None = None
    for line in page.read_text(encoding="utf-8").splitlines():
        fence = _FENCE.match(line)
        if fence:
            if inside is None:
                inside = fence.group(1)
            elif fence.group(1).startswith(inside) and not fence.group(2):
                inside = None
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if inside is None and heading:
            anchor = github_anchor(heading.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            if count:
                seen[f"{anchor}-{count}"] = 1
    return set(seen)


def links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every relative Markdown link of a page, outside code blocks."""
    found: list[tuple[int, str]] = []
    inside: str | None = None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        fence = _FENCE.match(line)
        if fence:
            if inside is None:
                inside = fence.group(1)
            elif fence.group(1).startswith(inside) and not fence.group(2):
                inside = None
            continue
        if inside is not None:
            continue
        prose = re.sub(r"`[^`]*`", "", line)
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: are not ours
                found.append((number, target))
    return found


_COMMAND = re.compile(r"(?<![\w/.$-])(rtvoice|build_engines\.py)(?=[ \t]|$)(.*)")
_SEPARATOR = re.compile(r"\s(?:\|\|?|&&?|[;<>])(?=\s|$)|;|\$\(|\s#")
"""Where one shell command ends; a '|' inside a synopsis (``NAME|INDEX``) has no spaces around it."""


def command_lines(block: Block) -> list[tuple[str, str | None, list[str]]]:
    """(program, subcommand, --flags) of each rtvoice or build_engines.py command in a block.

    ``program`` is ``rtvoice`` or ``build_engines.py``; ``subcommand`` is None for options
    of the program itself (``rtvoice -v``, ``rtvoice --version``, every ``build_engines.py``
    line). Short options count too: ``-o`` must be in the help as much as ``--out``.
    Python blocks are skipped: their strings are not command lines.
    """
    if block.language == "python":
        return []
    text = re.sub(r"\\\n", " ", block.text)  # continuation lines
    found: list[tuple[str, str | None, list[str]]] = []
    for line in text.splitlines():
        for match in _COMMAND.finditer(line):
            program, rest = match.group(1), match.group(2)
            rest = _strip_quoted(rest)
            rest = _SEPARATOR.split(rest, maxsplit=1)[0]
            words = rest.split()
            if program == "rtvoice":
                leading = []  # options before the subcommand belong to `rtvoice` itself
                while words and words[0].startswith("-"):
                    leading.append(words.pop(0))
                if leading:
                    found.append((program, None, _flags(" ".join(leading))))
                if words and re.fullmatch(r"[a-z][a-z-]*", words[0]):
                    found.append((program, words[0], _flags(" ".join(words[1:]))))
                elif not leading:
                    found.append((program, None, _flags(" ".join(words))))
            else:
                found.append((program, None, _flags(rest)))
    return found


def _flags(text: str) -> list[str]:
    """The options in a command's words: ``--long`` ones, and ``-x`` short ones (``-vv`` is ``-v``)."""
    long = re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text)
    short = [f"-{letter}" for letter in re.findall(r"(?<![\w-])-([a-zA-Z])[a-zA-Z]*(?![\w-])", text)]
    return long + short


def _strip_quoted(text: str) -> str:
    """Blank out quoted strings, so text inside them is not read as flags or separators."""
    return re.sub(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"", "''", text)
