"""A validated workflow compiled for the engine: every template parsed, every step planned."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalyst_mcp.orchestration.workflows.schema import Retry, Schedule, Workflow
from catalyst_mcp.orchestration.workflows.templating import Template

__all__ = ["StepPlan", "TriggerPlan", "WorkflowPlan"]


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One step as the engine runs it."""

    id: str
    tool: str | None
    arguments: Template
    parallel: tuple[StepPlan, ...] = ()
    when: Template | None = None
    foreach: Template | None = None
    concurrency: int = 1
    timeout: float | None = None
    retry: Retry = field(default_factory=Retry)
    retry_safe: bool = False
    on_error: str = "fail"
    compensate: tuple[str, Template] | None = None

    def walk(self) -> list[StepPlan]:
        """This step and every step inside it."""
        return [self, *(s for child in self.parallel for s in child.walk())]


@dataclass(frozen=True, slots=True)
class TriggerPlan:
    """One ``on:`` entry as the event bus's trigger consumer runs it."""

    index: int
    types: frozenset[str]  # the event types its pattern names
    when: Template | None
    inputs: Template
    as_user: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WorkflowPlan:
    """A workflow file as served: the model, its compiled steps and where it came from."""

    workflow: Workflow
    steps: tuple[StepPlan, ...]
    output: Template | None
    file: Path
    tools: frozenset[str]  # every tool a step or compensation names (recursion checks)
    triggers: tuple[TriggerPlan, ...] = ()  # its on: entries

    @property
    def name(self) -> str:
        return self.workflow.name

    @property
    def retry_safe(self) -> bool:
        """Every step may run again: nothing about a run needs committing before it goes on
        (or before it answers)."""
        return all(s.retry_safe for top in self.steps for s in top.walk())

    @property
    def schedules(self) -> list[Schedule]:
        return self.workflow.schedules

    def tool_entry(self, public_name: str | None = None) -> dict[str, Any]:
        """The ``tools/list`` entry (the provider's own name unless ``public_name``)."""
        wf = self.workflow
        entry: dict[str, Any] = {
            "name": public_name or wf.name,
            "description": wf.description or f"Workflow {wf.name} ({len(self.steps)} steps)",
            "inputSchema": wf.input,
            "outputSchema": wf.output_schema or {"type": "object"},
            "execution": {"taskSupport": wf.task},
        }
        if wf.title:
            entry["title"] = wf.title
        return entry
