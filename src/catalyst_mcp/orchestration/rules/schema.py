"""The rule format (YAML files and the API): what a rule matches, its condition and its action.

::

    - id: exports-need-approval        # unique among all rules: letters, digits, . _ -
      description: Big exports are checked by a data owner
      priority: 10                     # higher first (default 0); ties keep file order
      servers: ["crm*"]                # globs on the server or pack (default: any)
      tools: ["crm__export_*"]         # globs on the tool's public name (default: any)
      roles: [analyst]                 # the caller holds one of them (default: anyone)
      users: ["contractor-*"]          # globs on the caller's user name (default: anyone)
      during: {days: [mon, tue, wed, thu, fri], hours: "09:00-18:00", timezone: Europe/Paris}
      if: arguments.limit > 1000       # a condition (expression.py), default: always
      action: require_approval
      message: Exports over 1000 rows need a data owner's approval

Actions and their fields: ``allow``; ``deny`` (``message``); ``require_approval``
(``message``, ``timeout_seconds``); ``transform`` (``set``: path → value, ``redact``: paths,
``mask``); ``route`` (``route: {server: NAME}`` or ``{tool: PUBLIC_NAME}``); ``alert``
(``message``, ``severity``); ``rate`` (``rate: {rate_per_second, burst, per: user|all}``).

A rule whose condition reads ``result`` is checked after the call (docs/rules.md, "Order"): it
may allow, deny (the result is withheld), redact ``result`` paths or alert, nothing else.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from catalyst_mcp.orchestration.rules.expression import ExpressionError, compile_expression
from catalyst_mcp.orchestration.rules.paths import parse_path
from catalyst_mcp.security.rbac import _check_glob
from catalyst_mcp.security.timewindow import TimeWindow

__all__ = [
    "ACTIONS",
    "TERMINAL",
    "Action",
    "RateSpec",
    "RouteSpec",
    "RuleSpec",
    "after_call",
]

Action = Literal["allow", "deny", "require_approval", "transform", "route", "alert", "rate"]
ACTIONS: tuple[Action, ...] = (
    "allow",
    "deny",
    "require_approval",
    "transform",
    "route",
    "alert",
    "rate",
)
# actions that end the walk through the rules (the others add to what happens and go on)
TERMINAL = frozenset({"allow", "deny", "require_approval"})
AFTER_ACTIONS = frozenset({"allow", "deny", "transform", "alert"})
RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_MESSAGE = 500


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Globs = Annotated[tuple[str, ...], BeforeValidator(_listed)]


class RouteSpec(_Model):
    """Where a ``route`` rule sends the call: another server (the same tool name there) or
    another tool."""

    server: str | None = Field(
        None, description="Serve the call by this server's tool of the same name."
    )
    tool: str | None = Field(None, description="Serve the call by this tool (public name).")

    @model_validator(mode="after")
    def _one(self) -> RouteSpec:
        if (self.server is None) == (self.tool is None):
            raise ValueError("give exactly one of 'server' and 'tool'")
        return self


class RateSpec(_Model):
    """An extra token bucket for the calls a ``rate`` rule matches."""

    rate_per_second: float = Field(gt=0, description="Calls per second that come back.")
    burst: int = Field(ge=1, description="Calls that may be made at once.")
    per: Literal["user", "all"] = Field(
        "user", description="One bucket per caller (user), or one for all callers (all)."
    )


class RuleSpec(_Model):
    """One rule."""

    id: str = Field(description="Unique among all rules; named in audit records and metrics.")
    description: str = Field("", description="What the rule is for.")
    enabled: bool = Field(True, description="A disabled rule is kept but never matches.")
    priority: int = Field(0, description="Higher first; ties keep their order.")
    servers: Globs | None = Field(None, description="Globs on the server or pack.")
    tools: Globs | None = Field(None, description="Globs on the tool's public name.")
    roles: Globs | None = Field(None, description="The caller holds one of these roles.")
    users: Globs | None = Field(None, description="Globs on the caller's user name.")
    during: TimeWindow | None = Field(None, description="Only within this time window.")
    if_: str | None = Field(None, alias="if", description="A condition (docs/rules.md).")
    timezone: str = Field("UTC", description="The clock of 'time' in the condition.")
    action: Action = Field(description="What happens when the rule matches.")
    message: str | None = Field(
        None, description="Shown to the caller (deny, approval), or the alert's text."
    )
    set: dict[str, Any] | None = Field(None, description="transform: argument path → value.")
    redact: Globs | None = Field(None, description="transform: paths whose values are masked.")
    mask: Any = Field("[redacted]", description="transform: what a redacted value becomes.")
    route: RouteSpec | None = Field(None, description="route: where the call goes instead.")
    rate: RateSpec | None = Field(None, description="rate: the extra limit.")
    severity: Literal["info", "warning", "critical"] = Field(
        "warning", description="alert: how urgent the event is."
    )
    timeout_seconds: float | None = Field(
        None, gt=0, description="require_approval: how long to wait (default: the setting)."
    )
    on_error: Literal["match", "skip"] | None = Field(
        None,
        description="When the condition fails (a missing value compared with a number): "
        "match (default for deny and require_approval: fail closed) or skip (the others).",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not RULE_ID.match(value):
            raise ValueError(
                f"rule id {value!r} must be 1-64 letters, digits, '.', '_' or '-' (starting "
                "with a letter or digit)"
            )
        return value

    @field_validator("servers", "tools", "users")
    @classmethod
    def _globs(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("no globs given: leave the field out to mean any")
            for pattern in value:
                _check_glob(pattern)
        return value

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("no roles given: leave 'roles' out to mean anyone")
        return value

    @field_validator("message")
    @classmethod
    def _message(cls, value: str | None) -> str | None:
        if value is not None and len(value) > MAX_MESSAGE:
            raise ValueError(f"at most {MAX_MESSAGE} characters")
        return value

    @field_validator("if_")
    @classmethod
    def _condition(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_expression(value)
            except ExpressionError as exc:
                where = f" (column {exc.column} of the condition)" if exc.column else ""
                raise ValueError(f"{exc.message}{where}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (an IANA name such as 'UTC' or 'Europe/Berlin')"
            ) from None
        return value

    @field_validator("set")
    @classmethod
    def _set(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            if not value:
                raise ValueError("nothing to set")
            for path in value:
                if parse_path(path).root != "arguments":
                    raise ValueError(f"path {path!r}: only arguments can be set")
        return value

    @field_validator("redact")
    @classmethod
    def _redact(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("nothing to redact")
            for path in value:
                parse_path(path)
        return value

    @model_validator(mode="after")
    def _fits_action(self) -> RuleSpec:
        action = self.action
        given = {
            "set": self.set is not None,
            "redact": self.redact is not None,
            "route": self.route is not None,
            "rate": self.rate is not None,
            "timeout_seconds": self.timeout_seconds is not None,
        }
        wanted = {
            "transform": {"set", "redact"},
            "route": {"route"},
            "rate": {"rate"},
            "require_approval": {"timeout_seconds"},
        }.get(action, set())
        stray = [name for name, present in given.items() if present and name not in wanted]
        if stray:
            raise ValueError(f"{', '.join(stray)} does not apply to action {action!r}")
        if action == "transform" and not (given["set"] or given["redact"]):
            raise ValueError("a transform rule needs 'set' or 'redact'")
        if action == "route" and not given["route"]:
            raise ValueError("a route rule needs 'route: {server: NAME}' or '{tool: NAME}'")
        if action == "rate" and not given["rate"]:
            raise ValueError("a rate rule needs 'rate: {rate_per_second: N, burst: N}'")
        if after_call(self) and action not in AFTER_ACTIONS:
            raise ValueError(
                f"a rule whose condition reads 'result' is checked after the call, where "
                f"{action!r} cannot apply (allow, deny, transform or alert can)"
            )
        if after_call(self) and self.set is not None:
            raise ValueError("a rule whose condition reads 'result' can only redact 'result'")
        if after_call(self) and any(parse_path(p).root == "arguments" for p in self.redact or ()):
            raise ValueError("a rule whose condition reads 'result' can only redact 'result'")
        return self


def after_call(rule: RuleSpec) -> bool:
    """Whether ``rule`` is checked after the call (its condition reads the result)."""
    if rule.if_ is None:
        return False
    names = compile_expression(rule.if_).names
    return "result" in names or "is_error" in names
