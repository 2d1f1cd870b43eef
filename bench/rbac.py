"""What one RBAC decision costs: median nanoseconds per ``Policy.decide`` (and per filtered item).

    .venv/bin/python bench/rbac.py [--rounds 31] [--batch 2000]

Cases (a policy of 5 roles, 14 rules, callers holding 2 roles):

* cached: the same (roles, kind, name, server) again; the decision is a dictionary look-up;
* uncached: a name never seen, so the matching rules are searched and the decision written;
* window, same minute: a rule with days and hours in Europe/Berlin, the clock within one minute
  (a timestamp comparison and the memoised day/hour test);
* window, new minute: the clock moves a minute per call (the local day and hour computed);
* window, no ``now``: the current time read by ``decide`` itself;
* filter, per item: ``Policy.filter`` over 100 tools, divided by 100.

Each case runs ``--rounds`` batches of ``--batch`` calls; the table gives the median over the
batches of the mean per call. It is a report: it always exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from catalyst_mcp.security.rbac import Policy, load_roles

ROLES: dict[str, Any] = {
    "analyst": {
        "rules": [
            {"effect": "allow", "kinds": ["tool", "prompt"], "match": ["crm__*", "reports__*"]},
            {"effect": "deny", "kinds": ["tool"], "match": ["*__delete_*"]},
            {"effect": "allow", "kinds": ["resource"], "match": ["catalyst://reports/*"]},
            {"effect": "allow", "kinds": ["server"], "match": ["crm", "reports"]},
        ]
    },
    "support": {
        "rules": [
            {"effect": "allow", "kinds": ["tool"], "match": ["*"], "servers": ["crm"]},
            {"effect": "deny", "kinds": ["tool"], "match": ["crm__delete_*"]},
            {"effect": "allow", "kinds": ["prompt"], "match": ["*"], "servers": ["support-*"]},
            {"effect": "allow", "kinds": ["resource"], "match": ["catalyst://crm/tickets/*"]},
        ]
    },
    "office": {
        "rules": [
            {
                "effect": "allow",
                "match": ["hr__*"],
                "when": {
                    "days": ["mon", "tue", "wed", "thu", "fri"],
                    "hours": "09:00-17:30",
                    "timezone": "Europe/Berlin",
                },
            },
            {"effect": "deny", "match": ["hr__salar*"], "when": {"until": "2030-01-01"}},
        ]
    },
    "service": {"rules": [{"effect": "allow", "match": ["billing__*"], "servers": ["billing"]}]},
    "nobody": {"rules": []},
}
CALLER = ("analyst", "support")
OFFICE = ("office", "analyst")
MONDAY_10 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  # 10:00 in Berlin


def per_call_ns(run: Callable[[int], int], batch: int, rounds: int, per: int = 1) -> float:
    """Median over ``rounds`` of the mean ns per call; ``run(batch)`` returns the ns it spent
    in ``batch`` iterations of ``per`` calls each (set-up excluded)."""
    return statistics.median(run(batch) / (batch * per) for _ in range(rounds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=31, help="batches per case")
    parser.add_argument("--batch", type=int, default=2000, help="calls per batch")
    args = parser.parse_args(argv)
    roles = load_roles(ROLES)
    policy = Policy.compile(roles)

    def cached(n: int) -> int:
        decide = policy.decide
        start = time.perf_counter_ns()
        for _ in range(n):
            decide(CALLER, "tool", "crm__find_customer", "crm")
        return time.perf_counter_ns() - start

    fresh = iter(range(10**9))

    def uncached(n: int) -> int:
        local = Policy.compile(roles)  # a new cache per batch: it never fills up
        names = [f"crm__tool_{next(fresh)}" for _ in range(n)]
        start = time.perf_counter_ns()
        for name in names:
            local.decide(CALLER, "tool", name, "crm")
        return time.perf_counter_ns() - start

    def window_same_minute(n: int) -> int:
        decide = policy.decide
        start = time.perf_counter_ns()
        for _ in range(n):
            decide(OFFICE, "tool", "hr__people", "hr", MONDAY_10)
        return time.perf_counter_ns() - start

    minutes = [MONDAY_10 + timedelta(minutes=i) for i in range(100_000)]

    def window_new_minute(n: int) -> int:
        decide = policy.decide
        todo = minutes[:n]
        start = time.perf_counter_ns()
        for now in todo:
            decide(OFFICE, "tool", "hr__people", "hr", now)
        return time.perf_counter_ns() - start

    def window_no_now(n: int) -> int:
        decide = policy.decide
        start = time.perf_counter_ns()
        for _ in range(n):
            decide(OFFICE, "tool", "hr__people", "hr")
        return time.perf_counter_ns() - start

    tools = [{"name": f"crm__tool_{i}", "server": "crm"} for i in range(100)]

    def filtered(n: int) -> int:
        start = time.perf_counter_ns()
        for _ in range(n):
            policy.filter(CALLER, "tool", tools, lambda t: t["name"], lambda t: t["server"])
        return time.perf_counter_ns() - start

    rows: list[tuple[str, float]] = [
        ("cached", per_call_ns(cached, args.batch, args.rounds)),
        ("uncached (new name each call)", per_call_ns(uncached, args.batch, args.rounds)),
    ]
    rows.append(("window, same minute", per_call_ns(window_same_minute, args.batch, args.rounds)))
    rows.append(
        ("window, new minute each call", per_call_ns(window_new_minute, args.batch, args.rounds))
    )
    rows.append(
        ("window, no now (clock read)", per_call_ns(window_no_now, args.batch, args.rounds))
    )
    rows.append(
        ("filter 100 tools, per item", per_call_ns(filtered, args.batch // 100, args.rounds, 100))
    )
    print(f"RBAC decide: median of {args.rounds} batches of {args.batch} calls\n")
    print("| case | ns per decide |")
    print("|---|---:|")
    for name, ns in rows:
        print(f"| {name} | {ns:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
