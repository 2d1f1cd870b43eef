"""Record and replay the HTTP traffic of a pack's REST connections, with every secret redacted.

* :class:`Recorder` wraps the ``exchange`` of each REST connector and keeps every request and
  response; :meth:`Recorder.save` writes them, **redacted**, to ``<pack>.recording.json``
  (:func:`recording_path`).
* :class:`Replayer` replaces the ``exchange`` and answers from such a file, so tests run
  offline. A request is matched by method, URL and body after the same redaction; packs are
  loaded with :func:`replay_environ`, as a recording holds no secrets to fill in.

The recording is a JSON list of ``{"request": {...}, "response": {...}}`` (:func:`redact_exchange`),
a body as UTF-8 text or base64 with ``"body_encoding": "base64"``.

Redaction replaces every secret a request carries (:attr:`RestRequest.secrets`, raw and
URL/JSON-encoded), the values of credential headers (Authorization, Cookie, API keys, tokens),
a URL's password and the token fields of OAuth responses by ``<redacted>``.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import orjson

from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.connectors.exchange import Exchange, RestRequest, RestResponse
from catalyst_mcp.packs.schema import RestConnection

if TYPE_CHECKING:
    from catalyst_mcp.providers import Provider

__all__ = [
    "REDACTED",
    "HasExchange",
    "Recorder",
    "Replayer",
    "recording_path",
    "redact_exchange",
    "replay_environ",
    "rest_connectors",
]

Json = dict[str, Any]
REDACTED = "<redacted>"
SENSITIVE_HEADER = re.compile(
    r"auth|cookie|api[-_]?key|token|secret|password|session|credential|signature", re.IGNORECASE
)
SENSITIVE_FIELDS = frozenset(
    {"access_token", "refresh_token", "id_token", "client_secret", "password", "assertion"}
)


# ---- record and replay ----------------------------------------------------------------------


class HasExchange(Protocol):
    """What record/replay needs of a REST connector: its replaceable HTTP seam."""

    exchange: Exchange


def rest_connectors(provider: Provider) -> dict[str, HasExchange]:
    """The REST connectors of a :class:`PackProvider`, by connection name."""
    pack = getattr(provider, "pack", None)
    connections = pack.connections if pack is not None else {}
    if not any(isinstance(c, RestConnection) for c in connections.values()):
        return {}  # no REST connection: the HTTP stack is not even imported
    from catalyst_mcp.packs.connectors.rest import RestConnector

    found = getattr(provider, "connectors", {})
    return {name: c for name, c in found.items() if isinstance(c, RestConnector)}


def recording_path(pack_file: Path) -> Path:
    """Where the recording of a pack is kept: ``<pack file stem>.recording.json`` next to it."""
    return pack_file.with_name(f"{pack_file.stem}.recording.json")


def replay_environ() -> Mapping[str, str]:
    """The environment for loading packs to replay: unset variables read as a placeholder.

    A recording holds no secrets, so replaying needs none: ``${env:TOKEN}`` need not be set.
    """
    return _PlaceholderEnviron()


class _PlaceholderEnviron(Mapping[str, str]):
    def __getitem__(self, key: str) -> str:
        return os.environ.get(key, "replay-placeholder")

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


class Recorder:
    """Keeps every exchange of the connectors it is attached to; saves them redacted."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[RestRequest, RestResponse]] = []

    def attach(self, connectors: Iterable[HasExchange]) -> None:
        for connector in connectors:
            connector.exchange = self.wrap(connector.exchange)

    def wrap(self, inner: Exchange) -> Exchange:
        async def recording(request: RestRequest) -> RestResponse:
            response = await inner(request)
            self.exchanges.append((request, response))
            return response

        return recording

    def entries(self) -> list[Json]:
        """The exchanges as JSON, every secret of every request redacted everywhere."""
        secrets = {s for request, _ in self.exchanges for s in request.secrets}
        return [redact_exchange(req, resp, secrets) for req, resp in self.exchanges]

    def save(self, path: Path) -> int:
        """Write the recording (replacing an older one); the number of exchanges."""
        entries = self.entries()
        path.write_bytes(orjson.dumps(entries, option=orjson.OPT_INDENT_2) + b"\n")
        return len(entries)


