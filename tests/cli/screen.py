"""A program in a real pseudo-terminal, and the screen a person would see (pexpect + pyte)."""

from __future__ import annotations

import os
import time

import pexpect
import pyte

COLUMNS, LINES = 120, 50


class Terminal:
    """Runs ``argv`` in a pty of COLUMNS x LINES; what it prints is rendered by a VT100
    emulator, so tests read the screen, not escape sequences."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        environ = {**os.environ, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
        environ.pop("NO_COLOR", None)
        environ.update(env or {})
        self.screen = pyte.Screen(COLUMNS, LINES)
        self.stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(
            argv[0], argv[1:], env=environ, dimensions=(LINES, COLUMNS), timeout=5
        )
        self.transcript = b""

    def pump(self) -> None:
        """Feed whatever the program printed so far to the screen."""
        while True:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.05)
            except (pexpect.TIMEOUT, pexpect.EOF):
                return
            self.transcript += data
            self.stream.feed(data)

    def text(self) -> str:
        self.pump()
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, needle: str, timeout: float = 20.0) -> str:
        """The screen once it shows ``needle``; AssertionError with the screen otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.text()
            if needle in shown:
                return shown
            if time.monotonic() > deadline or not self.child.isalive():
                self.pump()
                raise AssertionError(f"{needle!r} not on the screen:\n{self.text()}")
            time.sleep(0.05)

    def cursor_line(self) -> str:
        self.pump()
        return str(self.screen.display[self.screen.cursor.y]).rstrip()

    def wait_for_prompt(self, prompt: str, timeout: float = 20.0) -> None:
        """Wait until the cursor sits on an empty prompt line (the shell waits for a command)."""
        deadline = time.monotonic() + timeout
        while self.cursor_line() != prompt.rstrip():
            if time.monotonic() > deadline or not self.child.isalive():
                raise AssertionError(f"no prompt {prompt!r}; the screen:\n{self.text()}")
            time.sleep(0.05)

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def line(self, text: str) -> None:
        self.child.send(text + "\r")

    def exit_status(self, timeout: float = 20.0) -> int | None:
        self.child.expect(pexpect.EOF, timeout=timeout)
        self.child.close()
        return self.child.exitstatus

    def stop(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close(force=True)
