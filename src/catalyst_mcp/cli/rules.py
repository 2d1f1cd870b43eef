"""``catalyst rules``: the policy rules (docs/rules.md): list and validate them, see which rule
fires for a call and why, and decide the calls ``require_approval`` rules hold.

``test`` needs nothing but the rule file(s); ``list`` adds the stored rules when the database
can be reached; ``approvals``, ``approve`` and ``reject`` work on the database like the other
administration commands (decisions are audited as ``cli:<login>``; a gateway waiting for the
decision sees it within ``rules.approval_poll_seconds``).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from catalyst_mcp.cli.admin import Admin, run_admin, shown_time
from catalyst_mcp.cli.common import (
    EXIT_CONFIG,
    EXIT_USAGE,
    CliError,
    config_option,
    json_option,
    load_config,
    print_json,
    print_table,
    truncate,
)
from catalyst_mcp.errors import CatalystError, ConfigProblem
from catalyst_mcp.orchestration.rules.engine import Facts
from catalyst_mcp.orchestration.rules.explain import explain_call
from catalyst_mcp.orchestration.rules.loader import LoadedRule
from catalyst_mcp.orchestration.rules.ruleset import RuleSet
from catalyst_mcp.storage.approvals import STATUSES, ApprovalRecord

__all__ = ["rules"]


@click.group()
def rules() -> None:
    """Policy rules: list, validate, test a call, decide held calls."""


def _rule_set(path: Path) -> RuleSet:
    if not path.exists():
        raise CliError(f"{path}: no such file or folder", EXIT_USAGE)
    found = RuleSet(path)
    quiet = logging.getLogger("catalyst.rules")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # problems are shown once, by the command
    try:
        found.load_all()
    finally:
        quiet.setLevel(level)
    return found


def _problems(problems: list[ConfigProblem]) -> None:
    if problems:
        raise CliError("invalid rules:\n" + "\n".join(str(p) for p in problems), EXIT_CONFIG)


@rules.command("validate")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@config_option
def validate(path: Path | None, config_path: Path | None) -> None:
    """Check rule files: PATH (a file or folder), else the configured rules folder. Exit 3
    listing every problem as file:line:col."""
    if path is None:
        path = load_config(config_path).rules.path
        if path is None:
            raise CliError("rules.path is null: give a file or folder", EXIT_USAGE)
    found = _rule_set(path)
    _problems(found.problems)
    count = len(found.loaded)
    click.echo(f"{path}: {count} rule{'s' if count != 1 else ''}, all valid")


@rules.command("list")
@click.option("--no-stored", is_flag=True, help="Only the rule files (do not open the database).")
@config_option
@json_option
def list_rules(no_stored: bool, config_path: Path | None, json_output: bool) -> None:
    """The rules in force, in the order they are walked: the configured folder's and, unless
    --no-stored, those stored in the database."""
    settings = load_config(config_path)
    folder = settings.rules.path
    found = RuleSet(folder) if folder is not None else RuleSet(None)
    found.load_all()
    if not no_stored:

        async def stored(admin: Admin) -> None:
            found.db = admin.db
            await found.load_stored()

        run_admin(config_path, stored)
    order = {rule.id: n for n, rule in enumerate(found.engine.rules)}
    loaded = sorted(found.loaded, key=lambda r: order.get(r.spec.id, len(order)))
    rows = [_row(rule) for rule in loaded]
    if json_output:
        print_json({"rules": rows, "problems": [str(p) for p in found.problems]})
        return
    print_table(rows, ["id", "priority", "action", "scope", "source"])
    for problem in found.problems:
        click.echo(f"problem: {problem}", err=True)


def _row(rule: LoadedRule) -> dict[str, Any]:
    spec = rule.spec
    scope = []
    for name in ("servers", "tools", "roles", "users"):
        value = getattr(spec, name)
        if value is not None:
            scope.append(f"{name}={','.join(value)}")
    if spec.if_ is not None:
        scope.append(f"if {spec.if_}")
    return {
        "id": spec.id,
        "priority": spec.priority,
        "action": spec.action if spec.enabled else f"{spec.action} (disabled)",
        "scope": truncate(" ".join(scope) or "every call", 60),
        "source": rule.source,
    }


@rules.command("test")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--as", "user", required=True, help="The caller's user name.")
@click.option("--role", "roles", multiple=True, help="A role the caller holds (repeatable).")
@click.option("--call", "tool", required=True, help="The tool's public name (server__tool).")
@click.option("--args", "arguments", default="{}", help="The call's arguments, as JSON.")
@click.option("--server", help="The server serving the tool (default: the name's prefix).")
@click.option("--result", "result", help="A tool result (JSON) to test rules on results.")
@click.option("--at", "at", help="The time of the call (ISO 8601; default: now).")
@click.option("--transport", type=click.Choice(["mcp", "rest"]), default="mcp", show_default=True)
@json_option
def test_call(
    path: Path,
    user: str,
    roles: tuple[str, ...],
    tool: str,
    arguments: str,
    server: str | None,
    result: str | None,
    at: str | None,
    transport: str,
    json_output: bool,
) -> None:
    """Show which rule of PATH (a rule file or folder) fires for a call, and why: every rule's
    outcome (matched, not matched and which test failed, out of scope, not reached)."""
    found = _rule_set(path)
    _problems(found.problems)
    args = _json_object(arguments, "--args")
    outcome = _json_object(result, "--result") if result is not None else None
    now = None
    if at is not None:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise CliError(f"--at: not an ISO 8601 time: {at!r}", EXIT_USAGE) from None
        now = moment.timestamp()
    facts = Facts(
        subject=user,
        kind="user",
        via="api_key",
        roles=roles,
        scopes=None,
        server=server or tool.partition("__")[0],
        tool=tool,
        arguments=args,
        transport=transport,
        now=now,
    )
    report = explain_call(found.engine, facts, outcome)
    if json_output:
        print_json(report)
        return
    click.echo(
        f"call: {tool} on server {facts.server} by {user} (roles: {', '.join(roles) or 'none'})"
    )
    click.echo(f"arguments: {json.dumps(args, sort_keys=True)}")
    click.echo()
    print_table(report["rules"], ["id", "action", "outcome", "why"])
    click.echo()
    click.echo(f"decision: {report['decision']}")
    for key in ("arguments_sent", "route", "rate", "alerts", "result_returned"):
        if key in report:
            value = report[key]
            click.echo(
                f"{key.replace('_', ' ')}: "
                f"{json.dumps(value, sort_keys=True) if not isinstance(value, str) else value}"
            )


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise CliError(f"{option}: not valid JSON: {exc.msg}", EXIT_USAGE) from None
    if not isinstance(value, dict):
        raise CliError(f"{option}: expected a JSON object", EXIT_USAGE)
    return value


# ---- approvals ---------------------------------------------------------------------------------


def _approval_row(record: ApprovalRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "status": record.status,
        "rule": record.rule_id,
        "user": record.subject,
        "tool": record.tool,
        "arguments": truncate(json.dumps(record.arguments, sort_keys=True), 50)
        if record.arguments is not None
        else "(too large)",
        "created": shown_time(record.created_at),
        "expires": shown_time(record.expires_at),
        "decided_by": record.decided_by or "-",
    }


@rules.command("approvals")
@click.option("--status", type=click.Choice(STATUSES), help="Only requests in this state.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@config_option
@json_option
def approvals(status: str | None, limit: int, config_path: Path | None, json_output: bool) -> None:
    """Approval requests, newest first."""
    from catalyst_mcp.storage.approvals import ApprovalRepo

    async def main(admin: Admin) -> list[ApprovalRecord]:
        return await ApprovalRepo(admin.db).list(status, limit)

    found = run_admin(config_path, main)
    rows = [_approval_row(r) for r in found]
    if json_output:
        print_json(
            [
                {**row, "arguments": r.arguments, "message": r.message, "note": r.note}
                for row, r in zip(rows, found, strict=True)
            ]
        )
        return
    print_table(rows, ["id", "status", "rule", "user", "tool", "arguments", "expires"])


def _decide(approval_id: str, note: str | None, config_path: Path | None, approve: bool) -> None:
    from catalyst_mcp.orchestration.rules.approvals import Approvals
    from catalyst_mcp.storage.approvals import ApprovalRepo

    verb = "approve" if approve else "reject"

    async def main(admin: Admin) -> ApprovalRecord:
        async with admin.change(f"admin.approvals.{verb}", approval_id):
            return await Approvals(ApprovalRepo(admin.db)).decide(
                approval_id, approve=approve, by=admin.identity.subject, note=note
            )

    try:
        record = run_admin(config_path, main)
    except CatalystError as exc:  # (run_admin maps most; Missing and Conflict are failures)
        raise CliError(exc.message) from exc
    click.echo(f"{record.id}: {record.status} ({record.tool} for {record.subject})")


@rules.command("approve")
@click.argument("approval_id", metavar="ID")
@click.option("--note", help="Why (shown to the caller).")
@config_option
def approve(approval_id: str, note: str | None, config_path: Path | None) -> None:
    """Approve a held call: it runs (the waiting call, or the same call made again)."""
    _decide(approval_id, note, config_path, approve=True)


@rules.command("reject")
@click.argument("approval_id", metavar="ID")
@click.option("--note", help="Why (shown to the caller).")
@config_option
def reject(approval_id: str, note: str | None, config_path: Path | None) -> None:
    """Reject a held call: it is not run, and the caller is told why."""
    _decide(approval_id, note, config_path, approve=False)
