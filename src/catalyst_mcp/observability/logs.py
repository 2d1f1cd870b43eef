"""The gateway's one log setup, on structlog: every logger, ours and the libraries', one format.

Modules keep logging through the standard library (``logging.getLogger("catalyst...")``);
:func:`setup_logging` puts one handler on the root logger whose structlog formatter renders every
record: aligned, human-readable lines on a terminal, one JSON object per line otherwise (or as
``log.format`` says). Each line carries ``timestamp``, ``level``, ``logger`` and ``event``, and a
line logged while a client request is served also carries who and what it is about
(:data:`REQUEST`, set by :mod:`catalyst_mcp.observability.observer` with one context-variable
write per request; the fields are only built when a line is actually logged): ``request_id``
(the JSON-RPC id, as in the request's audit record), ``user``, ``method``, ``tool`` (or
``target``: a prompt name or resource URI), ``session`` (legacy era), ``transport``, and
``trace_id``/``span_id`` when tracing is on.

Nothing here logs values: what a line says is what its caller wrote, and callers never write
secrets, tokens or arguments (the canary tests check).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from opentelemetry import trace

if TYPE_CHECKING:
    from catalyst_mcp.context import CallContext

__all__ = ["QUIET_LOGGERS", "REQUEST", "RequestLog", "add_request_context", "setup_logging"]

# Libraries whose debug logs carry bound statement parameters (ciphertexts, key hashes):
# never below INFO, whatever the gateway's own level.
QUIET_LOGGERS = ("aiosqlite", "asyncpg", "sqlalchemy.engine", "sqlalchemy.pool")

# (the request's context, its tool/prompt/resource, the transport, and the trace and span ids
# of a request the trace sampler left out, which has no span: observability/sampling.py)
# while a request is served
RequestLog = tuple["CallContext", str | None, str, tuple[int, int] | None]
REQUEST: ContextVar[RequestLog | None] = ContextVar("catalyst_request", default=None)

_HANDLER_NAME = "catalyst"


def add_request_context(logger: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: the fields of the request being served, if any."""
    served = REQUEST.get()
    unsampled = None
    if served is not None:
        ctx, target, transport, unsampled = served
        if ctx.request_id is not None:
            event.setdefault("request_id", ctx.request_id)
        event.setdefault("user", ctx.identity.subject)
        event.setdefault("method", ctx.method)
        if target is not None:
            event.setdefault("tool" if ctx.method == "tools/call" else "target", target)
        if ctx.session_id is not None:
            event.setdefault("session", ctx.session_id)
        event.setdefault("transport", transport)
    if unsampled is not None:
        trace_id, span_id = unsampled
    else:
        span = trace.get_current_span().get_span_context()
        if not span.is_valid:
            return event
        trace_id, span_id = span.trace_id, span.span_id
    event.setdefault("trace_id", format(trace_id, "032x"))
    event.setdefault("span_id", format(span_id, "016x"))
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_request_context,
    ]


def _renderer(fmt: str, stream: TextIO) -> Any:
    tty = bool(getattr(stream, "isatty", lambda: False)())
    if fmt == "json" or (fmt == "auto" and not tty):
        return structlog.processors.JSONRenderer(sort_keys=False)
    return structlog.dev.ConsoleRenderer(colors=tty, pad_level=True)


def setup_logging(level: str, fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route every log record to ``stream`` (stderr) through structlog, at ``level``.

    ``fmt``: ``console``, ``json`` or ``auto`` (console on a terminal, else JSON). Called again
    (a test, a reload), it replaces its own handler instead of adding another.
    """
    out = sys.stderr if stream is None else stream
    renderer = _renderer(fmt, out)
    json_lines = isinstance(renderer, structlog.processors.JSONRenderer)
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json_lines:
        final.append(structlog.processors.format_exc_info)  # the traceback as one string field
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(), processors=[*final, renderer]
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    for name in QUIET_LOGGERS:
        quiet = logging.getLogger(name)
        quiet.setLevel(max(quiet.getEffectiveLevel(), logging.INFO))
