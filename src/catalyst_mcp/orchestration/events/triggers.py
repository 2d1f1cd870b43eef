"""Workflow triggers: the consumer ``workflows`` starts the runs that ``on:`` entries ask for.

For each event, every served workflow whose ``on:`` names its type is looked at: its ``when``
(a JMESPath expression, like workflow templates, over ``{"event": <envelope JSON>}``) must be
true, then a run starts in the background with the entry's ``inputs`` rendered from the event,
as the identity ``as`` (kind ``service``, via ``event``, with ``roles``) under the same RBAC,
secrets, rate limits and audit as any caller. Its ``trigger`` is ``event``.

Once per event: before a run starts, the claim ``event:<event id>:<workflow>#<entry>`` is
inserted (the schedules' table): a redelivered event (Redis, at least once) or a second
instance finds it taken and starts nothing. A gateway killed between the claim and the run's
start loses that run (as with schedules).

No loops: ``workflow.*`` events of a run that an event started never start a run, and a
workflow's own ``workflow.*`` events never start the workflow itself.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from catalyst_mcp.context import Identity
from catalyst_mcp.orchestration.events.types import Envelope
from catalyst_mcp.orchestration.workflows.runstate import new_run_id
from catalyst_mcp.orchestration.workflows.templating import TemplateError, truthy
from catalyst_mcp.storage.models import utcnow

if TYPE_CHECKING:
    from catalyst_mcp.orchestration.workflows.manager import Workflows
    from catalyst_mcp.orchestration.workflows.plan import TriggerPlan, WorkflowPlan

__all__ = ["CLAIMS_KEPT", "TriggerConsumer", "claim_key"]

log = logging.getLogger("catalyst.workflows")

CLAIMS_KEPT = timedelta(days=7)  # claims older than this are deleted (at most hourly)
FORGET_EVERY = timedelta(hours=1)


def claim_key(event_id: str, workflow: str, index: int) -> str:
    """The claim of one trigger entry for one event."""
    return f"event:{event_id}:{workflow}#{index}"[:300]


class TriggerConsumer:
    """Starts the runs the workflows of ``workflows`` ask for on events."""

    name = "workflows"
    dynamic = True  # workflow files change while the gateway runs
    slow = True  # a run's start is committed to the database

    def __init__(self, workflows: Workflows) -> None:
        self.workflows = workflows
        self._seen: dict[str, WorkflowPlan] | None = None
        self._wanted: frozenset[str] = frozenset()
        self._forgot = utcnow()
        self.started: list[str] = []  # run ids started here, the latest (tests)

    def _plans(self) -> dict[str, WorkflowPlan]:
        plans = self.workflows.provider.plans
        if plans is not self._seen:  # a reload: what is wanted is worked out again
            self._seen = plans
            self._wanted = frozenset(
                kind for plan in plans.values() for tr in plan.triggers for kind in tr.types
            )
        return plans

    def accepts(self, event_type: str) -> bool:
        self._plans()
        return event_type in self._wanted

    async def handle(self, envelope: Envelope) -> None:
        kind = envelope.type
        data = envelope.data
        if kind.startswith("workflow.") and data.get("trigger") == "event":
            return  # a run an event started: its events start nothing (no loops)
        view: dict[str, Any] | None = None
        for plan in list(self._plans().values()):
            if kind.startswith("workflow.") and data.get("workflow") == plan.name:
                continue
            for trigger in plan.triggers:
                if kind not in trigger.types:
                    continue
                if view is None:
                    view = {"event": envelope.to_json()}
                await self._maybe_start(plan, trigger, envelope, view)
        await self._forget_old_claims()

    async def _maybe_start(
        self, plan: WorkflowPlan, trigger: TriggerPlan, envelope: Envelope, view: dict[str, Any]
    ) -> None:
        where = f"workflow {plan.name!r}, on[{trigger.index}]"
        try:
            if trigger.when is not None and not truthy(trigger.when.render(view)):
                return
            inputs = trigger.inputs.render(view)
        except TemplateError as error:
            log.warning("%s: %s (event %s)", where, error, envelope.id)
            return
        if not isinstance(inputs, dict):
            log.warning("%s: inputs must render to an object (event %s)", where, envelope.id)
            return
        runner = self.workflows.runner
        run_id = new_run_id()
        at = datetime.fromtimestamp(envelope.time, UTC)
        if not await runner.store.claim_fire(
            claim_key(envelope.id, plan.name, trigger.index), at, run_id
        ):
            return  # started already (a redelivery, or another instance)
        identity = Identity(
            subject=trigger.as_user, kind="service", roles=trigger.roles, via="event"
        )
        run = runner.new_run(plan, inputs, identity, trigger="event", run_id=run_id)
        await runner.start(plan, run)
        self.started.append(run.id)
        del self.started[:-100]
        log.info("%s: event %s %s started run %s", where, envelope.type, envelope.id, run.id)

    async def _forget_old_claims(self) -> None:
        now = utcnow()
        if now - self._forgot < FORGET_EVERY:
            return
        self._forgot = now
        try:
            await self.workflows.runner.store.forget_fires(now - CLAIMS_KEPT)
        except Exception as exc:  # the database may be away for a while: later
            log.debug("forgetting old trigger claims failed: %s", exc)
