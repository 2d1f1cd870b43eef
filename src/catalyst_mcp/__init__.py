"""Catalyst: one MCP endpoint for every AI client, over MCP servers and knowledge packs."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
