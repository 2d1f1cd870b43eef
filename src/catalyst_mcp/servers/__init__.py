"""Built-in MCP servers that run inside the gateway (docs/servers.md).

One module or folder per kind: :mod:`.filesystem`, :mod:`.database`. Each is a
:class:`~catalyst_mcp.servers.base.BuiltinServer`, enabled by a section of a ``servers:`` entry
(:mod:`.config`) and made by :func:`catalyst_mcp.servers.builtins.build`, so namespaces, hot
reload, RBAC, rate limits and audit apply to it as to any upstream server. Nothing is imported
here: ``settings.py`` imports :mod:`.config` and must not pull in the servers themselves.
"""
