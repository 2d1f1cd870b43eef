"""The ``rules:`` settings: where rule files are, and how approvals wait (docs/rules.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RulesSettings"]


class RulesSettings(BaseModel):
    """Policy rules over identity, tool, arguments, result and time (docs/rules.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path | None = Field(
        Path("rules"),
        description="Folder of rule files (*.yaml or *.yml; hidden files skipped), relative "
        "to the working directory. A missing folder means no file rules (they are loaded when "
        "it appears, if watch is on); null turns file rules off. Rules stored through the "
        "API apply either way.",
    )
    watch: bool = Field(
        True,
        description="Hot reload: apply edited, new and deleted rule files while the gateway "
        "runs. An invalid edit keeps the file's last good rules and is reported by /ready "
        "(rule_problems) until fixed.",
    )
    refresh_seconds: float = Field(
        30.0,
        gt=0,
        description="How often the rules stored in the database are read again (changes made "
        "through this instance's API apply at once; another instance's within this time).",
    )
    approval_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="How long a call held by a require_approval rule waits for an approver "
        "(a rule's own timeout_seconds wins). Then the request expires and the call fails, "
        "not run.",
    )
    approval_poll_seconds: float = Field(
        1.0,
        gt=0,
        description="How often a waiting call looks for a decision made elsewhere (the CLI, "
        "another instance) and, for a legacy client that sent a progress token, sends a "
        "progress notification. Decisions made through this instance's API wake it at once.",
    )
    approval_hold_seconds: float = Field(
        10.0,
        ge=0,
        description="Modern era: how long a retry of a held call waits for a decision before "
        "the client is given another input-required result to retry with.",
    )
