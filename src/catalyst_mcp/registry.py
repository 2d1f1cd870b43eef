"""All providers' tools, resources, templates and prompts under one namespace scheme.

Naming (see docs/namespacing.md):

* tools and prompts: ``<namespace>__<name>`` — ``__`` never occurs in a namespace and a namespace
  never ends in ``_``, so the first ``__`` always splits a name unambiguously;
* resource URIs and templates: ``catalyst://<namespace>/<original URI>``;
* a provider with the empty namespace exposes its names unchanged; when two such providers
  offer the same name, the first in order wins and the collision is reported by ``/ready``.

Order is deterministic: providers by name, then each provider's own order.
Views are rebuilt when a provider reports a change or the set of providers changes, never on the
request path. Adding, replacing (hot reload of a pack) and removing a provider each swap the
views they affect in one step: nothing awaits in between, so no request sees half of a change.
Change listeners then hear of the kinds whose public lists differ, and only of those.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from operator import is_not
from typing import Any

from catalyst_mcp.errors import NotFound, ResourceNotFound
from catalyst_mcp.protocol.headers import param_headers
from catalyst_mcp.providers import LIST_KINDS, ListKind, Provider
from catalyst_mcp.settings import NAMESPACE_SEPARATOR

__all__ = ["URI_PREFIX", "Registry"]

log = logging.getLogger("catalyst.registry")

URI_PREFIX = "catalyst://"
NAME_FIELD: dict[ListKind, str] = {
    "tools": "name",
    "prompts": "name",
    "resources": "uri",
    "resourceTemplates": "uriTemplate",
}

ChangeListener = Callable[[set[ListKind]], None]
UpdateListener = Callable[[str], Awaitable[None]]


class Registry:
    def __init__(self) -> None:
        self._providers: dict[str, Provider] = {}
        self._by_namespace: dict[str, Provider] = {}
        self._views: dict[ListKind, list[dict[str, Any]]] = {k: [] for k in LIST_KINDS}
        self._names: dict[ListKind, dict[str, tuple[Provider, str]]] = {k: {} for k in LIST_KINDS}
        # kind -> public name -> providers offering it (the first one wins)
        self.collisions: dict[ListKind, dict[str, list[str]]] = {}
        self.change_listeners: list[ChangeListener] = []
        self.update_listeners: list[UpdateListener] = []
        self._subscribers: dict[str, int] = {}
        # public tool name -> (header, argument) pairs its schema marks x-mcp-header
        self.param_headers: dict[str, list[tuple[str, str]]] = {}
        # inside batch(): the kinds to rebuild at its end, and the views before it began
        self._pending: tuple[set[ListKind], dict[ListKind, list[dict[str, Any]]]] | None = None

    # ---- providers ---------------------------------------------------------------------------

    def add(self, provider: Provider) -> None:
        """Serve ``provider``; :class:`ValueError` if its name or namespace is taken."""
        self._check_free(provider)
        self._swap({**self._providers, provider.name: provider}, provider)
        self._attach(provider)

    def replace(self, old: Provider, new: Provider) -> None:
        """Serve ``new`` instead of ``old`` in one step (``new`` may have another name or
        namespace, which must be free). ``old`` is detached, not stopped: the caller stops it
        once its calls in flight are done. Subscriptions are not carried over."""
        self._check_present(old)
        self._check_free(new, instead_of=old)
        providers = {k: v for k, v in self._providers.items() if v is not old}
        self._swap({**providers, new.name: new}, old, new)
        self._attach(new)
        _detach(old)

    def remove(self, provider: Provider) -> None:
        """Stop serving ``provider`` (detached, not stopped: that is the caller's job)."""
        self._check_present(provider)
        self._swap({k: v for k, v in self._providers.items() if v is not provider}, provider)
        _detach(provider)

    def _check_present(self, provider: Provider) -> None:
        if self._providers.get(provider.name) is not provider:
            raise ValueError(f"provider {provider.name!r} is not served")

    def _check_free(self, provider: Provider, instead_of: Provider | None = None) -> None:
        taken = self._providers.get(provider.name)
        if taken is not None and taken is not instead_of:
            raise ValueError(f"duplicate provider {provider.name!r}")
        owner = self._by_namespace.get(provider.namespace) if provider.namespace else None
        if owner is not None and owner is not instead_of:
            raise ValueError(f"namespace {provider.namespace!r} is already used")

    def _attach(self, provider: Provider) -> None:
        provider.on_change = self._changed
        provider.on_resource_updated = self._resource_updated

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Add, replace or remove many providers with one rebuild at the end (start-up with
        100 packs: one rebuild instead of 100, each longer than the last)."""
        if self._pending is not None:
            yield
            return
        self._pending = (set(), dict(self._views))
        try:
            yield
        finally:
            kinds, before = self._pending
            self._pending = None
            self._publish(kinds, before)

    def _swap(self, providers: dict[str, Provider], *involved: Provider) -> None:
        """Serve ``providers``: the views the ``involved`` providers list items in rebuilt,
        listeners told which of them differ."""
        kinds = {kind for kind in LIST_KINDS if any(p.items(kind) for p in involved)}
        self._providers = dict(sorted(providers.items()))
        self._by_namespace = {p.namespace: p for p in self._providers.values() if p.namespace}
        if self._pending is not None:
            self._pending[0].update(kinds)
            return
        self._publish(kinds, dict(self._views))

    def _publish(self, kinds: set[ListKind], before: dict[ListKind, list[dict[str, Any]]]) -> None:
        self._rebuild(kinds)
        changed = {kind for kind in kinds if self._views[kind] != before[kind]}
        if changed:
            for listener in self.change_listeners:
                listener(changed)

    @property
    def providers(self) -> list[Provider]:
        return list(self._providers.values())

    def provider(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def _changed(self, provider: Provider, kinds: set[ListKind]) -> None:
        if self._providers.get(provider.name) is not provider:
            return  # replaced or removed meanwhile
        self._rebuild(kinds)
        for listener in self.change_listeners:
            listener(kinds)

    async def _resource_updated(self, provider: Provider, uri: str) -> None:
        public = self.public_uri(provider, uri)
        for listener in self.update_listeners:
            await listener(public)

    # ---- names -------------------------------------------------------------------------------

    @staticmethod
    def public_name(provider: Provider, name: str) -> str:
        return f"{provider.namespace}{NAMESPACE_SEPARATOR}{name}" if provider.namespace else name

    @staticmethod
    def public_uri(provider: Provider, uri: str) -> str:
        return f"{URI_PREFIX}{provider.namespace}/{uri}" if provider.namespace else uri

    def _rebuild(self, kinds: set[ListKind]) -> None:
        views = dict(self._views)
        names_of = dict(self._names)
        collisions_of = dict(self.collisions)
        for kind in kinds:
            field = NAME_FIELD[kind]
            public_of = self.public_uri if kind.startswith("resource") else self.public_name
            view: list[dict[str, Any]] = []
            names: dict[str, tuple[Provider, str]] = {}
            collisions: dict[str, list[str]] = {}
            for provider in self._providers.values():
                for item in provider.items(kind):
                    original = item[field]
                    public = public_of(provider, original)
                    if public in names:
                        owner = names[public][0].name
                        collisions.setdefault(public, [owner]).append(provider.name)
                        log.warning(
                            "%s %r of %s hidden: %s has the same name",
                            kind,
                            public,
                            provider.name,
                            owner,
                        )
                        continue
                    names[public] = (provider, original)
                    view.append(item if public == original else {**item, field: public})
            views[kind] = view
            names_of[kind] = names
            if collisions:
                collisions_of[kind] = collisions
            else:
                collisions_of.pop(kind, None)
        # Everything is built: swap it in at once.
        self._views = views
        self._names = names_of
        self.collisions = collisions_of
        if "tools" in kinds:
            self.param_headers = {
                tool["name"]: pairs for tool in views["tools"] if (pairs := param_headers(tool))
            }

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return self._views[kind]

    def is_listed(self, kind: str, public: str) -> bool:
        """Whether ``public`` names a listed tool, prompt, resource or resource template (RBAC
        kinds: ``tool``, ``prompt``, ``resource``)."""
        if kind == "resource":
            return public in self._names["resources"] or public in self._names["resourceTemplates"]
        return public in self._names["tools" if kind == "tool" else "prompts"]

    def owner_name(self, kind: ListKind, public: str) -> str | None:
        """The name of the provider serving the listed item ``public``."""
        found = self._names[kind].get(public)
        return found[0].name if found is not None else None

    def resolve(self, kind: ListKind, name: str) -> tuple[Provider, str]:
        """The provider of a public tool or prompt name, and its own name for it. A name that
        is not listed but that its provider holds back (``Provider.withheld``) raises that
        provider's refusal instead; listed names never ask."""
        found = self._names[kind].get(name)
        if found is not None:
            return found
        head, sep, rest = name.partition(NAMESPACE_SEPARATOR)
        if sep and head in self._by_namespace:
            provider = self._by_namespace[head]
            _refuse_withheld(provider, kind, rest)
            return provider, rest
        for provider in self._providers.values():
            if not provider.namespace:
                _refuse_withheld(provider, kind, name)
        label = "tool" if kind == "tools" else "prompt"
        raise NotFound(f"Unknown {label}: {name}")

    def resolve_uri(self, uri: str) -> tuple[Provider, str]:
        """The provider of a public resource URI and its own URI (templates included)."""
        if uri.startswith(URI_PREFIX):
            namespace, sep, original = uri[len(URI_PREFIX) :].partition("/")
            provider = self._by_namespace.get(namespace)
            if provider is not None and sep and original:
                return provider, original
            raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
        found = self._names["resources"].get(uri)
        if found is not None:
            return found
        unprefixed = [p for p in self._providers.values() if not p.namespace]
        if len(unprefixed) == 1:
            return unprefixed[0], uri
        for provider in unprefixed:  # a templated URI: the first provider with a matching scheme
            for template in provider.items("resourceTemplates"):
                if _same_scheme(template["uriTemplate"], uri):
                    return provider, uri
        raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})

    # ---- results -----------------------------------------------------------------------------

    def rewrite_content(self, provider: Provider, result: dict[str, Any]) -> dict[str, Any]:
        """Give resource links and embedded resources in a result their public URIs.

        Returns a new result when something changes: providers may hand out cached objects.
        """
        if not provider.namespace:
            return result
        for key in ("content", "contents", "messages"):
            blocks = result.get(key)
            if isinstance(blocks, list):
                rewritten = [
                    self._rewrite_block(provider, b) if isinstance(b, dict) else b for b in blocks
                ]
                if any(map(is_not, rewritten, blocks)):  # else the result is left as it is
                    result = {**result, key: rewritten}
        return result

    def _rewrite_block(self, provider: Provider, block: dict[str, Any]) -> dict[str, Any]:
        kind = block.get("type")
        if kind == "resource_link" or ("uri" in block and kind is None):
            uri = block.get("uri")
            if isinstance(uri, str):
                return {**block, "uri": self.public_uri(provider, uri)}
        elif kind == "resource" and isinstance(block.get("resource"), dict):
            inner = block["resource"]
            if isinstance(inner.get("uri"), str):
                return {
                    **block,
                    "resource": {**inner, "uri": self.public_uri(provider, inner["uri"])},
                }
        elif isinstance(block.get("content"), dict):  # a prompt message
            return {**block, "content": self._rewrite_block(provider, block["content"])}
        return block

    # ---- subscriptions -----------------------------------------------------------------------

    async def subscribe(self, uri: str) -> None:
        provider, original = self.resolve_uri(uri)
        self._subscribers[uri] = self._subscribers.get(uri, 0) + 1
        if self._subscribers[uri] == 1:
            await provider.subscribe(original)

    async def unsubscribe(self, uri: str) -> None:
        count = self._subscribers.get(uri, 0)
        if count <= 0:
            return
        if count == 1:
            del self._subscribers[uri]
            with contextlib.suppress(NotFound):
                provider, original = self.resolve_uri(uri)
                await provider.unsubscribe(original)
        else:
            self._subscribers[uri] = count - 1

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self, settle_timeout: float) -> None:
        for provider in self._providers.values():
            await provider.start()
        await asyncio.gather(*(p.wait_settled(settle_timeout) for p in self._providers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self._providers.values()), return_exceptions=True)


def _ignore_change(provider: Provider, kinds: set[ListKind]) -> None:
    return None


async def _ignore_update(provider: Provider, uri: str) -> None:
    return None


def _detach(provider: Provider) -> None:
    """A provider no longer served reports to nobody (it may live on while calls finish)."""
    provider.on_change = _ignore_change
    provider.on_resource_updated = _ignore_update


def _refuse_withheld(provider: Provider, kind: ListKind, name: str) -> None:
    """Raise the provider's reason to refuse ``name``, which it does not list, if it has one
    (a tool held back for review)."""
    refusal = provider.withheld(kind, name)
    if refusal is not None:
        raise refusal


def _same_scheme(template: str, uri: str) -> bool:
    scheme = template.split(":", 1)[0]
    return bool(scheme) and "{" not in scheme and uri.startswith(scheme + ":")
