"""The web dashboard at ``/ui`` (docs/dashboard.md): server-rendered pages over the REST API.

Importing this package imports nothing heavy (the settings import :mod:`.config`); the
dashboard itself is :class:`catalyst_mcp.web.dashboard.Dashboard`, built by the gateway when
``ui.enabled`` is on.
"""

__all__: list[str] = []
