"""stdio upstream: start the server as a child process and speak JSON lines over its pipes.

The process gets its own process group, so stopping it stops whatever it started (``npx`` runs
node under a shell). Its stderr goes to the gateway log, line by line, with the server's name;
the last lines are kept for health reports. Stopping is: close stdin, wait, SIGTERM, wait,
SIGKILL — the order the MCP spec recommends; a server that stopped answering is killed at once
(:meth:`StdioTransport.abort`).
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
# Longer stderr lines are cut when logged.
STDERR_LINE_LIMIT = 8192
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


class _LineReader(asyncio.Protocol):
    """Splits the server's stdout into lines and hands each to the transport at once."""

    def __init__(self, owner: StdioTransport) -> None:
        self.owner = owner
        self.partial = bytearray()

    def data_received(self, data: bytes) -> None:
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end == -1:
                self.partial += data[start:]
                if len(self.partial) > LINE_LIMIT:
                    self.partial.clear()
                    self.owner._stdout_closed("sent a line over the 64 MiB limit")
                return
            if self.partial:
                self.partial += data[start:end]
                line = bytes(self.partial)
                self.partial.clear()
            else:
                line = data[start:end]
            self.owner._line(line)
            start = end + 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.partial:
            self.owner._line(bytes(self.partial))
        self.owner._stdout_closed("closed its output")


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
        self._stdout: asyncio.BaseTransport | None = None
        self._backlog: deque[Message] = deque()
        self._draining: asyncio.Task[None] | None = None
        self._finished: asyncio.Task[None] | None = None

    async def open(self) -> None:
        env = child_environment(self.env)
        # stdout comes through our own pipe and protocol: a response is matched to its request
        # straight from the read callback, without a reader task in between (one wake-up less
        # per call; see docs/decisions/001-lean-protocol-core.md).
        read_fd, write_fd = os.pipe()
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.command,
                *self.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=write_fd,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(read_fd)
            raise UpstreamUnavailable(
                self.server, f"cannot start {self.server}: {self.command!r}: {exc.strerror}"
            ) from exc
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        self._stdout, _ = await loop.connect_read_pipe(
            lambda: _LineReader(self), os.fdopen(read_fd, "rb", buffering=0)
        )
        self._tasks = [asyncio.create_task(self._read_stderr(), name=f"{self.server}-stderr")]

    def _line(self, line: bytes) -> None:
        """One line of the server's stdout (called from the pipe's read callback)."""
        if not line or line.isspace():
            return
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("%s: ignoring non-JSON output: %.200r", self.server, line)
            return
        if not isinstance(message, dict):
            log.warning("%s: ignoring non-object message", self.server)
            return
        if not self._backlog and "method" not in message and "id" in message:
            self._pending.resolve(message)  # the fast path: nothing queued before it
            return
        # Notifications and server requests are awaited in order; a response behind them waits
        # its turn, so progress never arrives after the result it belongs to.
        self._backlog.append(message)
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._backlog:
                message = self._backlog.popleft()
                try:
                    await self.received(message)
                except Exception:  # a bug in a handler must not stop the stream
                    log.exception("%s: error handling upstream output", self.server)
        finally:
            self._draining = None

    def _stdout_closed(self, reason: str) -> None:
        if self._finished is None:
            self._finished = asyncio.get_running_loop().create_task(self._finish(reason))

    async def _finish(self, reason: str) -> None:
        if self._draining is not None:
            with contextlib.suppress(Exception):
                await self._draining
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
        """Log the server's stderr line by line; never stop draining it (a full pipe would
        block the server), and cut absurdly long lines."""
        assert self.process is not None and self.process.stderr is not None
        stderr = self.process.stderr
        partial = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await stderr.read(65536):
                *lines, partial = (partial + chunk).split(b"\n")
                if len(partial) > STDERR_LINE_LIMIT:
                    lines.append(partial)
                    partial = b""
                for raw in lines:
                    self._log_stderr(raw)
        if partial:
            self._log_stderr(partial)

    def _log_stderr(self, raw: bytes) -> None:
        line = raw[:STDERR_LINE_LIMIT].decode("utf-8", errors="replace").rstrip()
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
        if self._stdout is not None:
            self._stdout.close()
        tasks = [*self._tasks, *(t for t in (self._draining, self._finished) if t is not None)]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._pending.fail_all(f"{self.server} was stopped")

    def abort(self, reason: str) -> None:
        """Kill a server that stopped answering, with SIGKILL to its whole group at once.

        The graceful order of :meth:`close` assumes a server that still reads its input and
        handles signals; one that did not answer a ping does neither (it is blocked, stuck in a
        loop, or stopped: a stopped process does not even act on SIGTERM until continued), so
        closing stdin and waiting would only add seconds to the restart. What it was doing is
        lost either way: the calls in flight fail with ``reason``.
        """
        self._closing = True  # its exit is our doing, not news for on_closed
        super().abort(reason)
        if self.process is not None and self.process.returncode is None:
            self._signal(self.process, signal.SIGKILL)

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
