"""The evaluators decision 021 compared for rule conditions: cost per evaluation of the same
three conditions, compiled once, over the same call.

    .venv/bin/python bench/rules_expressions.py [--number 20000]

Candidates (each measured only when installed; only simpleeval is a dependency):

* ``catalyst``: the gateway's own conditions (``orchestration/rules/expression.py``: simpleeval
  restricted to JSON data, its per-node value scan skipped);
* ``simpleeval``: ``EvalWithCompoundTypes`` as shipped, with the parsed tree reused;
* ``jmespath``: ``jmespath.compile(...).search``;
* ``cel-python`` (``celpy``): the pure-Python CEL; the call's variables converted per call;
* ``common-expression-language`` (``cel``): CEL in Rust through PyO3; variables per call.

For each, the best of 5 runs of ``--number`` evaluations, in µs per evaluation; ``compile`` is
the cost of compiling the second condition once. It is a report: it always exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARGUMENTS = {"sql": "select * from orders where id = 1", "limit": 50, "options": {"dry": False}}
CALL: dict[str, Any] = {
    "user": "alice",
    "roles": ["analyst", "viewer"],
    "server": "db",
    "tool": "db__query",
    "arguments": ARGUMENTS,
    "time": {"hour": 14, "weekday": "tue"},
}
PYTHONIC = [
    'arguments.limit > 100 and "analyst" in roles',
    'tool.startswith("db__") and "drop" in arguments.sql.lower()',
    'time.hour >= 18 or time.weekday in ["sat", "sun"]',
]
SIMPLEEVAL = [
    'arguments["limit"] > 100 and "analyst" in roles',
    'tool.startswith("db__") and "drop" in arguments["sql"].lower()',
    'time["hour"] >= 18 or time["weekday"] in ["sat", "sun"]',
]
CEL = [
    'arguments.limit > 100 && "analyst" in roles',
    'tool.startsWith("db__") && arguments.sql.contains("drop")',  # (celpy: no lowerAscii)
    'time.hour >= 18 || time.weekday in ["sat", "sun"]',
]
JMESPATH = [
    'arguments.limit > `100` && contains(roles, `"analyst"`)',
    "starts_with(tool, 'db__') && contains(arguments.sql, 'drop')",
    "time.hour >= `18` || contains(['sat', 'sun'], time.weekday)",
]


def best_us(run: Callable[[], Any], number: int) -> float:
    for _ in range(min(number, 1000)):
        run()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            run()
        best = min(best, (time.perf_counter() - start) / number * 1e6)
    return best


def candidates() -> dict[str, tuple[list[Callable[[], Any]], Callable[[], Any]]]:
    """Per evaluator: one evaluation per condition, and compiling the second condition."""
    found: dict[str, tuple[list[Callable[[], Any]], Callable[[], Any]]] = {}
    from catalyst_mcp.orchestration.rules.expression import compile_expression

    ours = [compile_expression(c) for c in PYTHONIC]
    found["catalyst (simpleeval, restricted)"] = (
        [lambda e=e: e.evaluate(CALL) for e in ours],
        lambda: compile_expression(PYTHONIC[1]),
    )
    try:
        import simpleeval  # type: ignore[import-untyped]

        plain = simpleeval.EvalWithCompoundTypes(names=CALL)
        trees = [(c, plain.parse(c)) for c in SIMPLEEVAL]
        found["simpleeval, as shipped"] = (
            [lambda c=c, t=t: plain.eval(c, previously_parsed=t) for c, t in trees],
            lambda: plain.parse(SIMPLEEVAL[1]),
        )
    except ImportError:
        pass
    try:
        import jmespath

        compiled = [jmespath.compile(c) for c in JMESPATH]
        found["jmespath"] = (
            [lambda p=p: p.search(CALL) for p in compiled],
            lambda: jmespath.parser.Parser().parse(JMESPATH[1]),
        )
    except ImportError:
        pass
    try:
        import celpy  # type: ignore[import-not-found]

        env = celpy.Environment()
        programs = [env.program(env.compile(c)) for c in CEL]
        found["cel-python (celpy)"] = (
            [lambda p=p: p.evaluate(celpy.json_to_cel(CALL)) for p in programs],
            lambda: env.program(env.compile(CEL[1])),
        )
    except ImportError:
        pass
    try:
        import cel  # type: ignore[import-not-found]

        rust = [cel.compile(c) for c in CEL]
        found["common-expression-language (Rust)"] = (
            [lambda p=p: p.execute(CALL) for p in rust],
            lambda: cel.compile(CEL[1]),
        )
    except ImportError:
        pass
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20000, help="evaluations per run")
    args = parser.parse_args(argv)
    print("Rule conditions: µs per evaluation (best of 5), compiled once\n")
    print("| evaluator | limit and role | tool and SQL text | time | compile |")
    print("|---|---:|---:|---:|---:|")
    for name, (runs, compile_one) in candidates().items():
        slow = name.startswith("cel-python")
        number = max(200, args.number // 100) if slow else args.number
        cells = [f"{best_us(run, number):.2f}" for run in runs]
        cells.append(f"{best_us(compile_one, max(50, number // 20)):.1f}")
        print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
