"""Packs through the whole gateway: the bundled crm pack over a real socket, with the SDK client,
and pack problems in /ready."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import Settings
from tests.conftest import ROOT
from tests.live import live_gateway
from tests.packs.conftest import write_pack

pytestmark = pytest.mark.network


@pytest.fixture
def packs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "packs"
    folder.mkdir()
    for name in ("crm.yaml", "crm.db", "crm.md"):
        shutil.copy(ROOT / "knowledge-packs" / name, folder / name)
    return folder


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_the_crm_pack_through_the_gateway(packs_dir: Path, mode: str) -> None:
    settings: dict[str, Any] = {"packs": {"path": str(packs_dir)}}
    async with (
        live_gateway(settings) as gw,
        Client(gw.url, mode=mode, cache=None, read_timeout_seconds=20) as client,
    ):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {
            "crm__find_customers",
            "crm__get_customer",
            "crm__list_customers",
            "crm__orders_by_id",
            "crm__customer_orders",
            "crm__revenue_by_customer",
        }
        assert tools["crm__find_customers"].input_schema["required"] == ["name"]
        result = await client.call_tool("crm__find_customers", {"name": "Ada"})
        assert not result.is_error
        assert result.structured_content == {
            "rows": [
                {"id": 1, "name": "Ada Lovelace", "email": "ada@example.com", "city": "London"}
            ],
            "truncated": False,
        }
        top = await client.call_tool("crm__revenue_by_customer", {"top": 1})
        assert top.structured_content is not None
        assert top.structured_content["rows"][0]["name"] == "Tim Berners-Lee"
        bad = await client.call_tool("crm__get_customer", {"id": "one"})
        assert bad.is_error
        assert "must be of type integer" in bad.content[0].text  # type: ignore[union-attr]
        read = await client.read_resource("catalyst://crm/crm://customers/3")
        assert '"name": "Alan Turing"' in read.contents[0].text  # type: ignore[union-attr]
        prompt = await client.get_prompt("crm__account_review", {"customer": "3"})
        assert "crm://customers/3" in prompt.messages[0].content.text  # type: ignore[union-attr]


async def test_pack_problems_are_reported_by_ready(packs_dir: Path) -> None:
    broken = write_pack(packs_dir, "broken.yaml", "pack: broken\ntools: 3\n")
    async with live_gateway({"packs": {"path": str(packs_dir)}}) as gw:
        async with httpx2.AsyncClient() as http:
            response = await http.get(f"{gw.base}/ready")
        report = response.json()
        assert response.status_code == 200
        assert report["status"] == "degraded"
        assert report["pack_problems"] == [f"{broken}:2:1: tools: Input should be a valid list"]
        assert [s["name"] for s in report["servers"]] == ["pack:crm"]


def test_a_pack_whose_namespace_is_a_servers_is_not_served(packs_dir: Path) -> None:
    settings = Settings.model_validate(
        {"packs": {"path": str(packs_dir)}, "servers": {"crm": {"url": "http://127.0.0.1:9/mcp"}}}
    )
    gateway = Gateway(settings)
    assert [p.name for p in gateway.registry.providers] == ["crm"]
    assert "namespace 'crm' is already used" in str(gateway.pack_problems[0])


def test_no_packs_path_loads_no_packs() -> None:
    gateway = Gateway(Settings())
    assert gateway.registry.providers == [] and gateway.pack_problems == []
