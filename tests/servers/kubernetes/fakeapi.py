"""A fake Kubernetes API server on a loopback port that replays canned (hand-written) responses.

Each route is a method, a path and, optionally, query parameters the request must carry; the
first route that matches answers. Every request is kept (method, path, query, content type,
body), so a test can check what the tool layer sent (``dryRun=All``, the field manager, the
patch). A request no route matches gets a 404 ``Status``, as from the real server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tests.conftest import free_port
from tests.servers.kubernetes import recorded


@dataclass
class Route:
    method: str
    path: str
    status: int
    body: Any
    query: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    authorization: str


class FakeApiServer:
    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.seen: list[Seen] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    def add(
        self,
        method: str,
        path: str,
        body: Any,
        status: int = 200,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.routes.insert(0, Route(method, path, status, body, query or {}, content_type))

    def discovery(self) -> None:
        self.add("GET", "/api/v1", recorded.CORE_V1)
        self.add("GET", "/apis", recorded.GROUPS)
        self.add("GET", "/apis/apps/v1", recorded.APPS_V1)
        self.add("GET", "/apis/events.k8s.io/v1", recorded.EVENTS_V1)
        self.add("GET", "/apis/batch/v1", recorded.BATCH_V1)
        self.add("GET", "/apis/stable.example.com/v1", recorded.CRD_V1)
        self.add("GET", "/apis/metrics.k8s.io/v1beta1", recorded.UNAVAILABLE, 503)

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [
            s
            for s in self.seen
            if (method is None or s.method == method) and (path is None or s.path == path)
        ]

    async def _answer(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body: Any = raw.decode() if raw else None
        if raw and request.content_type.endswith(("json", "yaml")):
            body = orjson.loads(raw)  # apply-patch+yaml bodies are sent as JSON
        query = dict(request.query)
        self.seen.append(
            Seen(
                request.method,
                request.path,
                query,
                request.content_type,
                body,
                request.headers.get("Authorization", ""),
            )
        )
        for route in self.routes:
            if route.method != request.method or route.path != request.path:
                continue
            if any(query.get(k) != v for k, v in route.query.items()):
                continue
            if isinstance(route.body, str):
                return web.Response(
                    status=route.status, text=route.body, content_type=route.content_type
                )
            return web.Response(
                status=route.status, body=orjson.dumps(route.body), content_type=route.content_type
            )
        missing = recorded.status(
            404, "NotFound", "the server could not find the requested resource"
        )
        return web.Response(status=404, body=orjson.dumps(missing), content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def kubeconfig(self, folder: Path, *, namespace: str = "shop", token: str = "t0ken") -> Path:
        """A kubeconfig whose current context reaches this server with a bearer token."""
        path = folder / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: fake\n  cluster: {{server: '{self.url}'}}\n"
            f"users:\n- name: me\n  user: {{token: {token}}}\n"
            "contexts:\n"
            f"- name: fake\n  context: {{cluster: fake, user: me, namespace: {namespace}}}\n"
            "- name: other\n  context: {cluster: fake, user: me, namespace: other}\n"
            "current-context: fake\n"
        )
        return path
