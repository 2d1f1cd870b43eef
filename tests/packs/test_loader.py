"""Loading packs: complete validation, file:line:col problems, .example skipped, isolation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.packs.loader import load_pack, load_packs
from tests.conftest import ROOT
from tests.packs.conftest import people_pack, write_pack

BROKEN = """\
pack: broken
connections:
  db: {type: sql, url: "sqlite:///x.db"}
tools:
  - name: t
    description: a tool
    parameters:
      limit: {type: integer, maximum: lots}
    sql:
      connection: dbb
      statement: SELECT :limit, :other
    colour: red
"""


def test_the_bundled_example_is_valid() -> None:
    result = load_packs([ROOT / "knowledge-packs"])
    assert result.problems == []
    assert [p.pack.pack for p in result.packs] == ["crm"]


def test_schema_problems_are_located_by_line_and_column(tmp_path: Path) -> None:
    file = write_pack(tmp_path, "broken.yaml", BROKEN)
    problems = [str(p) for p in load_packs([tmp_path]).problems]
    assert f"{file}:8:30: tools.0.parameters.limit.maximum: " in problems[0]
    assert f"{file}:12:5: tools.0.colour: unknown key" in problems[1]
    assert len(problems) == 2


def test_whole_pack_problems_are_all_reported(tmp_path: Path) -> None:
    file = write_pack(
        tmp_path, "p.yaml", BROKEN.replace("lots", "5").replace("    colour: red\n", "")
    )
    problems = [str(p) for p in load_packs([tmp_path]).problems]
    assert problems == [
        f"{file}:10:7: tools.0.sql.connection: unknown connection 'dbb' (db)",
        f"{file}:11:7: tools.0.sql.statement: :other is not a declared parameter",
    ]


def test_a_broken_pack_never_stops_the_others(tmp_path: Path, sqlite_db: Path) -> None:
    write_pack(tmp_path, "a-broken.yaml", BROKEN)
    write_pack(tmp_path, "b-good.yaml", people_pack(f"sqlite:///{sqlite_db}"))
    write_pack(tmp_path, "c-syntax.yaml", "pack: [unclosed\n")
    result = load_packs([tmp_path])
    assert [p.pack.pack for p in result.packs] == ["people"]
    files = {Path(p.file).name for p in result.problems}
    assert files == {"a-broken.yaml", "c-syntax.yaml"}


def test_example_files_and_other_files_are_skipped(tmp_path: Path, sqlite_db: Path) -> None:
    write_pack(tmp_path, "people.yaml.example", people_pack(f"sqlite:///{sqlite_db}"))
    write_pack(tmp_path, "README.md", "# not a pack")
    result = load_packs([tmp_path])
    assert result.packs == [] and result.problems == []


def test_two_packs_with_one_name_are_reported(tmp_path: Path, sqlite_db: Path) -> None:
    write_pack(tmp_path, "a.yaml", people_pack(f"sqlite:///{sqlite_db}"))
    write_pack(tmp_path, "b.yaml", people_pack(f"sqlite:///{sqlite_db}"))
    result = load_packs([tmp_path])
    assert len(result.packs) == 1
    assert "pack 'people' is already in" in str(result.problems[0])


def test_pack_dir_and_env_references_expand(tmp_path: Path) -> None:
    data = people_pack("sqlite:///${pack_dir}/${env:DB_NAME}")
    loaded = load_pack(write_pack(tmp_path, "p.yaml", data), environ={"DB_NAME": "x.db"})
    assert loaded.pack.connections["db"].url == f"sqlite:///{tmp_path.resolve()}/x.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///${env:NOPE}", "environment variable NOPE is not set"),
        ("postgresql://u:${env:PG}@h/db", "environment variable PG is not set"),
        ("sqlite:///${home}/x.db", "unknown reference ${home}"),
        ("mysql://h/db", "database 'mysql' is not supported yet"),
    ],
    ids=["unset-env", "unset-env-in-password", "unknown", "unsupported"],
)
def test_bad_connection_urls(tmp_path: Path, url: str, message: str) -> None:
    file = write_pack(tmp_path, "p.yaml", people_pack(url))
    problems = [str(p) for p in load_packs([tmp_path], environ={}).problems]
    assert len(problems) == 1
    assert problems[0].startswith(f"{file}:5:")
    assert message in problems[0]


def test_secret_references_stay_in_rest_headers_and_auth(tmp_path: Path) -> None:
    data = {
        "pack": "web",
        "connections": {
            "api": {
                "type": "rest",
                "base_url": "https://api.example.com",
                "headers": {"X-Team": "${secret:TEAM_KEY}"},
                "auth": {"type": "bearer", "token": "${secret:API_TOKEN}"},
            }
        },
    }
    loaded = load_pack(write_pack(tmp_path, "p.yaml", data), environ={})
    connection = loaded.pack.connections["api"]
    assert connection.headers == {"X-Team": "${secret:TEAM_KEY}"}  # resolved per call
    assert loaded.env_values == {}


def test_pack_names_and_prompt_placeholders_are_checked(tmp_path: Path) -> None:
    data = {
        "pack": "bad__name",
        "prompts": [{"name": "p", "messages": [{"role": "user", "text": "hi {who}"}]}],
    }
    write_pack(tmp_path, "p.yaml", data)
    problems = [p.message for p in load_packs([tmp_path]).problems]
    assert any("pack name 'bad__name'" in m for m in problems)
    data["pack"] = "good"
    write_pack(tmp_path, "p.yaml", data)
    problems = [p.message for p in load_packs([tmp_path]).problems]
    assert problems == ["prompts.0.messages.0.text: {who} is not an argument"]


REST_BROKEN = """\
pack: api
connections:
  db: {type: sql, url: "sqlite:///x.db"}
  web:
    type: rest
    base_url: "ftp://example.com?x=1"
    headers: {"Bad Header": "x"}
