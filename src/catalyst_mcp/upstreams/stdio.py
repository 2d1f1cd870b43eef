"""stdio upstream: start the server as a child process and speak JSON lines over its pipes.

The process gets its own process group, so stopping it stops whatever it started (``npx`` runs
node under a shell). Its stderr goes to the gateway log, line by line, with the server's name;
the last lines are kept for health reports. Stopping is: close stdin, wait, SIGTERM, wait,
SIGKILL — the order the MCP spec recommends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from typing import Any

import orjson

from catalyst_mcp.errors import UpstreamUnavailable
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.upstreams.base import StreamTransport

__all__ = ["StdioTransport"]

log = logging.getLogger("catalyst.upstream")

# Lines longer than this (64 MiB) are a protocol violation, not a big result.
LINE_LIMIT = 64 * 1024 * 1024
# What a server process inherits from the gateway's environment; everything else it needs comes
# from its `env:` setting. The gateway's own secrets (keys, tokens) never leak into upstreams.
INHERITED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "SYSTEMROOT",
    "APPDATA",
    "LOCALAPPDATA",
    "PROGRAMFILES",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
)


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """The environment of an upstream process: an allow-list of ours plus its own settings."""
    base = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    return {**base, **extra}


class StdioTransport(StreamTransport):
    def __init__(
        self,
        server: str,
        command: str,
        args: list[str],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        stop_timeout: float = 2.0,
    ) -> None:
        super().__init__(server)
        self.command = command
        self.args = args
        self.env = env or {}
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._tasks: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()
        self._closing = False

    async def open(self) -> None:
        env = child_environment(self.env)
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.command,
                *self.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                limit=LINE_LIMIT,
            )
        except OSError as exc:
            raise UpstreamUnavailable(
                self.server, f"cannot start {self.server}: {self.command!r}: {exc.strerror}"
            ) from exc
        self._tasks = [
            asyncio.create_task(self._read_stdout(), name=f"{self.server}-stdout"),
            asyncio.create_task(self._read_stderr(), name=f"{self.server}-stderr"),
        ]

    async def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        reason = "closed its output"
        try:
            while True:
                try:
                    line = await stdout.readline()
                except ValueError:
                    reason = "sent a line over the 64 MiB limit"
                    break
                if not line:
                    break
                if line.isspace():
                    continue
                try:
                    message = orjson.loads(line)
                except orjson.JSONDecodeError:
                    log.warning("%s: ignoring non-JSON output: %.200r", self.server, line)
                    continue
                if not isinstance(message, dict):
                    log.warning("%s: ignoring non-object message", self.server)
                    continue
                await self.received(message)
        except Exception:  # a bug in a handler must not kill the reader silently
            log.exception("%s: error handling upstream output", self.server)
            reason = "caused an internal error"
        code = await self._exit_code()
        why = f"{self.server} {reason}" + (f" (exit code {code})" if code is not None else "")
        self._pending.fail_all(f"{why}; it will be restarted")
        if not self._closing:
            log.warning("%s", why)
            self.on_closed(why)

    async def _exit_code(self) -> int | None:
        if self.process is None:
            return None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                return await self.process.wait()
        return None

    async def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        with contextlib.suppress(ValueError, ConnectionError):
            async for raw in self.process.stderr:
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    self.stderr_tail.append(line)
                    log.info("%s[stderr]: %s", self.server, line)

    async def _write(self, message: Message) -> None:
        process = self.process
        if process is None or process.stdin is None or process.returncode is not None:
            raise UpstreamUnavailable(self.server, f"{self.server} is not running")
        data = orjson.dumps(message) + b"\n"
        try:
            process.stdin.write(data)
            if process.stdin.transport.get_write_buffer_size() > 65536:
                async with self._write_lock:
                    await process.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise UpstreamUnavailable(self.server, f"{self.server} closed its input") from exc

    async def close(self) -> None:
        self._closing = True
        process = self.process
        if process is not None and process.returncode is None:
            if process.stdin is not None:
                with contextlib.suppress(Exception):
                    process.stdin.close()
            if await self._wait(process) is None:
                self._signal(process, signal.SIGTERM)
                if await self._wait(process) is None:
                    self._signal(process, signal.SIGKILL)
                    await process.wait()
        if process is not None:
            # children the server left behind in its group go too
            self._signal(process, signal.SIGKILL)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._pending.fail_all(f"{self.server} was stopped")

    async def _wait(self, process: asyncio.subprocess.Process) -> int | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.stop_timeout):
                return await process.wait()
        return None

    @staticmethod
    def _signal(process: asyncio.subprocess.Process, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"transport": "stdio", "command": self.command}
        if self.process is not None:
            info["pid"] = self.process.pid
        return info