class Replayer:
    """An :data:`Exchange` answering from a recording; a request not in it is a failure."""

    def __init__(self, entries: list[Json], source: str = "the recording") -> None:
        self.source = source
        self.misses: list[str] = []
        self._secrets: set[str] = set()
        self._answers: dict[tuple[str, str, str], list[Json]] = {}
        self._used: dict[tuple[str, str, str], int] = {}
        for entry in entries:
            self._answers.setdefault(_key(entry["request"]), []).append(entry["response"])

    @classmethod
    def load(cls, path: Path) -> Replayer:
        if not path.is_file():
            raise PackError(f"no recording {path}: run `catalyst packs test --record` first")
        try:
            entries = orjson.loads(path.read_bytes())
            if not isinstance(entries, list):
                raise TypeError("not a list of exchanges")
            replayer = cls(entries, str(path))
            for responses in replayer._answers.values():
                for response in responses:
                    _response(response)  # every entry is checked before a test relies on it
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as error:
            raise PackError(f"recording {path} is not valid: {error}") from error
        return replayer

    def attach(self, connectors: Iterable[HasExchange]) -> None:
        for connector in connectors:
            connector.exchange = self

    async def __call__(self, request: RestRequest) -> RestResponse:
        self._secrets.update(request.secrets)
        entry = redact_exchange(request, None, self._secrets)["request"]
        key = _key(entry)
        answers = self._answers.get(key)
        if not answers:
            message = (
                f"replay: {entry['method']} {entry['url']} is not in {self.source} "
                "(record again with --record)"
            )
            self.misses.append(message)
            raise PackError(message)
        used = self._used.get(key, 0)
        self._used[key] = used + 1
        return _response(answers[min(used, len(answers) - 1)])  # in order, then the last again


def _key(request: Json) -> tuple[str, str, str]:
    return str(request["method"]).upper(), str(request["url"]), str(request.get("body", ""))


def _response(data: Json) -> RestResponse:
    status = data["status"]
    if not isinstance(status, int):
        raise TypeError("a response status must be a number")
    headers = {str(k).lower(): str(v) for k, v in dict(data.get("headers", {})).items()}
    return RestResponse(status, headers, _decode_body(data))


# ---- redaction and the recording format -----------------------------------------------------


def redact_exchange(
    request: RestRequest, response: RestResponse | None, secrets: Iterable[str]
) -> Json:
    """One exchange as recorded: ``{"request": {...}, "response": {...}}``, secrets redacted."""
    forms = _secret_forms(secrets)
    entry: Json = {
        "request": {
            "method": request.method.upper(),
            "url": _redact_url(_replace(request.url, forms)),
            "headers": _redact_headers(request.headers, forms),
            **_encode_body(_redact_body(request.body, request.headers, forms)),
        }
    }
    if response is not None:
        entry["response"] = {
            "status": response.status,
            "headers": _redact_headers(response.headers, forms),
            **_encode_body(_redact_body(response.body, response.headers, forms)),
        }
    return entry


def _secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as it may appear: raw, percent-encoded, form-encoded, JSON-escaped."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            json_form = orjson.dumps(secret).decode()[1:-1]
            forms.update({secret, quote(secret, safe=""), quote_plus(secret), json_form})
    return sorted(forms, key=len, reverse=True)  # longer first: no partial leftovers


def _replace(text: str, forms: list[str]) -> str:
    for form in forms:
        text = text.replace(form, REDACTED)
    return text


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{REDACTED}@{host}"))


def _redact_headers(headers: Mapping[str, str], forms: list[str]) -> dict[str, str]:
    return {
        name: REDACTED if SENSITIVE_HEADER.search(name) else _replace(value, forms)
        for name, value in headers.items()
    }


def _redact_body(body: bytes, headers: Mapping[str, str], forms: list[str]) -> bytes:
    for form in forms:
        body = body.replace(form.encode(), REDACTED.encode())
    kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "").lower()
    if "json" in kind:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if isinstance(data, dict) and SENSITIVE_FIELDS & data.keys():
            data = {k: REDACTED if k in SENSITIVE_FIELDS else v for k, v in data.items()}
            body = orjson.dumps(data)
    elif "x-www-form-urlencoded" in kind:
        try:
            fields = parse_qsl(body.decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            return body
        if any(k in SENSITIVE_FIELDS for k, _ in fields):
            redacted = [(k, REDACTED if k in SENSITIVE_FIELDS else v) for k, v in fields]
            body = urlencode(redacted).encode()
    return body


def _encode_body(body: bytes) -> Json:
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode(), "body_encoding": "base64"}


def _decode_body(data: Json) -> bytes:
    body = data.get("body", "")
    if not isinstance(body, str):
        raise TypeError("a body must be a string")
    if data.get("body_encoding") == "base64":
        return base64.b64decode(body, validate=True)
    return body.encode()
