"""What the rules engine adds to a ``tools/call``: the same in-process gateway pipeline with no
rules engine, and with 0, 10 and 100 rules, in one run.

    .venv/bin/python bench/rules.py [--rounds 15] [--calls 2000] [--check]

Each case calls ``McpServer.handle("tools/call")`` of an in-process echo tool
(``crm__find_customer``, modern era, the local user with auth off: RBAC, the access pipeline and
the result shaping run as for any call; no audit, no network) ``--calls`` times per round. The
cases take turns every round (the order reversed every other round). The table gives, per case,
the median and the least over rounds of the mean per call, and the median over rounds of its
difference from the gateway without a rules engine in the same round (which cancels the drift
of a machine shared with other work). The target: at most 20 µs added at 100 rules.

The rules are a realistic mix, most not about this call (see ``rule_mix``): 100 rules over 20
servers (deny, alert, rate, transform, route, require_approval; most with a condition; some
limited to roles or a time window). Six of them fit the called tool by their ``servers`` and
``tools`` globs: a deny whose condition is false, a redaction for a role the caller lacks,
an alert for one user, a rule limited to weekend hours, and two global ones with conditions;
none applies. The row "100 rules, 2 apply" adds an alert and an argument transform that do apply
(an audit note, an event, a copy of the arguments). It is a report: it exits 0 unless
``--check`` is given and the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.orchestration.rules.config import RulesSettings
from catalyst_mcp.orchestration.rules.service import Rules
from catalyst_mcp.protocol.server import McpServer
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.registry import Registry
from catalyst_mcp.security.access import Access
from catalyst_mcp.settings import Settings

TARGET_US = 20.0
TOOL = "crm__find_customer"
ACTIONS = ["deny", "alert", "rate", "transform", "route", "require_approval"]


class Echo(Provider):
    """A provider whose tools answer at once (no I/O: only the pipeline is measured)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, name)
        tools = ["find_customer", "export", "delete_customer", "query"]
        self._tools = [{"name": t, "inputSchema": {"type": "object"}} for t in tools]

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return self._tools if kind == "tools" else []

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {"content": [{"type": "text", "text": "ok"}]}

    def health(self) -> dict[str, Any]:
        return {"name": self.name, "status": "ready"}


def _other(i: int) -> dict[str, Any]:
    """A rule about another server (one of 19), of one of six actions, mostly conditional."""
    server = f"srv{i % 19}"
    action = ACTIONS[i % len(ACTIONS)]
    rule: dict[str, Any] = {"id": f"other-{i}", "servers": [server], "action": action}
    if i % 3:
        rule["tools"] = [f"{server}__{'export' if i % 2 else 'delete_*'}"]
    if i % 4 != 3:
        rule["if"] = f"arguments.limit > {100 * (i + 1)} and user != 'svc-{i}'"
    if i % 5 == 0:
        rule["roles"] = ["support"]
    if action == "deny":
        rule["message"] = f"rule {i} says no"
    elif action == "rate":
        rule["rate"] = {"rate_per_second": 5, "burst": 10}
    elif action == "transform":
        rule["redact"] = ["result.email"]
    elif action == "route":
        rule["route"] = {"server": f"srv{(i + 1) % 19}"}
    return rule


def _about_crm() -> list[dict[str, Any]]:
    """The six rules that fit ``crm__find_customer`` by their globs; none applies."""
    return [
        {
            "id": "crm-big",
            "tools": ["crm__find*"],
            "if": "arguments.limit > 1000",
            "action": "deny",
            "message": "too many",
        },
        {
            "id": "crm-support-emails",
            "servers": ["crm"],
            "roles": ["support"],
            "action": "transform",
            "redact": ["result.email"],
        },
        {"id": "crm-intruder", "servers": ["crm"], "if": "user == 'intruder'", "action": "alert"},
        {
            "id": "crm-weekend",
            "servers": ["crm"],
            "during": {"days": ["sat", "sun"], "hours": "00:00-06:00"},
            "action": "deny",
            "message": "not at night",
        },
        {"id": "any-drop", "if": "'drop' in str(arguments.get_sql)", "action": "deny"},
        {"id": "any-night", "if": "time.hour >= 23 and time.hour < 23", "action": "alert"},
    ]


