"""The docs stay true: their examples run, their command lines exist, their links resolve.

The convention (which blocks run, and the ``<!-- doc-test: ... -->`` markers) is written at
the top of docs/development.md. Examples marked ``server`` run against a real
``rtvoice serve``, those marked ``mqtt`` against a real Mosquitto and ``rtvoice mqtt``, all
started here on free ports; every example runs in a scratch folder laid out like the
repository root: ``build_engines.py`` is there, and ``engines/tiny`` and ``engines/ljspeech``
are the tiny random voice (an example that runs ``build_engines.py`` starts with an empty
``engines/`` and builds its own).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from doc_blocks import PAGES, ROOT, Block, Command, all_blocks, anchors, command_lines, flags, links

EXAMPLE_TIMEOUT_S = 60.0
"""Longest one example may run: each should take seconds on 2 CPU cores."""
START_TIMEOUT_S = 60.0
"""Longest a server or daemon may take to be ready."""

BLOCKS = all_blocks()
RUNNABLE = [b for b in BLOCKS if b.language is not None and b.mode != "skip"]
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RTVOICE_TOKEN", None)  # the servers here run without a token
    env.pop("RTVOICE_MQTT_PASSWORD", None)
    return env


# -- the markers and the test command ---------------------------------------------------------


def test_markers_are_well_formed() -> None:
    for block in BLOCKS:
        block.mode  # noqa: B018 - raises ValueError naming the page and line


def test_readme_keeps_the_test_command_that_ci_runs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"<!-- test-command -->\n```\n(.*?)```\n<!-- /test-command -->", text, re.S)
    assert section is not None, "README.md lost the test-command markers that .ci/run reads"
    assert section.group(1).strip() == "python -m pytest -q"


def test_readme_names_every_dependency() -> None:
    """Every dependency of pyproject.toml, and every extra's, has its line in the README."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Dependencies and why", 1)[1].split("\n## ", 1)[0]
    named = {_normalize(n) for n in re.findall(r"`([A-Za-z0-9_.\-]+)`", section)}
    missing = sorted({_normalize(re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0]) for r in requirements} - named)
    assert not missing, f"README.md's 'Dependencies and why' does not name {missing}"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- links --------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page: Path) -> None:
    broken = []
    for line, target in links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{page.name}:{line}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{page.name}:{line}: {target} (no heading with that anchor)")
    assert not broken, "\n".join(broken)


# -- command lines against the CLI's own --help -------------------------------------------------


@functools.cache
def _help(program: str, sub: str | None) -> str:
    """The program's own ``--help`` (of ``sub``, when given); LookupError if it has none."""
    if program == "build_engines.py":
        argv = [sys.executable, str(ROOT / "build_engines.py")]
    else:
        argv = [sys.executable, "-m", program]
    argv += [*([sub] if sub else []), "--help"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env=_env())
    if result.returncode != 0:
        raise LookupError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no help")
    return result.stdout


def _subcommands(help_text: str) -> set[str]:
    """Subcommands an argparse help lists: ``{a,b} ...`` in its usage, or indented under COMMAND.

    An option's choices (``[--graphs {a,b} [{a,b} ...]]``) are not subcommands.
    """
    usage = help_text.split("\n\n", 1)[0]
    found = {word for group in re.findall(r"(?<!\[)\{([a-z][\w,-]*)\} \.\.\.", usage) for word in group.split(",")}
    if re.search(r"\b[A-Z]+ \.\.\.", usage):  # metavar COMMAND: the choices are listed one per line
        found |= set(re.findall(r"^ {4}([a-z][a-z-]*)(?: {2,}|$)", help_text, re.M))
    return found


def _known(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][a-zA-Z0-9-]*)", help_text))


def _problems(command: Command) -> list[str]:
    """What in one documented command line its program's own --help does not know."""
    program = "rtvoice" if command.program == "rtvoice" else command.program
    words = list(command.words)
    leading = []  # options before a subcommand belong to the program itself
    while words and words[0].startswith("-"):
        leading.append(words.pop(0))
    try:
        top = _help(program, None)
    except LookupError as error:
        return [f"`{program}` has no --help: {error}"]
    subs = _subcommands(top)
    if not subs:
        return [f"`{program}` has no option {flag}" for flag in flags(leading + words) if flag not in _known(top)]
    problems = [f"`{program}` has no option {flag}" for flag in flags(leading) if flag not in _known(top)]
    if not words:
        return problems
    if not re.fullmatch(r"[a-z][a-z-]*", words[0]):  # "rtvoice serve: ..." is output, not a command
        return problems
    if words[0] not in subs:
        return [*problems, f"`{program} {words[0]}` is not a command (it has {sorted(subs)})"]
    sub_help = _help(program, words[0])
    return problems + [f"`{program} {words[0]}` has no option {flag}" for flag in flags(words[1:])
                       if flag not in _known(sub_help)]


@pytest.mark.parametrize("block", [b for b in BLOCKS if command_lines(b)], ids=lambda b: b.name)
def test_command_lines_exist(block: Block) -> None:
    problems = [problem for command in command_lines(block) for problem in _problems(command)]
    assert not problems, f"{block.name}: " + "; ".join(problems)


