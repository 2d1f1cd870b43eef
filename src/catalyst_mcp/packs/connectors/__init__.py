"""Connectors: how a pack reaches a business system (one module per kind)."""
