"""The dashboard's navigation: every page, in menu order, and who sees it.

A new page is a module in this package (its routes), a template, and a :class:`NavItem` here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NAV", "NavItem", "nav_for"]


@dataclass(frozen=True, slots=True)
class NavItem:
    key: str
    label: str
    path: str
    admin: bool = False
    """Shown to administrators only (the API refuses everyone else anyway)."""


NAV: tuple[NavItem, ...] = (
    NavItem("overview", "Overview", "/"),
    NavItem("servers", "Servers", "/servers"),
    NavItem("tools", "Tools", "/tools"),
    NavItem("packs", "Knowledge packs", "/packs", admin=True),
    NavItem("approvals", "Approvals", "/approvals", admin=True),
    NavItem("changes", "Tool changes", "/tool-changes", admin=True),
    NavItem("workflows", "Workflows", "/workflows", admin=True),
    NavItem("rules", "Rules", "/rules", admin=True),
    NavItem("audit", "Audit", "/audit", admin=True),
    NavItem("users", "Users", "/users", admin=True),
    NavItem("keys", "API keys", "/keys", admin=True),
    NavItem("roles", "Roles", "/roles", admin=True),
    NavItem("secrets", "Secrets", "/secrets", admin=True),
    NavItem("packages", "Packages", "/packages", admin=True),
)


def nav_for(admin: bool) -> list[NavItem]:
    """The menu of a caller (administrators see every page)."""
    return [item for item in NAV if admin or not item.admin]