def rule_mix(count: int) -> list[dict[str, Any]]:
    """``count`` rules: those about crm (up to six) and the rest about other servers."""
    crm = _about_crm()[: max(0, min(6, count // 10 * 3 if count < 100 else 6))]
    return crm + [_other(i) for i in range(count - len(crm))]


APPLYING = [
    {
        "id": "note-finds",
        "tools": ["crm__find*"],
        "if": "arguments.limit >= 10",
        "action": "alert",
        "severity": "info",
    },
    {"id": "cap-limit", "servers": ["crm"], "action": "transform", "set": {"arguments.limit": 50}},
]


class Quiet:
    """An event sink that only counts (the log would dominate an alert's cost)."""

    def __init__(self) -> None:
        self.published = 0

    def publish(self, event: object) -> None:
        self.published += 1


def build(rules: list[dict[str, Any]] | None, folder: Path) -> McpServer:
    settings = Settings.model_validate(
        {"audit": {"enabled": False}, "packs": {"path": None}, "rules": {"path": None}}
    )
    registry = Registry()
    for name in ["crm", *(f"srv{i}" for i in range(19))]:
        registry.add(Echo(name))
    server = McpServer(registry, access=Access(settings))
    if rules is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bench.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
        service = Rules(
            RulesSettings(path=folder, watch=False), registry, server.access, events=Quiet()
        )
        assert not service.problems, service.problems
        assert len(service.ruleset.engine) == len(rules)
        server.rules = service.hook
    return server


async def per_call_us(server: McpServer, calls: int) -> float:
    identity = Identity()
    params = {"name": TOOL, "arguments": {"id": 42, "limit": 20}}
    handle = server.handle
    start = time.perf_counter()
    for _ in range(calls):
        ctx = CallContext(
            era="modern", protocol_version="2026-07-28", method="tools/call", identity=identity
        )
        await handle("tools/call", params, ctx)
    return (time.perf_counter() - start) / calls * 1e6


async def measure(rounds: int, calls: int) -> list[tuple[str, float, float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = {
            "no rules engine": build(None, root / "none"),
            "0 rules": build([], root / "0"),
            "10 rules": build(rule_mix(10), root / "10"),
            "100 rules": build(rule_mix(100), root / "100"),
            "100 rules, 2 apply": build(APPLYING + rule_mix(98), root / "apply"),
        }
        for server in cases.values():  # warm up: caches, first allocations
            await per_call_us(server, calls)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        order = list(cases)
        for round_ in range(rounds):
            for name in order if round_ % 2 == 0 else reversed(order):
                samples[name].append(await per_call_us(cases[name], calls))
        base = samples[order[0]]
        return [
            (
                name,
                statistics.median(values),
                min(values),
                statistics.median(v - b for v, b in zip(values, base, strict=True)),
            )
            for name, values in samples.items()
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds of every case")
    parser.add_argument("--calls", type=int, default=2000, help="calls per case per round")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    rows = asyncio.run(measure(args.rounds, args.calls))
    print(f"Rules engine: {args.rounds} rounds of {args.calls} in-process tools/call per case\n")
    print("| case | µs per call (median) | µs per call (min) | added µs (median of rounds) |")
    print("|---|---:|---:|---:|")
    for name, median, least, added_us in rows:
        print(f"| {name} | {median:.1f} | {least:.1f} | {added_us:+.1f} |")
    added = next(row[3] for row in rows if row[0] == "100 rules")
    verdict = "met" if added <= TARGET_US else "MISSED"
    print(f"\ntarget: at most {TARGET_US:g} µs added at 100 rules: {verdict} ({added:.1f} µs)")
    return 1 if args.check and added > TARGET_US else 0


if __name__ == "__main__":
    raise SystemExit(main())
