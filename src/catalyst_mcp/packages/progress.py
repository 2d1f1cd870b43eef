"""What the user sees while a package installs, on stderr (stdout stays for results).

On a terminal: one live line — a spinner, the step, the seconds so far and the installer's
latest output — redrawn in place, and a plain line per finished step. Anywhere else (a pipe, a
log, CI): plain lines only, one per step, without the installer's chatter.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from typing import TextIO

__all__ = ["Progress"]

SPINNER = "|/-\\"
TICK_SECONDS = 0.2


class Progress:
    """A step-by-step display; ``quiet`` shows nothing at all."""

    def __init__(
        self, stream: TextIO | None = None, *, live: bool | None = None, quiet: bool = False
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.live = (not quiet) and (self.stream.isatty() if live is None else live)
        self.step_text: str | None = None
        self.started = 0.0
        self.last_output = ""
        self.frame = 0
        self._ticker: asyncio.Task[None] | None = None

    def _write(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text)
            self.stream.flush()

    def step(self, text: str) -> None:
        """Begin a step (ending the one before)."""
        self._finish_line()
        self.step_text = text
        self.started = time.monotonic()
        self.last_output = ""
        if self.live:
            self._redraw()
            self._start_ticker()
        else:
            self._write(f"{text} ...\n")

    def output(self, line: str) -> None:
        """A line of the installer's output: shown on the live line only."""
        if line.strip():
            self.last_output = line.strip()
            if self.live and self.step_text is not None:
                self._redraw()

    def note(self, text: str) -> None:
        """A line of its own (a result, a warning) between steps."""
        self._finish_line()
        self._write(f"{text}\n")

    def done(self, text: str | None = None) -> None:
        """End the current step, saying how it ended (with its time)."""
        if self.step_text is None:
            return
        seconds = time.monotonic() - self.started
        final = text or self.step_text
        self._stop_ticker()
        if self.live:
            self._write(f"\r\x1b[K{final} ({seconds:.1f}s)\n")
        else:
            self._write(f"{final} ({seconds:.1f}s)\n")
        self.step_text = None

    def _finish_line(self) -> None:
        if self.step_text is not None and self.live:
            self._stop_ticker()
            self._write("\r\x1b[K")
        self.step_text = None

    def _redraw(self) -> None:
        if self.step_text is None:
            return
        width = shutil.get_terminal_size((100, 20)).columns
        self.frame += 1
        seconds = time.monotonic() - self.started
        head = f"{SPINNER[self.frame % len(SPINNER)]} {self.step_text} ({seconds:.0f}s)"
        room = width - len(head) - 4
        tail = f"  {self.last_output[: max(0, room)]}" if room > 10 and self.last_output else ""
        self._write(f"\r\x1b[K{head[: width - 1]}{tail}")

    def _start_ticker(self) -> None:
        if self._ticker is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._ticker = loop.create_task(self._tick())

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    async def _tick(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(TICK_SECONDS)
                self._redraw()

    def close(self) -> None:
        """End the display (a live line is cleared)."""
        self._finish_line()
