"""Role-based access control: which roles may see and call which servers, tools, resources and
prompts, and when.

A role is plain data (YAML settings or the database): a name, a description and an ordered list
of rules. A :class:`Rule` allows or denies the objects of some ``kinds`` whose public name
(``crm__find_customer``, ``catalyst://crm/customers/1``, a server name) matches one of its
``match`` globs; optionally only objects of some ``servers`` (globs on the server or pack the
object belongs to), optionally only within a time window (``when``).

How :meth:`Policy.decide` decides, for the caller's roles and one object:

1. a rule counts if its role is one of the caller's, its kind, globs and servers match the
   object and its time window (if any) is open now;
2. a counting ``deny`` beats any ``allow``; else a counting ``allow`` allows; else the policy's
   default (``deny`` unless configured otherwise);
3. role names the policy does not define are ignored (each is logged once:
   :meth:`Policy.unknown_roles`);
4. the built-in ``admin`` role allows everything. Defining a role named ``admin`` replaces it.

Globs are :mod:`fnmatch` patterns matched case-sensitively on the whole name: ``*`` also crosses
``__`` and ``/`` (``crm__*`` is every tool of ``crm``, ``catalyst://crm/*`` every resource).
Kind ``resource`` covers resource templates too.

Time windows: ``days`` and ``hours`` (``"09:00-17:30"``: start included, end excluded; a window
such as ``"22:00-06:00"`` wraps midnight and belongs to the day it starts on) are read on the
window's ``timezone`` clock. ``from`` is included, ``until`` excluded; a date means midnight on
the window's clock, and a date ``until`` includes that whole day. Naive datetimes are on the
window's clock too.

Speed: ``decide`` runs on every call. The rules matching one (roles, kind, name, server) are
found once and cached with their decisions already written; a repeat call is a dictionary look-up,
plus for time-windowed rules a comparison of timestamps (the day/hour test is memoised per
minute). ``bench/rbac.py`` measures it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from fnmatch import translate
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from catalyst_mcp.errors import ConfigError, ConfigProblem, Forbidden
from catalyst_mcp.security.timewindow import DAYS, CompiledWindow, TimeWindow, timestamp

__all__ = [
    "ADMIN_ROLE",
    "DAYS",
    "KINDS",
    "Decision",
    "Effect",
    "Kind",
    "Policy",
    "RoleSpec",
    "Rule",
    "TimeWindow",
    "load_roles",
]

log = logging.getLogger("catalyst.rbac")

Effect = Literal["allow", "deny"]
Kind = Literal["server", "tool", "resource", "prompt"]
KINDS: tuple[Kind, ...] = ("server", "tool", "resource", "prompt")
ADMIN_ROLE = "admin"

_ROLE_NAME = re.compile(r"^[^\s\x00-\x1f\x7f]{1,128}$")
_CACHE_SIZE = 100_000
_MAX_REPORTED = 1_000
T = TypeVar("T")


# ---- the data: rules and roles ----------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_glob(pattern: str) -> str:
    """Refuse globs that :mod:`fnmatch` would silently read another way than meant."""
    if not pattern:
        raise ValueError("an empty glob matches nothing: use '*' for everything")
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close < 0:
                raise ValueError(
                    f"glob {pattern!r}: '[' at position {i + 1} is never closed "
                    "(write '[[]' for a literal '[')"
                )
            inner = pattern[i + 1 : close].removeprefix("!")
            for k in range(1, len(inner) - 1):
                if inner[k] == "-" and inner[k - 1] > inner[k + 1]:
                    raise ValueError(
                        f"glob {pattern!r}: range '{inner[k - 1]}-{inner[k + 1]}' is empty"
                    )
            i = close
        i += 1
    return pattern


def _kinds(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError(f"no kinds given: leave 'kinds' out to mean all ({', '.join(KINDS)})")
        # the plural names lists use are accepted too: tools, resources, prompts, servers
        return tuple(k[:-1] if isinstance(k, str) and k[:-1] in KINDS else k for k in value)
    return value


class Rule(_Model):
    """One line of a role: allow or deny the objects it matches."""

    effect: Effect = Field(description="allow or deny (a matching deny beats every allow).")
    kinds: Annotated[tuple[Kind, ...], BeforeValidator(_kinds)] = Field(
        KINDS, description="Kinds of object the rule is about (default: all)."
    )
    match: tuple[str, ...] = Field(
        description="Globs on the object's public name: 'crm__find_*', 'catalyst://crm/*', "
        "a server name. Case-sensitive; '*' also crosses '__' and '/'."
    )
    servers: tuple[str, ...] | None = Field(
        None, description="Globs on the server or pack the object belongs to (default: any)."
    )
    when: TimeWindow | None = Field(None, description="Apply only within this time window.")

    @field_validator("match", "servers")
    @classmethod
    def _globs(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("no globs given: use ['*'] for everything")
            for glob in value:
                _check_glob(glob)
        return value


class RoleSpec(_Model):
    """A role as stored: a name, what it is for, and its rules in order."""

    name: str = Field("", description="The role's name (the key it is defined under).")
    description: str = Field("", description="What the role is for (shown to administrators).")
    rules: tuple[Rule, ...] = Field((), description="The rules, numbered from 1 in reasons.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not _ROLE_NAME.match(value):
            raise ValueError(f"role name {value!r} must be 1-128 characters without spaces")
        return value


_BUILTIN_ADMIN = RoleSpec(
    name=ADMIN_ROLE,
    description="Built-in: allows everything. Define a role named 'admin' to replace it.",
    rules=(Rule(effect="allow", match=("*",)),),
)


def load_roles(data: Any, *, source: str = "roles") -> dict[str, RoleSpec]:
    """Validate plain role data: a mapping of name to ``{description, rules}``, or a list of
    ``{name, description, rules}``. Raises :class:`ConfigError` listing every problem, located
    as ``role 'x', rule 2: ...`` (``source`` names the file or table in messages)."""
    if isinstance(data, Mapping):
        entries = [
            (
                str(name),
                {**(spec or {}), "name": name}
                if spec is None or isinstance(spec, Mapping)
                else spec,
            )
            for name, spec in data.items()
        ]
    elif isinstance(data, list):
        entries = [
            (str(spec.get("name", "")) if isinstance(spec, Mapping) else "", spec) for spec in data
        ]
    else:
        raise ConfigError([ConfigProblem(source, None, "roles must be a mapping or a list")])
    roles: dict[str, RoleSpec] = {}
    problems: list[ConfigProblem] = []
    seen: set[str] = set()
    for name, spec in entries:
        if name and name in seen:
            problems.append(ConfigProblem(source, None, f"role {name!r} is defined twice"))
            continue
        seen.add(name)
        try:
            role = RoleSpec.model_validate(spec)
        except ValidationError as exc:
            problems.extend(_problems(source, name, exc))
            continue
        if not role.name:
            problems.append(ConfigProblem(source, None, "a role without a name"))
        else:
            roles[role.name] = role
    if problems:
        raise ConfigError(problems)
    return roles


def _problems(source: str, role: str, exc: ValidationError) -> list[ConfigProblem]:
    out = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = f"role {role!r}" if role else "a role"
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            where += f", rule {loc[1] + 1}"
            loc = loc[2:]
        # drop pydantic's union/validator branch labels from the path
        path = ".".join(str(p) for p in loc if not (isinstance(p, str) and "[" in p))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        out.append(ConfigProblem(source, None, f"{where}: {path + ': ' if path else ''}{message}"))
    return out


# ---- the compiled policy ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a call is allowed, why (safe to show the caller), and by which role and rule
    (``None`` when the policy's default decided)."""

    allowed: bool
    reason: str
    role: str | None = None
    rule: int | None = None


