"""Orchestration: what the gateway decides and does around a call beyond access control.

Each idea is a room of its own: ``rules`` (policy over identity, tool, arguments, result and
time), and, built next to it, workflows, the scheduler, events and the result cache.
"""
