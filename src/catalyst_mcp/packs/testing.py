"""Run a pack's ``tests:`` and say what differs from what each one expects.

* :func:`mismatches` compares an expected value with an actual one: objects match as subsets,
  lists item by item from the start (the actual list may be longer), scalars by equality
  (numbers by value, ``true`` is not ``1``). Each difference is one line naming where it is.
* :func:`run_pack` runs every test of a pack through a :class:`PackProvider`, exactly as a
  client's call would go (arguments checked, limits applied), and says what differs. Live, or
  recording or replaying the traffic of its REST connections (:mod:`catalyst_mcp.packs.recording`).
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import CatalystError, PackError
from catalyst_mcp.packs.recording import (
    HasExchange,
    Recorder,
    Replayer,
    recording_path,
    rest_connectors,
)
from catalyst_mcp.packs.schema import PackTest, TestExpectation
from catalyst_mcp.protocol.versions import LATEST_MODERN

if TYPE_CHECKING:
    from catalyst_mcp.packs.loader import LoadedPack
    from catalyst_mcp.providers import Provider

__all__ = [
    "CaseResult",
    "Mode",
    "Observed",
    "PackRun",
    "check",
    "mismatches",
    "run_pack",
    "run_test",
]

Json = dict[str, Any]
Mode = Literal["live", "record", "replay"]
MAX_REASONS = 10
TEST_GRACE_SECONDS = 5.0  # on top of the pack's own time limit, which should fire first


# ---- expectations ---------------------------------------------------------------------------


def mismatches(expected: Any, actual: Any, where: str = "structured") -> list[str]:
    """Where ``actual`` differs from ``expected`` (empty: it matches)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {_show(actual)}"]
        out: list[str] = []
        for key, value in expected.items():
            at = _child(where, key)
            if key not in actual:
                out.append(f"{at}: missing (keys: {', '.join(map(str, actual)) or 'none'})")
            else:
                out.extend(mismatches(value, actual[key], at))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {_show(actual)}"]
        out = []
        if len(actual) < len(expected):
            out.append(f"{where}: expected at least {len(expected)} items, got {len(actual)}")
        for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
            out.extend(mismatches(want, got, f"{where}[{i}]"))
        return out
    if not _same_scalar(expected, actual):
        return [f"{where}: expected {_show(expected)}, got {_show(actual)}"]
    return []


