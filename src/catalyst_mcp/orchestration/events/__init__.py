"""The event bus: typed events of the gateway (calls, upstream states, pack reloads, tool
definition changes, workflow steps and runs, approvals and alerts), delivered in-process or
through a Redis stream to the audit trail, metrics, workflow triggers and webhooks
(docs/events.md)."""

__all__: list[str] = []
