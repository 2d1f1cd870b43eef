"""require_approval: the held call, approved, rejected or expired, in each era and over REST
(decisions through the admin API; the CLI's are in tests/cli/test_rules.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.orchestration.rules.conftest import (
    RulesGateway,
    rules_settings,
    start_rules_gateway,
)

RULE = """
- id: big-exports
  tools: [db__query]
  if: arguments.limit > 1000
  action: require_approval
  message: Exports over 1000 rows need a data owner's approval
"""


async def decide(served: RulesGateway, verdict: str, note: str | None = None) -> dict:
    (pending,) = await served.pending()
    response = await served.api("POST", f"/approvals/{pending['id']}/{verdict}", {"note": note})
    assert response.status == 200, response.body
    return dict(response.json())


# ---- legacy: the call waits ------------------------------------------------------------------


async def test_legacy_call_waits_with_progress_and_runs_once_approved(
    rules_gateway: RulesGateway,
) -> None:
    await rules_gateway.write_rules(RULE)
    call = asyncio.create_task(rules_gateway.legacy("db__query", {"limit": 5000}, "tok"))
    (pending,) = await rules_gateway.pending()
    assert pending["arguments"] == {"limit": 5000}
    assert pending["user"] == "anonymous" and pending["rule"] == "big-exports"
    await asyncio.sleep(0.2)  # a few looks, each with a progress notification
    assert not call.done() and rules_gateway.db.calls == []
    approved = await decide(rules_gateway, "approve", "fine this once")
    assert approved["status"] == "approved" and approved["decided_by"] == "anonymous"
    response = await asyncio.wait_for(call, 5)
    messages = response.messages()
    progress = [m for m in messages if m.get("method") == "notifications/progress"]
    assert progress and all(p["params"]["progressToken"] == "tok" for p in progress)
    assert "waiting for approval request apr_" in progress[0]["params"]["message"]
    assert messages[-1]["result"]["structuredContent"]["arguments"] == {"limit": 5000}
    assert len(rules_gateway.db.calls) == 1
    (record,) = await rules_gateway.audit()
    assert record["outcome"] == "ok"
    assert record["detail"]["note"]["rules"] == [
        {
            "id": "big-exports",
            "action": "require_approval",
            "approval": pending["id"],
            "approved_by": "anonymous",
        }
    ]
    events = [r["action"] for r in await rules_gateway.audit("rules.approval.requested")]
    assert events == ["rules.approval.requested"]
    assert (await rules_gateway.api("GET", f"/approvals/{pending['id']}")).json()[
        "status"
    ] == "used"


async def test_legacy_call_rejected_is_not_run(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(RULE)
    call = asyncio.create_task(rules_gateway.legacy("db__query", {"limit": 5000}))
    await decide(rules_gateway, "reject", "not today")
    error = (await asyncio.wait_for(call, 5)).message()["error"]
    assert error["code"] == -32003
    assert "was rejected by anonymous: not today" in error["message"]
    assert error["data"]["status"] == "rejected"
    assert rules_gateway.db.calls == []
    (record,) = await rules_gateway.audit()
    assert record["outcome"] == "denied"


async def test_legacy_call_fails_clearly_when_nobody_decides(tmp_path: Path) -> None:
    served = await start_rules_gateway(rules_settings(tmp_path), tmp_path / "rules")
    try:
        await served.write_rules(RULE + "  timeout_seconds: 0.3\n")
        error = (await served.legacy("db__query", {"limit": 5000})).message()["error"]
        assert error["data"]["status"] == "expired"
        assert "was not decided within 0.3 s" in error["message"]
        assert "the call was not run" in error["message"].lower()
        assert served.db.calls == []
        listed = (await served.api("GET", "/approvals?status=expired")).json()["approvals"]
        assert len(listed) == 1
    finally:
        await served.gateway.stop()


# ---- modern: an input-required result, and retries ----------------------------------------------


async def test_modern_call_gets_input_required_then_runs_once_approved(
    rules_gateway: RulesGateway,
) -> None:
    await rules_gateway.write_rules(RULE)
    first = (await rules_gateway.modern("db__query", {"limit": 5000}))["result"]
    assert first["resultType"] == "input_required"
    request = first["inputRequests"]["approval"]
    assert request["method"] == "elicitation/create"
    assert "Exports over 1000 rows need a data owner's approval" in request["params"]["message"]
    state = first["requestState"]
    assert state.startswith("catalyst-approval:apr_")
    assert rules_gateway.db.calls == []
    await decide(rules_gateway, "approve")
    answers = {"approval": {"action": "accept", "content": {}}}
    done = await rules_gateway.modern(
        "db__query", {"limit": 5000}, requestState=state, inputResponses=answers
    )
    assert done["result"]["resultType"] == "complete"
    assert done["result"]["structuredContent"]["arguments"] == {"limit": 5000}
    (_, params, _) = rules_gateway.db.calls[0]
    assert "requestState" not in params and "inputResponses" not in params


async def test_modern_retry_before_a_decision_asks_again(tmp_path: Path) -> None:
    settings = rules_settings(tmp_path, rules={"approval_hold_seconds": 0.1})
    served = await start_rules_gateway(settings, tmp_path / "rules")
    try:
        await served.write_rules(RULE)
        first = (await served.modern("db__query", {"limit": 5000}))["result"]
        again = await served.modern(
            "db__query", {"limit": 5000}, requestState=first["requestState"]
        )
        assert again["result"]["resultType"] == "input_required"
        assert again["result"]["requestState"] == first["requestState"]
        assert len(await served.pending()) == 1  # the same request, not a second one
    finally:
        await served.gateway.stop()


async def test_modern_rejected_and_declined_and_expired(tmp_path: Path) -> None:
    served = await start_rules_gateway(
        rules_settings(tmp_path, rules={"approval_hold_seconds": 0}), tmp_path / "rules"
    )
    try:
        await served.write_rules(RULE + "  timeout_seconds: 0.5\n")
        state = (await served.modern("db__query", {"limit": 2000}))["result"]["requestState"]
        await decide(served, "reject", "too big")
        rejected = await served.modern("db__query", {"limit": 2000}, requestState=state)
        assert rejected["error"]["data"]["status"] == "rejected"
        assert "too big" in rejected["error"]["message"]

        state = (await served.modern("db__query", {"limit": 3000}))["result"]["requestState"]
        declined = await served.modern(
            "db__query",
            {"limit": 3000},
            requestState=state,
            inputResponses={"approval": {"action": "decline"}},
        )
        assert declined["error"]["data"]["status"] == "cancelled"

        state = (await served.modern("db__query", {"limit": 4000}))["result"]["requestState"]
        await asyncio.sleep(0.6)
        expired = await served.modern("db__query", {"limit": 4000}, requestState=state)
        assert expired["error"]["data"]["status"] == "expired"
        assert served.db.calls == []
    finally:
        await served.gateway.stop()


async def test_a_request_state_of_another_call_is_refused(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(RULE)
    state = (await rules_gateway.modern("db__query", {"limit": 5000}))["result"]["requestState"]
    await decide(rules_gateway, "approve")
    other = await rules_gateway.modern("db__query", {"limit": 9999}, requestState=state)
    assert other["error"]["code"] == -32602
    assert rules_gateway.db.calls == []


async def test_modern_client_without_elicitation_calls_again_after_approval(
    rules_gateway: RulesGateway,
) -> None:
    await rules_gateway.write_rules(RULE)
    held = await rules_gateway.modern("db__query", {"limit": 5000}, capabilities={})
    assert held["error"]["code"] == -32003
    assert held["error"]["data"]["status"] == "pending"
    assert "make the same call again" in held["error"]["message"]
    await decide(rules_gateway, "approve")
    again = await rules_gateway.modern("db__query", {"limit": 5000}, capabilities={})
    assert again["result"]["structuredContent"]["arguments"] == {"limit": 5000}


# ---- REST ----------------------------------------------------------------------------------------


async def test_rest_call_is_held_then_runs_once_per_approval(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(RULE)
    held = await rules_gateway.rest("db__query", {"limit": 5000})
    assert held.status == 403
    assert "is pending" in held.json()["error"]["message"]
    await decide(rules_gateway, "approve")
    assert (await rules_gateway.rest("db__query", {"limit": 5000})).status == 200
    assert (await rules_gateway.rest("db__query", {"limit": 5000})).status == 403  # used up
    assert len(rules_gateway.db.calls) == 1


async def test_deciding_twice_is_a_conflict(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(RULE)
    await rules_gateway.rest("db__query", {"limit": 5000})
    approval = await decide(rules_gateway, "approve")
    again = await rules_gateway.api("POST", f"/approvals/{approval['id']}/reject", {})
    assert again.status == 409
    missing = await rules_gateway.api("POST", "/approvals/apr_nothing/approve", {})
    assert missing.status == 404


async def test_a_decision_made_with_the_cli_reaches_the_waiting_call(
    rules_gateway: RulesGateway, tmp_path: Path
) -> None:
    from tests.cli.helpers import run

    await rules_gateway.write_rules(RULE)
    call = asyncio.create_task(rules_gateway.legacy("db__query", {"limit": 5000}))
    (pending,) = await rules_gateway.pending()
    config = tmp_path / "cli.yaml"
    config.write_text(f"storage:\n  url: sqlite+aiosqlite:///{tmp_path}/c.db\n")
    result = await asyncio.to_thread(
        run, "rules", "approve", pending["id"], "--config", str(config)
    )
    assert result.exit_code == 0, result.stderr
    response = await asyncio.wait_for(call, 5)  # seen by polling the database
    assert "result" in response.message()


async def test_retries_of_a_held_call_are_not_charged_to_its_rate(tmp_path: Path) -> None:
    served = await start_rules_gateway(
        rules_settings(tmp_path, rules={"approval_hold_seconds": 0}), tmp_path / "rules"
    )
    try:
        await served.write_rules(
            RULE + "- {id: one-export, priority: 1, tools: [db__query], action: rate,"
            " rate: {rate_per_second: 0.001, burst: 1}}\n"
        )
        state = (await served.modern("db__query", {"limit": 5000}))["result"]["requestState"]
        again = await served.modern("db__query", {"limit": 5000}, requestState=state)
        assert again["result"]["resultType"] == "input_required"
        await decide(served, "approve")
        done = await served.modern("db__query", {"limit": 5000}, requestState=state)
        assert done["result"]["resultType"] == "complete", done
        limited = await served.modern("db__query", {"limit": 5})
        assert limited["error"]["code"] == -32029  # the one call the bucket allowed was taken
    finally:
        await served.gateway.stop()
