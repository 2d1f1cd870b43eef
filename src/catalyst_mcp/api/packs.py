"""``/packs``: the knowledge packs this gateway serves, and why a pack file is not served.

Read from the gateway's :class:`~catalyst_mcp.packs.packset.PackSet`: each pack file with its
state (``ready``; ``stale``: its last edit is invalid and the last good version still serves;
``failed``: never loaded) and its problems as ``file:line:col`` (the same text ``/ready`` gives
as ``pack_problems``). Administrators only (file paths and problems say how the gateway is
set up); no database needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from catalyst_mcp.api.router import ApiRequest, Route

if TYPE_CHECKING:
    from catalyst_mcp.packs.packset import PackSet

__all__ = ["Pack", "PackHandlers", "PackList", "PackProblem"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class PackProblem(_Out):
    file: str = Field(description="The pack file.")
    line: int | None = Field(description="1-based line (null: the file as a whole).")
    column: int | None = Field(description="1-based column, when known.")
    message: str = Field(description="What is wrong there.")
    text: str = Field(description="The problem as one line: file:line:col: message.")


class Pack(_Out):
    file: str = Field(description="The pack file's name in the packs folder.")
    name: str | None = Field(
        description="The pack's name, its tools' namespace (null: its file never loaded)."
    )
    server: str | None = Field(description="Its name in the server list (pack:<name>).")
    status: Literal["ready", "stale", "failed"] = Field(
        description="ready: served as the file says. stale: the file's last edit is invalid, "
        "the last good version still serves. failed: not served."
    )
    tools: int = Field(description="Tools it serves.")
    resources: int = Field(description="Resources it serves.")
    prompts: int = Field(description="Prompts it serves.")
    problems: list[PackProblem] = Field(description="Why the file (as it is now) is not served.")


class PackList(_Out):
    path: str | None = Field(description="The packs folder (null: packs are off).")
    watching: bool = Field(description="Edits are applied while the gateway runs.")
    packs: list[Pack] = Field(description="Every pack file, by name.")


class PackHandlers:
    def __init__(self, packs: PackSet | None, watching: bool = False) -> None:
        self.packs = packs
        self.watching = watching

    async def packs_of(self, request: ApiRequest) -> PackList:
        packs = self.packs
        if packs is None:
            return PackList(path=None, watching=False, packs=[])
        by_file: dict[str, list[PackProblem]] = {}
        for problem in packs.problems:
            by_file.setdefault(Path(problem.file).name, []).append(
                PackProblem(
                    file=problem.file,
                    line=problem.line,
                    column=problem.column,
                    message=problem.message,
                    text=str(problem),
                )
            )
        found: list[Pack] = []
        served = packs.providers
        for file, provider in served.items():
            health = provider.health()
            problems = by_file.pop(file.name, [])
            found.append(
                Pack(
                    file=file.name,
                    name=provider.namespace,
                    server=provider.name,
                    status="stale" if problems else "ready",
                    tools=_count(health.get("tools")),
                    resources=_count(health.get("resources")),
                    prompts=_count(health.get("prompts")),
                    problems=problems,
                )
            )
        for name, problems in by_file.items():
            found.append(
                Pack(
                    file=name,
                    name=None,
                    server=None,
                    status="failed",
                    tools=0,
                    resources=0,
                    prompts=0,
                    problems=problems,
                )
            )
        found.sort(key=lambda pack: pack.file)
        return PackList(path=str(packs.path), watching=self.watching, packs=found)

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/packs",
                self.packs_of,
                action="admin.packs.list",
                summary="List the knowledge pack files: served, stale or failed, with problems",
                tag="packs",
                response=PackList,
                needs_storage=False,
            )
        ]


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0
