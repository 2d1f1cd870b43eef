"""The result cache: successful ``tools/call`` results served again, for the tools and servers
that opt in (``cache: {ttl, scope}``), from memory (L1) and optionally Redis (L2), after
authorization, rules and rate limits (docs/cache.md)."""

__all__: list[str] = []
