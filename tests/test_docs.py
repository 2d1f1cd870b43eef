"""The docs promise what the code does: every setting is documented, the README's commands exist."""

from __future__ import annotations

import re

import pytest

from catalyst_mcp.cluster.config import RedisSettings
from catalyst_mcp.observability.config import LogSettings, MetricsSettings, TelemetrySettings
from catalyst_mcp.orchestration.cache.config import CacheSettings, CacheSpec, ToolSettings
from catalyst_mcp.orchestration.events.config import EventsSettings, WebhookSettings
from catalyst_mcp.orchestration.rules.config import RulesSettings
from catalyst_mcp.orchestration.workflows.config import WorkflowsSettings
from catalyst_mcp.packages.config import PackagesSettings
from catalyst_mcp.security.config import (
    AuditSettings,
    AuthSettings,
    RateLimitSettings,
    RbacSettings,
)
from catalyst_mcp.servers.config import (
    DatabaseOptions,
    FilesystemOptions,
    KubernetesOptions,
    RootConfig,
    S3Options,
)
from catalyst_mcp.settings import (
    GatewaySettings,
    PacksSettings,
    ServerConfig,
    StorageSettings,
)
from catalyst_mcp.upstreams.sandboxconfig import SandboxSettings
from catalyst_mcp.web.config import UiSettings
from tests.conftest import ROOT

MODELS = [
    GatewaySettings,
    ServerConfig,
    PacksSettings,
    StorageSettings,
    AuthSettings,
    RbacSettings,
    RateLimitSettings,
    AuditSettings,
    PackagesSettings,
    MetricsSettings,
    TelemetrySettings,
    LogSettings,
    FilesystemOptions,
    RootConfig,
    DatabaseOptions,
    RulesSettings,
    SandboxSettings,
    S3Options,
    KubernetesOptions,
    WorkflowsSettings,
    UiSettings,
    RedisSettings,
    CacheSettings,
    CacheSpec,
    ToolSettings,
    EventsSettings,
    WebhookSettings,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_setting_is_documented(model: type) -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_]+)`", text, flags=re.MULTILINE))
    missing = set(model.model_fields) - documented  # type: ignore[attr-defined]
    assert not missing, f"docs/configuration.md lacks {sorted(missing)}"


def test_documented_settings_exist() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_]+)`", text, flags=re.MULTILINE))
    known = set().union(*(m.model_fields for m in MODELS))
    assert documented <= known, f"docs/configuration.md describes unknown {documented - known}"


def test_readme_quick_start_targets_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("serve", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE)


def test_every_documented_variable_is_read() -> None:
    """A CATALYST_* variable the docs name is a setting's variable or one the code reads."""
    from catalyst_mcp.configsources import read_environment
    from catalyst_mcp.settings import Settings

    pages = [ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").rglob("*.md")]
    named = set()
    for page in pages:
        named |= set(re.findall(r"CATALYST_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_<])", page.read_text()))
    assert "CATALYST_AUTH__ENABLED" in named
    named.discard("CATALYST_AUTH_ENABLED")  # the docs' example of a typo
    unread = [name for name in sorted(named) if read_environment(Settings, {name: "1"}).unknown]
    assert not unread, f"the docs name variables nothing reads: {unread}"
