"""Settings from the environment: every field of every section settable by its documented
name, at any depth, coerced to its type, located by the variable when invalid; typos warned
about with the closest setting; ``describe`` says where each value came from, secrets masked."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from catalyst_mcp.configsources import (
    MASK,
    OTHER_VARIABLES,
    describe,
    read_environment,
    setting_variables,
    unknown_variables,
    variable_of,
)
from catalyst_mcp.errors import ConfigError
from catalyst_mcp.servers.config import RootConfig
from catalyst_mcp.settings import Settings, parse_settings
from catalyst_mcp.yamlsource import load_yaml

SERVER_BASE = {"CATALYST_SERVERS__PROBE__COMMAND": "probe-cmd"}
# A built-in server's section makes the entry (instead of a command): its required option.
BUILTIN_BASE = {
    "filesystem": {"CATALYST_SERVERS__PROBE__FILESYSTEM__ROOTS": "[probe-root]"},
    "database": {"CATALYST_SERVERS__PROBE__DATABASE__URL": "sqlite:///probe.db"},
    "s3": {"CATALYST_SERVERS__PROBE__S3__REGION": "probe-region"},
    "kubernetes": {"CATALYST_SERVERS__PROBE__KUBERNETES__CONTEXT": "probe-context"},
}
# Values a field's own rules need (anything else is derived from its type).
SPECIAL: dict[tuple[str, ...], tuple[str, Any]] = {
    ("gateway", "mcp_path"): ("/probe", "/probe"),
    ("gateway", "uds_mode"): ("0660", "0660"),
    ("gateway", "workers"): ("auto", "auto"),
    ("servers", "probe", "url"): ("http://127.0.0.1:1/mcp", "http://127.0.0.1:1/mcp"),
    ("servers", "probe", "transport"): ("stdio", "stdio"),
    ("servers", "probe", "sandbox", "writable"): ("[/srv/a, /srv/b]", ["/srv/a", "/srv/b"]),
    ("servers", "probe", "sandbox", "readable"): ("[/opt/a]", ["/opt/a"]),
    ("servers", "probe", "sandbox", "hidden"): ("[/srv/secret]", ["/srv/secret"]),
    ("rbac", "roles", "probe", "rules"): ("[{effect: allow, match: ['x__*']}]", None),
    ("rbac", "roles", "probe", "name"): ("probe", "probe"),
    ("storage", "url"): ("sqlite+aiosqlite:///probe.db", "sqlite+aiosqlite:///probe.db"),
    ("rate_limits", "redis_url"): ("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"),
    ("cache", "redis_url"): ("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"),
    ("packages", "registry_url"): ("http://127.0.0.1:1", "http://127.0.0.1:1"),
    ("packages", "npm_registry_url"): ("http://127.0.0.1:2/", "http://127.0.0.1:2/"),
    ("packages", "pypi_index_url"): ("http://127.0.0.1:3/simple", "http://127.0.0.1:3/simple"),
    ("servers", "probe", "filesystem", "roots"): (
        "[probe-root, {path: other, writable: true, name: o}]",
        [RootConfig(path="probe-root"), RootConfig(path="other", writable=True, name="o")],
    ),
    ("servers", "probe", "database", "url"): ("sqlite:///other.db", "sqlite:///other.db"),
    ("servers", "probe", "s3", "endpoint_url"): ("http://127.0.0.1:5/", "http://127.0.0.1:5/"),
    ("servers", "probe", "s3", "max_keys"): ("500", 500),
    ("telemetry", "otlp_endpoint"): ("http://127.0.0.1:4/", "http://127.0.0.1:4/"),
    ("telemetry", "sample_ratio"): ("0.25", 0.25),
    ("ui", "path"): ("/probe-ui", "/probe-ui"),
    ("ui", "public_url"): ("https://probe.example", "https://probe.example"),
    ("redis", "url"): ("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"),
    ("redis", "prefix"): ("probe", "probe"),
    ("events", "types"): ("[call.*, pack.reloaded]", ["call.*", "pack.reloaded"]),
    ("events", "webhooks", "probe", "url"): (
        "https://probe.example/in",
        "https://probe.example/in",
    ),
    ("events", "webhooks", "probe", "events"): ("[upstream.*]", ["upstream.*"]),
    ("events", "webhooks", "probe", "secret"): (
        "probe-secret-0123456789",
        "probe-secret-0123456789",
    ),
}
# Settings that are only valid together with another one.
COMPANIONS: dict[tuple[str, ...], dict[str, str]] = {
    ("rate_limits", "per_user", "rate_per_second"): {"CATALYST_RATE_LIMITS__PER_USER__BURST": "2"},
    ("rate_limits", "per_user", "burst"): {"CATALYST_RATE_LIMITS__PER_USER__RATE_PER_SECOND": "2"},
    ("rate_limits", "per_tool", "rate_per_second"): {"CATALYST_RATE_LIMITS__PER_TOOL__BURST": "2"},
    ("rate_limits", "per_tool", "burst"): {"CATALYST_RATE_LIMITS__PER_TOOL__RATE_PER_SECOND": "2"},
    ("rate_limits", "per_server", "rate_per_second"): {
        "CATALYST_RATE_LIMITS__PER_SERVER__BURST": "2"
    },
    ("rate_limits", "per_server", "burst"): {
        "CATALYST_RATE_LIMITS__PER_SERVER__RATE_PER_SECOND": "2"
    },
    ("servers", "probe", "s3", "access_key_id"): {
        "CATALYST_SERVERS__PROBE__S3__SECRET_ACCESS_KEY": "probe-secret"
    },
    ("servers", "probe", "s3", "secret_access_key"): {
        "CATALYST_SERVERS__PROBE__S3__ACCESS_KEY_ID": "probe-key"
    },
    ("servers", "probe", "cache", "scope"): {"CATALYST_SERVERS__PROBE__CACHE__TTL": "60"},
    ("servers", "probe", "tools", "probe", "cache", "scope"): {
        "CATALYST_SERVERS__PROBE__TOOLS__PROBE__CACHE__TTL": "60"
    },
    ("servers", "probe", "s3", "session_token"): {
        "CATALYST_SERVERS__PROBE__S3__ACCESS_KEY_ID": "probe-key",
        "CATALYST_SERVERS__PROBE__S3__SECRET_ACCESS_KEY": "probe-secret",
    },
    **{
        ("events", "webhooks", "probe", name): {
            f"CATALYST_EVENTS__WEBHOOKS__PROBE__{other.upper()}": value
            for other, value in (("url", "https://x.example/"), ("secret", "0123456789abcdef"))
            if other != name
        }
        for name in (
            "url",
            "events",
            "secret",
            "headers",
            "timeout_seconds",
            "retries",
            "backoff_seconds",
            "max_backoff_seconds",
            "allow_private_network",
        )
    },
}


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def every_field(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[Any]:
    """(path, field) of every plain setting, written independently of the code under test;
    a map of sections (servers, roles) is entered with the key ``probe``."""
    found = []
    for name, field in model.model_fields.items():
        annotation = _unwrap(field.annotation)
        path = (*prefix, name)
        if _is_model(annotation):
            found += every_field(annotation, path)
        elif get_origin(annotation) is dict and _is_model(_unwrap(get_args(annotation)[1])):
            found += every_field(_unwrap(get_args(annotation)[1]), (*path, "probe"))
        else:
            found.append((path, field))
    return found


def sample(path: tuple[str, ...], field: FieldInfo) -> tuple[str, Any]:
    """A valid value other than the default, as the variable's text and as loaded."""
    if path in SPECIAL:
        return SPECIAL[path]
    annotation = _unwrap(field.annotation)
    default = None if field.is_required() else field.get_default(call_default_factory=True)
    if get_origin(annotation) is Literal:
        choice = next(c for c in get_args(annotation) if c != default)
        return str(choice), choice
    if annotation is bool:
        return str(not default).lower(), not default
    if annotation is int:
        return str((default or 0) + 1), (default or 0) + 1
    if annotation is float:
        return str((default or 1.0) + 0.5), (default or 1.0) + 0.5
    if annotation is str:
        return "probe", "probe"
    if annotation is Path:
        return "probe-dir", Path("probe-dir")
    if get_origin(annotation) is list:
        return "[alpha, beta]", ["alpha", "beta"]
    if get_origin(annotation) is dict:
        return "{PROBE_KEY: probe-value}", {"PROBE_KEY": "probe-value"}
    raise AssertionError(f"no sample value for {'.'.join(path)} ({annotation}): add one to SPECIAL")


