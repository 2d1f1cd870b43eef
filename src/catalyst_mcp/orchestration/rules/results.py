"""A tool result as rules see it, and the redaction of its fields.

In a condition, ``result`` is the result's ``structuredContent`` when it has one, else the JSON
value of its text when that text is JSON, else the text itself (all text blocks joined);
``is_error`` is its ``isError``.

A ``result.PATH`` redaction applies to ``structuredContent`` and to every text block whose text
is a JSON object or array (many servers send the same data both ways: masking one and not the
other would leak it); ``result`` alone replaces the structured content and every text block.
Images, audio and resource blocks are left as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from catalyst_mcp.orchestration.rules.paths import Step, redact_at

__all__ = ["redact_result", "result_variables"]


def result_variables(result: Mapping[str, Any]) -> tuple[Any, bool]:
    """``result`` and ``is_error`` for conditions."""
    is_error = result.get("isError") is True
    structured = result.get("structuredContent")
    if structured is not None:
        return structured, is_error
    texts = [
        block.get("text", "")
        for block in result.get("content") or ()
        if isinstance(block, dict) and block.get("type") == "text"
    ]
    text = "\n".join(t for t in texts if isinstance(t, str))
    if len(texts) == 1 and text[:1] in ("{", "["):
        try:
            return orjson.loads(text), is_error
        except orjson.JSONDecodeError:
            pass
    return text, is_error


def redact_result(
    result: dict[str, Any], paths: Sequence[tuple[Step, ...]], mask: Any
) -> tuple[dict[str, Any], int]:
    """A copy of ``result`` with the values at ``paths`` replaced by ``mask``; how many."""
    out = dict(result)
    count = 0
    whole = any(not steps for steps in paths)
    parts = [steps for steps in paths if steps]
    if "structuredContent" in out:
        if whole:
            out["structuredContent"] = mask if isinstance(mask, dict) else {"redacted": mask}
            count += 1
        elif parts:
            structured = copy.deepcopy(out["structuredContent"])
            for steps in parts:
                count += redact_at(structured, steps, mask)
            out["structuredContent"] = structured
    content = out.get("content")
    if isinstance(content, list):
        blocks = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                if whole:
                    block = {**block, "text": mask if isinstance(mask, str) else str(mask)}
                    count += 1
                elif parts:
                    block, found = _redact_text(block, parts, mask)
                    count += found
            blocks.append(block)
        out["content"] = blocks
    return out, count


def _redact_text(
    block: dict[str, Any], paths: Sequence[tuple[Step, ...]], mask: Any
) -> tuple[dict[str, Any], int]:
    text = block.get("text")
    if not isinstance(text, str) or text.lstrip()[:1] not in ("{", "["):
        return block, 0
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return block, 0
    count = 0
    for steps in paths:
        count += redact_at(data, steps, mask)
    if not count:
        return block, 0
    return {**block, "text": orjson.dumps(data).decode()}, count