tools:
  - name: get
    description: d
    parameters:
      id: {type: integer}
      sort: {type: integer}
      doc: {type: object}
    rest:
      connection: db
      path: "/items/{id}/{nope}"
      query: {q: "{missing}", fixed: "{id}"}
      project: "items[?"
  - name: s
    description: d
    parameters:
      sort: {type: integer}
      doc: {type: object}
    sql:
      connection: web
      statement: "SELECT :doc FROM t ORDER BY {sort}, {other}"
      identifiers: {sort: ["name", "x; DROP"]}
    output_schema: {type: object, properties: {a: {type: nonsense}}}
tests:
  - {name: t1, tool: nope}
  - {name: t2, tool: get, arguments: {idd: 1}}
  - {name: t3, prompt: nope}
resources:
  - {uri: "f://a", name: a, file: "../outside.txt"}
  - {uri: "f://b", name: b, file: "missing.txt"}
  - {uri_template: "f://c/{x}", name: c, file: "docs/{y}"}
"""


def test_rest_sql_file_and_test_problems_are_all_reported(tmp_path: Path) -> None:
    file = write_pack(tmp_path, "api.yaml", REST_BROKEN)
    problems = [str(p).removeprefix(f"{file}:") for p in load_packs([tmp_path]).problems]
    assert problems == [
        "6:5: connections.web.base_url: must be an http:// or https:// URL with a host",
        "7:15: connections.web.headers.Bad Header: is not a valid header name",
        "16:7: tools.0.rest.connection: connection 'db' is a sql connection, not rest",
        "17:7: tools.0.rest.path: {nope} is not a declared parameter",
        "18:15: tools.0.rest.query.q: {missing} is not a declared parameter",
        "19:7: tools.0.rest.project: not a valid JMESPath expression at character 7: "
        "it ends too early",
        "26:7: tools.1.sql.connection: connection 'web' is a rest connection, not sql",
        "28:21: tools.1.sql.identifiers.sort: 'sort' must be a declared string parameter",
        "28:21: tools.1.sql.identifiers.sort: 'x; DROP' is not a plain identifier (name or "
        "table.name)",
        "27:7: tools.1.sql.statement: {other}: only identifiers declared under 'identifiers' "
        "may be written in braces; values are bound as :name",
        "27:7: tools.1.sql.statement: :doc is an object parameter, which SQL cannot bind",
        "29:5: tools.1.output_schema: not a valid JSON Schema: 'nonsense' is not valid under "
        "any of the given schemas",
        "35:29: resources.0.file: must be inside the pack's folder",
        f"36:29: resources.1.file: no such file: {tmp_path.resolve() / 'missing.txt'}",
        "37:42: resources.2.file: {y} is not a variable of uri_template",
        "31:16: tests.0.tool: unknown tool 'nope'",
        "32:39: tests.1.arguments.idd: 'get' has no such parameter",
        "33:16: tests.2.prompt: unknown prompt 'nope'",
    ]


def rest_pack(connection: dict[str, Any], rest: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "pack": "api",
        "connections": {"web": {"type": "rest", **connection}},
        "tools": [
            {
                "name": "get",
                "description": "d",
                "parameters": {"id": {"type": "string"}},
                "rest": {"connection": "web", "path": "/items/{id}", **(rest or {})},
            }
        ],
    }


def test_values_from_the_environment_are_kept_per_connection(tmp_path: Path) -> None:
    data = rest_pack(
        {
            "base_url": "https://${env:HOST}/${env:PATH_TOKEN}/v1",
            "headers": {"X-Key": "k=${env:KEY}", "X-Short": "${env:SHORT}", "X-Dir": "${pack_dir}"},
            "auth": {"type": "bearer", "token": "${env:KEY}"},
        }
    )
    data["connections"]["db"] = {"type": "sql", "url": "sqlite:///x.db"}
    environ = {
        "HOST": "api.example.com",
        "PATH_TOKEN": "tok-9f2c",
        "KEY": "key-1d5e",
        "SHORT": "ab",
    }
    loaded = load_pack(write_pack(tmp_path, "p.yaml", data), environ=environ)
    assert loaded.env_values == {"web": ("api.example.com", "tok-9f2c", "key-1d5e")}
    assert load_pack(write_pack(tmp_path, "q.yaml", people_pack("sqlite:///x.db"))).env_values == {}


@pytest.mark.parametrize(
    ("rest", "loc", "message"),
    [
        (
            {"headers": {"X-Key": "${secret:KEY}"}},
            "tools.0.rest.headers.X-Key",
            "${secret:KEY}: ${secret:NAME}, ${env:NAME} and ${pack_dir} are only expanded in "
            "connection values (e.g. the connection's headers or auth), not in an action",
        ),
        ({"query": {"k": "${env:KEY}"}}, "tools.0.rest.query.k", "${env:KEY}: "),
        (
            {"method": "POST", "body": {"a": ["${pack_dir}/x"]}},
            "tools.0.rest.body.a.0",
            "${pack_dir}: ",
        ),
        ({"path": "/items/{id}/${env:X}"}, "tools.0.rest.path", "${env:X}: "),
        (
            {"headers": {"Content-Length": "5"}},
            "tools.0.rest",
            "the header Content-Length is set by the connector, not by a pack",
        ),
        ({"headers": {"X-A": "日本"}}, "tools.0.rest", "header X-A: value must be Latin-1 text"),
    ],
    ids=["secret-header", "env-query", "pack-dir-body", "env-path", "reserved", "latin1"],
)
def test_action_references_and_plan_errors_are_load_errors(
    tmp_path: Path, rest: dict[str, Any], loc: str, message: str
) -> None:
    write_pack(tmp_path, "p.yaml", rest_pack({"base_url": "https://api.example.com"}, rest))
    problems = [p.message for p in load_packs([tmp_path], environ={"KEY": "v", "X": "y"}).problems]
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{loc}: {message}")


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        (
            {"headers": {"Host": "evil.example.com"}},
            "connections.web.headers: the header Host is set by the connector, not by a pack",
        ),
        (
            {"auth": {"type": "api_key", "name": "Transfer-Encoding", "value": "k"}},
            "connections.web.auth.name: the header Transfer-Encoding is set by the connector",
        ),
        (
            {"auth": {"type": "api_key", "name": "X Key", "value": "k"}},
            "connections.web.auth.name: is not a valid header name",
        ),
    ],
    ids=["reserved-header", "reserved-api-key", "invalid-api-key"],
)
def test_connection_headers_and_api_key_names_are_checked(
    tmp_path: Path, connection: dict[str, Any], message: str
) -> None:
    data = rest_pack({"base_url": "https://api.example.com", **connection})
    write_pack(tmp_path, "p.yaml", data)
    assert [p.message for p in load_packs([tmp_path]).problems] == [message]


def test_an_api_key_in_the_query_may_have_any_name(tmp_path: Path) -> None:
    auth = {"type": "api_key", "name": "api key", "value": "k", "in": "query"}
    data = rest_pack({"base_url": "https://api.example.com", "auth": auth})
    assert load_pack(write_pack(tmp_path, "p.yaml", data)).pack.pack == "api"


def test_a_secret_in_a_sql_url_stays_a_reference(tmp_path: Path) -> None:
    data = people_pack("postgresql://app:${secret:PG_PASSWORD}@db.example.com/crm")
    loaded = load_pack(write_pack(tmp_path, "p.yaml", data), environ={})
    assert loaded.pack.connections["db"].url.endswith(":${secret:PG_PASSWORD}@db.example.com/crm")
