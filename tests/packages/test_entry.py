"""The server entry a package gets: secrets as ${secret:NAME}, defaults, required inputs."""

from __future__ import annotations

import pytest

from catalyst_mcp.errors import PackageError
from catalyst_mcp.packages.entry import build_entry, default_server_name
from catalyst_mcp.packages.serverjson import Package, ServerDetail, parse_server
from catalyst_mcp.settings import ServerConfig

PACKAGE = Package.model_validate(
    {
        "registryType": "npm",
        "identifier": "@acme/mcp-server-crm",
        "version": "1.0.0",
        "packageArguments": [
            {"type": "positional", "valueHint": "root", "isRequired": True},
            {
                "type": "named",
                "name": "--mode",
                "default": "{mode}-x",
                "variables": {"mode": {"default": "ro"}},
            },
            {"type": "named", "name": "--verbose"},
        ],
        "environmentVariables": [
            {"name": "CRM_TOKEN", "isSecret": True, "isRequired": True, "description": "token"},
            {"name": "CRM_URL", "isRequired": True},
            {"name": "CRM_REGION", "default": "eu"},
            {"name": "CRM_DEBUG"},
        ],
    }
)


def test_secrets_defaults_and_what_is_still_needed() -> None:
    plan = build_entry(PACKAGE, "/p/bin/crm")
    assert plan.entry == {
        "command": "/p/bin/crm",
        "args": ["--mode", "ro-x"],
        "env": {"CRM_TOKEN": "${secret:CRM_TOKEN}", "CRM_URL": "${CRM_URL}", "CRM_REGION": "eu"},
    }
    assert [v.name for v in plan.secrets] == ["CRM_TOKEN"]
    assert [v.name for v in plan.environment] == ["CRM_URL"]
    assert [a.label for a in plan.arguments] == ["root"]
    # the entry is one the gateway accepts, and it runs per caller with their secret
    config = ServerConfig.model_validate(plan.entry, context={"environ": {"CRM_URL": "u"}})
    assert config.env["CRM_TOKEN"] == "${secret:CRM_TOKEN}" and config.env["CRM_URL"] == "u"


def test_given_values_and_arguments_win() -> None:
    plan = build_entry(
        PACKAGE, "/p/bin/crm", env_values={"CRM_URL": "https://crm", "EXTRA": "1"}, args=["/srv"]
    )
    assert plan.entry["args"] == ["/srv"]
    assert plan.entry["env"]["CRM_URL"] == "https://crm"
    assert plan.entry["env"]["EXTRA"] == "1"
    assert plan.environment == [] and plan.arguments == []


def test_a_secret_is_never_written_in_the_config() -> None:
    with pytest.raises(PackageError, match="CRM_TOKEN is a secret"):
        build_entry(PACKAGE, "/p", env_values={"CRM_TOKEN": "hunter2"})


def test_default_names() -> None:
    server = parse_server({"name": "io.github.acme/mcp-server-crm", "description": "d"})
    assert default_server_name(server, PACKAGE) == "crm"
    bare = ServerDetail(name="npm-thing", packages=[PACKAGE])
    assert default_server_name(bare, PACKAGE) == "crm"
