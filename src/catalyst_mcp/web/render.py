"""HTML from Jinja2 templates, escaped by default.

Every template extends ``layout.html``; :meth:`Renderer.page` gives it what every page shows
(the navigation the caller may use, who is signed in, the CSRF token htmx sends back). Values
are autoescaped: a tool description or an audit field holding ``<script>`` is shown as text.
The JSON filters return plain text, escaped like any other value.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from jinja2 import Environment, PackageLoader, Undefined, select_autoescape

import catalyst_mcp
from catalyst_mcp.web.apiclient import segment
from catalyst_mcp.web.pages.nav import nav_for
from catalyst_mcp.web.routing import Reply

if TYPE_CHECKING:
    from catalyst_mcp.web.routing import PageRequest

__all__ = ["Renderer"]


def _when(value: Any) -> str:
    """An ISO 8601 time as ``2026-11-05 14:03:07`` (UTC), or '' for none."""
    if value in (None, ""):
        return ""
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: Any) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s``, ``12s``."""
    if not isinstance(seconds, (int, float)):
        return ""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _seconds(value: Any) -> str:
    """A time taken: ``340 ms``, ``2.5 s``, ``4m 10s``."""
    if not isinstance(value, (int, float)):
        return ""
    if value < 1:
        return f"{max(0.0, value) * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    return _duration(value)


def _pretty(value: Any) -> str:
    """JSON, indented, for reading (returned as text: the template escapes it)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        return json.dumps(value, indent=2, default=str)


def _compact(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, default=str)


def _number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "\u2013"  # an en dash: no value
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


class Renderer:
    """The dashboard's templates (loaded once, compiled on first use)."""

    def __init__(self, *, auth_on: bool, oidc: bool) -> None:
        self.auth_on = auth_on
        self.oidc = oidc
        self.env = Environment(
            loader=PackageLoader("catalyst_mcp.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=Undefined,  # optional MCP fields (title, annotations) render as nothing
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            when=_when,
            duration=_duration,
            seconds=_seconds,
            pretty=_pretty,
            compact=_compact,
            number=_number,
            seg=segment,
        )
        self.env.globals["version"] = catalyst_mcp.__version__

    def text(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)

    def page(
        self, request: PageRequest, template: str, *, status: int = 200, **context: Any
    ) -> Reply:
        """A whole page (htmx may take just a part of it with ``hx-select``)."""
        body = self.text(template, **self.common(request), **context)
        return Reply(body.encode("utf-8"), status)

    def fragment(
        self, request: PageRequest, template: str, *, status: int = 200, **context: Any
    ) -> Reply:
        """A part of a page, for htmx to swap in."""
        body = self.text(template, **self.common(request), **context)
        return Reply(body.encode("utf-8"), status)

    def common(self, request: PageRequest) -> dict[str, Any]:
        identity = request.identity
        return {
            "base": request.base,
            "path": request.path,
            "csrf_headers": orjson.dumps({"X-CSRF-Token": request.session.csrf}).decode(),
            "nav": nav_for(request.admin),
            "identity": identity,
            "admin": request.admin,
            "auth_on": self.auth_on,
            "signed_in": request.session.credential is not None,
            "query": request.query,
        }
