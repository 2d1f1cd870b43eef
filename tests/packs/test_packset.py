"""Hot reload, in-process: a PackSet over a folder of SQLite packs, applied through a Registry."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.errors import NotFound
from catalyst_mcp.packs import loader
from catalyst_mcp.packs.packset import SUFFIXES, PackSet, is_pack_name
from catalyst_mcp.providers import Provider
from catalyst_mcp.registry import Registry
from tests.fakes import FakeProvider
from tests.live import poll
from tests.packs.conftest import people_pack, write_pack

BROKEN_TOOLS = "pack: people\ntools: 3\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "packs"
    path.mkdir()
    return path


@pytest.fixture
def pack(sqlite_db: Path) -> dict[str, Any]:
    return people_pack(f"sqlite:///{sqlite_db}")


class Setup:
    """A registry with a change recorder and a PackSet over ``folder``."""

    def __init__(self, folder: Path, *providers: Provider, retire_after: float = 60.0) -> None:
        self.registry = Registry()
        for provider in providers:
            self.registry.add(provider)
        self.changes: list[set[str]] = []
        self.registry.change_listeners.append(lambda kinds: self.changes.append(set(kinds)))
        self.packs = PackSet(folder, self.registry, retire_after=retire_after)

    def load(self) -> PackSet:
        """Load the folder, as at start-up; changes are recorded from then on."""
        self.packs.load_all()
        self.changes.clear()
        return self.packs

    def tools(self) -> list[str]:
        return [t["name"] for t in self.registry.items("tools")]

    def problems(self) -> list[str]:
        return [str(p) for p in self.packs.problems]


def with_tool(pack: dict[str, Any], name: str) -> dict[str, Any]:
    data = copy.deepcopy(pack)
    data["tools"].append(
        {
            "name": name,
            "description": "Everyone's name",
            "sql": {"connection": "db", "statement": "SELECT name FROM people ORDER BY id"},
        }
    )
    return data


PEOPLE_TOOLS = ["people__find", "people__count", "people__all", "people__rename"]


def test_the_folder_is_loaded_at_start(folder: Path, pack: dict[str, Any]) -> None:
    write_pack(folder, "people.yaml", pack)
    broken = write_pack(folder, "broken.yaml", "pack: broken\ntools: 3\n")
    write_pack(folder, "skipped.yaml.example", "not even yaml: [")
    write_pack(folder, ".#people.yaml", "an editor's lock file")
    setup = Setup(folder)
    setup.load()
    assert setup.tools() == PEOPLE_TOOLS
    assert setup.problems() == [f"{broken}:2:1: tools: Input should be a valid list"]
    assert list(setup.packs.providers) == [folder / "people.yaml"]


def test_a_missing_folder_means_no_packs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = Setup(tmp_path / "nowhere")
    with caplog.at_level("INFO", "catalyst.packs"):
        setup.load()
    assert setup.tools() == [] and setup.problems() == []
    assert "no knowledge packs folder" in caplog.text


async def test_a_valid_edit_is_swapped_in_and_told(folder: Path, pack: dict[str, Any]) -> None:
    file = write_pack(folder, "people.yaml", pack)
    setup = Setup(folder)
    setup.load()
    old = setup.packs.providers[file]
    write_pack(folder, "people.yaml", with_tool(pack, "names"))
    await setup.packs.reload([file])
    assert setup.changes == [{"tools"}]
    assert setup.tools() == [*PEOPLE_TOOLS, "people__names"]
    new = setup.packs.providers[file]
    assert new is not old
    assert setup.registry.resolve("tools", "people__names") == (new, "names")
    await setup.packs.close()


async def test_an_unchanged_save_changes_nothing(folder: Path, pack: dict[str, Any]) -> None:
    file = write_pack(folder, "people.yaml", pack)
    setup = Setup(folder)
    setup.load()
    old = setup.packs.providers[file]
    write_pack(folder, "people.yaml", pack)
    await setup.packs.reload([file, file.absolute()])
    assert setup.packs.providers[file] is old
    assert setup.changes == []


async def test_a_description_edit_swaps_without_telling(folder: Path, pack: dict[str, Any]) -> None:
    file = write_pack(folder, "people.yaml", pack)
    setup = Setup(folder)
    setup.load()
    old = setup.packs.providers[file]
    write_pack(folder, "people.yaml", {**pack, "description": "Now described"})
    await setup.packs.reload([file])
    assert setup.packs.providers[file] is not old
    assert setup.packs.providers[file].instructions == "Now described"
    assert setup.changes == []
    await setup.packs.close()


async def test_an_invalid_edit_keeps_the_last_good_version_until_fixed(
    folder: Path, pack: dict[str, Any]
) -> None:
    file = write_pack(folder, "people.yaml", pack)
    setup = Setup(folder)
    setup.load()
    old = setup.packs.providers[file]
    write_pack(folder, "people.yaml", BROKEN_TOOLS)
    await setup.packs.reload([file])
    assert setup.problems() == [f"{file}:2:1: tools: Input should be a valid list"]
    assert setup.packs.providers[file] is old
    assert setup.registry.resolve("tools", "people__find") == (old, "find")
    assert setup.changes == []
    write_pack(folder, "people.yaml", with_tool(pack, "names"))
    await setup.packs.reload([file])
    assert setup.problems() == []
    assert setup.tools() == [*PEOPLE_TOOLS, "people__names"]
    assert setup.changes == [{"tools"}]
    await setup.packs.close()


async def test_a_fix_back_to_the_served_version_clears_the_problems(
    folder: Path, pack: dict[str, Any]
) -> None:
    file = write_pack(folder, "people.yaml", pack)
    setup = Setup(folder)
    setup.load()
    write_pack(folder, "people.yaml", BROKEN_TOOLS)
    await setup.packs.reload([file])
    write_pack(folder, "people.yaml", pack)
    await setup.packs.reload([file])
    assert setup.problems() == []
    assert setup.changes == []


async def test_deleting_a_file_removes_its_pack(folder: Path, pack: dict[str, Any]) -> None:
    file = write_pack(folder, "people.yaml", pack)
    setup = Setup(folder)
    setup.load()
    file.unlink()
    await setup.packs.reload([file])
    assert setup.tools() == []
    assert setup.changes == [{"tools"}]
    assert setup.packs.providers == {}
    with pytest.raises(NotFound):
        setup.registry.resolve("tools", "people__find")
    await setup.packs.close()


async def test_deleting_a_broken_file_clears_its_problems(folder: Path) -> None:
    file = write_pack(folder, "broken.yaml", BROKEN_TOOLS)
    setup = Setup(folder)
    setup.load()
    assert setup.problems() != []
    file.unlink()
    await setup.packs.reload([file])
    assert setup.problems() == []


async def test_a_new_file_adds_a_pack(folder: Path, pack: dict[str, Any]) -> None:
    setup = Setup(folder)
    setup.load()
    file = write_pack(folder, "people.yaml", pack)
    await setup.packs.reload([file.absolute()])  # as a watcher reports it
    assert setup.tools() == PEOPLE_TOOLS
    assert setup.changes == [{"tools"}]


async def test_renaming_to_example_removes_the_pack(folder: Path, pack: dict[str, Any]) -> None:
    file = write_pack(folder, "people.yaml", pack)
    setup = Setup(folder)
    setup.load()
    example = file.rename(folder / "people.yaml.example")
    await setup.packs.reload([file, example])
    assert setup.tools() == []
    assert setup.packs.providers == {} and setup.problems() == []
    await setup.packs.close()


async def test_paths_that_are_no_pack_files_are_ignored(
    folder: Path, tmp_path: Path, pack: dict[str, Any]
) -> None:
    setup = Setup(folder)
    setup.load()
    elsewhere = write_pack(tmp_path, "people.yaml", pack)
    hidden = write_pack(folder, ".people.yaml", pack)
    backup = write_pack(folder, "people.yaml~", pack)
    await setup.packs.reload([elsewhere, hidden, backup, folder])
    assert setup.tools() == [] and setup.problems() == []
    assert not any(setup.packs.concerns(p) for p in (elsewhere, hidden, backup, folder))
    assert setup.packs.concerns(folder.absolute() / "new.yml")


async def test_the_first_pack_of_a_name_keeps_it(folder: Path, pack: dict[str, Any]) -> None:
    first = write_pack(folder, "a.yaml", pack)
    second = write_pack(folder, "b.yaml", with_tool(pack, "names"))
    setup = Setup(folder)
    setup.load()
    assert setup.tools() == PEOPLE_TOOLS
    assert setup.problems() == [f"{second}: pack 'people' is already in {first}"]
    # Edits of the other file change nothing while the name is taken ...
    write_pack(folder, "b.yaml", with_tool(pack, "other"))
    await setup.packs.reload([second])
    assert setup.tools() == PEOPLE_TOOLS
    assert setup.problems() == [f"{second}: pack 'people' is already in {first}"]
    # ... and once the name is free, the waiting file is served.
    first.unlink()
    await setup.packs.reload([first])
    assert setup.tools() == [*PEOPLE_TOOLS, "people__other"]
    assert setup.problems() == []
    assert list(setup.packs.providers) == [second]
    await setup.packs.close()


async def test_a_new_file_with_a_taken_name_is_a_problem(
    folder: Path, pack: dict[str, Any]
) -> None:
    first = write_pack(folder, "b.yaml", pack)
    setup = Setup(folder)
    setup.load()
    second = write_pack(folder, "a.yaml", with_tool(pack, "names"))  # sorts first: still second
    await setup.packs.reload([second])
    assert setup.tools() == PEOPLE_TOOLS
    assert setup.problems() == [f"{second}: pack 'people' is already in {first}"]
    assert setup.changes == []


async def test_renaming_a_pack_moves_its_namespace(folder: Path, pack: dict[str, Any]) -> None:
    file = write_pack(folder, "people.yaml", pack)
    setup = Setup(folder)
    setup.load()
    write_pack(folder, "people.yaml", {**pack, "pack": "staff"})
    await setup.packs.reload([file])
    assert setup.tools() == [name.replace("people__", "staff__") for name in PEOPLE_TOOLS]
    assert [p.name for p in setup.registry.providers] == ["pack:staff"]
    assert setup.changes == [{"tools"}]
    await setup.packs.close()


async def test_a_namespace_a_server_has_is_not_served(folder: Path, pack: dict[str, Any]) -> None:
    file = write_pack(folder, "people.yaml", {**pack, "pack": "staff"})
    setup = Setup(folder, FakeProvider("people"))
    setup.load()
    write_pack(folder, "people.yaml", pack)
    await setup.packs.reload([file])
    assert setup.problems() == [f"{file}: not served: namespace 'people' is already used"]
    assert [p.name for p in setup.registry.providers] == ["pack:staff", "people"]
    await setup.packs.close()


async def test_a_replaced_pack_is_stopped_after_its_calls(
    folder: Path, pack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write_pack(folder, "people.yaml", pack)
    setup = Setup(folder)
    setup.load()
    old = setup.packs.providers[file]
    calls_done = asyncio.Event()
    events: list[str] = []

    async def drain(timeout: float) -> None:
        events.append(f"drain {timeout}")
        await calls_done.wait()

    async def stop() -> None:
        events.append("stop")

    monkeypatch.setattr(old, "drain", drain)
    monkeypatch.setattr(old, "stop", stop)
    write_pack(folder, "people.yaml", with_tool(pack, "names"))
    await setup.packs.reload([file])
    await poll(lambda: events, what="drain called")
    assert events == ["drain 60.0"]  # swapped in at once; the old one still finishing
    calls_done.set()
    await poll(lambda: "stop" in events, what="the old pack stopped")
    assert events == ["drain 60.0", "stop"]


async def test_close_stops_retiring_packs_at_once(
    folder: Path, pack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write_pack(folder, "people.yaml", pack)
    setup = Setup(folder)
    setup.load()
    old = setup.packs.providers[file]
    stopped = asyncio.Event()

    async def drain(timeout: float) -> None:
        await asyncio.Event().wait()  # a call that never ends

    async def stop() -> None:
        stopped.set()

    monkeypatch.setattr(old, "drain", drain)
    monkeypatch.setattr(old, "stop", stop)
    file.unlink()
    await setup.packs.reload([file])
    assert not stopped.is_set()
    await setup.packs.close()
    assert stopped.is_set()


async def test_a_single_pack_file_as_the_path(folder: Path, pack: dict[str, Any]) -> None:
    file = write_pack(folder, "people.yaml", pack)
    write_pack(folder, "other.yaml", {**pack, "pack": "other"})
    setup = Setup(file)
    setup.load()
    assert setup.tools() == PEOPLE_TOOLS
    assert setup.packs.watch_root == folder.absolute()
    assert not setup.packs.concerns(folder / "other.yaml")
    write_pack(folder, "people.yaml", with_tool(pack, "names"))
    await setup.packs.reload([file.absolute(), folder / "other.yaml"])
    assert setup.tools() == [*PEOPLE_TOOLS, "people__names"]
    await setup.packs.close()


def test_pack_names_match_the_loader() -> None:
    assert loader.PACK_SUFFIXES == SUFFIXES
    assert is_pack_name("crm.yaml") and is_pack_name("crm.yml")
    for name in ("crm.yaml.example", ".crm.yaml", ".#crm.yaml", "crm.yaml~", "crm.json", "4913"):
        assert not is_pack_name(name), name


async def test_rescan_applies_what_changed_while_nobody_watched(
    folder: Path, pack: dict[str, Any]
) -> None:
    kept = write_pack(folder, "kept.yaml", {**pack, "pack": "kept"})
    edited = write_pack(folder, "edited.yaml", {**pack, "pack": "edited"})
    gone = write_pack(folder, "gone.yaml", {**pack, "pack": "gone"})
    setup = Setup(folder)
    setup.load()
    unchanged = setup.packs.providers[kept]
    write_pack(folder, "edited.yaml", with_tool({**pack, "pack": "edited"}, "names"))
    gone.unlink()
    added = write_pack(folder, "added.yaml", {**pack, "pack": "added"})
    await setup.packs.rescan()
    assert list(setup.packs.providers) == [added, edited, kept]
    assert setup.packs.providers[kept] is unchanged
    assert "edited__names" in setup.tools()
    await setup.packs.rescan()
    assert setup.changes == [{"tools"}, {"tools"}, {"tools"}]  # added, edited, gone: once each
    await setup.packs.close()
