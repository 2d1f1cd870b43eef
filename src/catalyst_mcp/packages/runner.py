"""Running an installer (npm, uv, pip) as a child process: its output streamed line by line
to the progress display, the tail kept for the error message, a time limit, and never left
behind — cancelled, timed out or not, the whole process group is stopped before we return.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from catalyst_mcp.errors import InstallFailed, RuntimeMissing

__all__ = ["Finished", "run", "tail_text"]

TAIL_LINES = 200
STOP_GRACE_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Finished:
    """How the process ended: its exit code, standard output, and the last lines of both
    streams together (in the order they came)."""

    returncode: int
    stdout: str
    lines: list[str]

    def tail(self, count: int = 15) -> str:
        return tail_text(self.lines, count)


def tail_text(lines: Sequence[str], count: int = 15) -> str:
    """The last ``count`` non-empty lines, indented, for an error message."""
    kept = [line for line in lines if line.strip()][-count:]
    return "\n".join(f"  {line}" for line in kept)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the process group, SIGKILL after a grace period; reaps the process."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), STOP_GRACE_SECONDS)
            return
        except TimeoutError:
            continue


async def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float,
    on_line: Callable[[str], None] | None = None,
    stdin: bytes | None = None,
    what: str | None = None,
) -> Finished:
    """Run ``argv`` to its end and say how it ended (a non-zero exit is not an error here).

    Missing program: :class:`RuntimeMissing`. Past ``timeout``: :class:`InstallFailed`. Either
    way, and on cancellation, nothing it started is left running.
    """
    label = what or Path(argv[0]).name
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,  # its own group: stopped as a whole, not by our terminal
        )
    except FileNotFoundError as exc:
        raise RuntimeMissing(f"{label} is not installed (cannot run {argv[0]})") from exc
    except PermissionError as exc:
        raise RuntimeMissing(f"{label} cannot be run ({argv[0]}: permission denied)") from exc
    lines: deque[str] = deque(maxlen=TAIL_LINES)
    stdout: list[str] = []

    async def pump(stream: asyncio.StreamReader | None, keep: list[str] | None) -> None:
        if stream is None:
            return
        while True:
            raw = await stream.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if keep is not None:
                keep.append(line)
            lines.append(line)
            if on_line is not None:
                on_line(line)

    async def feed() -> None:
        if stdin is not None and process.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                process.stdin.write(stdin)
                await process.stdin.drain()
            process.stdin.close()

    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(
                feed(), pump(process.stdout, stdout), pump(process.stderr, None), process.wait()
            )
    except TimeoutError as exc:
        await _stop(process)
        raise InstallFailed(
            f"{label} did not finish within {timeout:g}s and was stopped; its last lines:\n"
            f"{tail_text(lines)}"
        ) from exc
    finally:
        if process.returncode is None:  # cancelled (Ctrl-C, SIGTERM) or failed above
            await _stop(process)
    return Finished(process.returncode or 0, "\n".join(stdout), list(lines))
