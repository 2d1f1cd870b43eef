"""The ``sandbox:`` setting of a stdio server entry: run it under bubblewrap (``bwrap``).

Only the setting lives here (``settings.py`` imports it); what it becomes on the command line is
:mod:`catalyst_mcp.upstreams.sandbox`, and docs/security.md says what the sandbox allows.
"""

from __future__ import annotations

import posixpath
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["SandboxSettings"]


def _absolute(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"{path!r} must be an absolute path (it names a folder of this machine)")
    normal = posixpath.normpath(path)
    if normal == "/":
        raise ValueError("'/' cannot be given: the sandbox is about keeping most of it out")
    return normal


AbsolutePath = Annotated[str, AfterValidator(_absolute)]


class SandboxSettings(BaseModel):
    """Bubblewrap around one stdio server (docs/security.md#sandboxed-servers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        False,
        description="Run this stdio server under bubblewrap (bwrap): the machine's files "
        "read-only, homes, /run and the gateway's state folder hidden, a private /tmp and HOME, "
        "only the writable folders writable, its own process and IPC namespaces. Needs bwrap "
        "(Debian package bubblewrap) and a kernel that lets the gateway's user create "
        "namespaces; if it cannot start, /ready says why.",
    )
    network: bool = Field(
        True,
        description="Whether the server may use the network. false: it gets a network "
        "namespace of its own with only a loopback interface (bwrap --unshare-net), so it "
        "reaches nothing outside, not even the machine's loopback ports.",
    )
    writable: list[AbsolutePath] = Field(
        default_factory=list,
        description="Folders (absolute paths, existing) the server may write, bound read-write "
        "at the same path. Everything else is read-only or private to the sandbox.",
    )
    readable: list[AbsolutePath] = Field(
        default_factory=list,
        description="Paths (absolute, existing) under the hidden folders the server may read: "
        "its command, interpreter, package prefix, working directory and the absolute paths "
        "among its arguments are readable without being listed here.",
    )
    hidden: list[AbsolutePath] = Field(
        default_factory=list,
        description="More folders replaced by an empty one inside the sandbox, besides /home, "
        "/root, the gateway user's HOME, /run, /tmp, /var/tmp and the gateway's state folder.",
    )
