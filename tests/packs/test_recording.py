"""Record/replay of REST traffic: every secret redacted before anything is written, and a
recording that answers offline, directly and through the pack test runner."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.connectors.exchange import RestRequest, RestResponse
from catalyst_mcp.packs.connectors.rest import RestConnector
from catalyst_mcp.packs.loader import LoadedPack, load_pack
from catalyst_mcp.packs.provider import PackProvider
from catalyst_mcp.packs.recording import (
    REDACTED,
    Recorder,
    Replayer,
    recording_path,
    redact_exchange,
    replay_environ,
    rest_connectors,
)
from catalyst_mcp.packs.schema import RestConnection
from catalyst_mcp.packs.testing import run_pack
from tests.packs.conftest import people_pack, write_pack

CANARY = "canary-5d1e-SECRET+/="  # characters that change when percent-encoded
ISSUE = {"number": 1, "title": "Bug", "labels": ["a", "b"], "state": "open"}


# ---- redaction ------------------------------------------------------------------------------


def secret_request(url: str = "https://api.test/v1/search?q=x&key=") -> RestRequest:
    from urllib.parse import quote

    return RestRequest(
        "POST",
        url + quote(CANARY, safe=""),
        {
            "Authorization": "Bearer opaque-derived-value",
            "X-Api-Key": "another-value",
            "Cookie": "session=abc",
            "X-Trace": f"t-{CANARY}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
        orjson.dumps({"title": "x", "token": CANARY, "note": f"has {CANARY} inside"}),
        secrets=(CANARY,),
    )


def secret_response() -> RestResponse:
    return RestResponse(
        200,
        {"content-type": "application/json", "set-cookie": "s=1", "x-request-id": "r1"},
        orjson.dumps({"access_token": "minted-token-value", "echo": CANARY, "ok": True}),
    )


def test_redaction_removes_every_secret() -> None:
    entry = redact_exchange(secret_request(), secret_response(), [CANARY])
    text = json.dumps(entry)
    assert CANARY not in text
    assert "opaque-derived-value" not in text  # credential headers, whatever their value
    assert "another-value" not in text
    assert "minted-token-value" not in text  # OAuth token fields of responses
    request, response = entry["request"], entry["response"]
    assert request["url"] == f"https://api.test/v1/search?q=x&key={REDACTED}"
    assert request["headers"] == {
        "Authorization": REDACTED,
        "X-Api-Key": REDACTED,
        "Cookie": REDACTED,
        "X-Trace": f"t-{REDACTED}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    assert json.loads(request["body"]) == {
        "title": "x",
        "token": REDACTED,
        "note": f"has {REDACTED} inside",
    }
    assert response["headers"]["set-cookie"] == REDACTED
    assert response["headers"]["x-request-id"] == "r1"
    assert json.loads(response["body"]) == {"access_token": REDACTED, "echo": REDACTED, "ok": True}


def test_redaction_of_form_bodies_url_passwords_and_binary() -> None:
    token = RestRequest(
        "POST",
        "https://user:pa55@auth.test/token",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"grant_type=client_credentials&client_id=app&client_secret=s3cr3t",
    )
    entry = redact_exchange(token, RestResponse(200, {}, b"\xff\x00\xfe"), [])
    assert entry["request"]["url"] == f"https://user:{REDACTED}@auth.test/token"
    assert "s3cr3t" not in entry["request"]["body"]
    assert "client_id=app" in entry["request"]["body"]
    assert entry["response"] == {
        "status": 200,
        "headers": {},
        "body": base64.b64encode(b"\xff\x00\xfe").decode(),
        "body_encoding": "base64",
    }


# ---- record and replay with a fake connector ------------------------------------------------


class FakeConnector:
    """What record/replay relies on: a replaceable ``exchange``."""

    def __init__(self) -> None:
        self.calls: list[RestRequest] = []
        self.exchange = self.network

    async def network(self, request: RestRequest) -> RestResponse:
        self.calls.append(request)
        if request.url.endswith("/binary"):
            return RestResponse(200, {"content-type": "image/png"}, b"\x89PNG\x00\xff")
        return RestResponse(
            200,
            {"content-type": "application/json"},
            orjson.dumps({"n": len(self.calls), "you_sent": request.headers.get("X-Trace")}),
        )


async def test_record_then_replay(tmp_path: Path) -> None:
    connector = FakeConnector()
    recorder = Recorder()
    recorder.attach([connector])
    first = await connector.exchange(secret_request())
    await connector.exchange(secret_request())
    binary = await connector.exchange(RestRequest("GET", "https://api.test/binary", {}))
    assert orjson.loads(first.body)["you_sent"] == f"t-{CANARY}"  # the real answer, unchanged
    path = tmp_path / "p.recording.json"
    assert recorder.save(path) == 3
    text = path.read_text()
    assert CANARY not in text
    assert "opaque-derived-value" not in text
    entries = json.loads(text)
    assert [e["request"]["method"] for e in entries] == ["POST", "POST", "GET"]
    assert entries[2]["response"]["body_encoding"] == "base64"

    # offline: another secret value (the placeholder of replay_environ) still matches
    offline = FakeConnector()
    replayer = Replayer.load(path)
    replayer.attach([offline])
    other = secret_request()
    other = RestRequest(
        other.method,
        other.url.replace("canary-5d1e-SECRET%2B%2F%3D", "placeholder"),
        {**other.headers, "X-Trace": "t-placeholder"},
        other.body.replace(CANARY.encode(), b"placeholder"),
        secrets=("placeholder",),
    )
    answers = [orjson.loads((await offline.exchange(other)).body)["n"] for _ in range(3)]
    assert answers == [1, 2, 2]  # recorded answers in order, then the last one again
    assert (await offline.exchange(RestRequest("GET", "https://api.test/binary", {}))).body == (
        binary.body
    )
    assert offline.calls == []  # the network was never used
    assert replayer.misses == []

    with pytest.raises(PackError, match=r"replay: DELETE https://api.test/v1/x is not in "):
        await offline.exchange(RestRequest("DELETE", "https://api.test/v1/x", {}))
    assert len(replayer.misses) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no recording .*: run `catalyst packs test --record` first"),
        ("not json", "is not valid"),
        ('{"a": 1}', "not a list of exchanges"),
        ('[{"request": {"method": "GET", "url": "u"}}]', "is not valid: 'response'"),
        ('[{"request": {"method": "GET", "url": "u"}, "response": {"status": "x"}}]', "status"),
    ],
    ids=["missing", "not-json", "not-a-list", "no-response", "bad-status"],
)
def test_unusable_recordings(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "p.recording.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PackError, match=message):
        Replayer.load(path)


def test_recording_path_and_replay_environ() -> None:
    assert recording_path(Path("packs/github.yaml")) == Path("packs/github.recording.json")
    environ = replay_environ()
    assert "SURELY_NOT_SET_ANYWHERE_42" in environ
    assert environ["SURELY_NOT_SET_ANYWHERE_42"] == "replay-placeholder"


# ---- record and replay through the real provider and REST connector ------------------------

TRACKER: dict[str, Any] = {
    "pack": "tracker",
    "connections": {
        "api": {
            "type": "rest",
            "base_url": "https://api.tracker.test/v1",
            "auth": {"type": "bearer", "token": "${env:TRACKER_TOKEN}"},
        }
    },
    "tools": [
        {
            "name": "get_issue",
            "description": "One issue.",
            "parameters": {"number": {"type": "integer", "required": True}},
            "rest": {"connection": "api", "path": "/issues/{number}"},
        },
        {
            "name": "create_issue",
            "description": "A new issue.",
            "parameters": {"title": {"type": "string", "required": True}},
            "rest": {
                "connection": "api",
                "method": "POST",
                "path": "/issues",
                "body": {"title": "{title}"},
            },
        },
    ],
    "tests": [
        {
            "name": "gets an issue",
            "tool": "get_issue",
            "arguments": {"number": 1},
            "expect": {"structured": {"number": 1, "labels": ["a"]}},
        },
        {
            "name": "creates an issue",
            "tool": "create_issue",
            "arguments": {"title": "New"},
            "expect": {"structured": {"title": "New"}},
        },
        {
            "name": "a missing issue is an error",
            "tool": "get_issue",
            "arguments": {"number": 404},
            "expect": {"is_error": True},
        },
    ],
}


class Api:
    """The API behind the pack, in memory: what the network exchange would reach."""

    def __init__(self) -> None:
        self.requests: list[RestRequest] = []

    async def __call__(self, request: RestRequest) -> RestResponse:
        self.requests.append(request)
        json_type = {"content-type": "application/json"}
        if request.method == "POST":
            created = {**orjson.loads(request.body), "number": 2, "by": request.headers}
            return RestResponse(201, json_type, orjson.dumps(created))
        if request.url.endswith("/issues/1"):
            return RestResponse(200, json_type, orjson.dumps(ISSUE))
        return RestResponse(404, json_type, b'{"message": "no such issue"}')


def with_api(api: Api) -> Any:
    def make(loaded: LoadedPack) -> PackProvider:
        provider = PackProvider(loaded)
        for connector in rest_connectors(provider).values():
            connector.exchange = api
        return provider

    return make


async def test_record_and_replay_a_rest_pack(tmp_path: Path) -> None:
    file = write_pack(tmp_path, "tracker.yaml", TRACKER)
    loaded = load_pack(file, {"TRACKER_TOKEN": CANARY})
    api = Api()
    recorded = await run_pack(loaded, "record", make_provider=with_api(api))
    assert [r.reasons for r in recorded.results] == [(), (), ()]
    assert recorded.recording == tmp_path / "tracker.recording.json"
    assert recorded.exchanges == len(api.requests) == 3
    assert api.requests[0].headers["Authorization"] == f"Bearer {CANARY}"  # the real call
    text = recorded.recording.read_text()
    assert CANARY not in text  # nor in the echoed headers of the POST's answer
    assert REDACTED in text

    # offline, without the token: the recording answers, the API is not called
    offline_api = Api()
    loaded = load_pack(file, replay_environ())
    replayed = await run_pack(loaded, "replay", make_provider=with_api(offline_api))
    assert [r.reasons for r in replayed.results] == [(), (), ()]
    assert replayed.recording == recorded.recording
    assert offline_api.requests == []

    # a request the recording lacks fails its test, even one that expects an error
    data = {**TRACKER, "tests": [{**TRACKER["tests"][2], "arguments": {"number": 7}}]}
    write_pack(tmp_path, "tracker.yaml", data)
    replayed = await run_pack(load_pack(file, replay_environ()), "replay")
    [result] = replayed.results
    assert result.reasons == (
        f"replay: GET https://api.tracker.test/v1/issues/7 is not in {recorded.recording} "
        "(record again with --record)",
    )


async def test_replay_without_a_recording_fails_the_pack(tmp_path: Path) -> None:
    loaded = load_pack(write_pack(tmp_path, "tracker.yaml", TRACKER), replay_environ())
    run = await run_pack(loaded, "replay")
    assert run.results == []
    assert run.error is not None
    assert run.error.startswith("no recording ")
    assert run.failed == 1


def test_rest_connectors_of_a_sql_pack(tmp_path: Path) -> None:
    loaded = load_pack(write_pack(tmp_path, "p.yaml", people_pack("sqlite:////x.db")))
    assert rest_connectors(PackProvider(loaded)) == {}


async def test_env_values_of_a_connection_are_redacted_from_recordings(tmp_path: Path) -> None:
    path_token = "path-tok-77e1"
    data = {
        **TRACKER,
        "connections": {
            "api": {
                "type": "rest",
                "base_url": "https://api.tracker.test/${env:PATH_TOKEN}/v1",
                "headers": {"X-Tenant": "${env:TENANT}"},  # not a credential-looking name
            }
        },
    }
    environ = {"PATH_TOKEN": path_token, "TENANT": CANARY}
    loaded = load_pack(write_pack(tmp_path, "tracker.yaml", data), environ)
    [conn] = [c for c in loaded.pack.connections.values() if isinstance(c, RestConnection)]
    # as PackProvider builds it
    connector = RestConnector("api", conn, known_secrets=loaded.env_values.get("api", ()))
    api, recorder = Api(), Recorder()
    connector.exchange = api
    recorder.attach([connector])
    [get, create] = [t.rest for t in loaded.pack.tools]
    assert get is not None and create is not None
    await connector.call(get, {"number": 1})
    await connector.call(create, {"title": "New"})  # its answer echoes the headers
    assert api.requests[0].headers["X-Tenant"] == CANARY  # the real call
    assert path_token in api.requests[0].url
    text = json.dumps(recorder.entries())
    assert CANARY not in text
    assert quote(CANARY, safe="") not in text
    assert path_token not in text
    assert recorder.entries()[0]["request"]["url"] == (
        f"https://api.tracker.test/{REDACTED}/v1/issues/1"
    )