def _same_scalar(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return expected == actual
    return type(expected) is type(actual) and bool(expected == actual)


def _child(where: str, key: Any) -> str:
    text = str(key)
    return f"{where}.{text}" if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", text) else f"{where}[{key!r}]"


def _show(value: Any, width: int = 80) -> str:
    if isinstance(value, dict):
        return "an object " + _clip(orjson.dumps(value).decode(), width)
    if isinstance(value, list):
        return "a list " + _clip(orjson.dumps(value).decode(), width)
    return _clip(orjson.dumps(value, default=str).decode(), width)


def _clip(text: str, width: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass(frozen=True, slots=True)
class Observed:
    """A call's result, the same shape for tools, resource reads and prompts."""

    is_error: bool
    text: str
    structured: Any = None


def check(expect: TestExpectation, observed: Observed) -> list[str]:
    """What differs from ``expect`` (empty: the test passes)."""
    if observed.is_error != expect.is_error:
        if expect.is_error:
            return [f"expected an error, got success: {_clip(observed.text)}"]
        return [f"expected success, got an error: {_clip(observed.text)}"]
    reasons: list[str] = []
    if expect.structured is not None:
        if observed.structured is None:
            reasons.append("structured: expected structured content, got none")
        else:
            reasons.extend(mismatches(expect.structured, observed.structured))
    needles = [expect.text_contains] if isinstance(expect.text_contains, str) else []
    needles += expect.text_contains if isinstance(expect.text_contains, list) else []
    for needle in needles:
        if needle not in observed.text:
            reasons.append(f"text: does not contain {needle!r} (text: {_clip(observed.text)!r})")
    if len(reasons) > MAX_REASONS:
        reasons[MAX_REASONS:] = [f"... and {len(reasons) - MAX_REASONS} more differences"]
    return reasons


# ---- running tests --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One test's outcome: passed, or the reasons it failed."""

    name: str
    reasons: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.reasons


@dataclass(slots=True)
class PackRun:
    """Every test of one pack; ``error`` when the pack could not be tested at all."""

    pack: str
    file: Path
    results: list[CaseResult] = field(default_factory=list)
    error: str | None = None
    recording: Path | None = None  # written (--record) or read (--replay)
    exchanges: int = 0

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results) + (self.error is not None)


async def run_test(provider: Provider, test: PackTest, timeout: float) -> CaseResult:
    """Call what ``test`` names through ``provider`` and compare the result with its ``expect``."""
    if test.read is not None and test.arguments:
        return CaseResult(test.name, ("a read test takes no arguments: put them in the URI",))
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            observed = await _observe(provider, test)
    except TimeoutError:
        reasons = [f"no result within {timeout:g} s"]
    except CatalystError as error:  # a JSON-RPC error (unknown resource, bad prompt arguments)
        reasons = check(test.expect, Observed(True, error.message))
    except Exception as error:
        reasons = [f"the call crashed: {type(error).__name__}: {_clip(str(error))}"]
    else:
        reasons = check(test.expect, observed)
    return CaseResult(test.name, tuple(reasons), time.monotonic() - started)


async def _observe(provider: Provider, test: PackTest) -> Observed:
    if test.tool is not None:
        ctx = _context("tools/call")
        result = await provider.call(
            "tools/call", {"name": test.tool, "arguments": test.arguments}, ctx
        )
        texts = [c.get("text", "") for c in result.get("content", []) if c.get("type") == "text"]
        return Observed(
            bool(result.get("isError")), "\n".join(texts), result.get("structuredContent")
        )
    if test.read is not None:
        result = await provider.call(
            "resources/read", {"uri": test.read}, _context("resources/read")
        )
        return _read_result(result)
    assert test.prompt is not None  # the schema requires tool, read or prompt
    params = {"name": test.prompt, "arguments": test.arguments}
    ctx = _context("prompts/get")
    result = await provider.call("prompts/get", params, ctx)
    lines = [f"{m['role']}: {m['content'].get('text', '')}" for m in result.get("messages", [])]
    return Observed(False, "\n".join(lines), result)


def _read_result(result: Json) -> Observed:
    texts: list[str] = []
    structured: Any = None
    for i, content in enumerate(result.get("contents", [])):
        if "text" in content:
            texts.append(content["text"])
            if i == 0 and "json" in str(content.get("mimeType", "")):
                try:
                    structured = orjson.loads(content["text"])
                except orjson.JSONDecodeError:
                    structured = None
        else:
            size = len(base64.b64decode(content.get("blob", "")))
            texts.append(f"[blob: {content.get('mimeType', '?')}, {size} bytes]")
    return Observed(False, "\n".join(texts), structured)


def _context(method: str) -> CallContext:
    return CallContext(era="modern", protocol_version=LATEST_MODERN, method=method)


ProviderFactory = Callable[["LoadedPack"], "Provider"]
ConnectorFinder = Callable[["Provider"], "dict[str, HasExchange]"]


async def run_pack(
    loaded: LoadedPack,
    mode: Mode = "live",
    *,
    make_provider: ProviderFactory | None = None,
    find_connectors: ConnectorFinder | None = None,
) -> PackRun:
    """Run every test of ``loaded``; ``record`` and ``replay`` concern its REST connections.

    ``make_provider`` and ``find_connectors`` default to :class:`PackProvider` and
    :func:`rest_connectors` (tests put fakes in their place).
    """
    pack = loaded.pack
    run = PackRun(pack.pack, loaded.file)
    if not pack.tests:
        return run
    if make_provider is None:
        from catalyst_mcp.packs.provider import PackProvider

        make_provider = PackProvider
    try:
        provider = make_provider(loaded)
    except Exception as error:  # e.g. a connector that cannot be set up
        run.error = f"cannot start the pack: {type(error).__name__}: {_clip(str(error))}"
        return run
    try:
        connectors = (find_connectors or rest_connectors)(provider)
        recorder: Recorder | None = None
        replayer: Replayer | None = None
        path = recording_path(loaded.file)
        if connectors and mode == "record":
            recorder = Recorder()
            recorder.attach(connectors.values())
        elif connectors and mode == "replay":
            try:
                replayer = Replayer.load(path)
            except PackError as error:
                run.error = error.message
                return run
            replayer.attach(connectors.values())
            run.recording = path
        timeout = pack.limits.timeout_seconds + TEST_GRACE_SECONDS
        for test in pack.tests:
            result = await run_test(provider, test, timeout)
            if replayer is not None and replayer.misses:
                result = CaseResult(test.name, tuple(replayer.misses), result.seconds)
                replayer.misses.clear()
            run.results.append(result)
        if recorder is not None:
            try:
                run.exchanges = recorder.save(path)
            except OSError as error:
                run.error = f"cannot write the recording {path}: {error.strerror}"
            else:
                run.recording = path
    finally:
        await provider.stop()
    return run
