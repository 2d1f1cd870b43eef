"""Request building: path encoding (traversal refused), typed substitution, left-out entries,
nested bodies, header injection refused. Pure functions, no I/O."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from catalyst_mcp.packs.connectors.restbuild import (
    OMIT,
    BuildError,
    SecretRef,
    Text,
    Var,
    build,
    compile_path,
    compile_template,
    plan_request,
    render,
    render_path,
    text_of,
)

BASE = "https://api.example.com/v1"


def make(
    path: str = "",
    *,
    method: str = "GET",
    query: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    body: Any = None,
    connection_headers: dict[str, str] | None = None,
    base: str = BASE,
    values: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
) -> tuple[str, dict[str, str], bytes]:
    plan = plan_request(
        base, connection_headers or {}, method, path, query or {}, headers or {}, body
    )
    return build(plan, values or {}, secrets or {})


# ---- path ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("42", "42"),
        (42, "42"),
        (True, "true"),
        ("a b", "a%20b"),
        ("a/b", "a%2Fb"),
        ("../../admin", "..%2F..%2Fadmin"),
        ("x?admin=1#f", "x%3Fadmin%3D1%23f"),
        ("%2e%2e", "%252e%252e"),
        ("..;/x", "..%3B%2Fx"),
        ("ü", "%C3%BC"),
        ("...", "%2E%2E%2E"),
        ("a.b", "a.b"),
        (["a", "b"], "a%2Cb"),
    ],
    ids=repr,
)
def test_path_values_are_percent_encoded(value: Any, encoded: str) -> None:
    url, _, _ = make("/files/{name}", values={"name": value})
    assert url == f"{BASE}/files/{encoded}"


@pytest.mark.parametrize("value", [".", "..", ["."], [".."]], ids=repr)
def test_a_value_cannot_make_a_dot_segment(value: Any) -> None:
    with pytest.raises(BuildError, match="segment"):
        make("/files/{name}/raw", values={"name": value})


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("/files/.{x}", {"x": "."}),
        ("/files/{a}{b}", {"a": ".", "b": "."}),
        ("/files/{a}.", {"a": "."}),
    ],
)
def test_values_next_to_dots_cannot_make_a_dot_segment(path: str, values: dict[str, Any]) -> None:
    with pytest.raises(BuildError, match="segment"):
        make(path, values=values)


def test_dot_only_values_inside_a_segment_are_encoded() -> None:
    url, _, _ = make("/files/{name}.json", values={"name": ".."})
    assert url == f"{BASE}/files/%2E%2E.json"


def test_render_path_directly() -> None:
    template = compile_path("/a/{x}/b")
    assert render_path(template, {"x": "1/2"}) == "/a/1%2F2/b"


@pytest.mark.parametrize("values", [{}, {"id": None}, {"id": ""}])
def test_a_path_variable_needs_a_value(values: dict[str, Any]) -> None:
    with pytest.raises(BuildError, match="'id'"):
        make("/items/{id}", values=values)


def test_an_object_cannot_go_in_the_path() -> None:
    with pytest.raises(BuildError, match="object"):
        make("/items/{id}", values={"id": {"a": 1}})


def test_base_url_trailing_slash_and_static_path() -> None:
    assert make("/x", base="https://h.example/v1/")[0] == "https://h.example/v1/x"
    assert make("", base="https://h.example")[0] == "https://h.example"


# ---- query --------------------------------------------------------------------------------


def test_query_typed_values_lists_booleans_and_absent_keys() -> None:
    url, _, _ = make(
        "/search",
        query={
            "q": "{q}",
            "labels": "{labels}",
            "open": "{open}",
            "page": "{page}",
            "gone": "{gone}",
            "fixed": 5,
            "also": ["x", "{q}"],
            "nothing": None,
        },
        values={"q": "a&b=c", "labels": ["bug", "ui x"], "open": False, "page": 2, "gone": None},
    )
    assert url == (
        f"{BASE}/search?q=a%26b%3Dc&labels=bug&labels=ui%20x&open=false&page=2&fixed=5"
        "&also=x&also=a%26b%3Dc"
    )


def test_query_text_with_an_absent_value_is_left_out() -> None:
    url, _, _ = make("/s", query={"q": "repo:{repo} is:open", "x": "1"}, values={"repo": None})
    assert url == f"{BASE}/s?x=1"
    url, _, _ = make("/s", query={"q": "repo:{repo} is:open"}, values={"repo": "o/r"})
    assert url == f"{BASE}/s?q=repo%3Ao%2Fr%20is%3Aopen"


def test_query_keys_are_encoded_and_no_query_without_pairs() -> None:
    assert make("/s", query={"a b": "1"})[0] == f"{BASE}/s?a%20b=1"
    assert make("/s", query={"q": "{q}"}, values={"q": None})[0] == f"{BASE}/s"


def test_query_object_is_refused() -> None:
    with pytest.raises(BuildError, match="object"):
        make("/s", query={"f": "{f}"}, values={"f": {"a": 1}})


# ---- body ---------------------------------------------------------------------------------


def test_body_whole_strings_keep_their_type_and_absent_keys_disappear() -> None:
    body = {
        "title": "{title}",
        "count": "{count}",
        "draft": "{draft}",
        "labels": "{labels}",
        "meta": "{meta}",
        "gone": "{gone}",
        "summary": "{title} ({count})",
        "nested": {"deep": ["{count}", "{gone}", "x-{title}", {"k": "{draft}"}], "n": None},
        "literal": 3,
    }
    values = {
        "title": 'He said "hi" {count}',
        "count": 7,
        "draft": True,
        "labels": ["a", "b"],
        "meta": {"x": [1, {"y": "{title}"}]},
        "gone": None,
    }
    _, headers, raw = make("/issues", method="POST", body=body, values=values)
    assert headers["Content-Type"] == "application/json"
    assert orjson.loads(raw) == {
        "title": 'He said "hi" {count}',  # values are not scanned again
        "count": 7,
        "draft": True,
        "labels": ["a", "b"],
        "meta": {"x": [1, {"y": "{title}"}]},
        "summary": 'He said "hi" {count} (7)',
        "nested": {"deep": [7, 'x-He said "hi" {count}', {"k": True}], "n": None},
        "literal": 3,
    }


def test_a_static_body_is_serialised_once() -> None:
    plan = plan_request(BASE, {}, "POST", "/x", {}, {}, {"a": [1, 2]})
    assert plan.body_bytes == b'{"a":[1,2]}'
    assert build(plan, {})[2] is plan.body_bytes


def test_a_whole_body_parameter() -> None:
    _, headers, raw = make("/x", method="PUT", body="{doc}", values={"doc": {"a": 1}})
    assert raw == b'{"a":1}'
    _, headers, raw = make("/x", method="PUT", body="{doc}", values={"doc": None})
    assert raw == b""
    assert "Content-Type" not in headers


def test_names_that_are_not_parameters_stay_as_written() -> None:
    _, _, raw = make(
        "/x", method="POST", body={"t": "{other}", "u": "a {other} {p}"}, values={"p": 1}
    )
    assert orjson.loads(raw) == {"t": "{other}", "u": "a {other} 1"}


# ---- headers ------------------------------------------------------------------------------


def test_headers_connection_first_action_overrides_without_case() -> None:
    _, headers, _ = make(
        "/x",
        connection_headers={"Accept": "text/plain", "X-Team": "core", "X-Env": "prod"},
        headers={"accept": "application/xml", "X-Trace": "t-{id}", "X-Opt": "{opt}"},
        values={"id": 9, "opt": None},
    )
    assert headers == {
        "User-Agent": "catalyst-mcp",
        "accept": "application/xml",
        "X-Team": "core",
        "X-Env": "prod",
        "X-Trace": "t-9",
    }


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\x00b", ["a", "b\r\nc"]])
def test_header_injection_is_refused(value: Any) -> None:
    with pytest.raises(BuildError, match="line break"):
        make("/x", headers={"X-Name": "{name}"}, values={"name": value})
    with pytest.raises(BuildError, match="line break"):
        make("/x", headers={"X-Name": "pre-{name}"}, values={"name": value})


def test_literal_header_with_a_line_break_is_refused_at_plan_time() -> None:
    with pytest.raises(BuildError, match="line break"):
        plan_request(BASE, {"X-A": "a\r\nb"}, "GET", "", {}, {}, None)


@pytest.mark.parametrize("name", ["Host", "content-length", "Transfer-Encoding", "Connection"])
def test_reserved_headers_cannot_be_set(name: str) -> None:
    with pytest.raises(BuildError, match="set by the connector"):
        plan_request(BASE, {name: "x"}, "GET", "", {}, {}, None)


def test_secret_references_in_headers_and_never_from_values() -> None:
    plan = plan_request(
        BASE, {"X-Key": "${secret:API_KEY}"}, "GET", "", {}, {"X-Who": "{who}"}, None
    )
    assert plan.secret_names == {"API_KEY"}
    _, headers, _ = build(plan, {"who": "${secret:API_KEY}"}, {"API_KEY": "s3cr3t"})
    assert headers["X-Key"] == "s3cr3t"
    assert headers["X-Who"] == "${secret:API_KEY}"  # a value cannot name a secret


def test_a_secret_with_a_line_break_is_refused() -> None:
    plan = plan_request(BASE, {"X-Key": "k ${secret:K}"}, "GET", "", {}, {}, None)
    with pytest.raises(BuildError, match="line break"):
        build(plan, {}, {"K": "a\r\nb"})


# ---- templates ----------------------------------------------------------------------------


def test_compile_template_shapes() -> None:
    assert compile_template("plain") == "plain"
    assert compile_template("{a}") == Var("a")
    assert compile_template("x{a}y") == Text(("x", Var("a"), "y"))
    assert compile_template("${secret:S}") == "${secret:S}"  # only where secrets are allowed
    assert compile_template("${secret:S}", secrets=True) == Text((SecretRef("S"),))
    assert compile_template("{a}-${secret:S}", params=False, secrets=True) == Text(
        ("{a}-", SecretRef("S"))
    )
    assert compile_template({"k": ["{a}", 1]}) == {"k": [Var("a"), 1]}


def test_render_absent_and_text_of() -> None:
    assert render(Var("a"), {"a": None}) is OMIT
    assert render(Text(("x", Var("a"))), {"a": None}) is OMIT
    assert render([Var("a"), 2], {"a": None}) == [2]
    assert text_of(1.5) == "1.5"
    assert text_of([1, None, True]) == "1,true"
    with pytest.raises(BuildError):
        text_of({"a": 1}, "p")


@pytest.mark.parametrize("where", ["{name}", "pre-{name}"], ids=["whole", "inside"])
def test_a_header_value_must_be_latin1(where: str) -> None:
    _, headers, _ = make("/x", headers={"X-Name": where}, values={"name": "café"})
    assert headers["X-Name"].endswith("café")  # Latin-1 is fine
    with pytest.raises(BuildError, match=r"^header X-Name: value must be Latin-1 text$") as info:
        make("/x", headers={"X-Name": where}, values={"name": "日本"})
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_a_literal_header_that_is_not_latin1_is_refused_at_plan_time() -> None:
    with pytest.raises(BuildError, match="header X-A: value must be Latin-1 text"):
        plan_request(BASE, {"X-A": "日本"}, "GET", "", {}, {}, None)


@pytest.mark.parametrize("value", ["a\\b", "\\", "..\\..\\etc", ["a", "b\\c"]])
def test_a_backslash_in_a_path_value_is_refused(value: Any) -> None:
    with pytest.raises(BuildError, match="'id' cannot contain a backslash"):
        make("/items/{id}", values={"id": value})
