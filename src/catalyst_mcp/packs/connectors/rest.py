"""The ``rest`` connector: one declared HTTP API, called by a pack's REST actions.

A call builds the request structurally (:mod:`.restbuild`), resolves ``${secret:NAME}``
references for the caller and authenticates (:mod:`.restauth`), then sends it, above the
:data:`~.exchange.Exchange` seam: redirects (each target checked again; 303 becomes GET;
credentials dropped across origins; https never downgraded), retries of idempotent requests
(connection errors, timeouts, ``retries.on_status``; exponential backoff with jitter, honouring
Retry-After up to the maximum wait) and one token refetch after a 401 (OAuth2). The default
exchange is the network through the SSRF guard (:class:`.network.GuardedNetwork`).

Every failure is a :class:`PackError` whose message names the connection and is written for
the client; every secret value the request carried is scrubbed from it. The connection's
``known_secrets`` (the values the loader expanded from ``${env:...}``) are carried by every
call, so they are scrubbed too and recorders redact them (:attr:`RestRequest.secrets`). Only
the method, host, status and timing are logged (debug level): never a URL query, a header or a
body.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import jmespath
import jmespath.exceptions
import orjson

from catalyst_mcp.context import CallContext
from catalyst_mcp.deadlines import CoarseTimeout
from catalyst_mcp.errors import PackError
from catalyst_mcp.net.httpclient import ConnectError, HttpError
from catalyst_mcp.net.netguard import AddressRefused
from catalyst_mcp.packs.connectors.exchange import Exchange, RestRequest, RestResponse
from catalyst_mcp.packs.connectors.network import REDIRECTS, GuardedNetwork, redirected
from catalyst_mcp.packs.connectors.restauth import (
    MIN_SECRET_LENGTH,
    Authenticator,
    SecretLookup,
    SecretScope,
    make_authenticator,
)
from catalyst_mcp.packs.connectors.restbuild import BuildError, RequestPlan, build, plan_request
from catalyst_mcp.packs.schema import RestAction, RestConnection

__all__ = ["RestConnector", "RestResult", "SecretLookup"]

log = logging.getLogger("catalyst.packs.rest")

MAX_DETAIL = 300  # characters of an API's own error message shown to the client


@dataclass(frozen=True, slots=True)
class RestResult:
    status: int
    value: Any  # the JSON response after `project`; the text of a non-JSON body; None if empty
    content_type: str  # the response's media type, e.g. "application/json"


@dataclass(frozen=True, slots=True)
class _Compiled:
    """What a call of one action needs, computed once."""

    plan: RequestPlan
    secret_names: tuple[str, ...]  # ${secret:...} of the headers and the auth
    retry_safe: bool
    project: Callable[[Any], Any] | None  # the JMESPath projection
    errors: dict[str, str]


class RestConnector:
    """One declared ``rest`` connection. ``exchange`` (one request -> one response; by default
    ``network``) may be replaced or wrapped, e.g. to record or replay; ``guard.resolver`` too
    (tests)."""

    def __init__(
        self,
        name: str,
        config: RestConnection,
        *,
        secrets: SecretLookup | None = None,
        known_secrets: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.config = config
        self.secrets = secrets
        # values of the connection that are secret without being references (e.g. expanded
        # from ${env:...}); very short ones would only scrub noise
        self.known_secrets = tuple(v for v in known_secrets if len(v) >= MIN_SECRET_LENGTH)
        self._where = f"connection '{name}'"
        self.network = GuardedNetwork(self._where, config)
        self.guard = self.network.guard
        self.exchange: Exchange = self.network
        self.auth = make_authenticator(name, config.auth, self._fetch_token)
        self._actions: dict[int, tuple[RestAction, _Compiled]] = {}

    # ---- one call -----------------------------------------------------------------------

    async def call(
        self,
        action: RestAction,
        values: dict[str, Any],
        ctx: CallContext | None = None,
        *,
        max_bytes: int | None = None,
    ) -> RestResult:
        """Send ``action`` with ``values``; the (projected) response, or a :class:`PackError`."""
        entry = self._actions.get(id(action))
        compiled = entry[1] if entry is not None and entry[0] is action else self._compile(action)
        limit = self.config.max_response_bytes
        if max_bytes is not None and max_bytes < limit:
            limit = max_bytes
        scope = SecretScope(self.name, self.secrets, ctx)
        for value in self.known_secrets:
            scope.carry(value)
        try:
            return await self._call(compiled, values, scope, limit)
        except PackError as error:
            if not scope.values:
                raise
            failure = error
        # raised outside the handler: the unscrubbed error is neither cause nor context
        raise PackError(scope.scrub(failure.message)) from failure.__cause__

    def _compile(self, action: RestAction) -> _Compiled:
        config = self.config
        try:
            plan = plan_request(
                config.base_url,
                config.headers,
                action.method,
                action.path,
                action.query,
                action.headers,
                action.body,
            )
        except BuildError as exc:
            raise PackError(f"{self._where}: {exc}") from exc
        project = None
        if action.project:
            try:
                expression = jmespath.compile(action.project)
            except jmespath.exceptions.JMESPathError as exc:
                raise PackError(f"{self._where}: project is not valid JMESPath: {exc}") from exc
            project = _closure(expression.parsed) or expression.search
        names = tuple(sorted(plan.secret_names | self.auth.secret_names))
        compiled = _Compiled(plan, names, action.retry_safe, project, dict(action.errors))
        self._actions[id(action)] = (action, compiled)  # the action is kept: its id stays unique
        return compiled

    async def _call(
        self, compiled: _Compiled, values: dict[str, Any], scope: SecretScope, limit: int
    ) -> RestResult:
        if compiled.secret_names:
            await scope.resolve(compiled.secret_names)
        plan = compiled.plan
        try:
            url, headers, body = build(plan, values, scope.resolved)
        except BuildError as exc:
            raise PackError(f"{self._where}: {exc}") from None  # its message says it all
        auth = self.auth
        # no authentication (the base class) adds nothing: spare its coroutine
        sent = url if type(auth) is Authenticator else await auth.apply(headers, url, scope)
        request = RestRequest(
            plan.method, sent, headers, body, scope.secrets, limit, compiled.retry_safe
        )
        response = await self._follow(request, compiled.retry_safe)
        if response.status == 401 and auth.refreshable:
            # the API refused the cached token: fetch a new one and try once more
            headers = dict(headers)
            sent = await auth.apply(headers, url, scope, stale=scope.token)
            request = RestRequest(
                plan.method, sent, headers, body, scope.secrets, limit, compiled.retry_safe
            )
            response = await self._follow(request, compiled.retry_safe)
        return self._result(compiled, response, scope)

    # ---- redirects, retries -------------------------------------------------------------

    async def _follow(self, request: RestRequest, retry_safe: bool) -> RestResponse:
        """The response once redirects are followed (up to ``max_redirects``)."""
        for _ in range(self.config.max_redirects):
            response = await self._attempt(request, retry_safe)
            location = response.headers.get("location")
            if response.status not in REDIRECTS or not location:
                return response
            try:
                request = redirected(request, response.status, location, self.auth.query_key)
            except AddressRefused as exc:
                raise PackError(f"{self._where}: {exc}") from exc
            log.debug(
                "%s: %d redirect to %s", self._where, response.status, request.url.split("/")[2]
            )
        return await self._attempt(request, retry_safe)

    async def _attempt(self, request: RestRequest, retry_safe: bool) -> RestResponse:
        """One exchange, retried as the connection's ``retries`` allow (idempotent only)."""
        retries = self.config.retries
        attempts = retries.attempts if retry_safe else 1
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                with CoarseTimeout(self.config.timeout_seconds):
                    response = await self.exchange(request)
            except PackError:
                raise
            except AddressRefused as exc:
                raise PackError(f"{self._where}: {exc}") from exc
            except UnicodeError:
                # encoding the head failed: the error holds the whole head (credentials too)
                raise PackError(f"{self._where}: a header value must be Latin-1 text") from None
            except (TimeoutError, HttpError, OSError) as exc:
                if attempt < attempts:
                    log.debug(
                        "%s: attempt %d failed (%s)", self._where, attempt, type(exc).__name__
                    )
                    await self._backoff(attempt, None)
                    continue
                raise PackError(self._failure(request, exc)) from exc
            except Exception as exc:  # a replacement exchange's own failure
                log.debug("%s: the exchange raised %s", self._where, type(exc).__name__)
                raise PackError(f"{self._where}: the request failed") from exc
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s: %s %s -> %d (%.1f ms)",
                    self._where,
                    request.method,
                    urlsplit(request.url).hostname,
                    response.status,
                    (time.perf_counter() - started) * 1000,
                )
            if len(response.body) > request.max_bytes:
                raise PackError(f"{self._where}: response larger than {request.max_bytes} bytes")
            if response.status in retries.on_status and attempt < attempts:
                await self._backoff(attempt, response.headers.get("retry-after"))
                continue
            return response

    def _failure(self, request: RestRequest, exc: BaseException) -> str:
        host = urlsplit(request.url).hostname
        if isinstance(exc, TimeoutError):
            limit = self.config.timeout_seconds
            return f"{self._where}: the request to {host} took longer than {limit:g} s"
        cause = exc.__cause__
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = f" ({cause.verify_message})" if cause.verify_message else ""
            return f"{self._where}: cannot connect to {host}: TLS certificate not trusted{reason}"
        if isinstance(cause, ssl.SSLError):
            return f"{self._where}: cannot connect to {host}: the TLS handshake failed"
        if isinstance(exc, ConnectError):
            return f"{self._where}: {exc}"
        return f"{self._where}: the request to {host} failed: {exc}"

    async def _backoff(self, attempt: int, retry_after: str | None) -> None:
        retries = self.config.retries
        cap = retries.max_backoff_seconds
        wait = _retry_after(retry_after)
        if wait is None:
            delay = min(cap, retries.backoff_seconds * 2 ** (attempt - 1))
            wait = delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 (jitter, not crypto)
        await asyncio.sleep(min(wait, cap))

    async def _fetch_token(self, request: RestRequest) -> RestResponse:
        """The OAuth2 token request: through the exchange, retried, never redirected."""
        return await self._attempt(request, True)

    # ---- the response -------------------------------------------------------------------

    def _result(
        self, compiled: _Compiled, response: RestResponse, scope: SecretScope
    ) -> RestResult:
        status = response.status
        content_type = response.headers.get("content-type", "")
        media = content_type.partition(";")[0].strip().lower()
        if not 200 <= status < 300:
            raise PackError(self._error(compiled, response, media, scope))
        body = response.body
        if not body:
            return RestResult(status, None, media)
        if media == "application/json" or media.endswith("+json"):
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise PackError(f"{self._where}: the response is not valid JSON") from exc
            if compiled.project is not None:
                try:
                    value = compiled.project(value)
                except jmespath.exceptions.JMESPathError as exc:
                    raise PackError(f"{self._where}: the projection failed: {exc}") from exc
            return RestResult(status, value, media)
        return RestResult(status, body.decode(_charset(content_type), errors="replace"), media)

    def _error(
        self, compiled: _Compiled, response: RestResponse, media: str, scope: SecretScope
    ) -> str:
        status = response.status
        errors = compiled.errors
        if errors:
            custom = errors.get(str(status)) or errors.get(f"{status // 100}xx")
            if custom is not None:
                return custom
        try:
            phrase = " " + HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        message = f"{self._where}: HTTP {status}{phrase}"
        if status in REDIRECTS and response.headers.get("location"):
            return f"{message}: redirect not followed (max_redirects: {self.config.max_redirects})"
        detail = _api_message(response.body, media, scope)
        return f"{message}: {detail}" if detail else message

    async def close(self) -> None:
        await self.network.aclose()


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip('"')
            try:
                return codecs.lookup(name).name
            except LookupError:
                break
    return "utf-8"


