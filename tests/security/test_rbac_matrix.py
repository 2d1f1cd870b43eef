"""RBAC: a permission matrix (role x object x expectation), time windows on an injected clock,
glob edge cases, deny over allow, defaults, filtering and the validation messages."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from catalyst_mcp.errors import ConfigError, Forbidden
from catalyst_mcp.security.rbac import Decision, Effect, Kind, Policy, RoleSpec, load_roles

SAMPLE: dict[str, Any] = {
    "analyst": {
        "description": "reads CRM and reports, deletes nothing",
        "rules": [
            {"effect": "allow", "kinds": ["tool", "prompt"], "match": ["crm__*", "reports__*"]},
            {"effect": "deny", "kinds": ["tool"], "match": ["*__delete_*"]},
            {"effect": "allow", "kinds": ["resource"], "match": ["catalyst://reports/*"]},
            {"effect": "allow", "kinds": ["server"], "match": ["crm", "reports"]},
        ],
    },
    "support": {
        "description": "works tickets",
        "rules": [
            {"effect": "allow", "kinds": ["tools"], "match": ["*"], "servers": ["crm"]},
            {"effect": "deny", "kinds": "tool", "match": ["crm__delete_*"]},
            {"effect": "allow", "kinds": ["prompt"], "match": ["*"], "servers": ["support-*"]},
            {"effect": "allow", "kinds": ["resource"], "match": ["catalyst://crm/tickets/*"]},
            {"effect": "allow", "kinds": ["server"], "match": ["crm", "support-kb"]},
        ],
    },
    "service": {
        "description": "the billing robot",
        "rules": [
            {
                "effect": "allow",
                "kinds": ["tool", "server"],
                "match": ["billing__*", "billing"],
                "servers": ["billing"],
            },
        ],
    },
    "nobody": {"description": "may do nothing", "rules": []},
}

# (kind, public name, server) of every object in the matrix
OBJECTS: dict[str, tuple[Kind, str, str]] = {
    "srv-crm": ("server", "crm", "crm"),
    "srv-reports": ("server", "reports", "reports"),
    "srv-billing": ("server", "billing", "billing"),
    "srv-support-kb": ("server", "support-kb", "support-kb"),
    "srv-hr": ("server", "hr", "hr"),
    "tool-find": ("tool", "crm__find_customer", "crm"),
    "tool-delete": ("tool", "crm__delete_customer", "crm"),
    "tool-monthly": ("tool", "reports__monthly", "reports"),
    "tool-charge": ("tool", "billing__charge", "billing"),
    "tool-salaries": ("tool", "hr__salaries", "hr"),
    "res-q1": ("resource", "catalyst://reports/q1.csv", "reports"),
    "res-ticket": ("resource", "catalyst://crm/tickets/42", "crm"),
    "res-customer": ("resource", "catalyst://crm/customers/1", "crm"),
    "res-people": ("resource", "catalyst://hr/people", "hr"),
    "prompt-summary": ("prompt", "reports__summary", "reports"),
    "prompt-triage": ("prompt", "support-kb__triage", "support-kb"),
    "prompt-email": ("prompt", "crm__draft_email", "crm"),
}

ALLOWED: dict[str, set[str]] = {
    "admin": set(OBJECTS),
    "analyst": {
        "srv-crm",
        "srv-reports",
        "tool-find",
        "tool-monthly",
        "res-q1",
        "prompt-summary",
        "prompt-email",
    },
    "support": {"srv-crm", "srv-support-kb", "tool-find", "res-ticket", "prompt-triage"},
    "service": {"srv-billing", "tool-charge"},
    "nobody": set(),
}

MATRIX = [
    pytest.param(role, obj, obj in allowed, id=f"{role}-{obj}")
    for role, allowed in ALLOWED.items()
    for obj in OBJECTS
]

# Monday 6 January 2025 and the days after it (UTC)
MON = datetime(2025, 1, 6, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, month: int = 1) -> datetime:
    """``day`` of ``month`` 2025 at hour:minute UTC."""
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.compile(load_roles(SAMPLE))


def make(rules: list[dict[str, Any]], default: Effect = "deny", name: str = "r") -> Policy:
    return Policy.compile(load_roles({name: {"rules": rules}}), default)


# ---- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "obj", "expected"), MATRIX)
def test_permission_matrix(policy: Policy, role: str, obj: str, expected: bool) -> None:
    kind, name, server = OBJECTS[obj]
    decision = policy.decide((role,), kind, name, server)
    assert decision.allowed is expected, decision.reason
    assert f"{kind} '{name}'" in decision.reason


def test_the_matrix_covers_every_kind_and_both_outcomes() -> None:
    assert {kind for kind, _, _ in OBJECTS.values()} == {"server", "tool", "resource", "prompt"}
    outcomes = {expected for param in MATRIX for expected in param.values[2:]}
    assert outcomes == {True, False}


def test_reasons_name_the_role_and_the_rule(policy: Policy) -> None:
    assert policy.decide(("analyst",), "tool", "crm__delete_customer", "crm") == Decision(
        False, "role 'analyst' denies tool 'crm__delete_customer' (rule 2)", "analyst", 2
    )
    assert policy.decide(("analyst",), "tool", "crm__find_customer", "crm") == Decision(
        True, "role 'analyst' allows tool 'crm__find_customer' (rule 1)", "analyst", 1
    )
    assert policy.decide(("analyst",), "tool", "hr__salaries", "hr") == Decision(
        False, "no role allows tool 'hr__salaries' (roles: analyst)"
    )
    assert policy.decide((), "prompt", "x").reason == "no role allows prompt 'x' (no roles)"
    admin = policy.decide(("admin",), "resource", "catalyst://hr/people", "hr")
    assert admin.reason == "role 'admin' allows resource 'catalyst://hr/people' (built-in)"


def test_several_roles_add_up_and_any_deny_wins(policy: Policy) -> None:
    both = ("analyst", "service")
    assert policy.decide(both, "tool", "billing__charge", "billing").allowed
    assert policy.decide(both, "tool", "reports__monthly", "reports").allowed
    # admin allows everything, but another role's deny still wins
    readonly = make([{"effect": "deny", "kinds": ["tool"], "match": ["*__delete_*"]}])
    decision = readonly.decide(("admin", "r"), "tool", "crm__delete_customer", "crm")
    assert decision == Decision(
        False, "role 'r' denies tool 'crm__delete_customer' (rule 1)", "r", 1
    )
    assert readonly.decide(("admin", "r"), "tool", "crm__find_customer", "crm").allowed


def test_deny_beats_allow_within_one_role_whatever_the_order() -> None:
    policy = make(
        [
            {"effect": "deny", "match": ["crm__delete_*"]},
            {"effect": "allow", "match": ["crm__*"]},
        ]
    )
    assert not policy.decide(("r",), "tool", "crm__delete_customer", "crm").allowed
    assert policy.decide(("r",), "tool", "crm__find_customer", "crm").allowed


def test_default_allow_lets_through_what_no_rule_denies() -> None:
    policy = make([{"effect": "deny", "kinds": ["tool"], "match": ["hr__*"]}], default="allow")
    assert policy.decide(("r",), "tool", "crm__find_customer", "crm") == Decision(
        True, "no role denies tool 'crm__find_customer' (default allow)"
    )
    assert policy.decide((), "prompt", "anything").allowed
    assert not policy.decide(("r",), "tool", "hr__salaries", "hr").allowed
    deny = make([{"effect": "deny", "kinds": ["tool"], "match": ["hr__*"]}])
    assert not deny.decide(("r",), "tool", "crm__find_customer", "crm").allowed


def test_unknown_roles_are_ignored_and_reported_once(
    policy: Policy, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = Policy.compile(load_roles(SAMPLE))
    with caplog.at_level(logging.WARNING, logger="catalyst.rbac"):
        decision = fresh.decide(("ghost", "analyst"), "tool", "crm__find_customer", "crm")
        assert decision.allowed and decision.role == "analyst"
        denied = fresh.decide(("ghost",), "tool", "crm__find_customer", "crm")
        assert fresh.unknown_roles(("ghost", "analyst", "spook")) == ("ghost", "spook")
    assert denied.reason == (
        "no role allows tool 'crm__find_customer' (no roles; undefined roles ignored: ghost)"
    )
    assert [r.getMessage() for r in caplog.records] == [
        "role 'ghost' is not defined: ignored",
        "role 'spook' is not defined: ignored",
    ]


def test_admin_can_be_redefined() -> None:
    roles = load_roles({"admin": {"rules": [{"effect": "allow", "match": ["crm__*"]}]}})
    policy = Policy.compile(roles)
    assert policy.decide(("admin",), "tool", "crm__find_customer", "crm").reason == (
        "role 'admin' allows tool 'crm__find_customer' (rule 1)"
    )
    assert not policy.decide(("admin",), "tool", "hr__salaries", "hr").allowed
    assert policy.roles == {"admin"}


def test_check_raises_forbidden_with_the_reason(policy: Policy) -> None:
    assert policy.check(("analyst",), "tool", "crm__find_customer", "crm").allowed
    with pytest.raises(Forbidden, match=r"^no role allows tool 'hr__salaries' \(roles: analyst\)$"):
        policy.check(("analyst",), "tool", "hr__salaries", "hr")


def test_repeat_decisions_come_from_the_cache(policy: Policy) -> None:
    first = policy.decide(("support",), "tool", "crm__find_customer", "crm")
    assert policy.decide(("support",), "tool", "crm__find_customer", "crm") is first


def test_a_server_object_belongs_to_itself_by_default() -> None:
    policy = make([{"effect": "allow", "kinds": ["server"], "match": ["*"], "servers": ["crm"]}])
    assert policy.decide(("r",), "server", "crm").allowed
    assert not policy.decide(("r",), "server", "hr").allowed


# ---- filter -----------------------------------------------------------------------------------


def test_filter_keeps_only_what_the_caller_may_use(policy: Policy) -> None:
    tools = [
        {"name": name, "server": server}
        for kind, name, server in OBJECTS.values()
        if kind == "tool"
    ]
    visible = policy.filter(("analyst",), "tool", tools, lambda t: t["name"], lambda t: t["server"])
    assert [t["name"] for t in visible] == ["crm__find_customer", "reports__monthly"]
    assert policy.filter(("nobody",), "tool", tools, lambda t: t["name"], lambda t: None) == []
    assert len(policy.filter(("admin",), "tool", tools, lambda t: t["name"], lambda t: None)) == 5


def test_filter_applies_time_windows_at_one_moment() -> None:
    policy = make(
        [
            {"effect": "allow", "match": ["crm__*"]},
            {"effect": "allow", "match": ["hr__*"], "when": {"hours": "09:00-17:00"}},
        ]
    )
    names = ["crm__a", "hr__b", "x__c"]

    def ident(name: str) -> str:
        return name

    assert policy.filter(("r",), "tool", names, ident, ident, now=at(6, 10)) == names[:2]
    assert policy.filter(("r",), "tool", names, ident, ident, now=at(6, 20)) == names[:1]


# ---- time windows -----------------------------------------------------------------------------

OFFICE = {
    "effect": "allow",
    "match": ["crm__*"],
    "when": {
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "hours": "09:00-17:30",
        "timezone": "Europe/Berlin",
    },
}


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(at(6, 8), True, id="monday-09:00-berlin-start-included"),
        pytest.param(at(6, 7, 59), False, id="monday-08:59-berlin-before"),
        pytest.param(at(6, 16, 29), True, id="monday-17:29-berlin"),
        pytest.param(at(6, 16, 30), False, id="monday-17:30-berlin-end-excluded"),
        pytest.param(at(11, 10), False, id="saturday"),
        pytest.param(at(12, 10), False, id="sunday"),
        pytest.param(at(10, 12), True, id="friday-noon"),
        pytest.param(at(7, 7, 30, month=7), True, id="summer-time-09:30-cest"),
        pytest.param(at(6, 7, 30), False, id="winter-08:30-cet"),
    ],
)
def test_office_hours_in_a_timezone(now: datetime, expected: bool) -> None:
    policy = make([OFFICE])
    decision = policy.decide(("r",), "tool", "crm__find_customer", "crm", now=now)
    assert decision.allowed is expected, decision.reason


NIGHT = {"effect": "allow", "match": ["*"], "when": {"days": ["fri"], "hours": "22:00-06:00"}}


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(at(10, 22), True, id="friday-22:00-start"),
        pytest.param(at(10, 23, 59), True, id="friday-23:59"),
        pytest.param(at(11, 0), True, id="saturday-00:00-still-friday-night"),
        pytest.param(at(11, 5, 59), True, id="saturday-05:59"),
        pytest.param(at(11, 6), False, id="saturday-06:00-end"),
        pytest.param(at(10, 3), False, id="friday-03:00-is-thursday-night"),
        pytest.param(at(10, 12), False, id="friday-noon"),
        pytest.param(at(11, 23), False, id="saturday-night"),
    ],
)
def test_a_window_wrapping_midnight_belongs_to_the_day_it_starts(
    now: datetime, expected: bool
) -> None:
    assert make([NIGHT]).decide(("r",), "tool", "t", now=now).allowed is expected


@pytest.mark.parametrize(
    ("when", "now", "expected"),
    [
        pytest.param({"until": "2025-01-31"}, at(31, 23, 59), True, id="until-date-whole-day"),
        pytest.param({"until": "2025-01-31"}, at(1, 0, month=2), False, id="until-passed"),
        pytest.param({"until": "2025-01-31T12:00:00Z"}, at(31, 12), False, id="until-excluded"),
        pytest.param({"from": "2025-01-10T12:00:00Z"}, at(10, 11, 59), False, id="before-from"),
        pytest.param({"from": "2025-01-10T12:00:00Z"}, at(10, 12), True, id="from-included"),
        pytest.param({"from": "2025-01-10"}, at(10, 0), True, id="from-date-midnight"),
        pytest.param(
            {"until": "2025-01-31", "timezone": "America/New_York"},
            at(1, 4, 59, month=2),
            True,
            id="until-date-in-new-york",
        ),
        pytest.param(
            {"until": "2025-01-31", "timezone": "America/New_York"},
            at(1, 5, month=2),
            False,
            id="until-passed-in-new-york",
        ),
        pytest.param(
            {"until": "2025-01-31T18:00:00", "timezone": "Asia/Tokyo"},
            at(31, 8, 59),
            True,
            id="naive-until-on-the-windows-clock",
        ),
        pytest.param(
            {"until": "2025-01-31T18:00:00", "timezone": "Asia/Tokyo"},
            at(31, 9),
            False,
            id="naive-until-passed-on-the-windows-clock",
        ),
    ],
)
def test_from_and_until(when: dict[str, Any], now: datetime, expected: bool) -> None:
    policy = make([{"effect": "allow", "match": ["*"], "when": when}])
    assert policy.decide(("r",), "tool", "t", now=now).allowed is expected


def test_a_cached_decision_still_follows_the_clock() -> None:
    policy = make([OFFICE])

    def decide(now: datetime) -> Decision:
        return policy.decide(("r",), "tool", "crm__a", "crm", now=now)

    assert [decide(at(6, h)).allowed for h in (7, 8, 8, 20, 9, 11)] == [
        False,
        True,
        True,
        False,
        True,
        True,
    ]
    assert decide(at(11, 10)).allowed is False  # saturday, same minute of day as a weekday


def test_offsets_with_seconds_are_exact_within_a_minute() -> None:
    # Amsterdam kept local mean time (+00:19:32) until 1937: 08:40:28 UTC is 09:00:00 there
    policy = make(
        [
            {
                "effect": "allow",
                "match": ["*"],
                "when": {"hours": "09:00-10:00", "timezone": "Europe/Amsterdam"},
            }
        ]
    )
    before = datetime(1900, 1, 1, 8, 40, 27, tzinfo=UTC)
    assert not policy.decide(("r",), "tool", "t", now=before).allowed
    assert policy.decide(("r",), "tool", "t", now=before.replace(second=28)).allowed
    assert not policy.decide(("r",), "tool", "t", now=before).allowed


def test_days_may_be_one_name_or_full_names() -> None:
    monday = {"effect": "allow", "match": ["*"], "when": {"days": "Monday"}}
    weekend = {"effect": "allow", "match": ["*"], "when": {"days": ["saturday", "SUN"]}}
    assert make([monday]).decide(("r",), "tool", "t", now=at(6, 12)).allowed
    assert not make([monday]).decide(("r",), "tool", "t", now=at(7, 12)).allowed
    assert make([weekend]).decide(("r",), "tool", "t", now=at(12, 12)).allowed
    assert not make([weekend]).decide(("r",), "tool", "t", now=at(10, 12)).allowed


def test_a_naive_now_is_utc_and_no_now_is_the_current_time() -> None:
    policy = make([{"effect": "allow", "match": ["*"], "when": {"until": "2000-01-01"}}])
    assert policy.decide(("r",), "tool", "t", now=datetime(1999, 12, 31, 23)).allowed
    assert not policy.decide(("r",), "tool", "t").allowed  # it is later than 2000 now


def test_a_deny_window_closes_what_is_otherwise_open() -> None:
    policy = make(
        [
            {"effect": "allow", "match": ["*"]},
            {"effect": "deny", "kinds": ["tool"], "match": ["*"], "when": {"days": ["sat", "sun"]}},
        ]
    )
    weekend = policy.decide(("r",), "tool", "crm__a", "crm", now=at(11, 12))
    assert weekend == Decision(
        False, "role 'r' denies tool 'crm__a' (rule 2, within its time window)", "r", 2
    )
    weekday = policy.decide(("r",), "tool", "crm__a", "crm", now=at(10, 12))
    assert weekday.allowed and weekday.rule == 1
    assert policy.decide(("r",), "prompt", "crm__a", "crm", now=at(11, 12)).allowed


def test_a_closed_allow_window_says_so() -> None:
    policy = make([{"effect": "allow", "match": ["*"], "when": {"hours": "09:00-17:00"}}])
    decision = policy.decide(("r",), "tool", "t", now=at(6, 20))
    assert decision == Decision(
        False, "role 'r' allows tool 't' only within a time window (rule 1), which is closed now"
    )
    assert policy.decide(("r",), "tool", "t", now=at(6, 10)).reason == (
        "role 'r' allows tool 't' (rule 1, within its time window)"
    )


# ---- globs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "name", "expected"),
    [
        pytest.param("crm__find_*", "crm__find_customer", True, id="prefix"),
        pytest.param("crm__find_*", "crm__Find_customer", False, id="case-sensitive"),
        pytest.param("crm__find", "crm__find_customer", False, id="whole-name-only"),
        pytest.param("crm", "crm2", False, id="no-prefix-match"),
        pytest.param("*", "catalyst://a/b/c", True, id="star-crosses-slashes"),
        pytest.param("crm*", "crm__x", True, id="star-crosses-separator"),
        pytest.param("catalyst://crm/*", "catalyst://crm/a/b", True, id="uri-subtree"),
        pytest.param("catalyst://crm/*", "catalyst://crmx/a", False, id="uri-other-server"),
        pytest.param("crm__get_?", "crm__get_a", True, id="question-one-char"),
        pytest.param("crm__get_?", "crm__get_ab", False, id="question-not-two"),
        pytest.param("v[12]__*", "v2__x", True, id="set"),
        pytest.param("v[!12]__*", "v2__x", False, id="negated-set"),
        pytest.param("v[a-c]__*", "vb__x", True, id="range"),
        pytest.param("x[[]1]", "x[1]", True, id="literal-bracket"),
        pytest.param("a.b", "axb", False, id="dot-is-literal"),
        pytest.param("a+b", "a+b", True, id="regex-chars-are-literal"),
    ],
)
def test_globs(glob: str, name: str, expected: bool) -> None:
    policy = make([{"effect": "allow", "match": [glob]}])
    assert policy.decide(("r",), "tool", name).allowed is expected


def test_a_servers_glob_needs_the_object_to_have_a_server() -> None:
    policy = make([{"effect": "allow", "match": ["*"], "servers": ["crm", "pack-*"]}])
    assert policy.decide(("r",), "tool", "x", "pack-sales").allowed
    assert not policy.decide(("r",), "tool", "x", "crm2").allowed
    assert not policy.decide(("r",), "tool", "x", None).allowed


# ---- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        pytest.param(
            {"effect": "allow", "match": ["crm__[abc"]},
            "role 'r', rule 1: match: glob 'crm__[abc': '[' at position 6 is never closed "
            "(write '[[]' for a literal '[')",
            id="unclosed-bracket",
        ),
        pytest.param(
            {"effect": "allow", "match": ["v[z-a]"]},
            "role 'r', rule 1: match: glob 'v[z-a]': range 'z-a' is empty",
            id="empty-range",
        ),
        pytest.param(
            {"effect": "allow", "match": [""]},
            "role 'r', rule 1: match: an empty glob matches nothing: use '*' for everything",
            id="empty-glob",
        ),
        pytest.param(
            {"effect": "allow", "match": []},
            "role 'r', rule 1: match: no globs given: use ['*'] for everything",
            id="no-globs",
        ),
        pytest.param(
            {"effect": "maybe", "match": ["*"]},
            "role 'r', rule 1: effect: Input should be 'allow' or 'deny'",
            id="bad-effect",
        ),
        pytest.param(
            {"effect": "allow", "kinds": ["widget"], "match": ["*"]},
            "role 'r', rule 1: kinds.0: Input should be 'server', 'tool', 'resource' or 'prompt'",
            id="unknown-kind",
        ),
        pytest.param(
            {"effect": "allow", "match": ["*"], "when": {"days": ["mon", "funday"]}},
            "role 'r', rule 1: when.days: unknown day 'funday' (use mon, tue, wed, thu, fri, "
            "sat, sun)",
            id="unknown-day",
        ),
        pytest.param(
            {"effect": "allow", "match": ["*"], "when": {"hours": "9-5"}},
            "role 'r', rule 1: when.hours: hours '9-5' must look like '09:00-17:30'",
            id="hours-shape",
        ),
        pytest.param(
            {"effect": "allow", "match": ["*"], "when": {"hours": "09:00-24:30"}},
            "role 'r', rule 1: when.hours: hours '09:00-24:30': not a time of day (00:00 to 24:00)",
            id="hours-range",
        ),
        pytest.param(
            {"effect": "allow", "match": ["*"], "when": {"hours": "09:00-09:00"}},
            "role 'r', rule 1: when.hours: hours '09:00-09:00' is empty: leave 'hours' out to "
            "mean all day",
            id="hours-empty",
        ),
        pytest.param(
            {"effect": "allow", "match": ["*"], "when": {"timezone": "Mars/Olympus"}},
            "role 'r', rule 1: when.timezone: unknown timezone 'Mars/Olympus' (an IANA name "
            "such as 'UTC' or 'Europe/Berlin')",
            id="unknown-timezone",
        ),
        pytest.param(
            {
                "effect": "allow",
                "match": ["*"],
                "when": {"from": "2025-02-01", "until": "2025-01-01"},
            },
            "role 'r', rule 1: when: 'until' (2025-01-01) is not after 'from' (2025-02-01)",
            id="until-before-from",
        ),
        pytest.param(
            {"effect": "allow", "match": ["*"], "when": {}},
            "role 'r', rule 1: when: an empty time window: give days, hours, from or until",
            id="empty-window",
        ),
        pytest.param(
            {"effect": "allow", "match": ["*"], "servers": ["crm"], "tools": ["x"]},
            "role 'r', rule 1: tools: unknown field (check the spelling)",
            id="unknown-field",
        ),
    ],
)
def test_invalid_rules_are_refused_clearly(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_roles({"r": {"rules": [rule]}})
    assert [p.message for p in caught.value.problems] == [message]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_roles(
            [
                {"name": "a", "rules": [{"effect": "allow", "match": ["["]}]},
                {"name": "a"},
                {"name": "b", "rules": [{"effect": "allow", "match": ["*"]}, {"match": ["*"]}]},
            ],
            source="catalyst.yaml",
        )
    assert [str(p) for p in caught.value.problems] == [
        "catalyst.yaml: role 'a', rule 1: match: glob '[': '[' at position 1 is never closed "
        "(write '[[]' for a literal '[')",
        "catalyst.yaml: role 'a' is defined twice",
        "catalyst.yaml: role 'b', rule 2: effect: Field required",
    ]


def test_role_data_in_both_shapes() -> None:
    as_mapping = load_roles({"a": {"description": "d", "rules": []}, "b": None})
    as_list = load_roles([{"name": "a", "description": "d"}, {"name": "b"}])
    assert as_mapping == as_list
    assert as_mapping["a"] == RoleSpec(name="a", description="d")
    with pytest.raises(ConfigError, match="role 'a' is defined twice"):
        load_roles([{"name": "a"}, {"name": "a"}])
    with pytest.raises(ConfigError, match="a role without a name"):
        load_roles([{"description": "who?"}])
    with pytest.raises(ConfigError, match="roles must be a mapping or a list"):
        load_roles("admin")


def test_role_names_have_no_spaces() -> None:
    with pytest.raises(ConfigError) as caught:
        load_roles({"data analyst": {}})
    assert [p.message for p in caught.value.problems] == [
        "role 'data analyst': name: role name 'data analyst' must be 1-128 characters without "
        "spaces"
    ]


def test_compile_refuses_a_key_that_disagrees_with_the_name() -> None:
    with pytest.raises(ConfigError, match="role 'a' is named 'b'"):
        Policy.compile({"a": RoleSpec(name="b")})