@dataclass(frozen=True, slots=True)
class _Rule:
    role: str
    number: int
    deny: bool
    kinds: frozenset[str]
    names: re.Pattern[str]
    servers: re.Pattern[str] | None
    window: CompiledWindow | None
    builtin: bool

    def matches(self, kind: str, name: str, server: str | None) -> bool:
        if kind not in self.kinds or self.names.match(name) is None:
            return False
        return self.servers is None or (server is not None and bool(self.servers.match(server)))

    def decision(self, kind: str, name: str) -> Decision:
        verb = "denies" if self.deny else "allows"
        which = "built-in" if self.builtin else f"rule {self.number}"
        if self.window is not None:
            which += ", within its time window"
        return Decision(
            not self.deny,
            f"role '{self.role}' {verb} {kind} '{name}' ({which})",
            self.role,
            self.number,
        )


def _pattern(globs: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{translate(g)})" for g in globs))


# A cache entry: the decision itself, or (window, decision) pairs to try in order (the last one
# has no window).
_Plan = tuple[tuple[CompiledWindow | None, Decision], ...]


class Policy:
    """Compiled roles; :meth:`decide` answers one question, :meth:`filter` a whole list."""

    def __init__(self, rules: dict[str, tuple[_Rule, ...]], default: Effect) -> None:
        self._rules = rules
        self.default: Effect = default
        self._cache: dict[tuple[tuple[str, ...], str, str, str | None], Decision | _Plan] = {}
        self._reported: set[str] = set()

    @classmethod
    def compile(cls, roles: Mapping[str, RoleSpec], default: Effect = "deny") -> Policy:
        """Compile role definitions (keyed by name) into a policy; ``default`` decides what no
        rule allows or denies. :class:`ConfigError` if a key disagrees with a role's name."""
        wrong = [
            ConfigProblem("roles", None, f"role {key!r} is named {spec.name!r}")
            for key, spec in roles.items()
            if spec.name and spec.name != key
        ]
        if wrong:
            raise ConfigError(wrong)
        specs = dict(roles)
        specs.setdefault(ADMIN_ROLE, _BUILTIN_ADMIN)
        compiled = {
            name: tuple(
                _Rule(
                    role=name,
                    number=number,
                    deny=rule.effect == "deny",
                    kinds=frozenset(rule.kinds),
                    names=_pattern(rule.match),
                    servers=_pattern(rule.servers) if rule.servers is not None else None,
                    window=CompiledWindow(rule.when) if rule.when is not None else None,
                    builtin=spec is _BUILTIN_ADMIN,
                )
                for number, rule in enumerate(spec.rules, 1)
            )
            for name, spec in specs.items()
        }
        return cls(compiled, default)

    @property
    def roles(self) -> frozenset[str]:
        """Names of the roles this policy defines (``admin`` always among them)."""
        return frozenset(self._rules)

    def unknown_roles(self, roles: Iterable[str]) -> tuple[str, ...]:
        """The names in ``roles`` this policy does not define; each is logged once."""
        unknown = tuple(r for r in roles if r not in self._rules)
        for name in unknown:
            if name not in self._reported and len(self._reported) < _MAX_REPORTED:
                self._reported.add(name)
                log.warning("role %r is not defined: ignored", name)
        return unknown

    def decide(
        self,
        roles: tuple[str, ...],
        kind: Kind,
        name: str,
        server: str | None = None,
        now: datetime | None = None,
        *,
        remember: bool = True,
    ) -> Decision:
        """Whether a caller with ``roles`` may use the ``kind`` object ``name`` of ``server``
        (for kind ``server``, ``server`` defaults to ``name``). ``now``: the clock for time
        windows (naive means UTC; default: the current time). ``remember=False`` decides
        without caching: for names a caller made up (not listed), which must not fill the
        cache."""
        entry = self._cache.get((roles, kind, name, server))  # the hot path: one look-up
        if entry is None:
            entry = (
                self._entry(roles, kind, name, server)
                if remember
                else self._plan(roles, kind, name, server)
            )
        if isinstance(entry, Decision):
            return entry
        return _resolve(entry, time.time() if now is None else timestamp(now))

    def check(
        self,
        roles: tuple[str, ...],
        kind: Kind,
        name: str,
        server: str | None = None,
        now: datetime | None = None,
    ) -> Decision:
        """:meth:`decide`, raising :class:`Forbidden` with the reason when denied."""
        decision = self.decide(roles, kind, name, server, now)
        if not decision.allowed:
            raise Forbidden(decision.reason)
        return decision

    def filter(
        self,
        roles: tuple[str, ...],
        kind: Kind,
        items: Iterable[T],
        name_of: Callable[[T], str],
        server_of: Callable[[T], str | None],
        now: datetime | None = None,
    ) -> list[T]:
        """The ``items`` the caller may use, in order (a list shows only what may be called)."""
        ts = timestamp(now) if now is not None else None
        out = []
        for item in items:
            entry = self._entry(roles, kind, name_of(item), server_of(item))
            if not isinstance(entry, Decision):
                if ts is None:
                    ts = time.time()
                entry = _resolve(entry, ts)
            if entry.allowed:
                out.append(item)
        return out

    def _entry(
        self, roles: tuple[str, ...], kind: str, name: str, server: str | None
    ) -> Decision | _Plan:
        key = (roles, kind, name, server)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._plan(roles, kind, name, server)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()  # rare (many names times role sets); rebuilt on demand
            self._cache[key] = entry
        return entry

    def _plan(
        self, roles: tuple[str, ...], kind: str, name: str, server: str | None
    ) -> Decision | _Plan:
        if kind == "server" and server is None:
            server = name
        unknown = self.unknown_roles(roles)
        known = [r for r in dict.fromkeys(roles) if r not in unknown]
        matching = [
            rule for role in known for rule in self._rules[role] if rule.matches(kind, name, server)
        ]
        plan: list[tuple[CompiledWindow | None, Decision]] = []
        for deny in (True, False):
            for rule in (r for r in matching if r.deny is deny):
                plan.append((rule.window, rule.decision(kind, name)))
                if rule.window is None:
                    return plan[0][1] if len(plan) == 1 else tuple(plan)
        plan.append((None, self._default(kind, name, known, unknown, matching)))
        return plan[0][1] if len(plan) == 1 else tuple(plan)

    def _default(
        self,
        kind: str,
        name: str,
        known: list[str],
        unknown: tuple[str, ...],
        matching: list[_Rule],
    ) -> Decision:
        if self.default == "allow":
            return Decision(True, f"no role denies {kind} '{name}' (default allow)")
        held = f"roles: {', '.join(known)}" if known else "no roles"
        if unknown:
            held += f"; undefined roles ignored: {', '.join(unknown)}"
        closed = next((r for r in matching if not r.deny), None)
        if closed is not None:
            return Decision(
                False,
                f"role '{closed.role}' allows {kind} '{name}' only within a time window "
                f"(rule {closed.number}), which is closed now",
            )
        return Decision(False, f"no role allows {kind} '{name}' ({held})")


def _resolve(plan: _Plan, ts: float) -> Decision:
    for window, decision in plan:
        if window is None or window.open(ts):
            return decision
    raise AssertionError("a plan always ends with a decision without a window")
