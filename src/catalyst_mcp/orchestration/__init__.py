"""Orchestration: what the gateway does with tools beyond serving one call (workflows, rules,
events). Each idea is a room of its own, all on the one request pipeline."""

__all__: list[str] = []
