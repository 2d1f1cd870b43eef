"""Every action on the request path, for MCP clients of both eras and the REST API: what the
client sees, what the upstream receives, and what the audit trail records."""

from __future__ import annotations

import orjson

from tests.orchestration.rules.conftest import RulesGateway

DENY_DROP = """
- id: no-drop
  tools: [db__execute]
  if: '"drop" in arguments.sql.lower()'
  action: deny
  message: DROP is not allowed here; ask a DBA
"""


def sent_arguments(served: RulesGateway) -> dict:
    method, params, _ = served.db.calls[-1]
    assert method == "tools/call"
    return dict(params.get("arguments") or {})


async def test_deny_message_reaches_a_modern_client(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(DENY_DROP)
    answer = await rules_gateway.modern("db__execute", {"sql": "DROP TABLE t"})
    assert answer["error"]["code"] == -32003
    assert answer["error"]["message"] == "DROP is not allowed here; ask a DBA"
    assert answer["error"]["data"] == {"rule": "no-drop"}
    assert rules_gateway.db.calls == []  # never reached the server
    allowed = await rules_gateway.modern("db__execute", {"sql": "select 1"})
    assert allowed["result"]["structuredContent"]["arguments"] == {"sql": "select 1"}


async def test_deny_message_reaches_a_legacy_client(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(DENY_DROP)
    response = await rules_gateway.legacy("db__execute", {"sql": "drop table t"})
    error = response.message()["error"]
    assert (error["code"], error["message"]) == (-32003, "DROP is not allowed here; ask a DBA")
    assert rules_gateway.db.calls == []


async def test_deny_message_reaches_a_rest_client(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(DENY_DROP)
    response = await rules_gateway.rest("db__execute", {"sql": "drop table t"})
    assert response.status == 403
    assert response.json()["error"]["message"] == "DROP is not allowed here; ask a DBA"


async def test_a_deny_is_audited_with_the_rule_id(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(DENY_DROP)
    await rules_gateway.modern("db__execute", {"sql": "drop table t"})
    await rules_gateway.modern("db__execute", {"sql": "select 1"})
    denied, ok = await rules_gateway.audit()
    assert denied["outcome"] == "denied"
    assert denied["detail"]["note"] == {"rules": [{"id": "no-drop", "action": "deny"}]}
    assert denied["detail"]["reason"] == "DROP is not allowed here; ask a DBA"
    assert ok["outcome"] == "ok"
    assert "note" not in ok["detail"]  # no rule applied


async def test_transform_sets_and_redacts_arguments_the_upstream_sees(
    rules_gateway: RulesGateway,
) -> None:
    await rules_gateway.write_rules(
        """
- id: cap-limit
  tools: [db__query]
  if: arguments.limit > 100
  action: transform
  set: {arguments.limit: 100, arguments.options.read_only: true}
- id: hide-password
  tools: ["db__*"]
  action: transform
  redact: [arguments.password, "arguments.rows[*].ssn"]
  mask: "***"
"""
    )
    rows = [{"name": "a", "ssn": "1"}, {"name": "b", "ssn": "2"}]
    arguments = {"limit": 5000, "password": "hunter2", "rows": rows}
    answer = await rules_gateway.modern("db__query", arguments)
    assert "error" not in answer, answer
    assert sent_arguments(rules_gateway) == {
        "limit": 100,
        "options": {"read_only": True},
        "password": "***",
        "rows": [{"name": "a", "ssn": "***"}, {"name": "b", "ssn": "***"}],
    }
    assert arguments["rows"][0]["ssn"] == "1"  # the client's own data is left alone
    await rules_gateway.legacy("db__query", {"limit": 7, "password": "x"})
    assert sent_arguments(rules_gateway) == {"limit": 7, "password": "***"}
    (record, _) = await rules_gateway.audit()
    assert record["detail"]["note"]["rules"] == [
        {"id": "cap-limit", "action": "transform"},
        {"id": "hide-password", "action": "transform"},
    ]


async def test_result_redaction_reaches_the_client_in_both_eras_and_rest(
    rules_gateway: RulesGateway,
) -> None:
    await rules_gateway.write_rules(
        """
- id: no-emails
  tools: [db__customers]
  action: transform
  redact: ["result.customers[*].email"]
"""
    )
    expected = {
        "customers": [{"name": "Ann", "email": "[redacted]"}, {"name": "Bo", "email": "[redacted]"}]
    }
    modern = (await rules_gateway.modern("db__customers"))["result"]
    assert modern["structuredContent"] == expected
    assert orjson.loads(modern["content"][0]["text"]) == expected  # the text copy too
    legacy = (await rules_gateway.legacy("db__customers")).message()["result"]
    assert legacy["structuredContent"] == expected
    rest = (await rules_gateway.rest("db__customers")).json()
    assert rest["structuredContent"] == expected
    assert "ann@x" not in orjson.dumps(rest).decode()


async def test_a_rule_on_the_result_withholds_it(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(
        """
- id: no-bulk-emails
  tools: [db__customers]
  if: len(result.customers) > 1 and "@" in str(result)
  action: deny
  message: Too many customers with emails in one answer
"""
    )
    answer = await rules_gateway.modern("db__customers")
    assert answer["error"]["message"] == "Too many customers with emails in one answer"
    assert len(rules_gateway.db.calls) == 1  # it ran: the result is what was refused


async def test_route_sends_the_call_to_another_server(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(
        """
- id: reads-to-replica
  tools: [db__query]
  action: route
  route: {server: replica}
- id: echo-to-query
  tools: [db__echo]
  action: route
  route: {tool: replica__query}
"""
    )
    answer = (await rules_gateway.modern("db__query", {"sql": "select 1"}))["result"]
    assert answer["structuredContent"] == {
        "server": "replica",
        "tool": "query",
        "arguments": {"sql": "select 1"},
    }
    assert rules_gateway.db.calls == []
    echoed = (await rules_gateway.legacy("db__echo", {"x": 1})).message()["result"]
    assert echoed["structuredContent"]["tool"] == "query"
    records = await rules_gateway.audit()
    assert records[0]["detail"]["note"]["rules"] == [
        {"id": "reads-to-replica", "action": "route", "to": "replica__query"}
    ]


async def test_route_to_a_server_the_caller_may_not_use_is_refused(tmp_path) -> None:
    from tests.orchestration.rules.conftest import rules_settings, start_rules_gateway

    roles = {"user": {"rules": [{"effect": "allow", "match": ["db__*", "db"]}]}}
    settings = rules_settings(tmp_path, auth={"anonymous_roles": ["user"]}, rbac={"roles": roles})
    served = await start_rules_gateway(settings, tmp_path / "rules")
    try:
        await served.write_rules(
            "- {id: to-replica, tools: [db__query], action: route, route: {server: replica}}"
        )
        answer = await served.modern("db__query", {})
        assert answer["error"]["code"] == -32003
        assert "replica__query" in answer["error"]["message"]
        assert served.db.calls == []
    finally:
        await served.gateway.stop()


async def test_alert_is_recorded_and_the_call_goes_on(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(
        """
- id: watch-deletes
  tools: [db__execute]
  if: arguments.sql.lower().startswith("delete")
  action: alert
  severity: critical
  message: a DELETE went through the gateway
"""
    )
    answer = await rules_gateway.modern("db__execute", {"sql": "DELETE FROM t"})
    assert "result" in answer
    await rules_gateway.modern("db__execute", {"sql": "select 1"})
    (alert,) = await rules_gateway.audit("rules.alert")
    assert alert["target"] == "db__execute"
    assert alert["detail"]["rule"] == "watch-deletes"
    assert alert["detail"]["severity"] == "critical"
    assert alert["detail"]["message"] == "a DELETE went through the gateway"


async def test_rate_rule_refuses_beyond_its_burst(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(
        """
- id: few-exports
  tools: [db__query]
  if: arguments.export == true
  action: rate
  rate: {rate_per_second: 0.001, burst: 2}
"""
    )
    for _ in range(2):
        assert "result" in await rules_gateway.modern("db__query", {"export": True})
    refused = await rules_gateway.modern("db__query", {"export": True})
    assert refused["error"]["code"] == -32029
    assert "rule 'few-exports' for user 'anonymous'" in refused["error"]["message"]
    assert "result" in await rules_gateway.modern("db__query", {"export": False})
    rest = await rules_gateway.rest("db__query", {"export": True})
    assert rest.status == 429
    records = await rules_gateway.audit()
    assert records[2]["outcome"] == "limited"
    assert records[2]["detail"]["note"]["rules"] == [{"id": "few-exports", "action": "rate"}]


async def test_allow_ends_the_walk_and_first_match_decides(rules_gateway: RulesGateway) -> None:
    await rules_gateway.write_rules(
        """
- id: deny-all-exec
  tools: [db__execute]
  action: deny
  message: exec is not allowed
- id: admins-may
  priority: 10
  roles: [admin]
  tools: [db__execute]
  action: allow
"""
    )
    assert "result" in await rules_gateway.modern("db__execute", {"sql": "x"})
    (record,) = await rules_gateway.audit()
    assert record["detail"]["note"]["rules"] == [{"id": "admins-may", "action": "allow"}]


async def test_a_rule_cannot_reach_python_internals(rules_gateway: RulesGateway) -> None:
    rules_gateway.folder.joinpath("bad.yaml").write_text(
        "- id: sneaky\n  if: arguments.__class__.__init__ is None\n  action: deny\n"
    )
    await rules_gateway.gateway.rules.ruleset.reload([rules_gateway.folder / "bad.yaml"])
    assert [str(p) for p in rules_gateway.gateway.rule_problems] == [
        f"{rules_gateway.folder / 'bad.yaml'}:2:3: rule 'sneaky': if: field names may not start "
        "with '_' ('__init__') (column 1 of the condition)"
    ]
    assert "result" in await rules_gateway.modern("db__query", {})


async def test_the_rule_is_a_metric_label_and_a_span_attribute(tmp_path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from catalyst_mcp.observability import tracing
    from tests.orchestration.rules.conftest import rules_settings, start_rules_gateway

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    served = await start_rules_gateway(
        rules_settings(tmp_path), tmp_path / "rules", tracer_provider=provider
    )
    try:
        await served.write_rules(DENY_DROP)
        await served.modern("db__execute", {"sql": "drop table t"})
        text = (await served.client.get("/metrics")).body.decode()
        assert 'catalyst_rule_matches_total{action="deny",rule="no-drop"} 1.0' in text
        (span,) = [s for s in memory.get_finished_spans() if "db__execute" in s.name]
        assert span.attributes is not None
        assert span.attributes["catalyst.rules"] == ("no-drop",)
        assert span.attributes["catalyst.rule.decision"] == "deny:no-drop"
    finally:
        await served.gateway.stop()
        tracing.deactivate()


def test_rule_labels_are_capped() -> None:
    from prometheus_client import generate_latest

    from catalyst_mcp.observability.metrics import MAX_RULE_LABELS, Metrics

    metrics = Metrics()
    for i in range(MAX_RULE_LABELS + 5):
        metrics.rule_match(f"r{i}", "alert")
    metrics.rule_match("r0", "alert")
    text = generate_latest(metrics.registry).decode()
    assert 'catalyst_rule_matches_total{action="alert",rule="r0"} 2.0' in text
    assert 'catalyst_rule_matches_total{action="alert",rule="other"} 5.0' in text
    assert f'rule="r{MAX_RULE_LABELS}"' not in text
