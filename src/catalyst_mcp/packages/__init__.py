"""Installing MCP server packages from npm and PyPI, found through the MCP Registry.

One idea per module: ``serverjson`` (the registry's ``server.json`` format), ``registryapi``
(the registry's HTTP API), ``catalog`` (search and show, live or from the bundled snapshot),
``spec`` (what the user asked for), ``layout`` (the state folder and atomic swaps), ``runner``
(an installer process), ``progress`` (what the user sees meanwhile), ``npm`` and ``pypi`` (the
two installers), ``lockfile`` (``catalyst.lock``), ``entry`` (the server entry a package gets),
``configfile`` (editing ``catalyst.yaml`` in place) and ``manager`` (install, update, remove,
list, sync). docs/packages.md is the user's guide; decision 013 the why.
"""
