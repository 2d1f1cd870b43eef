"""The ``events:`` and ``redis:`` settings: defaults, checks with file:line, the environment."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from catalyst_mcp.configsources import describe, read_environment
from catalyst_mcp.errors import ConfigError
from catalyst_mcp.orchestration.events.room import backend_of
from catalyst_mcp.settings import Settings, load_settings
from catalyst_mcp.yamlsource import read_yaml


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "catalyst.yaml"
    file.write_text(textwrap.dedent(text))
    return file


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), env or {})
    return [str(p) for p in caught.value.problems]


def test_defaults() -> None:
    settings = Settings()
    events = settings.events
    assert events.enabled and events.backend == "auto" and events.types == ["*"]
    assert events.webhooks == {} and settings.redis.url is None
    assert backend_of(settings) == "memory"


def test_auto_is_redis_when_redis_url_is_set() -> None:
    settings = Settings.model_validate({"redis": {"url": "redis://127.0.0.1:1/0"}})
    assert backend_of(settings) == "redis"
    memory = Settings.model_validate(
        {"redis": {"url": "redis://127.0.0.1:1/0"}, "events": {"backend": "memory"}}
    )
    assert backend_of(memory) == "memory"


def test_redis_backend_needs_redis_url(tmp_path: Path) -> None:
    found = problems(tmp_path, "events:\n  backend: redis\n")
    assert any("events.backend is 'redis' but redis.url is not set" in p for p in found)


def test_unknown_event_patterns_are_located(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        events:
          types: ["call.*", "upstream.changed"]
          webhooks:
            ops:
              url: https://hooks.example.com/catalyst
              secret: 0123456789abcdef
              events: ["cal.*"]
        """,
    )
    file = tmp_path / "catalyst.yaml"
    assert any(
        p.startswith(f"{file}:2") and "'upstream.changed' matches no event type" in p for p in found
    ), found
    assert any(p.startswith(f"{file}:7") and "'cal.*' matches no event type" in p for p in found), (
        found
    )


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ({"url": "ftp://x/y", "secret": "0123456789abcdef"}, "http:// or https:// URL"),
        ({"url": "https://x/y", "secret": "short"}, "at least 16 characters"),
        ({"url": "https://x/y"}, r"ops.secret\n  Field required"),
        (
            {"url": "https://x/y", "secret": "0123456789abcdef", "headers": {"A B": "1"}},
            "not a valid HTTP header name",
        ),
        (
            {"url": "https://x/y", "secret": "0123456789abcdef", "headers": {"X": "a\nb"}},
            "line break",
        ),
        ({"url": "https://x/y", "secret": "0123456789abcdef", "retries": 99}, "less than or"),
    ],
    ids=["scheme", "short-secret", "no-secret", "header-name", "header-value", "retries"],
)
def test_webhook_checks(hook: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.model_validate({"events": {"webhooks": {"ops": hook}}})


def test_webhook_names_are_checked() -> None:
    hook = {"url": "https://x/y", "secret": "0123456789abcdef"}
    with pytest.raises(ValueError, match="webhook name 'a b' must be"):
        Settings.model_validate({"events": {"webhooks": {"a b": hook}}})


def test_secrets_from_the_environment_and_masked(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        """\
        redis:
          url: redis://:hunter2-password@127.0.0.1:6390/3
        events:
          webhooks:
            ops:
              url: https://hooks.example.com/in?token=abc
              headers: {Authorization: Bearer very-secret}
        """,
    )
    env = {"CATALYST_EVENTS__WEBHOOKS__OPS__SECRET": "s3cret-from-the-environment"}
    settings = load_settings(file, env)
    hook = settings.events.webhooks["ops"]
    assert hook.secret == "s3cret-from-the-environment"
    assert "s3cret" not in repr(settings) and "hunter2" not in repr(settings)
    source = read_yaml(file)
    shown = str(describe(settings, source.lines, str(file), read_environment(Settings, env)))
    for secret in ("s3cret-from-the-environment", "hunter2-password", "very-secret", "=abc"):
        assert secret not in shown, secret
