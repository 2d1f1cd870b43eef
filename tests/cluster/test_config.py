"""The ``redis`` settings: from the file or the environment, checked, and never shown with
their password."""

from __future__ import annotations

import pytest

from catalyst_mcp.configsources import describe, read_environment
from catalyst_mcp.errors import ConfigError
from catalyst_mcp.settings import Settings, parse_settings
from catalyst_mcp.yamlsource import LocatedYaml

SECRET_URL = "redis://:s3cret@redis:6379/0"


def test_off_by_default() -> None:
    assert Settings().redis.url is None
    assert Settings().redis.prefix == "catalyst"


def test_from_the_environment_and_never_shown() -> None:
    environ = {"CATALYST_REDIS__URL": SECRET_URL, "CATALYST_REDIS__PREFIX": "prod"}
    settings = parse_settings(LocatedYaml("<test>", {}), environ)
    assert settings.redis.url == SECRET_URL
    assert settings.redis.prefix == "prod"
    assert "s3cret" not in repr(settings)
    shown = {
        value.path: value.value
        for value in describe(settings, {}, None, read_environment(Settings, environ))
    }
    assert "s3cret" not in str(shown["redis.url"])
    assert str(shown["redis.url"]).startswith("redis://:")


@pytest.mark.parametrize(
    "url", ["http://redis:6379", "redis:6379", "postgresql://x", f"x{SECRET_URL}"]
)
def test_a_url_that_is_not_redis_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings(LocatedYaml("<test>", {"redis": {"url": url}}), {})
    text = str(raised.value.problems[0])
    assert "redis.url" in text
    assert "must start with redis://" in text
    assert "s3cret" not in text


@pytest.mark.parametrize("prefix", ["", "a b", "x" * 65, "{tag}"])
def test_a_prefix_is_one_plain_word(prefix: str) -> None:
    with pytest.raises(ConfigError, match=r"redis\.prefix"):
        parse_settings(LocatedYaml("<test>", {"redis": {"prefix": prefix}}), {})
