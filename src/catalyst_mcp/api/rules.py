"""``/rules`` and ``/approvals``: the policy rules (stored ones managed here, file ones read-only),
which rule fires for a call and why (``POST /rules/test``, as ``catalyst rules test`` but on the
rules in force), and the calls ``require_approval`` rules hold (approve, reject).

A stored rule is validated exactly as a rule file's (``orchestration/rules/schema.py``) and is
in force on this instance as soon as the answer is sent (other instances: within
``rules.refresh_seconds``). An approval decided here wakes the call waiting for it at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from catalyst_mcp.api.router import ApiError, ApiRequest, Route, problems_of
from catalyst_mcp.api.services import AdminServices
from catalyst_mcp.errors import Missing
from catalyst_mcp.orchestration.rules.engine import Facts
from catalyst_mcp.orchestration.rules.explain import explain_call
from catalyst_mcp.orchestration.rules.loader import LoadedRule
from catalyst_mcp.orchestration.rules.schema import RULE_ID, RuleSpec
from catalyst_mcp.storage.approvals import STATUSES, ApprovalRecord
from catalyst_mcp.storage.rules import StoredRuleRepo
from catalyst_mcp.storage.users import UserRepo

if TYPE_CHECKING:
    from catalyst_mcp.orchestration.rules.service import Rules

__all__ = ["RuleHandlers"]


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` references replaced by what they name (the OpenAPI
    document's own references point at its components, not into a body's schema)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


RULE_SCHEMA = _inlined(RuleSpec.model_json_schema(by_alias=True))


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RulePath(_In):
    id: str = Field(description="The rule's id.")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not RULE_ID.match(value):
            raise ValueError("1-64 letters, digits, '.', '_' or '-'")
        return value


class ApprovalPath(_In):
    id: str = Field(description="The approval request's id (apr_...).", max_length=40)


class ApprovalQuery(_In):
    status: Literal[STATUSES] | None = Field(  # type: ignore[valid-type]
        None, description="Only requests in this state (default: all)."
    )
    limit: int = Field(100, ge=1, le=1000, description="At most this many, newest first.")


class ApprovalDecision(_In):
    note: str | None = Field(None, max_length=500, description="Why (shown to the caller).")


class RuleTest(_In):
    user: str = Field(min_length=1, max_length=128, description="The caller's user name.")
    roles: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] | None = Field(
        None,
        description="The caller's roles (null: the roles the user has here; none for a user "
        "this gateway does not know).",
    )
    tool: str = Field(
        min_length=1, max_length=512, description="The tool's public name (server__tool)."
    )
    arguments: dict[str, Any] = Field(default_factory=dict, description="The call's arguments.")
    server: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="The server serving the tool (default: the one serving it now, else the "
        "name's prefix).",
    )
    result: dict[str, Any] | None = Field(
        None, description="A tool result (content, structuredContent), to test rules on results."
    )
    at: datetime | None = Field(
        None, description="The time of the call (default: now; without a zone: UTC)."
    )
    transport: Literal["mcp", "rest"] = Field("mcp", description="How the call comes.")

    @field_validator("at")
    @classmethod
    def _at(cls, value: datetime | None) -> datetime | None:
        # every time zone's clock must be able to show it (rules read `time` in their zone)
        if value is not None and not 1970 <= value.year <= 9998:
            raise ValueError("a time between the years 1970 and 9998")
        return value


class RuleVerdict(BaseModel):
    id: str
    action: str
    outcome: str = Field(
        description="matched, not matched, out of scope, not reached, disabled or error."
    )
    why: str


class RuleTestReport(BaseModel):
    user: str
    roles: list[str]
    roles_from: Literal["given", "user", "unknown user"] = Field(
        description="Where the roles come from: the request, the user's roles here, or none "
        "(a user this gateway does not know)."
    )
    server: str
    tool: str
    arguments: dict[str, Any]
    rules: list[RuleVerdict] = Field(description="Every rule's verdict, in the order walked.")
    decision: str = Field(description="What happens to the call, in one sentence.")
    arguments_sent: dict[str, Any] | None = Field(
        None, description="The arguments the server gets (after transform rules)."
    )
    route: str | None = Field(None, description="Where a route rule sends the call.")
    rate: list[str] | None = Field(None, description="The rate rules charged.")
    alerts: list[str] | None = Field(None, description="The alert rules raised.")
    result_returned: dict[str, Any] | None = Field(
        None, description="The given result as the client would get it."
    )


class PolicyRule(BaseModel):
    id: str
    source: str = Field(description="'stored' (managed here), or the file and line it is in.")
    action: str
    priority: int
    enabled: bool
    description: str
    rule: dict[str, Any] = Field(description="The rule as written (docs/rules.md).")


class PolicyRuleList(BaseModel):
    rules: list[PolicyRule] = Field(description="Every rule, in the order they are walked.")
    problems: list[str] = Field(
        description="Rule files or stored rules not in force as "
        "written (file:line:col: what is wrong)."
    )


class Approval(BaseModel):
    id: str
    rule: str
    user: str
    tool: str
    server: str
    arguments: dict[str, Any] | None = Field(
        description="The call's arguments (null: too large to keep)."
    )
    message: str
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str | None


class ApprovalList(BaseModel):
    approvals: list[Approval]


def _rule(loaded: LoadedRule) -> PolicyRule:
    spec = loaded.spec
    return PolicyRule(
        id=spec.id,
        source=loaded.source,
        action=spec.action,
        priority=spec.priority,
        enabled=spec.enabled,
        description=spec.description,
        rule=spec.model_dump(mode="json", by_alias=True, exclude_defaults=True),
    )


def _approval(record: ApprovalRecord) -> Approval:
    return Approval(
        id=record.id,
        rule=record.rule_id,
        user=record.subject,
        tool=record.tool,
        server=record.server,
        arguments=record.arguments,
        message=record.message,
        status=record.status,
        created_at=record.created_at,
        expires_at=record.expires_at,
        decided_by=record.decided_by,
        decided_at=record.decided_at,
        note=record.note,
    )


class RuleHandlers:
    def __init__(self, services: AdminServices, rules: Rules) -> None:
        self.services = services
        self.rules = rules

    def _in_force(self) -> list[LoadedRule]:
        order = {rule.id: n for n, rule in enumerate(self.rules.ruleset.engine.rules)}
        loaded = self.rules.ruleset.loaded
        return sorted(loaded, key=lambda r: order.get(r.spec.id, len(order)))

    async def index(self, request: ApiRequest) -> PolicyRuleList:
        await self.rules.ruleset.load_stored()
        return PolicyRuleList(
            rules=[_rule(r) for r in self._in_force()],
            problems=[str(p) for p in self.rules.problems],
        )

    async def get(self, request: ApiRequest) -> PolicyRule:
        rule_id = request.path_as(RulePath).id
        await self.rules.ruleset.load_stored()
        for loaded in self.rules.ruleset.loaded:
            if loaded.spec.id == rule_id:
                return _rule(loaded)
        raise ApiError(404, f"no rule {rule_id!r}")

    async def put(self, request: ApiRequest) -> PolicyRule:
        rule_id = request.path_as(RulePath).id
        data = dict(request.data or {})
        if data.get("id", rule_id) != rule_id:
            raise ApiError(422, "the body's id differs from the path's")
        data["id"] = rule_id
        try:
            spec = RuleSpec.model_validate(data)
        except ValidationError as exc:
            raise ApiError.invalid(problems_of(exc, "body")) from None
        for loaded in self.rules.ruleset.loaded:
            if loaded.spec.id == rule_id and loaded.source != "stored":
                raise ApiError(409, f"rule {rule_id!r} is defined in {loaded.source}")
        stored = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        await StoredRuleRepo(self.services.db).put(rule_id, stored)
        await self.rules.ruleset.load_stored()
        request.target = rule_id
        return _rule(LoadedRule(spec, "stored"))

    async def delete(self, request: ApiRequest) -> None:
        rule_id = request.path_as(RulePath).id
        request.target = rule_id
        try:
            await StoredRuleRepo(self.services.db).delete(rule_id)
        except Missing:
            for loaded in self.rules.ruleset.loaded:
                if loaded.spec.id == rule_id:
                    raise ApiError(
                        409, f"rule {rule_id!r} is defined in {loaded.source}: remove it there"
                    ) from None
            raise
        await self.rules.ruleset.load_stored()

    async def test(self, request: ApiRequest) -> RuleTestReport:
        """Which rule in force fires for the call described, and why the others do not."""
        body = request.body_as(RuleTest)
        kind = "user"
        roles_from: Literal["given", "user", "unknown user"] = "given"
        roles = tuple(body.roles or ())
        if body.roles is None:
            roles_from = "unknown user"
            if self.services.db is not None:
                try:
                    found = await UserRepo(self.services.db).get(body.user)
                except Missing:
                    pass
                else:
                    roles, kind, roles_from = found.roles, found.kind, "user"
        server = body.server
        if server is None:
            server = self.rules.hook.registry.owner_name("tools", body.tool)
        if server is None:
            server = body.tool.partition("__")[0]
        at = body.at
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        await self.rules.ruleset.load_stored()
        facts = Facts(
            subject=body.user,
            kind=kind,
            via="api_key",
            roles=roles,
            scopes=None,
            server=server,
            tool=body.tool,
            arguments=body.arguments,
            transport=body.transport,
            now=at.timestamp() if at is not None else None,
        )
        report = explain_call(self.rules.ruleset.engine, facts, body.result)
        return RuleTestReport(
            user=body.user,
            roles=list(roles),
            roles_from=roles_from,
            server=server,
            tool=body.tool,
            arguments=body.arguments,
            **report,
        )

    async def approvals(self, request: ApiRequest) -> ApprovalList:
        query = request.query_as(ApprovalQuery)
        found = await self.rules.approvals.store.list(query.status, query.limit)
        return ApprovalList(approvals=[_approval(r) for r in found])

    async def approval(self, request: ApiRequest) -> Approval:
        approval_id = request.path_as(ApprovalPath).id
        return _approval(await self.rules.approvals.store.get(approval_id))

    async def approve(self, request: ApiRequest) -> Approval:
        return await self._decide(request, approve=True)

    async def reject(self, request: ApiRequest) -> Approval:
        return await self._decide(request, approve=False)

    async def _decide(self, request: ApiRequest, *, approve: bool) -> Approval:
        approval_id = request.path_as(ApprovalPath).id
        request.target = approval_id
        note = request.body_as(ApprovalDecision).note
        record = await self.rules.approvals.decide(
            approval_id, approve=approve, by=request.identity.subject, note=note
        )
        return _approval(record)

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/rules",
                self.index,
                action="admin.rules.list",
                summary="List the rules in force, in order, and the problems of the others",
                tag="rules",
                response=PolicyRuleList,
            ),
            Route(
                "POST",
                "/rules/test",
                self.test,
                action="admin.rules.test",
                summary="Which rule in force fires for a call, and why the others do not",
                tag="rules",
                body=RuleTest,
                response=RuleTestReport,
            ),
            Route(
                "GET",
                "/rules/{id}",
                self.get,
                action="admin.rules.get",
                summary="Get a rule",
                tag="rules",
                path_model=RulePath,
                response=PolicyRule,
            ),
            Route(
                "PUT",
                "/rules/{id}",
                self.put,
                action="admin.rules.put",
                summary="Create or replace a stored rule",
                tag="rules",
                path_model=RulePath,
                json_object=True,
                json_schema=RULE_SCHEMA,
                response=PolicyRule,
                changes=True,
                errors=("422",),
            ),
            Route(
                "DELETE",
                "/rules/{id}",
                self.delete,
                action="admin.rules.delete",
                summary="Delete a stored rule",
                tag="rules",
                path_model=RulePath,
                status=204,
                changes=True,
            ),
            Route(
                "GET",
                "/approvals",
                self.approvals,
                action="admin.approvals.list",
                summary="List approval requests, newest first",
                tag="rules",
                query=ApprovalQuery,
                response=ApprovalList,
            ),
            Route(
                "GET",
                "/approvals/{id}",
                self.approval,
                action="admin.approvals.get",
                summary="Get an approval request",
                tag="rules",
                path_model=ApprovalPath,
                response=Approval,
            ),
            Route(
                "POST",
                "/approvals/{id}/approve",
                self.approve,
                action="admin.approvals.approve",
                summary="Approve a held call: it runs",
                tag="rules",
                path_model=ApprovalPath,
                body=ApprovalDecision,
                response=Approval,
                changes=True,
            ),
            Route(
                "POST",
                "/approvals/{id}/reject",
                self.reject,
                action="admin.approvals.reject",
                summary="Reject a held call: it is not run",
                tag="rules",
                path_model=ApprovalPath,
                body=ApprovalDecision,
                response=Approval,
                changes=True,
            ),
        ]
