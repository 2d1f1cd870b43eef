"""The compiled rules and the decision for one call: which rules match, what happens.

Rules are walked in order: ``priority`` (higher first), then where they were written (rule
files by file name, each top to bottom, then stored rules by id). For one call:

* a rule applies when its scope fits (``servers`` and ``tools`` globs, ``roles``, ``users``,
  ``during``) and its condition (``if``) holds;
* ``allow``, ``deny`` and ``require_approval`` end the walk: the first that applies decides;
* ``transform``, ``route``, ``alert`` and ``rate`` add to what happens and the walk goes on
  (of several ``route`` rules the first applies);
* rules whose condition reads the result are walked after the call, on the result, the same
  way (``allow`` ends that walk, ``deny`` withholds the result).

A condition that cannot be evaluated (a missing value compared with a number) counts as
applying for ``deny`` and ``require_approval`` (fail closed) and as not applying for the others,
unless the rule's ``on_error`` says otherwise.

Speed (bench/rules.py): the rules whose ``servers`` and ``tools`` globs fit a (server, tool)
pair are found once and cached, so a call looks at only those; scope tests are set and
timestamp tests; conditions were compiled when the rules were loaded and read the call's
variables without copying them; ``time`` is computed only for a condition that reads it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import translate
from typing import Any
from zoneinfo import ZoneInfo

from catalyst_mcp.orchestration.rules.expression import (
    Expression,
    ExpressionError,
    compile_expression,
)
from catalyst_mcp.orchestration.rules.loader import LoadedRule
from catalyst_mcp.orchestration.rules.paths import Step, parse_path
from catalyst_mcp.orchestration.rules.results import result_variables
from catalyst_mcp.orchestration.rules.schema import TERMINAL, RuleSpec, after_call
from catalyst_mcp.security.timewindow import DAYS, CompiledWindow

__all__ = ["CompiledRule", "Facts", "Plan", "RuleEngine", "Verdict"]

MAX_CACHED = 10_000


@dataclass(slots=True)  # (not frozen: a frozen dataclass costs ~1 µs more to make, per call)
class Facts:
    """What rules know of a call before it runs. ``now``: a timestamp (default: the clock)."""

    subject: str
    kind: str
    via: str
    roles: tuple[str, ...]
    scopes: frozenset[str] | None
    server: str
    tool: str
    arguments: Mapping[str, Any]
    transport: str = "mcp"
    era: str = "legacy"
    now: float | None = None


class _Variables(dict[str, Any]):
    """The variables of the conditions of one call; ``time`` is made when first read, on the
    clock of the rule being evaluated."""

    __slots__ = ("_times", "ts", "zone")

    def __init__(self, values: dict[str, Any], ts: float) -> None:
        super().__init__(values)
        self.ts = ts
        self.zone: ZoneInfo = UTC_ZONE
        self._times: dict[ZoneInfo, dict[str, Any]] = {}

    def __missing__(self, key: str) -> Any:
        if key != "time":
            raise KeyError(key)
        found = self._times.get(self.zone)
        if found is None:
            moment = datetime.fromtimestamp(self.ts, self.zone)
            found = self._times[self.zone] = {
                "hour": moment.hour,
                "minute": moment.minute,
                "weekday": DAYS[moment.weekday()],
                "day": moment.day,
                "month": moment.month,
                "year": moment.year,
                "date": f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}",
                "timestamp": self.ts,
            }
        return found


UTC_ZONE = ZoneInfo("UTC")


def _pattern(globs: Sequence[str] | None) -> re.Pattern[str] | None:
    if globs is None:
        return None
    return re.compile("|".join(f"(?:{translate(g)})" for g in globs))


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """A rule ready to be checked on every call."""

    spec: RuleSpec
    source: str
    servers: re.Pattern[str] | None
    tools: re.Pattern[str] | None
    roles: frozenset[str] | None
    users: re.Pattern[str] | None
    window: CompiledWindow | None
    condition: Expression | None
    after: bool
    fail_match: bool
    zone: ZoneInfo
    terminal: bool
    set_arguments: tuple[tuple[tuple[Step, ...], Any], ...]
    redact_arguments: tuple[tuple[Step, ...], ...]
    redact_result: tuple[tuple[Step, ...], ...]

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def action(self) -> str:
        return self.spec.action

    @classmethod
    def compile(cls, loaded: LoadedRule) -> CompiledRule:
        spec = loaded.spec
        redactions = [parse_path(p) for p in spec.redact or ()]
        on_error = spec.on_error or (
            "match" if spec.action in ("deny", "require_approval") else "skip"
        )
        return cls(
            spec=spec,
            source=loaded.source,
            servers=_pattern(spec.servers),
            tools=_pattern(spec.tools),
            roles=frozenset(spec.roles) if spec.roles is not None else None,
            users=_pattern(spec.users),
            window=CompiledWindow(spec.during) if spec.during is not None else None,
            condition=compile_expression(spec.if_) if spec.if_ is not None else None,
            after=after_call(spec),
            fail_match=on_error == "match",
            zone=ZoneInfo(spec.timezone),
            terminal=spec.action in TERMINAL,
            set_arguments=tuple(
                (parse_path(path).steps, value) for path, value in (spec.set or {}).items()
            ),
            redact_arguments=tuple(p.steps for p in redactions if p.root == "arguments"),
            redact_result=tuple(p.steps for p in redactions if p.root == "result"),
        )

    def in_scope(self, server: str, tool: str) -> bool:
        """Whether the ``servers`` and ``tools`` globs fit (what the cache is keyed by)."""
        if self.servers is not None and self.servers.match(server) is None:
            return False
        return self.tools is None or self.tools.match(tool) is not None


@dataclass(slots=True)
class Plan:
    """What the rules that apply to a call make happen, in rule order."""

    matched: list[CompiledRule] = field(default_factory=list)
    final: CompiledRule | None = None  # the allow, deny or require_approval that decided
    route: CompiledRule | None = None
    transforms: list[CompiledRule] = field(default_factory=list)
    rates: list[CompiledRule] = field(default_factory=list)
    alerts: list[CompiledRule] = field(default_factory=list)
    errors: list[tuple[CompiledRule, str]] = field(default_factory=list)

    def add(self, rule: CompiledRule) -> bool:
        """Take an applying rule; True when it ends the walk."""
        self.matched.append(rule)
        action = rule.spec.action
        if rule.terminal:
            self.final = rule
            return True
        if action == "transform":
            self.transforms.append(rule)
        elif action == "route":
            if self.route is None:
                self.route = rule
        elif action == "rate":
            self.rates.append(rule)
        elif action == "alert":
            self.alerts.append(rule)
        return False


@dataclass(frozen=True, slots=True)
class Verdict:
    """For ``catalyst rules test``: what one rule made of the call, and why."""

    rule: CompiledRule
    outcome: str  # matched, not matched, out of scope, not reached, disabled, error
    reason: str


@dataclass(frozen=True, slots=True)
class _Candidates:
    before: tuple[CompiledRule, ...]
    after: tuple[CompiledRule, ...]


_NONE = _Candidates((), ())


class RuleEngine:
    """Compiled rules in their order, with the candidates of each (server, tool) cached."""

    def __init__(self, rules: Sequence[LoadedRule] = ()) -> None:
        indexed = sorted(enumerate(rules), key=lambda pair: (-pair[1].spec.priority, pair[0]))
        self.rules: tuple[CompiledRule, ...] = tuple(
            CompiledRule.compile(loaded) for _, loaded in indexed if loaded.spec.enabled
        )
        self.disabled: tuple[LoadedRule, ...] = tuple(r for r in rules if not r.spec.enabled)
        self._cache: dict[tuple[str, str], _Candidates] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def candidates(self, server: str, tool: str) -> _Candidates:
        """The rules whose ``servers`` and ``tools`` globs fit, before and after the call."""
        key = (server, tool)
        found = self._cache.get(key)
        if found is None:
            fitting = [r for r in self.rules if r.in_scope(server, tool)]
            found = (
                _Candidates(
                    tuple(r for r in fitting if not r.after), tuple(r for r in fitting if r.after)
                )
                if fitting
                else _NONE
            )
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = found
        return found

    @staticmethod
    def variables(facts: Facts) -> _Variables:
        """The variables conditions read, for one call."""
        return _Variables(
            {
                "user": facts.subject,
                "kind": facts.kind,
                "via": facts.via,
                "roles": facts.roles,
                "scopes": sorted(facts.scopes) if facts.scopes is not None else None,
                "server": facts.server,
                "tool": facts.tool,
                "arguments": facts.arguments,
                "transport": facts.transport,
                "era": facts.era,
                "result": None,
                "is_error": False,
            },
            time.time() if facts.now is None else facts.now,
        )

    def walk(self, rules: tuple[CompiledRule, ...], facts: Facts, variables: _Variables) -> Plan:
        """The plan the applying rules among ``rules`` (candidates, in order) make."""
        plan = Plan()
        roles = facts.roles
        subject = facts.subject
        ts = variables.ts
        for rule in rules:
            if rule.roles is not None and rule.roles.isdisjoint(roles):
                continue
            if rule.users is not None and rule.users.match(subject) is None:
                continue
            if rule.window is not None and not rule.window.open(ts):
                continue
            condition = rule.condition
            if condition is not None:
                variables.zone = rule.zone
                try:
                    if not condition.evaluate(variables):
                        continue
                except ExpressionError as exc:
                    plan.errors.append((rule, exc.message))
                    if not rule.fail_match:
                        continue
            if plan.add(rule):
                break
        return plan

    def explain(
        self, facts: Facts, result: Mapping[str, Any] | None = None
    ) -> tuple[list[Verdict], Plan, Plan | None]:
        """Every rule's verdict on a call (and on its ``result``, when given), with the plans
        before and after the call: for ``catalyst rules test``."""
        variables = self.variables(facts)
        verdicts: list[Verdict] = []
        before = self._explain(
            [r for r in self.rules if not r.after], facts, variables, verdicts, "before the call"
        )
        after = None
        runs_after = before.final is None or before.final.action == "require_approval"
        if result is not None and runs_after:
            variables["result"], variables["is_error"] = result_variables(result)
            after = self._explain(
                [r for r in self.rules if r.after], facts, variables, verdicts, "after the call"
            )
        else:
            reason = "checked after the call" + ("" if runs_after else ", which is not made")
            for rule in self.rules:
                if rule.after:
                    verdicts.append(Verdict(rule, "not reached", reason))
        for loaded in self.disabled:
            verdicts.append(Verdict(CompiledRule.compile(loaded), "disabled", "enabled: false"))
        return verdicts, before, after

    def _explain(
        self,
        rules: list[CompiledRule],
        facts: Facts,
        variables: _Variables,
        verdicts: list[Verdict],
        when: str,
    ) -> Plan:
        plan = Plan()
        done = False
        for rule in rules:
            reason = _why_not(rule, facts, variables)
            if reason is not None:
                outcome = "out of scope" if reason.startswith(("server", "tool")) else "not matched"
                verdicts.append(Verdict(rule, outcome, reason))
                continue
            if done:
                assert plan.final is not None
                verdicts.append(
                    Verdict(rule, "not reached", f"rule {plan.final.id!r} decided first")
                )
                continue
            applies = True
            why = f"applies {when}" + (f": {rule.spec.if_}" if rule.spec.if_ else "")
            if rule.condition is not None:
                variables.zone = rule.zone
                try:
                    value = rule.condition.value(variables)
                except ExpressionError as exc:
                    applies = rule.fail_match
                    verdicts.append(
                        Verdict(
                            rule,
                            "error",
                            f"condition failed: {exc.message}; "
                            + ("counts as matching (fail closed)" if applies else "skipped"),
                        )
                    )
                    plan.errors.append((rule, exc.message))
                    if applies:
                        done = plan.add(rule)
                    continue
                if not value:
                    applies = False
                    verdicts.append(Verdict(rule, "not matched", f"if is false: {rule.spec.if_}"))
            if applies:
                verdicts.append(Verdict(rule, "matched", why))
                done = plan.add(rule)
        return plan


def _why_not(rule: CompiledRule, facts: Facts, variables: _Variables) -> str | None:
    """Why ``rule``'s scope does not fit the call (None: it fits)."""
    spec = rule.spec
    if rule.servers is not None and rule.servers.match(facts.server) is None:
        return f"server {facts.server!r} is not one of {list(spec.servers or ())}"
    if rule.tools is not None and rule.tools.match(facts.tool) is None:
        return f"tool {facts.tool!r} is not one of {list(spec.tools or ())}"
    if rule.roles is not None and rule.roles.isdisjoint(facts.roles):
        return f"the caller holds none of the roles {list(spec.roles or ())}"
    if rule.users is not None and rule.users.match(facts.subject) is None:
        return f"user {facts.subject!r} is not one of {list(spec.users or ())}"
    if rule.window is not None and not rule.window.open(variables.ts):
        return "outside its time window (during)"
    return None
