"""``GET /audit`` newest first: ``order=desc`` pages with ``before_seq``."""

from __future__ import annotations

from tests.api.conftest import ToolsApi, error_of


async def test_newest_first_pages_backwards(tools_api: ToolsApi) -> None:
    for i in range(5):
        await tools_api.call("POST", "/tools/fake__echo/call", {"text": str(i)}, token="bob")
    every = await tools_api.audit(action="tools/call")
    seqs = [r["seq"] for r in every]
    page = (await tools_api.call("GET", "/audit?action=tools/call&order=desc&limit=3")).json()
    assert [r["seq"] for r in page["records"]] == seqs[::-1][:3]
    assert page["next_after_seq"] is None
    before = page["next_before_seq"]
    assert before == seqs[-3]
    rest = await tools_api.call(
        "GET", f"/audit?action=tools/call&order=desc&limit=3&before_seq={before}"
    )
    assert [r["seq"] for r in rest.json()["records"]] == seqs[::-1][3:]
    assert rest.json()["next_before_seq"] is None
    oldest = (await tools_api.call("GET", "/audit?action=tools/call&limit=3")).json()
    assert oldest["next_before_seq"] is None and oldest["next_after_seq"] == seqs[2]


async def test_paging_must_fit_the_order(tools_api: ToolsApi) -> None:
    for query in ("order=desc&after_seq=1", "before_seq=5", "order=sideways"):
        response = await tools_api.call("GET", f"/audit?{query}")
        assert response.status == 422, query
        assert error_of(response)["code"] == "invalid"
