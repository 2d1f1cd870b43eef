"""The traversal corpus: hostile paths against every tool of the filesystem server, 0 escapes.

A secret file and a marker file lie next to the served folder (and a sibling folder whose name
starts with the root's); every hostile path, given to every tool that takes a path, must come
back as an error or as something inside the root, never with the secret or the marker, and
nothing outside may change. Then races: a folder (and a file) swapped for a symlink to the
outside while reads run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from catalyst_mcp.errors import BuiltinError, ResourceNotFound
from catalyst_mcp.servers.config import FilesystemOptions
from catalyst_mcp.servers.filesystem import FilesystemServer
from catalyst_mcp.servers.filesystem.paths import Root, locate, resolve
from tests.servers.conftest import call, context, text

SECRET = f"TOP-SECRET-{uuid.uuid4().hex}"
MARKER = f"outside-marker-{uuid.uuid4().hex}"


def _tree(tmp: Path) -> tuple[Path, Path]:
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / f"{MARKER}.txt").write_text(SECRET)
    root = tmp / "root"
    root.mkdir()
    evil = tmp / "root_evil"  # shares the root's name as a prefix
    evil.mkdir()
    (evil / "secret.txt").write_text(SECRET)
    (evil / f"{MARKER}.txt").write_text(SECRET)
    (root / "ok.txt").write_text("fine\n")
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_text("inner\n")
    links = {
        "link_out": "../outside",
        "link_out_file": "../outside/secret.txt",
        "link_abs": str(outside / "secret.txt"),
        "link_abs_dir": str(outside),
        "link_evil": str(evil),
        "dotdot_link": "..",
        "deep_dotdot": "sub/../../outside",
        "link_in": "sub",
        "link_in_abs": str(root / "sub" / "inner.txt"),
        "loop_a": "loop_b",
        "loop_b": "loop_a",
        "self": "self",
        "to_root_link": str(tmp),
        "dev_null": "/dev/null",
        "proc_self": "/proc/self/root/etc/passwd",
        "chain1": "chain2",
        "chain2": "sub/../link_out",
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    (root / "sub" / "up").symlink_to("../../outside")
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as sock, contextlib.suppress(OSError):
        sock.bind(str(root / "sock"))  # (a path too long for AF_UNIX: the corpus works without)
    return root, outside


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    return _tree(tmp_path)


def _hostile(root: Path, outside: Path) -> list[str]:
    r = str(root)
    o = str(outside)
    return [
        "..",
        "../",
        "../outside/secret.txt",
        "../../../../../../../../etc/passwd",
        "/etc/passwd",
        "/",
        "//etc/passwd",
        f"{o}/secret.txt",
        f"{r}/../outside/secret.txt",
        f"{r}/sub/../../outside/secret.txt",
        f"{r}_evil/secret.txt",
        f"{r}_evil",
        "sub/../../outside/secret.txt",
        "sub/./../.././outside/secret.txt",
        "./../outside/secret.txt",
        "sub/" + "../" * 50 + "etc/passwd",
        "/".join([".."] * 300),
        "link_out/secret.txt",
        "link_out",
        "link_out_file",
        "link_abs",
        "link_abs_dir/secret.txt",
        "link_evil/secret.txt",
        "dotdot_link/outside/secret.txt",
        "dotdot_link",
        "deep_dotdot/secret.txt",
        "link_in/../../outside/secret.txt",
        "link_in/../link_out/secret.txt",
        "sub/up/secret.txt",
        "chain1/secret.txt",
        "to_root_link/outside/secret.txt",
        "proc_self",
        "dev_null",
        "loop_a",
        "loop_a/x",
        "self/x",
        "fifo",
        "sock",
        "%2e%2e/outside/secret.txt",
        "%2E%2E%2Foutside%2Fsecret.txt",
        "..%2foutside%2fsecret.txt",
        f"file://{r}/%2e%2e/outside/secret.txt",
        f"file://{r}/..%2Foutside%2Fsecret.txt",
        f"file://{o}/secret.txt",
        "file:///etc/passwd",
        "file://evil.example/etc/passwd",
        f"file://{r}/ok.txt%00/../../outside/secret.txt",
        "ok.txt\x00../../outside/secret.txt",
        "\x00",
        "x" * 5000,
        "a/" * 3000,
        "\uff0e\uff0e/outside/secret.txt",  # fullwidth full stops
        "\u2025/outside/secret.txt",  # two dot leader
        "\u2024\u2024/outside/secret.txt",  # one dot leaders
        ".\u200b./outside/secret.txt",  # a zero-width space between the dots
        "..\\outside\\secret.txt",
        "..\\..\\..\\etc\\passwd",
        "~/../../etc/passwd",
        "~root/.bashrc",
        " ../outside/secret.txt",
        "../outside/secret.txt ",
        "sub\n/../../outside/secret.txt",
        "...",
        ".../outside/secret.txt",
        f"{r}/link_out/secret.txt",
        f"{r}/dotdot_link/{MARKER}.txt",
        f"file://localhost{o}/secret.txt",
    ]


def _options(root: Path, **extra: Any) -> FilesystemOptions:
    return FilesystemOptions.model_validate(
        {"roots": [{"path": str(root), "writable": True}], "allow_delete": True, **extra}
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_no_escape(tool: str, path: str, result: dict[str, Any]) -> None:
    blob = orjson.dumps(result).decode()
    assert SECRET not in blob, f"{tool}({path!r}) returned the secret: {blob[:300]}"
    if MARKER not in path:  # (a path may echo the name it was given)
        assert MARKER not in blob, f"{tool}({path!r}) listed the outside: {blob[:300]}"
    assert "root:x:0:0" not in blob, f"{tool}({path!r}) read /etc/passwd"
    assert "Traceback" not in blob


TOOLS = [
    ("read_file", {}),
    ("read_file", {"offset": 0, "length": 100}),
    ("file_info", {}),
    ("list_directory", {"depth": 3}),
    ("search_files", {"content": "SECRET"}),
    ("search_files", {"glob": "**"}),
    ("write_file", {"content": "pwned"}),
    ("write_file", {"suffix": "/new.txt", "content": "pwned"}),
    ("edit_file", {"edits": [{"old_text": "SECRET", "new_text": "x"}]}),
    ("create_directory", {"suffix": "/made"}),
    ("move", {"to": "moved_here"}),
    ("move", {"from": "ok.txt"}),
    ("delete", {}),
]


def _arguments(tool: str, path: str, extra: dict[str, Any]) -> dict[str, Any]:
    extra = dict(extra)
    if tool == "move":
        if "to" in extra:
            return {"source": path, "destination": extra["to"]}
        return {"source": extra["from"], "destination": path}
    return {"path": path + extra.pop("suffix", ""), **extra}


@pytest.mark.parametrize("follow", [True, False], ids=["follow", "nofollow"])
async def test_the_traversal_corpus_never_escapes(tmp_path: Path, follow: bool) -> None:
    """Each hostile path gets a fresh tree and every tool; nothing outside the root is read,
    listed or changed."""
    count = len(_hostile(tmp_path, tmp_path))
    assert count >= 60
    refused = calls = 0
    for index in range(count):
        case = tmp_path / f"case{index}"
        case.mkdir()
        root, outside = _tree(case)
        path = _hostile(root, outside)[index]
        before = _snapshot(outside), _snapshot(case / "root_evil")
        server = FilesystemServer(
            "files", "files", _options(root, follow_symlinks=follow), timeout=10
        )
        for tool, extra in TOOLS:
            result = await call(server, tool, **_arguments(tool, path, extra))
            _assert_no_escape(tool, path, result)
            refused += bool(result.get("isError"))
            calls += 1
        uri = path if path.startswith("file:") else f"file://{path}"
        try:
            resource = await server.read_resource(uri, context())
        except (BuiltinError, ResourceNotFound):
            pass  # every refusal is one of ours, never a stray OSError
        else:
            _assert_no_escape("resources/read", path, resource)
        assert (_snapshot(outside), _snapshot(case / "root_evil")) == before, path
        assert sorted(p.name for p in outside.iterdir()) == sorted(["secret.txt", f"{MARKER}.txt"])
    assert refused > calls * 0.8  # nearly all of it is refused outright


async def test_refusals_say_what_is_wrong(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    server = FilesystemServer("files", "files", _options(root), timeout=10)
    cases = {
        "../outside/secret.txt": "leads outside the served folder",
        "/etc/passwd": "is outside the served folders",
        "link_out/secret.txt": "symlink to a place outside",
        "link_abs": "symlink to a place outside",
        "loop_a": "too many levels of symlinks",
        "fifo": "is a fifo",
        "dev_null": "symlink to a place outside",
        "ok.txt\x00x": "NUL",
        "x" * 5000: "is longer than 4096 characters",
        "sub": "is a folder, not a file",
        "nope/nothing.txt": "no such folder",
        "nothing.txt": "no such file",
    }
    for path, expected in cases.items():
        result = await call(server, "read_file", path=path)
        assert result["isError"] is True, path
        assert expected in text(result), (path, text(result))
    nofollow = FilesystemServer("f", "f", _options(root, follow_symlinks=False), timeout=10)
    result = await call(nofollow, "read_file", path="link_in/inner.txt")
    assert "symlinks are not followed" in text(result)


async def test_symlinks_inside_the_root_are_followed(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    server = FilesystemServer("files", "files", _options(root), timeout=10)
    for path in ["link_in/inner.txt", "link_in_abs", "sub/../link_in/inner.txt", "chain0"]:
        if path == "chain0":
            os.symlink("link_in/../link_in_abs", root / "chain0")
        result = await call(server, "read_file", path=path)
        assert not result.get("isError"), text(result)
        assert result["structuredContent"]["text"] == "inner\n"


def test_a_device_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    with (
        resolve(Root.of(str(root)), ["null"], follow_symlinks=True) as resolved,
        pytest.raises(BuiltinError, match="is a device"),
    ):
        resolved.open_file()


def test_locate_picks_the_longest_matching_root(tmp_path: Path) -> None:
    outer = Root.of(str(tmp_path))
    inner = Root.of(str(tmp_path / "in"))
    assert locate([outer, inner], f"{tmp_path}/in/x")[0] is inner
    assert locate([outer, inner], f"{tmp_path}/inx")[0] is outer
    assert locate([inner, outer], "rel")[0] is inner  # relative: the first root


# ---- races -----------------------------------------------------------------------------------


def _swapper(root: Path, outside: Path, stop: threading.Event) -> threading.Thread:
    """Swap root/swap between a real folder (with f.txt = INSIDE) and a symlink to the outside
    (whose f.txt is the secret), and root/swapfile between a file and a symlink to the secret."""
    (outside / "f.txt").write_text(SECRET)
    parked = root / "parked"
    parked.mkdir()
    (parked / "f.txt").write_text("INSIDE")
    (root / "swapfile").write_text("INSIDE")

    def run() -> None:
        while not stop.is_set():
            try:  # to the outside ...
                os.rename(root / "swap", root / "parked")
                os.symlink(outside, root / "swap")
                os.rename(root / "swapfile", root / "parkedfile")
                os.symlink(outside / "f.txt", root / "swapfile")
                time.sleep(0)
                # ... and back
                os.unlink(root / "swap")
                os.rename(root / "parked", root / "swap")
                os.unlink(root / "swapfile")
                os.rename(root / "parkedfile", root / "swapfile")
                time.sleep(0)
            except OSError:
                pass

    os.rename(parked, root / "swap")
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_folder_swapped_for_a_symlink_never_lets_a_read_escape(tmp_path: Path) -> None:
    root, outside = _tree(tmp_path)
    stop = threading.Event()
    thread = _swapper(root, outside, stop)
    seen = {"inside": 0, "refused": 0}
    deadline = time.monotonic() + 2.0
    try:
        while time.monotonic() < deadline:
            for parts in (["swap", "f.txt"], ["swapfile"], ["sub", "..", "swap", "f.txt"]):
                try:
                    with resolve(Root.of(str(root)), parts, follow_symlinks=True) as resolved:
                        fd, _ = resolved.open_file()
                        try:
                            data = os.read(fd, 100)
                        finally:
                            os.close(fd)
                except BuiltinError:
                    seen["refused"] += 1
                    continue
                assert SECRET.encode() not in data, "a read escaped the root"
                assert data == b"INSIDE"
                seen["inside"] += 1
    finally:
        stop.set()
        thread.join()
    assert seen["inside"] > 0 and seen["refused"] > 0, seen  # both sides of the race were hit


async def test_the_server_under_a_swapping_race_returns_no_secret(tmp_path: Path) -> None:
    root, outside = _tree(tmp_path)
    server = FilesystemServer("files", "files", _options(root), timeout=10)
    stop = threading.Event()
    thread = _swapper(root, outside, stop)
    answers = []
    try:
        for _ in range(150):
            for tool, args in [
                ("read_file", {"path": "swap/f.txt"}),
                ("read_file", {"path": "swapfile"}),
                ("list_directory", {"path": "swap"}),
                ("search_files", {"path": "swap", "content": "SECRET"}),
                (
                    "edit_file",
                    {"path": "swap/f.txt", "edits": [{"old_text": "I", "new_text": "I"}]},
                ),
            ]:
                result = await call(server, tool, **args)
                _assert_no_escape(tool, args["path"], result)
                answers.append(result)
    finally:
        stop.set()
        thread.join()
    assert (outside / "f.txt").read_text() == SECRET
    assert any(not a.get("isError") for a in answers)
