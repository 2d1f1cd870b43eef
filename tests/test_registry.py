"""Namespacing of every provider's tools, prompts and resources, and name resolution."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.errors import NotFound, ResourceNotFound
from catalyst_mcp.registry import Registry
from tests.fakes import FakeProvider, tool


def registry_of(*providers: FakeProvider) -> Registry:
    registry = Registry()
    for provider in providers:
        registry.add(provider)
    return registry


def names(registry: Registry, kind: Any = "tools") -> list[str]:
    field = {
        "tools": "name",
        "prompts": "name",
        "resources": "uri",
        "resourceTemplates": "uriTemplate",
    }[kind]
    return [item[field] for item in registry.items(kind)]


def test_tools_and_prompts_are_prefixed_in_deterministic_order() -> None:
    zeta = FakeProvider("zeta", tools=[tool("b"), tool("a")], prompts=[{"name": "p"}])
    alpha = FakeProvider("alpha", tools=[tool("x")], prompts=[])
    registry = registry_of(zeta, alpha)
    assert [p.name for p in registry.providers] == ["alpha", "zeta"]
    assert names(registry) == ["alpha__x", "zeta__b", "zeta__a"]  # providers by name, own order
    assert names(registry, "prompts") == ["zeta__p"]


def test_resources_and_templates_get_catalyst_uris() -> None:
    registry = registry_of(FakeProvider("srv"))
    assert names(registry, "resources") == ["catalyst://srv/mem://a"]
    assert names(registry, "resourceTemplates") == ["catalyst://srv/mem://t/{x}"]


def test_listed_items_keep_their_other_fields_and_providers_keep_theirs() -> None:
    provider = FakeProvider("srv", tools=[tool("t", description="d")])
    registry = registry_of(provider)
    assert registry.items("tools") == [
        {"name": "srv__t", "inputSchema": {"type": "object"}, "description": "d"}
    ]
    assert provider.items("tools")[0]["name"] == "t"


def test_custom_and_empty_namespaces() -> None:
    registry = registry_of(
        FakeProvider("long-name", namespace="ln"), FakeProvider("bare", namespace="")
    )
    own = ["echo", "link", "progress", "log", "ask", "fail", "boom", "wait"]
    assert names(registry) == own + [f"ln__{name}" for name in own]
    assert names(registry, "resources") == ["mem://a", "catalyst://ln/mem://a"]


def test_unprefixed_collisions_are_reported_and_the_first_wins() -> None:
    first = FakeProvider("a-first", namespace="", tools=[tool("same"), tool("only-a")])
    second = FakeProvider("b-second", namespace="", tools=[tool("same"), tool("only-b")])
    registry = registry_of(second, first)
    assert names(registry) == ["same", "only-a", "only-b"]
    assert registry.collisions["tools"] == {"same": ["a-first", "b-second"]}
    assert registry.resolve("tools", "same") == (first, "same")
    assert registry.collisions["resources"] == {"mem://a": ["a-first", "b-second"]}
    second.set_items("tools", [tool("only-b")])
    assert "tools" not in registry.collisions
    assert "resources" in registry.collisions


def test_unprefixed_name_colliding_with_a_prefixed_one() -> None:
    bare = FakeProvider("bare", namespace="", tools=[tool("srv__echo")])
    srv = FakeProvider("srv", tools=[tool("echo")])
    registry = registry_of(bare, srv)
    assert names(registry) == ["srv__echo"]
    assert registry.collisions["tools"] == {"srv__echo": ["bare", "srv"]}


def test_duplicate_provider_or_namespace_is_refused() -> None:
    registry = registry_of(FakeProvider("a"))
    with pytest.raises(ValueError, match="duplicate provider"):
        registry.add(FakeProvider("a", namespace="other"))
    with pytest.raises(ValueError, match="already used"):
        registry.add(FakeProvider("b", namespace="a"))
    registry.add(FakeProvider("c", namespace=""))
    registry.add(FakeProvider("d", namespace=""))  # several unprefixed providers are fine


def test_resolve() -> None:
    srv = FakeProvider("srv", tools=[tool("echo")], prompts=[{"name": "hello"}])
    registry = registry_of(srv)
    assert registry.resolve("tools", "srv__echo") == (srv, "echo")
    assert registry.resolve("prompts", "srv__hello") == (srv, "hello")
    assert registry.resolve("tools", "srv__not_listed_yet") == (srv, "not_listed_yet")
    assert registry.resolve("tools", "srv__a__b") == (srv, "a__b")


@pytest.mark.parametrize("name", ["echo", "nope__echo", "SRV__echo", "srv_echo", "", "__echo"])
def test_resolve_errors(name: str) -> None:
    registry = registry_of(FakeProvider("srv", tools=[tool("echo")]))
    with pytest.raises(NotFound) as caught:
        registry.resolve("tools", name)
    assert caught.value.code == -32602
    assert caught.value.message == f"Unknown tool: {name}"
    with pytest.raises(NotFound, match="Unknown prompt"):
        registry.resolve("prompts", name)


def test_resolve_uri() -> None:
    srv = FakeProvider("srv")
    registry = registry_of(srv)
    assert registry.resolve_uri("catalyst://srv/mem://a") == (srv, "mem://a")
    assert registry.resolve_uri("catalyst://srv/mem://t/7") == (srv, "mem://t/7")
    assert registry.resolve_uri("catalyst://srv/file:///a/b?c#d") == (srv, "file:///a/b?c#d")


@pytest.mark.parametrize(
    "uri",
    ["catalyst://nope/mem://a", "catalyst://srv/", "catalyst://srv", "catalyst://", "mem://a", "x"],
)
def test_resolve_uri_errors(uri: str) -> None:
    registry = registry_of(FakeProvider("srv"))
    with pytest.raises(ResourceNotFound) as caught:
        registry.resolve_uri(uri)
    assert caught.value.data == {"uri": uri}
    assert caught.value.code == -32002


def test_resolve_uri_of_unprefixed_providers() -> None:
    notes = FakeProvider(
        "notes",
        namespace="",
        resources=[{"uri": "note://1", "name": "1"}],
        templates=[{"uriTemplate": "note://{id}", "name": "n"}],
    )
    files = FakeProvider(
        "files",
        namespace="",
        resources=[],
        templates=[{"uriTemplate": "file:///{path}", "name": "f"}],
    )
    registry = registry_of(notes, files)
    assert registry.resolve_uri("note://1") == (notes, "note://1")  # listed
    assert registry.resolve_uri("note://2") == (notes, "note://2")  # by template scheme
    assert registry.resolve_uri("file:///etc/hosts") == (files, "file:///etc/hosts")
    with pytest.raises(ResourceNotFound):
        registry.resolve_uri("http://example.com")
    only = registry_of(FakeProvider("solo", namespace="", resources=[], templates=[]))
    assert only.resolve_uri("anything://x")[1] == "anything://x"  # the only one gets everything


def test_rewrite_content() -> None:
    srv = FakeProvider("srv")
    registry = registry_of(srv)
    result = {
        "content": [
            {"type": "text", "text": "t"},
            {"type": "resource_link", "uri": "mem://a", "name": "a"},
            {"type": "resource", "resource": {"uri": "mem://b", "text": "b"}},
            {"type": "resource", "resource": {"text": "no uri"}},
            "not a block",
        ],
        "contents": [{"uri": "mem://c", "text": "c"}],
        "messages": [
            {"role": "user", "content": {"type": "resource_link", "uri": "mem://d", "name": "d"}}
        ],
        "structuredContent": {"uri": "mem://untouched"},
    }
    out = registry.rewrite_content(srv, result)
    assert out["content"][1]["uri"] == "catalyst://srv/mem://a"
    assert out["content"][2]["resource"]["uri"] == "catalyst://srv/mem://b"
    assert out["content"][3] == {"type": "resource", "resource": {"text": "no uri"}}
    assert out["content"][4] == "not a block"
    assert out["contents"][0]["uri"] == "catalyst://srv/mem://c"
    assert out["messages"][0]["content"]["uri"] == "catalyst://srv/mem://d"
    assert out["structuredContent"] == {"uri": "mem://untouched"}


def test_rewrite_content_leaves_unprefixed_providers_alone() -> None:
    bare = FakeProvider("bare", namespace="")
    result = {"content": [{"type": "resource_link", "uri": "mem://a", "name": "a"}]}
    assert registry_of(bare).rewrite_content(bare, result) == {
        "content": [{"type": "resource_link", "uri": "mem://a", "name": "a"}]
    }


def test_rewrite_content_does_not_change_the_providers_result() -> None:
    srv = FakeProvider("srv")
    registry = registry_of(srv)
    cached = {"content": [{"type": "resource_link", "uri": "mem://a", "name": "a"}]}
    first = registry.rewrite_content(srv, cached)
    second = registry.rewrite_content(srv, cached)
    assert cached["content"][0]["uri"] == "mem://a"
    assert first["content"][0]["uri"] == second["content"][0]["uri"] == "catalyst://srv/mem://a"


async def test_subscriptions_are_counted_per_uri() -> None:
    srv = FakeProvider("srv")
    registry = registry_of(srv)
    await registry.subscribe("catalyst://srv/mem://a")
    await registry.subscribe("catalyst://srv/mem://a")
    assert srv.subscribed == ["mem://a"]
    await registry.unsubscribe("catalyst://srv/mem://a")
    assert srv.unsubscribed == []
    await registry.unsubscribe("catalyst://srv/mem://a")
    assert srv.unsubscribed == ["mem://a"]
    await registry.unsubscribe("catalyst://srv/mem://a")  # one too many: ignored
    assert srv.unsubscribed == ["mem://a"]
    with pytest.raises(ResourceNotFound):
        await registry.subscribe("catalyst://nope/x")


async def test_changes_and_updates_reach_listeners() -> None:
    srv = FakeProvider("srv")
    registry = registry_of(srv)
    changes: list[set[str]] = []
    updates: list[str] = []
    registry.change_listeners.append(lambda kinds: changes.append(set(kinds)))

    async def on_update(uri: str) -> None:
        updates.append(uri)

    registry.update_listeners.append(on_update)
    srv.set_items("prompts", [{"name": "new"}])
    assert changes == [{"prompts"}]
    assert names(registry, "prompts") == ["srv__new"]
    await srv.on_resource_updated(srv, "mem://a")
    assert updates == ["catalyst://srv/mem://a"]


async def test_start_and_stop_every_provider() -> None:
    providers = [FakeProvider("a"), FakeProvider("b")]
    registry = registry_of(*providers)
    await registry.start(settle_timeout=1)
    assert all(p.started for p in providers)
    await registry.stop()
    assert all(p.stopped for p in providers)


# ---- adding, replacing and removing providers while serving ---------------------------------


def recording(registry: Registry) -> list[set[str]]:
    changes: list[set[str]] = []
    registry.change_listeners.append(lambda kinds: changes.append(set(kinds)))
    return changes


def only_tools(name: str, *tools: str, namespace: str | None = None) -> FakeProvider:
    return FakeProvider(
        name,
        namespace,
        tools=[tool(t) for t in tools],
        resources=[],
        templates=[],
        prompts=[],
    )


def test_add_tells_listeners_of_the_lists_it_changes() -> None:
    registry = registry_of(FakeProvider("srv"))
    changes = recording(registry)
    registry.add(FakeProvider("talk", tools=[], resources=[], templates=[]))
    assert changes == [{"prompts"}]
    registry.add(only_tools("empty"))
    assert changes == [{"prompts"}]  # nothing listed: nothing to tell


def test_replace_swaps_every_view_at_once_and_tells_only_changed_kinds() -> None:
    old = FakeProvider("srv", tools=[tool("a"), tool("b")])
    other = FakeProvider("other")
    registry = registry_of(old, other)
    changes = recording(registry)
    tools_before = registry.items("tools")
    seen_by_listener: list[Any] = []
    registry.change_listeners.insert(
        0, lambda kinds: seen_by_listener.append(registry.resolve("tools", "srv__c"))
    )
    new = FakeProvider("srv", tools=[tool("a"), tool("b"), tool("c")])
    registry.replace(old, new)
    assert changes == [{"tools"}]
    assert seen_by_listener == [(new, "c")]  # listeners hear of it once all is in place
    assert names(registry)[:3] == ["other__echo", "other__link", "other__progress"]
    assert [n for n in names(registry) if n.startswith("srv__")] == ["srv__a", "srv__b", "srv__c"]
    assert registry.resolve("tools", "srv__a") == (new, "a")
    assert registry.resolve_uri("catalyst://srv/mem://a") == (new, "mem://a")
    assert registry.providers == [other, new]
    # A list handed out before the swap is a snapshot: never changed under its reader.
    assert [t["name"] for t in tools_before if t["name"].startswith("srv__")] == [
        "srv__a",
        "srv__b",
    ]


def test_replace_with_the_same_lists_tells_nobody() -> None:
    old = FakeProvider("srv")
    registry = registry_of(old)
    changes = recording(registry)
    new = FakeProvider("srv")  # e.g. only the pack's description changed
    registry.replace(old, new)
    assert changes == []
    assert registry.resolve("tools", "srv__echo") == (new, "echo")


def test_a_replaced_provider_reports_to_nobody() -> None:
    old, new = FakeProvider("srv"), FakeProvider("srv")
    registry = registry_of(old)
    registry.replace(old, new)
    changes = recording(registry)
    old.set_items("tools", [tool("ghost")])
    assert changes == []
    assert "srv__ghost" not in names(registry)
    new.set_items("tools", [tool("real")])
    assert changes == [{"tools"}]
    assert names(registry) == ["srv__real"]


def test_replace_under_another_name_and_namespace() -> None:
    old = only_tools("pack:crm", "find", namespace="crm")
    registry = registry_of(old)
    changes = recording(registry)
    new = only_tools("pack:sales", "find", namespace="sales")
    registry.replace(old, new)
    assert changes == [{"tools"}]
    assert names(registry) == ["sales__find"]
    assert [p.name for p in registry.providers] == ["pack:sales"]
    with pytest.raises(NotFound):
        registry.resolve("tools", "crm__find")
    registry.add(only_tools("pack:crm", "find", namespace="crm"))  # the old namespace is free


def test_replace_refuses_a_taken_name_or_namespace_and_changes_nothing() -> None:
    old = only_tools("pack:a", "t", namespace="a")
    registry = registry_of(old, only_tools("srv", "t"))
    changes = recording(registry)
    before = registry.items("tools")
    with pytest.raises(ValueError, match="namespace 'srv' is already used"):
        registry.replace(old, only_tools("pack:b", "t", namespace="srv"))
    with pytest.raises(ValueError, match="duplicate provider 'srv'"):
        registry.replace(old, only_tools("srv", "t", namespace="b"))
    with pytest.raises(ValueError, match="not served"):
        registry.replace(only_tools("pack:a", "t", namespace="a"), only_tools("x", "t"))
    assert changes == []
    assert registry.items("tools") is before
    assert registry.resolve("tools", "a__t") == (old, "t")


def test_remove_drops_every_item_and_tells_the_kinds_it_listed() -> None:
    gone = only_tools("gone", "t")
    stays = FakeProvider("stays")
    registry = registry_of(gone, stays)
    changes = recording(registry)
    registry.remove(gone)
    assert changes == [{"tools"}]
    assert not any(n.startswith("gone__") for n in names(registry))
    assert registry.providers == [stays]
    assert not gone.stopped  # the caller stops it once its calls are done
    with pytest.raises(NotFound):
        registry.resolve("tools", "gone__t")
    with pytest.raises(ValueError, match="not served"):
        registry.remove(gone)
    gone.set_items("tools", [tool("late")])
    assert changes == [{"tools"}]
    registry.remove(stays)
    assert changes[-1] == {"tools", "resources", "resourceTemplates", "prompts"}


def test_collisions_follow_replace_and_remove() -> None:
    first = only_tools("a-first", "same", namespace="")
    second = only_tools("b-second", "same", namespace="")
    registry = registry_of(first, second)
    assert registry.collisions == {"tools": {"same": ["a-first", "b-second"]}}
    registry.replace(second, only_tools("b-second", "other", namespace=""))
    assert registry.collisions == {}
    registry.remove(first)
    assert names(registry) == ["other"]


def test_a_batch_rebuilds_once_and_tells_listeners_once() -> None:
    registry = Registry()
    heard: list[set[str]] = []
    registry.change_listeners.append(lambda kinds: heard.append(set(kinds)))
    rebuilds = 0
    rebuild = registry._rebuild

    def counting(kinds: set[Any]) -> None:
        nonlocal rebuilds
        rebuilds += 1
        rebuild(kinds)

    registry._rebuild = counting  # type: ignore[method-assign]
    with registry.batch():
        for i in range(5):
            registry.add(FakeProvider(f"p{i}", tools=[tool("t")], prompts=[{"name": "q"}]))
        with registry.batch():  # nested: still one rebuild, at the outer end
            registry.add(FakeProvider("extra", tools=[tool("t")], prompts=[]))
        assert registry.items("tools") == [] and heard == []
    assert rebuilds == 1
    assert len(heard) == 1 and {"tools", "prompts"} <= heard[0]
    assert len(registry.items("tools")) == 6
    with pytest.raises(ValueError, match="duplicate provider"), registry.batch():
        registry.add(FakeProvider("p0"))
    assert len(registry.items("tools")) == 6


def test_rewrite_content_returns_a_result_without_uris_as_it_is() -> None:
    srv = FakeProvider("srv")
    registry = registry_of(srv)
    result = {"content": [{"type": "text", "text": "t"}], "structuredContent": {"a": 1}}
    assert registry.rewrite_content(srv, result) is result
