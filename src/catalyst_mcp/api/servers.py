"""``/servers/{name}...``: one served server's status, start, stop, restart and logs.

(``GET /servers``, the list, is the tools API's: api/catalog.py; administrators get each
server's process state there.) Handlers act on the gateway's
:class:`~catalyst_mcp.upstreams.serverset.ServerSet`; none needs the database, so these routes
work with storage off. Start, stop and restart are changes: the
admin API records each in the audit trail (``admin.servers.start`` ...), with its outcome.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from catalyst_mcp.api import servermodels as m
from catalyst_mcp.api.router import ApiError, ApiRequest, Route
from catalyst_mcp.upstreams.serverset import RestartFailed

if TYPE_CHECKING:
    from catalyst_mcp.upstreams.serverlog import LogLine
    from catalyst_mcp.upstreams.serverset import ServerSet

__all__ = ["ServerHandlers"]


class ServerHandlers:
    def __init__(self, servers: ServerSet | None) -> None:
        self._servers = servers

    @property
    def servers(self) -> ServerSet:
        if self._servers is None:
            raise ApiError(503, "this gateway runs no configured servers")
        return self._servers

    def _status(self, name: str, *, detail: bool = False) -> m.ServerStatus:
        return m.ServerStatus.model_validate(self.servers.status(name, detail=detail))

    async def show(self, request: ApiRequest) -> m.ServerStatus:
        return self._status(request.path_as(m.ServerPath).name, detail=True)

    async def start(self, request: ApiRequest) -> m.ServerAction:
        name = request.path_as(m.ServerPath).name
        changed = await self.servers.start_server(name, request.identity.subject)
        return m.ServerAction(changed=changed, server=self._status(name))

    async def stop(self, request: ApiRequest) -> m.ServerAction:
        name = request.path_as(m.ServerPath).name
        changed = await self.servers.stop_server(name, request.identity.subject)
        return m.ServerAction(changed=changed, server=self._status(name))

    async def restart(self, request: ApiRequest) -> m.ServerAction:
        name = request.path_as(m.ServerPath).name
        try:
            await self.servers.restart_server(name, request.identity.subject)
        except RestartFailed as exc:
            raise ApiError(503, exc.message) from None
        return m.ServerAction(changed=True, server=self._status(name))

    async def logs(self, request: ApiRequest) -> m.ServerLogs:
        name = request.path_as(m.ServerPath).name
        query = request.query_as(m.LogQuery)
        log = self.servers.log(name)  # Missing (404) for a server that is not served
        if log is None:
            return m.ServerLogs(lines=[], last_seq=0, missed=0, capacity=0)
        missed = 0
        if query.after is None:
            lines = log.tail(query.tail)
        else:
            if query.wait > 0:
                await log.wait(query.after, query.wait)
            lines, missed = log.after(query.after, m.MAX_LINES_PER_ANSWER)
        return m.ServerLogs(
            lines=[_line(line) for line in lines],
            last_seq=log.last_seq,
            missed=missed,
            capacity=log.capacity,
        )

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/servers/{name}",
                self.show,
                action="admin.servers.get",
                summary="One server's state, with each per-user or per-session process",
                response=m.ServerStatus,
                tag="servers",
                path_model=m.ServerPath,
                needs_storage=False,
            ),
            Route(
                "POST",
                "/servers/{name}/start",
                self.start,
                action="admin.servers.start",
                summary="Start a server an administrator stopped (waits for it to connect)",
                response=m.ServerAction,
                changes=True,
                tag="servers",
                path_model=m.ServerPath,
                needs_storage=False,
            ),
            Route(
                "POST",
                "/servers/{name}/stop",
                self.stop,
                action="admin.servers.stop",
                summary="Stop a server and keep it stopped (its calls in flight finish first)",
                response=m.ServerAction,
                changes=True,
                tag="servers",
                path_model=m.ServerPath,
                needs_storage=False,
            ),
            Route(
                "POST",
                "/servers/{name}/restart",
                self.restart,
                action="admin.servers.restart",
                summary="Restart a server: a new process takes over once connected, the old "
                "one finishes its calls",
                response=m.ServerAction,
                changes=True,
                tag="servers",
                path_model=m.ServerPath,
                needs_storage=False,
            ),
            Route(
                "GET",
                "/servers/{name}/logs",
                self.logs,
                action="admin.servers.logs",
                summary="The tail of a server's stderr (or the lines after one: long polling)",
                query=m.LogQuery,
                response=m.ServerLogs,
                tag="servers",
                path_model=m.ServerPath,
                needs_storage=False,
            ),
        ]


def _line(line: LogLine) -> m.LogLine:
    return m.LogLine(
        seq=line.seq,
        at=datetime.fromtimestamp(line.at, UTC),
        pid=line.pid,
        instance=line.instance,
        text=line.text,
    )
