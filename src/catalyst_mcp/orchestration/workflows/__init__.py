"""Workflows: multi-step tool chains declared in YAML, served as tools, persisted, resumed,
scheduled, and exposed through the MCP tasks extension (docs/workflows.md)."""

__all__: list[str] = []
