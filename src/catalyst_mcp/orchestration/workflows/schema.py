"""The workflow file format (pydantic): one workflow per YAML file (docs/workflows.md).

::

    name: order-digest            # the tool workflows__order-digest
    description: ...
    input: {type: object, properties: {...}, required: [...]}   # the tool's inputSchema
    output: {total: "${steps.sum.result}"}                      # templated (default: last step)
    output_schema: {...}                                        # the tool's outputSchema
    steps:
      - id: fetch
        tool: crm__get_order
        arguments: {id: "${inputs.order_id}"}
        timeout_seconds: 10
        retry: {attempts: 3, backoff_seconds: 0.5}
        retry_safe: true
        on_error: fail | continue | compensate
        compensate: {tool: crm__undo, arguments: {...}}
      - id: both
        parallel: [{id: a, tool: ...}, {id: b, tool: ...}]
      - id: each
        foreach: "${steps.fetch.result.lines}"
        concurrency: 4
        tool: stock__check
        arguments: {sku: "${item.sku}"}
        when: "${inputs.check_stock}"
    schedules:
      - {cron: "0 7 * * mon-fri", timezone: Europe/Paris, inputs: {...}, as: reports}
    on:                                   # runs started by events (docs/events.md)
      - event: upstream.state_changed     # a type or a glob ("call.*")
        when: "event.data.state == 'failed'"
        inputs: {server: "${event.data.server}"}
        as: ops
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "NAME_PATTERN",
    "Compensation",
    "Retry",
    "Schedule",
    "Step",
    "Trigger",
    "Workflow",
]

NAME_PATTERN = r"^[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*$"
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"  # usable as steps.<id> in an expression


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Retry(_Model):
    """Attempts of a step that failed (a tool error, an upstream failure or a time-out; never a
    refusal or bad arguments), with exponential backoff between them."""

    attempts: int = Field(1, ge=1, le=20, description="Attempts in all (1: no retry).")
    backoff_seconds: float = Field(0.5, ge=0, description="Wait before the second attempt.")
    max_backoff_seconds: float = Field(30.0, ge=0, description="Longest wait between attempts.")
    multiplier: float = Field(2.0, ge=1, description="Each wait is this times the last.")


class Compensation(_Model):
    """The call that undoes a completed step (run in reverse order when a later step fails
    with ``on_error: compensate``)."""

    tool: str = Field(min_length=1, description="Public tool name.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Templated arguments.")


class Step(_Model):
    """A tool call, a ``parallel`` group of steps, or a tool call ``foreach`` item."""

    id: str = Field(pattern=STEP_ID_PATTERN, description="Unique in the workflow.")
    tool: str | None = Field(None, min_length=1, description="Public tool name to call.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Templated arguments.")
    parallel: list[Step] | None = Field(None, min_length=1, description="Steps run together.")
    when: str | bool | None = Field(None, description="Run only if this expression is true.")
    foreach: str | list[Any] | None = Field(
        None, description="Call the tool once per item of this list (``item``, ``index``)."
    )
    concurrency: int = Field(1, ge=1, le=64, description="Items of a foreach run at once.")
    timeout_seconds: float | None = Field(None, gt=0, description="Per attempt.")
    retry: Retry = Field(default_factory=lambda: Retry(), description="Attempts and backoff.")
    retry_safe: bool = Field(
        False,
        description="Safe to run again when a resumed run finds it finished (default: a "
        "finished step never runs again).",
    )
    on_error: Literal["fail", "continue", "compensate"] = Field(
        "fail", description="When the step fails after its attempts."
    )
    compensate: Compensation | None = Field(None, description="Undoes this step.")

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if (self.tool is None) == (self.parallel is None):
            raise ValueError("a step has either 'tool' or 'parallel'")
        if self.parallel is not None and (self.foreach is not None or self.arguments):
            raise ValueError("a parallel group has no 'foreach' or 'arguments' of its own")
        return self


class Schedule(_Model):
    """A cron schedule: the workflow runs at each due time, as the identity ``as``."""

    cron: str = Field(
        min_length=1, description="Cron expression (croniter: five fields, a sixth for seconds)."
    )
    timezone: str = Field("UTC", description="IANA time zone the expression is read in.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="The run's inputs.")
    as_user: str = Field(
        "scheduler", alias="as", min_length=1, max_length=128, description="Subject of runs."
    )
    roles: list[str] = Field(default_factory=list, description="Roles of that identity.")


class Trigger(_Model):
    """An event that starts a run (``on:``): of a type ``event`` names (a glob), when ``when``
    holds, as the identity ``as``, with ``inputs`` templated from ``${event...}``."""

    event: str = Field(min_length=1, description="Event type, or a glob of types ('call.*').")
    when: str | bool | None = Field(
        None, description="Start a run only if this expression (over ``event``) is true."
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="The run's inputs (templated: ${event.data.server})."
    )
    as_user: str = Field(
        "events", alias="as", min_length=1, max_length=128, description="Subject of runs."
    )
    roles: list[str] = Field(default_factory=list, description="Roles of that identity.")


class Workflow(_Model):
    """One workflow, served as the tool ``<namespace>__<name>``."""

    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    title: str | None = None
    description: str = ""
    input: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the inputs (the tool's inputSchema).",
    )
    output: Any = Field(None, description="Templated output (default: the last step's result).")
    output_schema: dict[str, Any] | None = Field(None, description="The tool's outputSchema.")
    steps: list[Step] = Field(min_length=1)
    timeout_seconds: float | None = Field(None, gt=0, description="Limit of a whole run.")
    task: Literal["optional", "required", "forbidden"] = Field(
        "optional",
        description="MCP tasks: 'optional' runs as a task for clients that support them.",
    )
    schedules: list[Schedule] = Field(default_factory=list)
    on: list[Trigger] = Field(default_factory=list, description="Events that start runs.")

    @model_validator(mode="after")
    def _schemas_are_objects(self) -> Workflow:
        if self.input.get("type") != "object":
            raise ValueError("input must be a JSON Schema of type 'object'")
        if self.output_schema is not None and self.output_schema.get("type") != "object":
            raise ValueError("output_schema must be a JSON Schema of type 'object'")
        return self
