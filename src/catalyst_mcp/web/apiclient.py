"""The dashboard's way into the REST API: a request to ``/api/v1`` served in process.

Every page reads and changes the gateway through :class:`~catalyst_mcp.api.AdminApi`, the
same ASGI app that serves ``/api/v1`` over HTTP, with the signed-in user's credential in the
``Authorization`` header: authentication, the admin check, validation, the MCP pipeline (RBAC,
rate limits, audit, metrics) and the audit records of admin changes are the API's, not a second
copy of them. Only the socket is skipped; the answer is the API's JSON, decoded.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

import orjson

from catalyst_mcp.api.server import PREFIX

if TYPE_CHECKING:
    from catalyst_mcp.api.server import AdminApi

__all__ = ["ApiAnswer", "ApiClient", "segment"]


def segment(value: str) -> str:
    """``value`` as one percent-encoded path segment (a '/' in a name stays inside it)."""
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    """What the API answered: its status and its JSON body (None when it had none)."""

    status: int
    data: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        """The error's message (the API's own words), or '' for a success."""
        if self.ok:
            return ""
        error = self.data.get("error") if isinstance(self.data, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str):
            return message
        return f"HTTP {self.status}"

    @property
    def problems(self) -> list[dict[str, Any]]:
        """The problems a 400 or 422 listed (each with ``location`` and ``message``)."""
        error = self.data.get("error") if isinstance(self.data, dict) else None
        found = error.get("problems") if isinstance(error, dict) else None
        return [p for p in found if isinstance(p, dict)] if isinstance(found, list) else []


class ApiClient:
    """Calls :class:`AdminApi` in process, as the holder of ``credential`` (None: no
    credentials, the local anonymous user while auth is off)."""

    def __init__(self, api: AdminApi, credential: str | None) -> None:
        self.api = api
        self.credential = credential

    async def get(self, path: str, **query: Any) -> ApiAnswer:
        return await self.request("GET", path, query=query)

    async def post(self, path: str, body: Any = None, **query: Any) -> ApiAnswer:
        return await self.request("POST", path, body=body, query=query)

    async def put(self, path: str, body: Any = None) -> ApiAnswer:
        return await self.request("PUT", path, body=body)

    async def patch(self, path: str, body: Any = None) -> ApiAnswer:
        return await self.request("PATCH", path, body=body)

    async def delete(self, path: str, **query: Any) -> ApiAnswer:
        return await self.request("DELETE", path, query=query)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
    ) -> ApiAnswer:
        """``method`` on ``PREFIX + path`` (``path`` already percent-encoded, see
        :func:`segment`); ``query`` values that are None are left out."""
        raw_path = PREFIX + path
        headers: list[tuple[bytes, bytes]] = []
        if self.credential is not None:
            headers.append((b"authorization", b"Bearer " + self.credential.encode("latin-1")))
        data = b""
        if body is not None:
            data = orjson.dumps(body)
            headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", str(len(data)).encode()))
        pairs = [(k, _text(v)) for k, v in (query or {}).items() if v is not None]
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(raw_path),
            "raw_path": raw_path.encode("latin-1"),
            "query_string": urlencode(pairs).encode("latin-1"),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
        }
        sent = False
        status = 500
        parts: list[bytes] = []

        async def receive() -> MutableMapping[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            return {"type": "http.disconnect"}  # (never awaited: the API reads one message)

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.api(scope, receive, send, dict(headers))
        raw = b"".join(parts)
        return ApiAnswer(status, orjson.loads(raw) if raw else None)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
