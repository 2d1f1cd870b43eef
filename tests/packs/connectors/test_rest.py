"""The REST connector against a real HTTP server on 127.0.0.1: requests built structurally,
responses projected, errors mapped, retries, timeouts, size caps, redirects re-checked by the
SSRF guard, and no secret in any error message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.connectors.exchange import RestRequest, RestResponse
from catalyst_mcp.packs.connectors.rest import RestConnector, RestResult
from catalyst_mcp.packs.schema import RestAction, RestConnection
from tests.conftest import free_port
from tests.packs.connectors.apiserver import ApiServer, Reply, Seen, echo, json_reply

pytestmark = pytest.mark.network

CTX = CallContext(era="modern", protocol_version="2026-07-28")
CANARY = "canary-7f3a9c-SECRET"
ENV_CANARY = "env-canary-51b0e2"  # a value the loader expanded from ${env:...}
ITEMS = {"items": [{"id": 1, "title": "A", "body": "x"}, {"id": 2, "title": "B", "body": "y"}]}


async def items(seen: Seen) -> Reply:
    return json_reply(ITEMS)


async def status(seen: Seen) -> Reply:
    code = int(seen.path.rsplit("/", 1)[1])
    return json_reply({"message": f"status {code}  says\nhi", "code": code}, code)


async def flaky(seen: Seen) -> Reply:
    """Fails ``fail`` times per path with ``code`` (and ``ra`` as Retry-After), then echoes."""
    query = dict(seen.query)
    calls = sum(1 for r in SERVER_STATE["server"].requests if r.path == seen.path)
    if calls <= int(query.get("fail", "0")):
        headers = {"Retry-After": query["ra"]} if "ra" in query else {}
        return json_reply({"message": "busy"}, int(query.get("code", "503")), **headers)
    return await echo(seen)


async def slow(seen: Seen) -> Reply:
    await asyncio.sleep(5)
    return json_reply({})


async def big(seen: Seen) -> Reply:
    return Reply(200, b'"' + b"x" * 5000 + b'"', {"Content-Type": "application/json"})


async def big_chunked(seen: Seen) -> Reply:
    return Reply(200, b"y" * 5000, {"Content-Type": "text/plain"}, chunked=True)


async def redirect(seen: Seen) -> Reply:
    query = dict(seen.query)
    return Reply(int(query.get("code", "302")), b"", {"Location": query["to"]})


async def canary(seen: Seen) -> Reply:
    """An API that echoes the credentials it got in its error message."""
    told = " ".join(
        [seen.headers.get("authorization", ""), seen.headers.get("x-key", ""), seen.target]
    )
    return json_reply({"error": {"message": f"bad credentials: {told}"}}, 403)


async def text(seen: Seen) -> Reply:
    return Reply(200, "café".encode("latin-1"), {"Content-Type": "text/plain; charset=ISO-8859-1"})


async def empty(seen: Seen) -> Reply:
    return Reply(204)


async def not_json(seen: Seen) -> Reply:
    return Reply(200, b"{nope", {"Content-Type": "application/problem+json"})


SERVER_STATE: dict[str, ApiServer] = {}
ROUTES = {
    "/items": items,
    "/status/": status,
    "/flaky/": flaky,
    "/slow": slow,
    "/big": big,
    "/big-chunked": big_chunked,
    "/redirect": redirect,
    "/canary": canary,
    "/text": text,
    "/empty": empty,
    "/not-json": not_json,
}


@pytest_asyncio.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer(ROUTES).running() as running:
        SERVER_STATE["server"] = running
        yield running


def connector(
    base_url: str, secrets: Any = None, known_secrets: tuple[str, ...] = (), **config: Any
) -> RestConnector:
    settings = {
        "type": "rest",
        "base_url": base_url,
        "allow_private_network": True,
        "retries": {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05},
        **config,
    }
    return RestConnector(
        "api", RestConnection.model_validate(settings), secrets=secrets, known_secrets=known_secrets
    )


@pytest_asyncio.fixture
async def api(server: ApiServer) -> AsyncIterator[RestConnector]:
    conn = connector(server.url)
    yield conn
    await conn.close()


def action(**spec: Any) -> RestAction:
    return RestAction.model_validate({"connection": "api", **spec})


async def failure(
    conn: RestConnector, act: RestAction, values: dict[str, Any] | None = None, **kwargs: Any
) -> str:
    with pytest.raises(PackError) as info:
        await conn.call(act, values or {}, CTX, **kwargs)
    return str(info.value)


async def lookup(name: str, ctx: CallContext | None) -> str | None:
    return CANARY if name == "TOKEN" else None


# ---- requests and responses ---------------------------------------------------------------


async def test_get_with_path_and_query(api: RestConnector) -> None:
    act = action(path="/echo/{id}", query={"q": "{q}", "tags": "{tags}", "open": "{open}"})
    result = await api.call(act, {"id": "a/b", "q": "x y&z", "tags": ["1", "2"], "open": True})
    assert result.status == 200
    assert result.content_type == "application/json"
    assert result.value["method"] == "GET"
    assert result.value["path"] == "/echo/a%2Fb"
    assert result.value["raw_query"] == "q=x%20y%26z&tags=1&tags=2&open=true"
    assert result.value["headers"]["user-agent"] == "catalyst-mcp"


async def test_post_with_structural_json_body(api: RestConnector) -> None:
    act = action(
        method="POST",
        path="/echo",
        body={"title": "{title}", "n": "{n}", "labels": "{labels}", "note": "{note}", "k": 1},
    )
    values = {"title": '"}, "admin": true, {"', "n": 3, "labels": ["x"], "note": None}
    result = await api.call(act, values, CTX)
    assert result.value["method"] == "POST"
    assert result.value["headers"]["content-type"] == "application/json"
    assert result.value["body"] == {
        "title": '"}, "admin": true, {"',
        "n": 3,
        "labels": ["x"],
        "k": 1,
    }


async def test_projection(api: RestConnector) -> None:
    act = action(path="/items", project="items[].{id: id, title: title}")
    result = await api.call(act, {}, CTX)
    assert result == RestResult(
        200, [{"id": 1, "title": "A"}, {"id": 2, "title": "B"}], "application/json"
    )
    # compiled once per action
    assert await api.call(act, {}, CTX) == result
    assert len(api._actions) == 1


async def test_text_empty_and_invalid_json(api: RestConnector) -> None:
    assert await api.call(action(path="/text"), {}) == RestResult(200, "café", "text/plain")
    assert await api.call(action(path="/empty"), {}) == RestResult(204, None, "")
    message = await failure(api, action(path="/not-json"))
    assert message == "connection 'api': the response is not valid JSON"


async def test_head_request(api: RestConnector) -> None:
    result = await api.call(action(method="HEAD", path="/items"), {})
    assert (result.status, result.value) == (200, None)


async def test_connections_are_reused(api: RestConnector, server: ApiServer) -> None:
    for _ in range(5):
        await api.call(action(path="/items"), {})
    assert server.connections == 1


# ---- errors -------------------------------------------------------------------------------


async def test_error_statuses_show_the_apis_own_message(api: RestConnector) -> None:
    message = await failure(api, action(path="/status/404"))
    assert message == "connection 'api': HTTP 404 Not Found: status 404 says hi"
    message = await failure(api, action(path="/status/500"))
    assert message == "connection 'api': HTTP 500 Internal Server Error: status 500 says hi"


async def test_custom_error_messages_exact_code_wins(api: RestConnector) -> None:
    errors = {"404": "No such issue.", "4xx": "The request was refused.", "5xx": "GitHub is down."}
    act = action(path="/status/404", errors=errors)
    assert await failure(api, act) == "No such issue."
    assert await failure(api, action(path="/status/400", errors=errors)) == (
        "The request was refused."
    )
    assert await failure(api, action(path="/status/500", errors=errors)) == "GitHub is down."


async def test_a_long_api_message_is_cut(api: RestConnector, server: ApiServer) -> None:
    async def wordy(seen: Seen) -> Reply:
        return json_reply({"detail": "w" * 1000}, 422)

    server.routes["/wordy"] = wordy
    message = await failure(api, action(path="/wordy"))
    assert message.startswith("connection 'api': HTTP 422 Unprocessable Entity: www")
    assert len(message.split(": ", 2)[2]) == 300


async def test_cannot_connect() -> None:
    port = free_port()
    conn = connector(f"http://127.0.0.1:{port}", retries={"attempts": 2, "backoff_seconds": 0})
    message = await failure(conn, action(path="/x"))
    assert message.startswith(f"connection 'api': cannot connect to 127.0.0.1:{port}: ")
    await conn.close()


# ---- retries ------------------------------------------------------------------------------


async def test_get_is_retried_on_503(api: RestConnector, server: ApiServer) -> None:
    result = await api.call(action(path="/flaky/get", query={"fail": 2}), {})
    assert result.value["path"] == "/flaky/get"
    assert len(server.seen("/flaky/get")) == 3


async def test_get_gives_up_after_the_attempts(api: RestConnector, server: ApiServer) -> None:
    message = await failure(api, action(path="/flaky/many", query={"fail": 5}))
    assert message == "connection 'api': HTTP 503 Service Unavailable: busy"
    assert len(server.seen("/flaky/many")) == 3


async def test_post_is_not_retried(api: RestConnector, server: ApiServer) -> None:
    act = action(method="POST", path="/flaky/post", query={"fail": 1}, body={"a": 1})
    assert "HTTP 503" in await failure(api, act)
    assert len(server.seen("/flaky/post")) == 1
    # unless the action says it is idempotent
    act = action(method="POST", path="/flaky/post2", query={"fail": 1}, idempotent=True)
    assert (await api.call(act, {})).status == 200
    assert len(server.seen("/flaky/post2")) == 2


async def test_statuses_not_listed_are_not_retried(api: RestConnector, server: ApiServer) -> None:
    assert "HTTP 500" in await failure(
        api, action(path="/flaky/500", query={"fail": 1, "code": 500})
    )
    assert len(server.seen("/flaky/500")) == 1


async def test_retry_after_is_honoured_up_to_the_cap(server: ApiServer) -> None:
    conn = connector(server.url, retries={"backoff_seconds": 0, "max_backoff_seconds": 0.3})
    started = time.monotonic()
    await conn.call(action(path="/flaky/ra", query={"fail": 1, "ra": "0.2"}), {})
    assert 0.2 <= time.monotonic() - started < 1
    started = time.monotonic()
    await conn.call(action(path="/flaky/ra-long", query={"fail": 1, "ra": "120"}), {})
    assert 0.3 <= time.monotonic() - started < 1  # 120 s asked, 0.3 s (the cap) waited
    await conn.close()


# ---- time and size limits -----------------------------------------------------------------


async def test_timeout(server: ApiServer) -> None:
    conn = connector(server.url, timeout_seconds=0.2, retries={"attempts": 1})
    started = time.monotonic()
    message = await failure(conn, action(path="/slow"))
    assert message == "connection 'api': the request to 127.0.0.1 took longer than 0.2 s"
    assert time.monotonic() - started < 1
    # the timed-out connection was dropped, the next call works
    assert (await conn.call(action(path="/items"), {})).status == 200
    await conn.close()


async def test_response_size_cap(api: RestConnector, server: ApiServer) -> None:
    message = await failure(api, action(path="/big"), max_bytes=1000)
    assert message == "connection 'api': response larger than 1000 bytes"
    message = await failure(api, action(path="/big-chunked"), max_bytes=1000)
    assert message == "connection 'api': response larger than 1000 bytes"
    assert len((await api.call(action(path="/big-chunked"), {}, max_bytes=5000)).value) == 5000
    small = connector(server.url, max_response_bytes=100)
    assert "larger than 100 bytes" in await failure(small, action(path="/big"), max_bytes=10**6)
    await small.close()


# ---- redirects and the SSRF guard ---------------------------------------------------------


async def test_redirect_is_followed(api: RestConnector) -> None:
    act = action(path="/redirect", query={"to": "/echo/there?x=1", "code": "{code}"})
    for code in (301, 302, 307, 308):
        result = await api.call(act, {"code": code})
        assert (result.value["path"], result.value["raw_query"]) == ("/echo/there", "x=1")


async def test_303_becomes_get_and_307_keeps_the_body(api: RestConnector) -> None:
    act = action(
        method="POST", path="/redirect", query={"to": "/echo", "code": "{code}"}, body={"a": 1}
    )
    after_303 = (await api.call(act, {"code": 303})).value
    assert (after_303["method"], after_303["body"]) == ("GET", None)
    assert "content-type" not in after_303["headers"]
    after_307 = (await api.call(act, {"code": 307})).value
    assert (after_307["method"], after_307["body"]) == ("POST", {"a": 1})


async def test_too_many_redirects(server: ApiServer) -> None:
    conn = connector(server.url, max_redirects=2)
    loop = "/redirect?to=%2Fredirect%3Fto%3D%252Fecho"  # two hops to /echo
    act = action(path="/redirect", query={"to": loop})  # three hops
    message = await failure(conn, act)
    assert message == "connection 'api': HTTP 302 Found: redirect not followed (max_redirects: 2)"
    await conn.close()


async def test_redirect_to_metadata_is_refused(api: RestConnector) -> None:
    act = action(path="/redirect", query={"to": "http://169.254.169.254/latest/meta-data/"})
    message = await failure(api, act)
    assert message == (
        "connection 'api': refused: 169.254.169.254 is a link-local/cloud-metadata address"
    )


async def test_loopback_is_refused_without_the_flag(server: ApiServer) -> None:
    conn = connector(server.url, allow_private_network=False)
    message = await failure(conn, action(path="/items"))
    assert message == (
        "connection 'api': refused: 127.0.0.1 is a loopback address "
        "(set allow_private_network: true on the connection to allow it)"
    )
    assert server.requests == []
    await conn.close()


async def test_a_name_resolving_to_loopback_is_refused(server: ApiServer) -> None:
    conn = connector(f"http://api.example.test:{server.port}", allow_private_network=False)

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    conn.guard.resolver = resolve
    message = await failure(conn, action(path="/items"))
    assert "refused: api.example.test resolves to 127.0.0.1, a loopback address" in message
    assert server.requests == []
    await conn.close()


async def test_redirect_to_loopback_refused_without_the_flag(server: ApiServer) -> None:
    """The API's own name passes (a stand-in for a public address); a redirect to another
    name that resolves to loopback does not."""
    conn = connector(f"http://api.example.test:{server.port}", allow_private_network=False)
    names = {"api.example.test": "127.0.0.1", "evil.example.test": "127.0.0.1"}

    async def resolve(host: str, port: int) -> list[str]:
        return [names[host]]

    conn.guard.resolver = resolve
    check = conn.guard.check

    def public_api(host: str, address: str) -> None:
        if host != "api.example.test":  # the API itself stands in for a public address
            check(host, address)

    conn.guard.check = public_api  # type: ignore[method-assign]
    assert (await conn.call(action(path="/items"), {})).status == 200  # the API itself works
    to = f"http://evil.example.test:{server.port}/echo"
    message = await failure(conn, action(path="/redirect", query={"to": to}))
    assert message == (
        "connection 'api': refused: evil.example.test resolves to 127.0.0.1, a loopback "
        "address (set allow_private_network: true on the connection to allow it)"
    )
    message = await failure(
        conn, action(path="/redirect", query={"to": f"http://127.0.0.1:{server.port}/echo"})
    )
    assert "refused: 127.0.0.1 is a loopback address" in message
    assert server.seen("/echo") == []
    await conn.close()


async def test_cross_origin_redirect_drops_credentials(server: ApiServer) -> None:
    conn = connector(
        server.url,
        secrets=lookup,
        known_secrets=(ENV_CANARY,),
        headers={"X-Key": "${secret:TOKEN}", "X-Plain": "dropped", "X-Env": ENV_CANARY},
        auth={"type": "api_key", "name": "key", "value": "k-123", "in": "query"},
    )

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    conn.guard.resolver = resolve
    same = await conn.call(action(path="/redirect", query={"to": "/echo?b=2"}), {}, CTX)
    assert same.value["headers"]["x-key"] == CANARY
    assert same.value["query"] == [["b", "2"], ["key", "k-123"]]  # the same API keeps its key
    again = await conn.call(action(path="/redirect", query={"to": "/echo?key=k-123"}), {}, CTX)
    assert again.value["query"] == [["key", "k-123"]]
    other = f"http://other.example.test:{server.port}/echo?key=k-123&a=1"
    moved = await conn.call(action(path="/redirect", query={"to": other}), {}, CTX)
    assert moved.value["headers"]["host"] == f"other.example.test:{server.port}"
    seen = server.seen("/echo")[-1].headers
    assert seen == moved.value["headers"]
    assert seen.keys() == {"host", "user-agent", "accept"}  # an allow-list, nothing else
    assert ENV_CANARY not in str(seen)
    assert CANARY not in str(seen)
    assert moved.value["query"] == [["a", "1"]]
    await conn.close()


# ---- secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "bearer", "token": "${secret:TOKEN}"},
        {"type": "bearer", "token": CANARY},  # a literal (an expanded ${env:...})
        {"type": "basic", "username": "u", "password": "${secret:TOKEN}"},
        {"type": "api_key", "name": "key", "value": "${secret:TOKEN}", "in": "query"},
        {"type": "api_key", "name": "X-Key", "value": "${secret:TOKEN}"},
    ],
    ids=["bearer", "literal", "basic", "query", "header"],
)
async def test_secrets_never_appear_in_errors(server: ApiServer, auth: dict[str, Any]) -> None:
    seen: list[RestRequest] = []
    conn = connector(server.url, secrets=lookup, auth=auth)
    network = conn.exchange

    async def spy(request: RestRequest) -> RestResponse:
        seen.append(request)
        return await network(request)

    conn.exchange = spy
    message = await failure(conn, action(path="/canary"))
    assert message.startswith("connection 'api': HTTP 403 Forbidden: bad credentials: ")
    assert "<redacted>" in message
    assert CANARY not in message
    assert "Y2FuYXJ5" not in message  # nor its base64
    assert CANARY in seen[0].secrets  # recorders can redact it
    await conn.close()


async def test_no_part_of_a_secret_shows_where_a_message_is_cut(server: ApiServer) -> None:
    async def cut(seen: Seen) -> Reply:
        return json_reply({"message": "x" * 285 + seen.headers["authorization"]}, 401)

    server.routes["/cut"] = cut
    conn = connector(
        server.url, secrets=lookup, auth={"type": "bearer", "token": "${secret:TOKEN}"}
    )
    message = await failure(conn, action(path="/cut"))
    assert message.endswith("xBearer <redact…")  # cut after the secret was scrubbed
    assert CANARY[:4] not in message
    await conn.close()


async def test_oauth2_token_endpoint_errors_are_scrubbed() -> None:
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": "https://auth.example.com/token",
        "client_id": "id",
        "client_secret": "${secret:TOKEN}",
    }
    conn = connector("https://api.example.com", secrets=lookup, auth=auth)

    async def leaky(request: RestRequest) -> RestResponse:
        body = {"error": "invalid_client", "error_description": f"{'y' * 290}{CANARY}"}
        return RestResponse(400, {"content-type": "application/json"}, orjson.dumps(body))

    conn.exchange = leaky
    message = await failure(conn, action(path="/x"))
    assert message.startswith(
        "connection 'api': the token endpoint auth.example.com answered HTTP 400 Bad Request: "
        "invalid_client - yyy"
    )
    assert CANARY[:4] not in message


async def test_secret_header_references_and_a_missing_secret(server: ApiServer) -> None:
    conn = connector(server.url, secrets=lookup, headers={"X-Key": "${secret:TOKEN}"})
    result = await conn.call(action(path="/echo"), {}, CTX)
    assert result.value["headers"]["x-key"] == CANARY
    act = action(path="/echo", headers={"X-Other": "${secret:MISSING}"})
    assert await failure(conn, act) == "connection 'api': secret MISSING is not set for this user"
    no_store = connector(server.url, headers={"X-Key": "${secret:TOKEN}"})
    assert "none is configured" in await failure(no_store, action(path="/echo"))
    await conn.close()


# ---- the exchange seam --------------------------------------------------------------------


async def test_a_replacement_exchange_serves_calls() -> None:
    conn = connector(
        "https://api.example.com/v1",
        secrets=lookup,
        auth={"type": "bearer", "token": "${secret:TOKEN}"},
    )
    requests: list[RestRequest] = []

    async def canned(request: RestRequest) -> RestResponse:
        requests.append(request)
        body = orjson.dumps({"number": 7, "title": "Bug", "labels": [{"name": "x"}]})
        return RestResponse(200, {"content-type": "application/json; charset=utf-8"}, body)

    conn.exchange = canned
    act = action(method="PATCH", path="/issues/{n}", body={"title": "{t}"}, project="title")
    result = await conn.call(act, {"n": 7, "t": "Bug"}, CTX, max_bytes=5000)
    assert result == RestResult(200, "Bug", "application/json")
    (request,) = requests
    assert request.method == "PATCH"
    assert request.url == "https://api.example.com/v1/issues/7"
    assert request.headers["Authorization"] == f"Bearer {CANARY}"
    assert request.body == b'{"title":"Bug"}'
    assert request.secrets == (CANARY,)
    assert request.max_bytes == 5000
    assert conn.network.clients == {}  # no network touched


async def test_https_to_http_redirect_is_refused() -> None:
    conn = connector("https://api.example.com")

    async def downgrade(request: RestRequest) -> RestResponse:
        return RestResponse(302, {"location": "http://api.example.com/x"}, b"")

    conn.exchange = downgrade
    message = await failure(conn, action(path="/x"))
    assert message == "connection 'api': refused a redirect from https to http (api.example.com)"


async def test_oauth2_refetches_once_after_a_401() -> None:
    conn = connector(
        "https://api.example.com",
        auth={
            "type": "oauth2_client_credentials",
            "token_url": "https://auth.example.com/token",
            "client_id": "id",
            "client_secret": "sec",
        },
    )
    issued: list[str] = []
    api_calls: list[str] = []
    revoked = False

    async def fake(request: RestRequest) -> RestResponse:
        if request.url.endswith("/token"):
            issued.append(f"tok-{len(issued) + 1}")
            body = {"access_token": issued[-1], "expires_in": 3600}
            return RestResponse(200, {"content-type": "application/json"}, orjson.dumps(body))
        api_calls.append(request.headers["Authorization"])
        stale = request.headers["Authorization"] != f"Bearer {issued[-1]}"
        if revoked or stale or len(issued) < 2:
            return RestResponse(401, {"content-type": "application/json"}, b'{"message":"expired"}')
        return RestResponse(200, {"content-type": "application/json"}, b'{"ok":true}')

    conn.exchange = fake
    result = await conn.call(action(method="POST", path="/x", body={"a": 1}), {}, CTX)
    assert result.value == {"ok": True}
    assert api_calls == ["Bearer tok-1", "Bearer tok-2"]
    assert (await conn.call(action(path="/x"), {}, CTX)).value == {"ok": True}
    assert len(issued) == 2  # cached
    revoked = True  # the API refuses every token now: one refetch, no more
    message = await failure(conn, action(path="/x"))
    assert message == "connection 'api': HTTP 401 Unauthorized: expired"
    assert len(issued) == 3
    assert api_calls[-2:] == ["Bearer tok-2", "Bearer tok-3"]


async def test_an_unexpected_exchange_failure_is_a_pack_error() -> None:
    conn = connector("https://api.example.com")

    async def broken(request: RestRequest) -> RestResponse:
        raise KeyError(request.url)

    conn.exchange = broken
    assert await failure(conn, action(path="/x")) == "connection 'api': the request failed"


# ---- values expanded from ${env:...} --------------------------------------------------------


async def test_env_values_are_secrets_of_every_call(server: ApiServer) -> None:
    seen: list[RestRequest] = []
    conn = connector(
        server.url, known_secrets=(ENV_CANARY, "abc"), headers={"X-Key": f"k={ENV_CANARY}"}
    )
    assert conn.known_secrets == (ENV_CANARY,)  # a very short value would only scrub noise
    network = conn.exchange

    async def spy(request: RestRequest) -> RestResponse:
        seen.append(request)
        return await network(request)

    conn.exchange = spy
    message = await failure(conn, action(path="/canary"))
    assert message == "connection 'api': HTTP 403 Forbidden: bad credentials: k=<redacted> /canary"
    assert ENV_CANARY in seen[0].secrets  # recorders redact it
    await conn.close()


async def test_an_env_token_in_the_base_url_path_is_a_secret() -> None:
    conn = connector(f"https://api.example.com/{ENV_CANARY}/v1", known_secrets=(ENV_CANARY,))
    requests: list[RestRequest] = []

    async def refuse(request: RestRequest) -> RestResponse:
        requests.append(request)
        body = orjson.dumps({"message": f"no route {request.url}"})
        return RestResponse(404, {"content-type": "application/json"}, body)

    conn.exchange = refuse
    message = await failure(conn, action(path="/x"))
    expected = "connection 'api': HTTP 404 Not Found: no route https://api.example.com"
    assert message == f"{expected}/<redacted>/v1/x"
    assert requests[0].secrets == (ENV_CANARY,)


# ---- header values, path values -------------------------------------------------------------


async def test_a_header_value_that_is_not_latin1_is_refused_before_sending() -> None:
    conn = connector("https://api.example.com", auth={"type": "bearer", "token": CANARY})
    sent: list[RestRequest] = []

    async def never(request: RestRequest) -> RestResponse:
        sent.append(request)
        return RestResponse(200, {}, b"")

    conn.exchange = never
    with pytest.raises(PackError) as info:
        await conn.call(action(path="/x", headers={"X-Name": "{name}"}), {"name": "日本"}, CTX)
    assert str(info.value) == "connection 'api': header X-Name: value must be Latin-1 text"
    assert info.value.__cause__ is None
    auth = connector("https://api.example.com", auth={"type": "bearer", "token": "日本-token"})
    auth.exchange = never
    message = await failure(auth, action(path="/x"))
    assert message == "connection 'api': the auth token must be Latin-1 text"
    assert sent == []


async def test_an_encoding_failure_in_the_exchange_never_chains_the_head() -> None:
    conn = connector("https://api.example.com", auth={"type": "bearer", "token": CANARY})

    async def encode(request: RestRequest) -> RestResponse:
        head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items()) + "日本"
        head.encode("latin-1")
        raise AssertionError("unreachable")

    conn.exchange = encode
    with pytest.raises(PackError) as info:
        await conn.call(action(path="/x"), {}, CTX)
    assert str(info.value) == "connection 'api': a header value must be Latin-1 text"
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


async def test_a_backslash_in_a_path_value_is_refused(api: RestConnector) -> None:
    message = await failure(api, action(path="/echo/{id}"), {"id": "..\\admin"})
    assert message == (
        "connection 'api': the path value of 'id' cannot contain a backslash (servers may read "
        "it as '/')"
    )