# -- running the examples -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory, tiny_voice_dir: Path) -> Path:
    """The folder examples start from: engines/tiny and engines/ljspeech are the tiny voice."""
    folder = tmp_path_factory.mktemp("doc-examples")
    (folder / "engines").mkdir()
    for name in ("tiny", "ljspeech"):
        (folder / "engines" / name).symlink_to(tiny_voice_dir, target_is_directory=True)
    (folder / "build_engines.py").symlink_to(ROOT / "build_engines.py")  # run from the repository root
    return folder


class Server:
    """``rtvoice serve`` as the command starts it, with the tiny voice as ljspeech and tiny."""

    def __init__(self, voices: Path, log: Path) -> None:
        self.port, self.wyoming_port = _free_port(), _free_port()
        self.log = log
        with log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the server
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rtvoice", "serve", "--voices-dir", str(voices), "--device", "cpu",
                 "--port", str(self.port), "--wyoming-port", str(self.wyoming_port)],
                stdout=out, stderr=subprocess.STDOUT, env=_env())
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rtvoice serve exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        _stop(self.process)
        raise TimeoutError("rtvoice serve did not answer /health")

    def rewrite(self, text: str) -> str:
        return text.replace(":8000", f":{self.port}").replace("10200", str(self.wyoming_port))


class MqttDaemon:
    """Mosquitto on a free port, and ``rtvoice mqtt --no-play --hermes --site-id kitchen``."""

    def __init__(self, folder: Path, voice: Path) -> None:
        self.log = folder / "rtvoice-mqtt.log"
        assert MOSQUITTO is not None
        self.port = _free_port()
        config = folder / "mosquitto.conf"
        config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser root\n")
        self.broker = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self.daemon: subprocess.Popen[bytes] | None = None
        try:
            self._wait_for_port()
            with self.log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the daemon
                self.daemon = subprocess.Popen(
                    [sys.executable, "-m", "rtvoice", "mqtt", "--broker", f"mqtt://127.0.0.1:{self.port}",
                     "--voice", str(voice), "--device", "cpu", "--no-play", "--hermes", "--site-id", "kitchen"],
                    stdout=out, stderr=subprocess.STDOUT, env=_env())
            self._wait_online()
        except BaseException:
            self.close()
            raise

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("mosquitto did not start")

    def _wait_online(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.daemon is not None
            if self.daemon.poll() is not None:
                raise RuntimeError(f"rtvoice mqtt exited: {self.log.read_text(errors='replace')[-2000:]}")
            status = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.port), "-t",
                                     "rtvoice/status", "-C", "1", "-W", "1"], capture_output=True, text=True)
            if status.stdout.strip() == "online":
                return
            time.sleep(0.2)
        raise TimeoutError("rtvoice mqtt did not publish rtvoice/status online")

    def rewrite(self, text: str) -> str:
        text = text.replace("localhost:1883", f"127.0.0.1:{self.port}")
        return re.sub(r"\b(mosquitto_(?:pub|sub))\b", rf"\1 -p {self.port}", text)

    def close(self) -> None:
        if self.daemon is not None:
            _stop(self.daemon)
        _stop(self.broker)


@pytest.fixture(scope="module")
def server(scratch: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(scratch / "engines", tmp_path_factory.mktemp("server") / "rtvoice-serve.log")
    try:
        yield running
    finally:
        _stop(running.process)


@pytest.fixture(scope="module")
def mqtt(scratch: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttDaemon]:
    if MOSQUITTO is None or shutil.which("mosquitto_pub") is None:
        pytest.fail("mosquitto and mosquitto-clients are needed (apt-get install mosquitto mosquitto-clients)")
    running = MqttDaemon(tmp_path_factory.mktemp("broker"), scratch / "engines" / "tiny")
    try:
        yield running
    finally:
        running.close()


def _without_installs(script: str) -> str:
    """Drop `pip install ... &&` prefixes and lone `pip install` lines: rtvoice is installed here."""
    script = re.sub(r"^\s*pip install [^\n&]*&&\s*", "", script, flags=re.M)
    return re.sub(r"^\s*pip (?:un)?install [^\n]*$", "", script, flags=re.M)


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.name)
def test_example_runs(block: Block, scratch: Path, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    text = _without_installs(block.text)
    log: Path | None = None
    if block.mode in ("server", "mqtt"):
        service = request.getfixturevalue(block.mode)
        text, log = service.rewrite(text), service.log
    workdir = tmp_path / "work"
    shutil.copytree(scratch, workdir, symlinks=True)
    if "build_engines.py" in text:  # it builds its own voices: never into the shared tiny voice
        for link in (workdir / "engines").iterdir():
            link.unlink()
    if block.language == "python":
        (workdir / "example.py").write_text(text, encoding="utf-8")
        argv = [sys.executable, "example.py"]
    else:
        argv = ["bash", "-e", "-o", "pipefail", "-c", text]
    try:
        result = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, env=_env(),
                                timeout=EXAMPLE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{block.name} ran over {EXAMPLE_TIMEOUT_S:.0f} s: {error.stderr!r}")
    service_log = f"\n--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" if log else ""
    assert result.returncode == 0, (f"{block.name} failed with status {result.returncode}\n--- script\n{text}"
                                    f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
                                    + service_log)
