"""Orchestration: what the gateway decides and does around a call beyond access control.

Each idea is a room of its own, all on the one request pipeline: ``rules`` (policy over
identity, tool, arguments, result and time), ``workflows`` (multi-step tool chains served as
tools, their runs and schedules), and, next to them, events and the result cache.
"""

__all__: list[str] = []