def value_at(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


FIELDS = every_field(Settings)


def test_the_enumeration_covers_every_section() -> None:
    sections = {path[0] for path, _ in FIELDS}
    assert sections == set(Settings.model_fields)
    assert len(FIELDS) > 60


@pytest.mark.parametrize(("path", "field"), FIELDS, ids=[".".join(p) for p, _ in FIELDS])
def test_every_setting_is_settable_from_the_environment(
    path: tuple[str, ...], field: FieldInfo
) -> None:
    variable = variable_of(path)
    text, expected = sample(path, field)
    environ = {variable: text, **COMPANIONS.get(path, {})}
    if path[0] == "servers" and path[2] in BUILTIN_BASE:
        environ = {**BUILTIN_BASE[path[2]], **environ}
    elif path[0] == "servers" and path[-1] != "url":
        environ = {**SERVER_BASE, **environ}
    settings = parse_settings(load_yaml("", "c.yaml"), environ)
    loaded = value_at(settings, path)
    if path == ("rbac", "roles", "probe", "rules"):
        assert loaded[0].effect == "allow"
        assert loaded[0].match == ("x__*",)
    else:
        assert loaded == expected, f"{variable}={text!r} gave {loaded!r}"
    assert not read_environment(Settings, environ).unknown


def test_nested_to_any_depth_and_laid_over_the_file_value_by_value() -> None:
    text = "gateway:\n  port: 1000\n  host: 127.0.0.2\nservers:\n  a: {command: x, args: [1]}\n"
    environ = {
        "CATALYST_GATEWAY__PORT": "9100",
        "CATALYST_AUTH__JWT__LEEWAY_SECONDS": "5",
        "CATALYST_SERVERS__A__ARGS": "[-y, pkg]",
        "CATALYST_SERVERS__A__TIMEOUT_SECONDS": "2.5",
    }
    settings = parse_settings(load_yaml(text, "c.yaml"), environ)
    assert settings.gateway.port == 9100
    assert settings.gateway.host == "127.0.0.2"  # the file's, untouched
    assert settings.auth.jwt is not None and settings.auth.jwt.leeway_seconds == 5.0
    assert settings.servers["a"].command == "x"
    assert settings.servers["a"].args == ["-y", "pkg"]
    assert settings.servers["a"].timeout_seconds == 2.5


def test_whole_sections_and_nulls_are_yaml_or_json() -> None:
    environ = {
        "CATALYST_RATE_LIMITS__PER_USER": '{"rate_per_second": 2, "burst": 4}',
        "CATALYST_PACKS__PATH": "null",
        "CATALYST_SERVERS__B": "{url: 'http://127.0.0.1:1/mcp', headers: {X-Token: t}}",
    }
    settings = parse_settings(load_yaml("", "c.yaml"), environ)
    assert settings.rate_limits.per_user is not None
    assert settings.rate_limits.per_user.burst == 4
    assert settings.packs.path is None
    assert settings.servers["b"].headers == {"X-Token": "t"}  # keys keep their case in a value


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"CATALYST_GATEWAY__PORT": "many"},
            "CATALYST_GATEWAY__PORT: gateway.port: Input should be a valid integer",
        ),
        (
            {"CATALYST_AUTH__ENABLED": "maybe"},
            "CATALYST_AUTH__ENABLED: auth.enabled: Input should be a valid boolean",
        ),
        (
            {"CATALYST_RATE_LIMITS__PER_USER__BURST": "0"},
            "CATALYST_RATE_LIMITS__PER_USER__BURST: rate_limits.per_user.burst: Input should be "
            "greater than or equal to 1",
        ),
        (
            {"CATALYST_SERVERS__X__URL": "ftp://h"},
            "CATALYST_SERVERS__X__URL: servers.x: url must start with http://, https://, ws:// or wss://",
        ),
    ],
)
def test_an_invalid_value_names_its_variable(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(load_yaml("", "c.yaml"), environ)
    assert any(str(p).startswith(expected) for p in caught.value.problems), caught.value


def test_a_file_problem_is_still_located_in_the_file() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(load_yaml("gateway:\n  port: -1\n", "c.yaml"), {})
    assert str(caught.value.problems[0]).startswith("c.yaml:2: gateway.port:")


@pytest.mark.parametrize(
    ("variable", "hint"),
    [
        ("CATALYST_AUTH_ENABLED", "did you mean CATALYST_AUTH__ENABLED?"),
        ("CATALYST_GATEWAY__PROT", "did you mean CATALYST_GATEWAY__PORT?"),
        ("CATALYST_SECRETKEY", "did you mean CATALYST_SECRET_KEY?"),
        ("CATALYST_RATELIMITS__BACKEND", "did you mean CATALYST_RATE_LIMITS__BACKEND?"),
        ("CATALYST_GATEWAY__PORT__X", "is not a setting"),
        ("CATALYST_", "is not a setting"),
    ],
)
def test_a_typo_is_a_warning_naming_the_closest_setting(variable: str, hint: str) -> None:
    environ = {variable: "true", "CATALYST_GATEWAY__HOST": "127.0.0.1"}
    warnings = unknown_variables(Settings, environ)
    assert len(warnings) == 1
    assert warnings[0].message.startswith(f"{variable} is not a setting and is ignored")
    assert hint in warnings[0].message
    # ignored, not fatal: the rest still loads
    assert parse_settings(load_yaml("", "c.yaml"), environ).auth.enabled is False


def test_the_other_catalyst_variables_are_not_typos() -> None:
    assert unknown_variables(Settings, dict.fromkeys(OTHER_VARIABLES, "x")) == []
    assert unknown_variables(Settings, {"OTHER_GATEWAY__PORT": "1"}) == []


def test_setting_variables_lists_the_documented_names() -> None:
    names = setting_variables(Settings)
    assert "CATALYST_AUTH__ENABLED" in names
    assert "CATALYST_AUTH__JWT__HS256_SECRET" in names
    assert "CATALYST_SERVERS__<NAME>__COMMAND" in names
    assert len(names) == len(FIELDS)


def test_describe_gives_the_source_of_every_value_with_secrets_masked() -> None:
    text = (
        "gateway:\n  port: 8000\n"
        "servers:\n  gh:\n    url: https://u:hunter2@h/mcp?token=abc\n"
        "    headers: {Authorization: Bearer sekrit}\n"
    )
    environ = {
        "CATALYST_AUTH__JWT__HS256_SECRET": "s" * 40,
        "CATALYST_RATE_LIMITS__REDIS_URL": "redis://:pw@127.0.0.1:1/0",
        "CATALYST_AUTH__ENABLED": "true",
    }
    source = load_yaml(text, "c.yaml")
    settings = parse_settings(source, environ)
    rows = {
        v.path: v
        for v in describe(settings, source.lines, "c.yaml", read_environment(Settings, environ))
    }
    assert (rows["gateway.port"].value, rows["gateway.port"].where) == (8000, "c.yaml:2")
    assert (rows["gateway.host"].source, rows["gateway.host"].where) == ("default", "")
    assert rows["auth.enabled"].where == "CATALYST_AUTH__ENABLED"
    assert rows["auth.jwt.hs256_secret"].value == MASK
    assert rows["rate_limits.redis_url"].value == f"redis://:{MASK}@127.0.0.1:1/0"
    assert rows["servers.gh.url"].value == f"https://u:{MASK}@h/mcp?token={MASK}"
    assert rows["servers.gh.headers"].value == {"Authorization": MASK}
    everything = repr(list(rows.values()))
    for secret in ("s" * 40, "hunter2", "sekrit", ":pw@", "abc"):
        assert secret not in everything
    assert len(rows) > 40
