"""stdio upstream: start the server as a child process and speak JSON lines over its pipes.

The process gets its own process group, so stopping it stops whatever it started (``npx`` runs
node under a shell). Its stderr goes to the gateway log, line by line, with the server's name,
and to ``on_stderr`` (the server's ring buffer, :mod:`catalyst_mcp.upstreams.serverlog`); the
last lines are kept for health reports. Stopping is: close stdin, wait, SIGTERM, wait, SIGKILL —
the order the MCP spec recommends; a server that stopped answering is killed at once
(:meth:`StdioTransport.abort`).

With an enabled ``sandbox`` the process is bubblewrap running the server
(:mod:`catalyst_mcp.upstreams.sandbox`); a sandbox that cannot be set up is reported as what
bwrap said and what to do about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from catalyst_mcp.errors import UpstreamUnavailable
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.upstreams.base import StreamTransport
from catalyst_mcp.upstreams.sandbox import explain, find_bwrap, wrap
from catalyst_mcp.upstreams.sandboxconfig import SandboxSettings

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
    # where a program keeps its caches, data and state (npm, uv, Catalyst itself): the
    # gateway's choice, so a test's or a service's own folders are used, not the user's
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
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
        *,
        sandbox: SandboxSettings | None = None,
        on_stderr: Callable[[str, int | None], None] | None = None,
    ) -> None:
        super().__init__(server)
        self.command = command
        self.args = args
        self.env = env or {}
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self.sandbox = sandbox if sandbox is not None and sandbox.enabled else None
        self.on_stderr = on_stderr
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
        argv = [self.command, *self.args]
        if self.sandbox is not None:
            bwrap = find_bwrap(self.server, env.get("PATH"))
            argv, env = wrap(
                self.server, self.command, self.args, env, self.cwd, self.sandbox, bwrap=bwrap
            )
        # stdout comes through our own pipe and protocol: a response is matched to its request
        # straight from the read callback, without a reader task in between (one wake-up less
        # per call; see docs/decisions/001-lean-protocol-core.md).
        read_fd, write_fd = os.pipe()
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=write_fd,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self.cwd if self.sandbox is None else None,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(read_fd)
            raise UpstreamUnavailable(
                self.server, f"cannot start {self.server}: {argv[0]!r}: {exc.strerror}"
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
        why = await self._explained() or why  # bwrap says why it failed, before it exits
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

    async def _gone(self) -> str:
        """Why the process is not there to write to."""
        return await self._explained() or f"{self.server} is not running"

    async def _explained(self) -> str | None:
        """What bwrap said, if it failed to set the sandbox up (it exits at once, maybe before
        the first message is written)."""
        if self.sandbox is None:
            return None
        await self._stderr_read()
        return explain(self.server, self.stderr_tail)

    async def _stderr_read(self) -> None:
        """Wait (briefly) until everything the process wrote to stderr has been read."""
        for task in self._tasks:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                async with asyncio.timeout(0.5):
                    await asyncio.shield(task)

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
            if self.on_stderr is not None:
                self.on_stderr(line, self.process.pid if self.process is not None else None)

    async def _write(self, message: Message) -> None:
        process = self.process
        if process is None or process.stdin is None or process.returncode is not None:
            raise UpstreamUnavailable(self.server, await self._gone())
        data = orjson.dumps(message) + b"\n"
        try:
            process.stdin.write(data)
            if process.stdin.transport.get_write_buffer_size() > 65536:
                async with self._write_lock:
                    await process.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            why = await self._explained() or f"{self.server} closed its input"
            raise UpstreamUnavailable(self.server, why) from exc

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
        if self.process is not None and self.process.returncode is None:
            info["pid"] = self.process.pid
        if self.sandbox is not None:
            info["sandboxed"] = True
        return info
