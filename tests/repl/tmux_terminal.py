"""A real terminal for tests: a private tmux server running one command in one pane.

Why tmux rather than a bare pseudo-terminal: prompt_toolkit asks the terminal where the cursor
is (a CPR query) and draws its bottom toolbar only once the terminal answers; tmux is a real
terminal emulator that answers, and ``capture-pane`` returns the screen as a person sees it,
so tests assert on text, not on escape sequences. The server uses its own socket and an
empty configuration, so it never touches anyone's tmux sessions.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path
from types import TracebackType


class TmuxTerminal:
    """One command in a ``columns`` x ``rows`` terminal.

    Args:
        root: a temporary directory for the socket and configuration.
        command: the command line to run.
        env: its environment (the tmux server's, which the pane inherits).
        cwd: its working directory.
    """

    def __init__(self, root: Path, command: list[str], env: dict[str, str], cwd: Path,
                 columns: int = 150, rows: int = 30) -> None:
        self.socket = root / "tmux.sock"
        self.status_file = root / "exit-status"
        conf = root / "tmux.conf"
        # Keep the pane after the command exits, so that the screen can still be read.
        conf.write_text("set -g remain-on-exit on\nset -g history-limit 2000\n")
        self._env = env
        # A shell records the exit status: tmux's own #{pane_dead_status} stays empty when tmux has
        # not reaped the process yet, which happened often enough to make tests flaky.
        wrapped = f"{shlex.join(command)}; echo $? > {shlex.quote(str(self.status_file))}"
        self._run("-f", str(conf), "new-session", "-d", "-s", "t", "-x", str(columns), "-y", str(rows),
                  "-c", str(cwd), wrapped)

    def _run(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-S", str(self.socket), *args], env=self._env, capture_output=True,
                                text=True, timeout=10, check=True)
        return result.stdout

    def __enter__(self) -> TmuxTerminal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Kill the server (and the command, if it still runs)."""
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], env=self._env, capture_output=True,
                       timeout=10, check=False)

    def type(self, text: str) -> None:
        """Type ``text`` literally (no key names)."""
        self._run("send-keys", "-t", "t", "-l", text)

    def keys(self, *names: str) -> None:
        """Press keys by tmux name: ``Enter``, ``C-c``, ``C-d``, ``Up``..."""
        self._run("send-keys", "-t", "t", *names)

    def screen(self) -> str:
        """The visible screen, as text."""
        return self._run("capture-pane", "-p", "-t", "t")

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """Wait until ``text`` is on the screen; returns the screen. Raises AssertionError."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.05)
        raise AssertionError(f"{text!r} did not appear within {timeout} s; the screen is:\n{screen}")

    def exit_status(self, timeout: float = 20.0) -> int:
        """Wait for the command to exit; returns its status. Raises AssertionError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.status_file.read_text() if self.status_file.exists() else ""
            if text.endswith("\n"):
                return int(text)
            time.sleep(0.05)
        raise AssertionError(f"the command did not exit within {timeout} s; the screen is:\n{self.screen()}")