def _api_message(body: bytes, media: str, scope: SecretScope) -> str:
    """The API's own short message from a JSON error body (message, error or detail); secrets
    are scrubbed before it is shortened, so no part of one can show."""
    if not body or not (media.endswith("json") or body[:1] == b"{"):
        return ""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(data, dict):
        return ""
    for key in ("message", "error", "detail"):
        value = data.get(key)
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, dict):
            value = value.get("message") or value.get("msg")
        if isinstance(value, str) and value.strip():
            text = " ".join(scope.scrub(value).split())
            return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
    return ""


def _closure(node: dict[str, Any]) -> Callable[[Any], Any] | None:
    """A JMESPath syntax tree as nested closures, with the interpreter's exact semantics, for
    the node kinds projections use (fields, sub-expressions, indexes, ``[]``/``[*]``
    projections, multi-selects, literals, pipes); None when a node needs the interpreter
    (filters, functions, slices...). jmespath walks the tree on every search: ~20 µs for a
    five-key multi-select, against ~2 µs here."""
    kind = node["type"]
    if kind not in _CLOSURE_KINDS:
        return None
    funcs = [f for f in map(_closure, node["children"]) if f is not None]
    if len(funcs) != len(node["children"]):
        return None
    if kind == "field":
        name = node["value"]
        return lambda v: v.get(name) if isinstance(v, dict) else None
    if kind in ("identity", "current"):
        return lambda v: v
    if kind == "literal":
        constant = node["value"]
        return lambda v: constant
    if kind == "key_val_pair":
        return funcs[0]
    if kind in ("subexpression", "index_expression", "pipe"):

        def chain(v: Any) -> Any:
            for func in funcs:
                v = func(v)
            return v

        return chain
    if kind == "index":
        index = node["value"]
        return lambda v: v[index] if isinstance(v, list) and -len(v) <= index < len(v) else None
    if kind == "flatten":
        (inner,) = funcs

        def flatten(v: Any) -> Any:
            base = inner(v)
            if not isinstance(base, list):
                return None
            merged: list[Any] = []
            for item in base:
                if isinstance(item, list):
                    merged.extend(item)
                else:
                    merged.append(item)
            return merged

        return flatten
    if kind == "projection":
        left, right = funcs

        def project(v: Any) -> Any:
            base = left(v)
            if not isinstance(base, list):
                return None
            return [r for r in map(right, base) if r is not None]

        return project
    if kind == "multi_select_dict":
        pairs = [
            (child["value"], func) for child, func in zip(node["children"], funcs, strict=True)
        ]
        return lambda v: None if v is None else {key: func(v) for key, func in pairs}
    return lambda v: None if v is None else [func(v) for func in funcs]  # multi_select_list


_CLOSURE_KINDS = frozenset(
    (
        "field", "identity", "current", "literal", "key_val_pair", "subexpression", "pipe",
        "index_expression", "index", "flatten", "projection", "multi_select_dict",
        "multi_select_list",
    )
)  # fmt: skip
