"""``/packages``: the catalog, the installed packages, and an install followed to its end
(against the fake package index of the packages tests, on loopback)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalyst_mcp.app import Gateway
from tests.api.conftest import ToolsApi, error_of, settings, start_tools_api
from tests.conftest import free_port
from tests.packages.conftest import PYPI_NAME, Registries, registries  # noqa: F401 (fixture)

UNREACHABLE = f"http://127.0.0.1:{free_port()}"


async def with_config(tmp_path: Path, **packages: Any) -> ToolsApi:
    """The tools API's gateway, started from a config file (which installs edit)."""
    config = tmp_path / "catalyst.yaml"
    config.write_text("servers: {}\n")
    values = settings(tmp_path, packages={"registry_url": UNREACHABLE, **packages})
    api = await start_tools_api(values)
    # the same gateway, as `catalyst serve --config` builds it (the API knows the file)
    await api.gateway.stop()
    gateway = Gateway(values, [api.fake], config_file=config)
    await gateway.start()
    fresh = ToolsApi(gateway, api.fake)
    fresh.tokens = api.tokens
    return fresh


async def test_without_a_config_file_nothing_can_be_installed(tools_api: ToolsApi) -> None:
    listing = await tools_api.call("GET", "/packages")
    assert listing.json() == {"config": None, "packages": []}
    refused = await tools_api.call("POST", "/packages/installs", {"package": "pypi:x"})
    assert refused.status == 409
    assert "without a config file" in error_of(refused)["message"]
    bob = await tools_api.call("GET", "/packages", token="bob")
    assert bob.status == 403


async def test_the_catalog_falls_back_to_the_bundled_snapshot(tmp_path: Path) -> None:
    api = await start_tools_api(settings(tmp_path, packages={"registry_url": UNREACHABLE}))
    try:
        answer = (await api.call("GET", "/packages/catalog?q=github")).json()
        assert answer["source"] == "bundled" and answer["reason"]
        names = [s["name"] for s in answer["servers"]]
        assert any("github" in name for name in names)
        entry = answer["servers"][0]
        assert {"name", "version", "runtimes", "installable", "inputs"} <= set(entry)
        assert (await api.call("GET", "/packages/catalog?q=" + "x" * 300)).status == 422
    finally:
        await api.gateway.stop()


@pytest.mark.network
@pytest.mark.subprocess
async def test_an_install_is_followed_to_its_end_and_audited(
    tmp_path: Path,
    registries: Registries,  # noqa: F811 (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in registries.environ.items():
        if name.endswith(("_CACHE", "_CACHE_DIR", "CONFIG_FILE", "FIND_LINKS", "INDEX_URL")):
            monkeypatch.setenv(name, value)
    packages = registries.settings(tmp_path).model_dump(mode="json", exclude_none=True)
    api = await with_config(tmp_path, **packages)
    try:
        started = await api.call("POST", "/packages/installs", {"package": f"pypi:{PYPI_NAME}"})
        assert started.status == 202, started.body
        job = started.json()
        assert job["state"] == "running" and job["actor"] == "root"
        lines: list[str] = []
        after = 0
        async with asyncio.timeout(90):
            while job["state"] == "running":
                answer = await api.call(
                    "GET", f"/packages/installs/{job['id']}?after={after}&wait=10"
                )
                job = answer.json()
                lines += [line["text"] for line in job["lines"]]
                after = job["last_seq"]
        assert job["state"] == "ok", (job["error"], lines)
        assert any(line.startswith(f"installing {PYPI_NAME}") for line in lines), lines
        assert job["result"]["server"] and job["result"]["version"] == "0.2.0"
        config = yaml.safe_load((tmp_path / "catalyst.yaml").read_text())
        assert job["result"]["server"] in config["servers"]
        installed = (await api.call("GET", "/packages")).json()["packages"]
        assert [(p["package"], p["state"]) for p in installed] == [(PYPI_NAME, "ok")]
        listed = (await api.call("GET", "/packages/installs")).json()["jobs"]
        assert [(j["id"], j["state"], j["lines"]) for j in listed] == [(job["id"], "ok", [])]
        records = await api.audit(actor="root")
        outcomes = {(r["action"], r["target"], r["outcome"]) for r in records}
        assert ("admin.packages.install", f"pypi:{PYPI_NAME}", "ok") in outcomes
        assert ("admin.packages.installed", f"pypi:{PYPI_NAME}", "ok") in outcomes
        again = await api.call("POST", "/packages/installs", {"package": f"pypi:{PYPI_NAME}"})
        assert again.status == 202
        second = again.json()
        async with asyncio.timeout(30):
            while second["state"] == "running":
                second = (await api.call("GET", f"/packages/installs/{second['id']}?wait=5")).json()
        assert second["state"] == "failed" and "already installed" in second["error"]
        assert (await api.call("GET", "/packages/installs/nope")).status == 404
    finally:
        await api.gateway.stop()
