"""The rules in force follow the rules folder (hot reload: an invalid edit keeps the last good
rules, its problems located as file:line:col, reported by /ready) and the stored rules."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from catalyst_mcp.orchestration.rules.ruleset import RuleSet
from catalyst_mcp.packs.watcher import PackWatcher
from tests.live import poll
from tests.orchestration.rules.conftest import RulesGateway

GOOD = "- {id: one, tools: [db__execute], action: deny, message: stop}\n"
FIXED = GOOD + "- {id: two, tools: [db__query], action: alert}\n"
BAD = "rules:\n  - id: one\n    action: deny\n    if: arguments.x >\n"


@contextlib.asynccontextmanager
async def watching(folder: Path) -> AsyncIterator[tuple[RuleSet, PackWatcher]]:
    rules = RuleSet(folder)
    rules.load_all()
    watcher = PackWatcher(rules, poll_seconds=0.05, what="rules")
    watcher.start()
    try:
        yield rules, watcher
    finally:
        await watcher.stop()


def ids(rules: RuleSet) -> list[str]:
    return [rule.id for rule in rules.engine.rules]


async def test_edits_apply_and_an_invalid_edit_keeps_the_last_good_rules(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    async with watching(folder) as (rules, watcher):
        file = folder / "policy.yaml"
        file.write_text(GOOD)
        await poll(lambda: ids(rules) == ["one"], what="the new file's rules")
        file.write_text(BAD)
        await poll(lambda: rules.problems, what="the invalid edit reported")
        assert [str(p) for p in rules.problems] == [
            f"{file}:4:5: rule 'one': if: not a valid expression: invalid syntax "
            "(column 14 of the condition)"
        ]
        assert ids(rules) == ["one"]  # the last good rules stay in force
        file.write_text(FIXED)
        await poll(lambda: ids(rules) == ["one", "two"], what="the fixed edit")
        assert rules.problems == []
        file.rename(folder / "policy.yaml.off")
        await poll(lambda: ids(rules) == [], what="the file renamed away")
        assert watcher.watching


async def test_an_id_used_twice_keeps_its_first_place(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.yaml").write_text(GOOD)
    (folder / "b.yaml").write_text("- {id: x, action: alert}\n- {id: one, action: allow}\n")
    rules = RuleSet(folder)
    rules.load_all()
    assert ids(rules) == ["one", "x"]
    assert [str(p) for p in rules.problems] == [
        f"{folder / 'b.yaml'}:2: rule id 'one' is already used at {folder / 'a.yaml'}:1: ignored"
    ]
    assert rules.engine.rules[0].spec.action == "deny"


async def test_ready_reports_rule_problems(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(GOOD)
    ready = (await rules_gateway.client.get("/ready")).json()
    assert ready["rules"] == {"status": "ready", "in_force": 1, "problems": 0}
    await rules_gateway.write_rules(BAD)
    ready = (await rules_gateway.client.get("/ready")).json()
    assert ready["status"] == "degraded"
    assert ready["rule_problems"] == [
        f"{rules_gateway.folder / 'rules.yaml'}:4:5: rule 'one': if: not a valid expression: "
        "invalid syntax (column 14 of the condition)"
    ]
    assert ready["rules"] == {"status": "failed", "in_force": 1, "problems": 1}
    answer = await rules_gateway.modern("db__execute", {})
    assert answer["error"]["message"] == "stop"  # still in force
