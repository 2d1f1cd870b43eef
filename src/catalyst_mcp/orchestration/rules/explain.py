"""Which rule fires for a call, and why every other one does not: the report of
``catalyst rules test`` and of ``POST /api/v1/rules/test`` (the dashboard's rules page).

The report is plain JSON data: ``rules`` (each rule's ``id``, ``action``, ``outcome`` and
``why``, in the order they are walked), ``decision`` (one sentence), and when they apply
``arguments_sent`` (after ``transform`` rules), ``route``, ``rate``, ``alerts`` and
``result_returned`` (a given result after the redactions and the rules on results).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalyst_mcp.orchestration.rules.engine import Facts, RuleEngine
from catalyst_mcp.orchestration.rules.pipeline import transform_arguments
from catalyst_mcp.orchestration.rules.results import redact_result

__all__ = ["explain_call"]


def explain_call(
    engine: RuleEngine, facts: Facts, result: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The report of ``engine``'s rules on a call (and on its ``result``, when given)."""
    verdicts, before, after = engine.explain(facts, result)
    report: dict[str, Any] = {
        "rules": [
            {"id": v.rule.id, "action": v.rule.action, "outcome": v.outcome, "why": v.reason}
            for v in verdicts
        ]
    }
    final = before.final
    if final is None:
        report["decision"] = "the call runs (no allow, deny or require_approval rule applies)"
    elif final.action == "deny":
        report["decision"] = f"denied by rule '{final.id}': {final.spec.message or 'Forbidden'}"
    elif final.action == "allow":
        report["decision"] = f"allowed by rule '{final.id}' (no later rule applies)"
    else:
        report["decision"] = f"held for approval by rule '{final.id}'" + (
            f": {final.spec.message}" if final.spec.message else ""
        )
    if before.transforms:
        report["arguments_sent"] = transform_arguments(facts.arguments, before.transforms)
    if before.route is not None and before.route.spec.route is not None:
        route = before.route.spec.route
        report["route"] = f"tool {route.tool}" if route.tool else f"server {route.server}"
    if before.rates:
        report["rate"] = [r.id for r in before.rates]
    alerts = [r.id for r in before.alerts] + [r.id for r in (after.alerts if after else [])]
    if alerts:
        report["alerts"] = alerts
    if after is not None and after.final is not None and after.final.action == "deny":
        report["decision"] += f"; its result is withheld by rule '{after.final.id}'"
    elif result is not None and (final is None or final.action == "require_approval"):
        shown = dict(result)
        for rule in [*before.transforms, *(after.transforms if after else [])]:
            if rule.redact_result:
                shown, _ = redact_result(shown, rule.redact_result, rule.spec.mask)
        report["result_returned"] = shown
    return report
