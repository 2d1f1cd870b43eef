"""Which tools a server's or pack's cache covers, and the epoch that changes with its
configuration and tool list."""

from __future__ import annotations

from catalyst_mcp.orchestration.cache.config import CacheSpec
from catalyst_mcp.orchestration.cache.policy import CacheRules, Resolved
from catalyst_mcp.settings import ServerConfig
from tests.fakes import FakeProvider, tool

MINUTE = CacheSpec(ttl=60)


def test_a_servers_cache_leaves_out_tools_that_say_they_change_something() -> None:
    rules = CacheRules(MINUTE, {"forced": CacheSpec(ttl=5), "off": CacheSpec(ttl=0)})
    assert rules.spec_for("plain", {"name": "plain"}) == MINUTE
    assert rules.spec_for("unlisted", None) == MINUTE
    assert rules.spec_for("reader", {"annotations": {"readOnlyHint": True}}) == MINUTE
    assert rules.spec_for("writer", {"annotations": {"readOnlyHint": False}}) is None
    assert rules.spec_for("dropper", {"annotations": {"destructiveHint": True}}) is None
    # a tool's own cache is taken as written, whatever its annotations say
    forced = {"annotations": {"readOnlyHint": False}}
    assert rules.spec_for("forced", forced) == CacheSpec(ttl=5)
    assert rules.spec_for("off", {"name": "off"}) is None


def test_rules_of_a_server_entry() -> None:
    plain = ServerConfig(url="http://x/mcp")
    assert CacheRules.of_server(plain) is None  # nothing cached: no rules at all
    config = ServerConfig.model_validate(
        {"url": "http://x/mcp", "tools": {"search": {"cache": {"ttl": "1m"}}}}
    )
    rules = CacheRules.of_server(config)
    assert rules is not None and rules.cache is None
    assert rules.spec_for("search", None) == MINUTE and rules.spec_for("other", None) is None


def test_the_epoch_follows_the_tool_list_and_the_configuration() -> None:
    provider = FakeProvider("db", tools=[tool("a")])
    first = Resolved(provider, CacheRules(MINUTE, source=b"one"))
    assert first.current() is False  # computed for the first time
    assert first.current() is True
    cached = first.tool("a")
    assert cached is not None and cached.prefix.endswith(f"/{first.epoch}/")
    epoch = first.epoch
    provider.lists["tools"] = [tool("a")]  # an equal list: the same epoch
    assert first.current() is True and first.epoch == epoch
    provider.lists["tools"] = [tool("a"), tool("b")]
    assert first.current() is False and first.epoch != epoch
    other = Resolved(provider, CacheRules(MINUTE, source=b"two"))
    other.current()
    assert other.epoch != first.epoch
