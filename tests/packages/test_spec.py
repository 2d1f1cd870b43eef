"""What the user types: catalog names, npm:/pypi: packages, exact versions only."""

from __future__ import annotations

import pytest

from catalyst_mcp.errors import PackageError
from catalyst_mcp.packages.spec import PackageSpec, parse_spec, short_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("io.github.x/server-memory", PackageSpec("catalog", "io.github.x/server-memory")),
        ("io.github.x/y@1.2.3", PackageSpec("catalog", "io.github.x/y", "1.2.3")),
        ("time", PackageSpec("catalog", "time")),
        ("npm:@scope/pkg", PackageSpec("npm", "@scope/pkg")),
        ("npm:@scope/pkg@2.0.0-beta.1", PackageSpec("npm", "@scope/pkg", "2.0.0-beta.1")),
        ("npm:left-pad@1.3.0", PackageSpec("npm", "left-pad", "1.3.0")),
        ("pypi:mcp-server-time", PackageSpec("pypi", "mcp-server-time")),
        ("pypi:mcp-server-time==2026.10.19", PackageSpec("pypi", "mcp-server-time", "2026.10.19")),
        (
            "pypi:awslabs.aws-documentation-mcp-server@1.2.3",
            PackageSpec("pypi", "awslabs.aws-documentation-mcp-server", "1.2.3"),
        ),
    ],
)
def test_forms(text: str, expected: PackageSpec) -> None:
    assert parse_spec(text) == expected
    assert parse_spec(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("npm:pkg@^1.2.0", "must be an exact version"),
        ("pypi:pkg@>=1", "must be an exact version"),
        ("npm:Bad Name", "is not the name of an npm package"),
        ("pypi:-x", "is not the name of a PyPI package"),
        ("a/b/c", "is not the name of a server"),
    ],
)
def test_refusals(text: str, message: str) -> None:
    with pytest.raises(PackageError, match=message):
        parse_spec(text)


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("io.github.modelcontextprotocol/server-memory", "memory"),
        ("mcp-server-time", "time"),
        ("@upstash/context7-mcp", "context7"),
        ("@demo/mcp-server", "demo"),
        ("io.github.x/Playwright_MCP", "playwright"),
    ],
)
def test_short_names(name: str, short: str) -> None:
    assert short_name(name) == short
