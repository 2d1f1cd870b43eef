"""Orchestration: what the gateway decides and does around a call beyond access control.

Each idea is a room of its own, all on the one request pipeline: ``rules`` (policy over
identity, tool, arguments, result and time), ``workflows`` (multi-step tool chains served as
tools, their runs and schedules), ``events`` (the event bus: typed events to the audit trail,
metrics, workflow triggers and webhooks, in-process or through Redis Streams), and, next to
them, the result cache.
"""

__all__: list[str] = []
