"""The rules on the request path: what :class:`~catalyst_mcp.protocol.server.McpServer` calls
around every ``tools/call`` (MCP and REST alike), after RBAC and the gateway's rate limits.

::

    McpServer._call_tool: admit (RBAC, key scopes, rate limits, audit room), REST arguments
    └─ RulesHook.call
       ├─ rules before the call ─ alerts published (even when the call is then refused)
       │                        ├─ deny ─────────────── Forbidden (the rule's message)
       │                        ├─ require_approval ─── held (approvals.py; by era, below)
       │                        ├─ rate ─────────────── RateLimited (the rule's bucket)
       │                        ├─ transform ────────── arguments set / redacted (a copy)
       │                        └─ route ────────────── another server's or tool's provider,
       │                                                 RBAC-checked for the caller
       ├─ relay (the provider: pack, upstream, built-in server, workflow)
       └─ rules after the call ─ result redactions of the transforms above; rules on the
                                 result: deny (the result is withheld), transform, alert

Every rule that applied is named in the call's audit record (``detail.note.rules``: id and
action, and where a route went or which approval allowed it), counted in
``catalyst_rule_matches_total{rule, action}`` and set on the request's span
(``catalyst.rules``).

A held call (``require_approval``) waits for an approver according to how it came:

* legacy MCP: the call waits, sending a progress notification every
  ``rules.approval_poll_seconds`` (when the client sent a progress token), until it is
  approved (it runs), rejected, or the request expires (:class:`ApprovalRequired` either way);
* modern MCP with the elicitation capability: an ``InputRequiredResult`` asking the client to
  confirm that it keeps waiting; its retry (``requestState`` ``catalyst-approval:<id>``) runs the
  call once approved, waits up to ``rules.approval_hold_seconds`` for a decision, and else asks
  again; declining withdraws the request;
* modern MCP without elicitation, and the REST API: :class:`ApprovalRequired` at once, with the
  request's id; the same call made again after the approval runs (one approval, one call).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import (
    ApprovalRequired,
    CatalystError,
    Forbidden,
    InvalidParams,
    Missing,
    NotFound,
)
from catalyst_mcp.observability import tracing
from catalyst_mcp.orchestration.rules.approvals import Approvals, arguments_digest
from catalyst_mcp.orchestration.rules.config import RulesSettings
from catalyst_mcp.orchestration.rules.engine import CompiledRule, Facts, Plan
from catalyst_mcp.orchestration.rules.events import EventSink, RuleEvent
from catalyst_mcp.orchestration.rules.paths import redact_at, set_at
from catalyst_mcp.orchestration.rules.results import redact_result, result_variables
from catalyst_mcp.orchestration.rules.ruleset import RuleSet
from catalyst_mcp.protocol.jsonrpc import notification
from catalyst_mcp.providers import Provider
from catalyst_mcp.security.ratelimit import Check, MemoryLimiter, RateLimiter
from catalyst_mcp.storage.approvals import ApprovalRecord
from catalyst_mcp.storage.models import utcnow

if TYPE_CHECKING:
    from catalyst_mcp.observability.metrics import Metrics
    from catalyst_mcp.registry import Registry
    from catalyst_mcp.security.access import Access

__all__ = ["APPROVAL_STATE", "Relay", "RulesHook", "transform_arguments"]

log = logging.getLogger("catalyst.rules")

APPROVAL_STATE = "catalyst-approval:"
MAX_CHECKS = 10_000
Relay = Callable[[Provider, str, dict[str, Any], CallContext], Awaitable[dict[str, Any]]]
"""Calls ``provider`` with its own tool name and the params (the server's ``_relay_tool``)."""


class RulesHook:
    """The rules of one gateway on its request path."""

    def __init__(
        self,
        rules: RuleSet,
        registry: Registry,
        settings: RulesSettings,
        approvals: Approvals,
        events: EventSink,
        access: Access | None = None,
    ) -> None:
        self.rules = rules
        self.registry = registry
        self.settings = settings
        self.approvals = approvals
        self.events = events
        self.access = access
        # the gateway's limiter (Redis: shared by every instance), else one of its own
        shared = access.limiter if access is not None else None
        self.limiter: RateLimiter = shared if shared is not None else MemoryLimiter()
        self._take = self.limiter.take if isinstance(self.limiter, MemoryLimiter) else None
        self._checks: dict[tuple[str, str], Check] = {}
        self.metrics: Metrics | None = None

    async def call(
        self,
        ctx: CallContext,
        provider: Provider,
        name: str,
        original: str,
        params: dict[str, Any],
        relay: Relay,
    ) -> dict[str, Any]:
        """Serve one ``tools/call`` of ``name`` (public; ``original`` its provider's name)
        through the rules."""
        engine = self.rules.engine
        candidates = engine.candidates(provider.name, name) if engine.rules else None
        if candidates is None or not (candidates.before or candidates.after):
            return await relay(provider, original, _without_state(params), ctx)
        identity = ctx.identity
        arguments = params.get("arguments")
        facts = Facts(
            subject=identity.subject,
            kind=identity.kind,
            via=identity.via,
            roles=self.access.roles_of(identity) if self.access is not None else identity.roles,
            scopes=identity.scopes,
            server=provider.name,
            tool=name,
            arguments=arguments if isinstance(arguments, dict) else {},
            transport=ctx.channel,
            era=ctx.era,
        )
        variables = engine.variables(facts)
        plan = engine.walk(candidates.before, facts, variables)
        noted: list[dict[str, Any]] = []
        self._observe(ctx, plan, noted, facts)
        final = plan.final
        if final is not None and final.spec.action == "deny":
            raise Forbidden(
                final.spec.message or f"Forbidden: rule '{final.id}' denies {name}",
                data={"rule": final.id},
            )
        if final is not None and final.spec.action == "require_approval":
            answer = await self._approve(ctx, final, facts, params, noted)
            if answer is not None:
                return answer
        if plan.rates:  # (after an approval: a held call's retries are not charged)
            await self._limit(plan.rates, identity.subject)
        params = _without_state(params)
        if plan.transforms:
            params = {**params, "arguments": transform_arguments(facts.arguments, plan.transforms)}
        target, target_original = provider, original
        if plan.route is not None:
            target, target_original = self._route(ctx, plan.route, provider, original, noted)
        result = await relay(target, target_original, params, ctx)
        if noted:  # (the provider may have written a note of its own meanwhile)
            ctx.audit_note = {**(ctx.audit_note or {}), "rules": noted}
        for rule in plan.transforms:
            if rule.redact_result:
                result, _ = redact_result(result, rule.redact_result, rule.spec.mask)
        if candidates.after and (final is None or final.spec.action != "allow"):
            result = self._after(ctx, candidates.after, facts, variables, result, noted)
        return result

    # ---- before the call ---------------------------------------------------------------------

    def _observe(
        self, ctx: CallContext, plan: Plan, noted: list[dict[str, Any]], facts: Facts
    ) -> None:
        """Name the rules that applied in the audit note, metrics and span; publish alerts."""
        if not plan.matched and not plan.errors:
            return
        for rule, message in plan.errors:
            log.warning("rule %r: its condition failed (%s)", rule.id, message)
        for rule in plan.matched:
            noted.append({"id": rule.id, "action": rule.spec.action})
            if self.metrics is not None:
                self.metrics.rule_match(rule.id, rule.spec.action)
        ctx.audit_note = {**(ctx.audit_note or {}), "rules": noted}
        _span(plan)
        for rule in plan.alerts:
            self.events.publish(
                RuleEvent(
                    "rules.alert",
                    rule.id,
                    facts.subject,
                    facts.kind,
                    facts.tool,
                    facts.server,
                    rule.spec.message or f"rule '{rule.id}' matched a call of {facts.tool}",
                    rule.spec.severity,
                )
            )

    async def _limit(self, rules: list[CompiledRule], subject: str) -> None:
        checks = []
        for rule in rules:
            spec = rule.spec.rate
            assert spec is not None
            who = subject if spec.per == "user" else ""
            check = self._checks.get((rule.id, who))
            if check is None:
                if len(self._checks) >= MAX_CHECKS:
                    self._checks.clear()
                key = f"rule:{rule.id}" + (f":{len(who)}:{who}" if spec.per == "user" else "")
                label = f"rule '{rule.id}'" + (f" for user '{who}'" if spec.per == "user" else "")
                check = self._checks[(rule.id, who)] = Check(
                    key, spec.rate_per_second, spec.burst, label
                )
            checks.append(check)
        if self._take is not None:
            self._take(checks)
        else:
            await self.limiter.acquire(checks)

    def _route(
        self,
        ctx: CallContext,
        rule: CompiledRule,
        provider: Provider,
        original: str,
        noted: list[dict[str, Any]],
    ) -> tuple[Provider, str]:
        spec = rule.spec.route
        assert spec is not None
        registry = self.registry
        if spec.tool is not None:
            public = spec.tool
        else:
            assert spec.server is not None
            server = registry.provider(spec.server)
            if server is None:
                raise CatalystError(
                    f"rule '{rule.id}' routes this call to server '{spec.server}', which the "
                    "gateway does not serve now"
                )
            public = registry.public_name(server, original)
        try:
            target, target_original = registry.resolve("tools", public)
        except NotFound:
            raise CatalystError(
                f"rule '{rule.id}' routes this call to tool '{public}', which the gateway does "
                "not serve now"
            ) from None
        if self.access is not None:  # the caller must be allowed the target too
            listed = registry.is_listed("tool", public)
            self.access.authorize(ctx.identity, "tool", public, target.name, listed=listed)
        for entry in noted:
            if entry["id"] == rule.id:
                entry["to"] = public
        return target, target_original

    # ---- approvals ---------------------------------------------------------------------------

    async def _approve(
        self,
        ctx: CallContext,
        rule: CompiledRule,
        facts: Facts,
        params: dict[str, Any],
        noted: list[dict[str, Any]],
    ) -> dict[str, Any] | None:
        """None when the call may run now; else the answer (an input-required result), or
        ApprovalRequired."""
        state = params.get("requestState")
        if isinstance(state, str) and state.startswith(APPROVAL_STATE):
            record = await self._resumed(ctx, state[len(APPROVAL_STATE) :], facts)
            response = params.get("inputResponses")
            answer = response.get("approval") if isinstance(response, dict) else None
            if isinstance(answer, dict) and answer.get("action") in ("decline", "cancel"):
                record = await self.approvals.cancel(record)
            elif record.status == "pending":
                hold = min(self.settings.approval_hold_seconds, _seconds_left(record))
                record = await self.approvals.wait(record, time.monotonic() + hold)
        else:
            record = await self.approvals.open(
                rule_id=rule.id,
                subject=facts.subject,
                via=facts.via,
                tool=facts.tool,
                server=facts.server,
                arguments=facts.arguments,
                message=self._message(rule, facts),
                timeout=rule.spec.timeout_seconds or self.settings.approval_timeout_seconds,
            )
        return await self._settle(ctx, rule, record, noted)

    async def _resumed(self, ctx: CallContext, approval_id: str, facts: Facts) -> ApprovalRecord:
        try:
            record = await self.approvals.store.get(approval_id)
        except Missing:
            record = None
        if record is None or (record.subject, record.via, record.tool, record.digest) != (
            facts.subject,
            facts.via,
            facts.tool,
            arguments_digest(facts.arguments),
        ):  # another caller's or another call's token is as good as an unknown one
            raise InvalidParams("requestState is unknown or expired; send the request again")
        return record

    async def _settle(
        self,
        ctx: CallContext,
        rule: CompiledRule,
        record: ApprovalRecord,
        noted: list[dict[str, Any]],
    ) -> dict[str, Any] | None:
        for entry in noted:
            if entry["id"] == rule.id:
                entry["approval"] = record.id
        if record.status == "pending" and _seconds_left(record) <= 0:
            record = await self.approvals.expire(record)
        if record.status == "pending":
            if ctx.channel == "rest" or (ctx.era == "modern" and not ctx.can("elicitation")):
                raise ApprovalRequired(
                    f"{record.message} Approval request {record.id} is pending: make the same "
                    "call again once an approver has approved it.",
                    record.id,
                    "pending",
                )
            if ctx.era == "modern":
                return _input_required(record)
            record = await self.approvals.wait(
                record, time.monotonic() + _seconds_left(record), _progress(ctx, record)
            )
            if record.status == "pending":
                record = await self.approvals.expire(record)
        if record.status == "approved":
            if await self.approvals.use(record):
                for entry in noted:
                    if entry["id"] == rule.id:
                        entry["approved_by"] = record.decided_by
                return None
            record = await self.approvals.store.get(record.id)
        raise ApprovalRequired(_refusal(record, rule), record.id, record.status)

    def _message(self, rule: CompiledRule, facts: Facts) -> str:
        text = rule.spec.message or f"Calls of {facts.tool} need an approver's approval."
        return text if text.endswith((".", "!", "?")) else text + "."

    # ---- after the call ----------------------------------------------------------------------

    def _after(
        self,
        ctx: CallContext,
        rules: tuple[CompiledRule, ...],
        facts: Facts,
        variables: Any,
        result: dict[str, Any],
        noted: list[dict[str, Any]],
    ) -> dict[str, Any]:
        variables["result"], variables["is_error"] = result_variables(result)
        plan = self.rules.engine.walk(rules, facts, variables)
        self._observe(ctx, plan, noted, facts)
        final = plan.final
        if final is not None and final.spec.action == "deny":
            raise Forbidden(
                final.spec.message
                or f"Forbidden: rule '{final.id}' withholds the result of {facts.tool}",
                data={"rule": final.id},
            )
        for rule in plan.transforms:
            result, _ = redact_result(result, rule.redact_result, rule.spec.mask)
        return result


def _without_state(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without an approval's ``requestState`` and its answers (not the server's)."""
    state = params.get("requestState")
    if isinstance(state, str) and state.startswith(APPROVAL_STATE):
        return {k: v for k, v in params.items() if k not in ("requestState", "inputResponses")}
    return params


def transform_arguments(arguments: Mapping[str, Any], rules: list[CompiledRule]) -> dict[str, Any]:
    """A copy of ``arguments`` with the ``set`` and ``redact`` of ``rules`` applied."""
    out = _copy(arguments)
    for rule in rules:
        for steps, value in rule.set_arguments:
            set_at(out, steps, copy.deepcopy(value) if isinstance(value, dict | list) else value)
        for steps in rule.redact_arguments:
            redact_at(out, steps, rule.spec.mask)
    return out


def _copy(value: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON data (a few times faster than ``copy.deepcopy``)."""
    try:
        copied: dict[str, Any] = orjson.loads(orjson.dumps(value))
    except TypeError:  # not JSON after all (an in-process caller's own objects)
        copied = copy.deepcopy(dict(value))
    return copied


def _seconds_left(record: ApprovalRecord) -> float:
    return (record.expires_at - utcnow()).total_seconds()


def _input_required(record: ApprovalRecord) -> dict[str, Any]:
    return {
        "resultType": "input_required",
        "inputRequests": {
            "approval": {
                "method": "elicitation/create",
                "params": {
                    "message": f"{record.message} Waiting for an approver (request "
                    f"{record.id}). Accept to keep waiting; decline to withdraw the call.",
                    "requestedSchema": {"type": "object", "properties": {}},
                },
            }
        },
        "requestState": APPROVAL_STATE + record.id,
    }


def _progress(ctx: CallContext, record: ApprovalRecord) -> Callable[[float], Awaitable[None]]:
    async def tick(waited: float) -> None:
        token = ctx.progress_token
        if token is None:
            return
        await ctx.emit(
            notification(
                "notifications/progress",
                {
                    "progressToken": token,
                    "progress": round(waited, 3),
                    "message": f"waiting for approval request {record.id}",
                },
            )
        )

    return tick


def _refusal(record: ApprovalRecord, rule: CompiledRule) -> str:
    what = f"approval request {record.id} (rule '{rule.id}')"
    if record.status == "rejected":
        why = f": {record.note}" if record.note else ""
        return f"The call was not run: {what} was rejected by {record.decided_by}{why}"
    if record.status == "expired":
        seconds = (record.expires_at - record.created_at).total_seconds()
        return (
            f"The call was not run: {what} was not decided within {seconds:g} s; make the "
            "call again to ask again"
        )
    if record.status == "cancelled":
        return f"The call was not run: {what} was withdrawn"
    return f"The call was not run: {what} was already used by another call"


def _span(plan: Plan) -> None:
    span = tracing.recording_span()
    if span is not None:
        span.set_attribute("catalyst.rules", [r.id for r in plan.matched])
        if plan.final is not None:
            span.set_attribute("catalyst.rule.decision", f"{plan.final.action}:{plan.final.id}")
