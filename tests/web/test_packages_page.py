"""The packages page: the catalog, and an install whose progress lines follow themselves
(against the fake package index of the packages tests, on loopback)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.api.test_packages import UNREACHABLE, with_config
from tests.packages.conftest import PYPI_NAME, Registries, registries  # noqa: F401 (fixture)
from tests.web.conftest import Dashboard, text_of

_FOLLOW = re.compile(r'hx-get="(/ui/packages/installs/[^"]+)"')


async def test_the_catalog_is_searched_from_the_page(dashboard: Dashboard) -> None:
    root = await dashboard.signed_in("root")
    page = text_of(await root.get("/ui/packages"))
    assert "started without a config file" in page and "Catalog" in page
    found = text_of(await root.get("/ui/packages?q=github"))
    assert "server(s) from" in found and "github" in found.lower()
    refused = await root.post("/ui/packages/install", {"package": "pypi:x"})
    assert refused.status == 409


@pytest.mark.network
@pytest.mark.subprocess
async def test_an_install_shows_its_progress_until_it_ends(
    tmp_path: Path,
    registries: Registries,  # noqa: F811 (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in registries.environ.items():
        if name.endswith(("_CACHE", "_CACHE_DIR", "CONFIG_FILE", "FIND_LINKS", "INDEX_URL")):
            monkeypatch.setenv(name, value)
    packages = registries.settings(tmp_path).model_dump(mode="json", exclude_none=True)
    api = await with_config(tmp_path, **{**packages, "registry_url": UNREACHABLE})
    try:
        dashboard = Dashboard(api)
        root = await dashboard.signed_in("root")
        await root.get("/ui/packages")
        started = await root.post("/ui/packages/install", {"package": f"pypi:{PYPI_NAME}"})
        assert started.status == 200, started.body
        last = shown = text_of(started)
        async with asyncio.timeout(50):
            while (follow := _FOLLOW.search(last)) is not None:
                last = text_of(await root.get(follow.group(1), {"hx-request": "true"}))
                shown += last
        assert f"installing {PYPI_NAME}" in shown
        assert 'id="install-done"' in shown and "Installed demo-mcp 0.2.0" in shown
        listing = text_of(await root.get("/ui/packages"))
        assert PYPI_NAME in listing and "0.2.0" in listing
    finally:
        await api.gateway.stop()
