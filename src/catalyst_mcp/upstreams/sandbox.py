"""Sandboxed stdio servers: the bubblewrap (``bwrap``) command line around a server's own, and
what its failures mean.

With ``sandbox.enabled`` a stdio server starts as ``bwrap OPTIONS -- COMMAND ARGS`` (see
docs/security.md for the why of each part)::

    --ro-bind / /                 every file of the machine, read-only
    --dev /dev --proc /proc       a minimal /dev, the /proc of its own PID namespace
    --tmpfs PATH                  hidden (an empty folder, private to the sandbox): /home, /root,
                                  the gateway user's HOME, /run, /tmp, /var/tmp, the gateway's
                                  state folder (its database and packages), sandbox.hidden
    --ro-bind PATH PATH           what the server needs from those: its command (and the
                                  interpreter its #! line or venv names, each with its install
                                  folder), its package prefix, its cwd, the absolute paths among
                                  its arguments, sandbox.readable; /etc/resolv.conf's target
    --bind PATH PATH              sandbox.writable, read-write
    --unshare-pid/ipc/uts/cgroup  namespaces of its own; --unshare-net when network is false
    --die-with-parent             it dies with the gateway
    --cap-drop ALL                no capabilities, even when the gateway runs as root

HOME is the gateway's HOME path, emptied (a private, writable tmpfs); TMPDIR is the private
/tmp; the server starts in its ``cwd``, else in that HOME. bwrap is not given ``--new-session``:
the server has no terminal (its stdio are pipes, and the gateway starts it in a session of its
own), and stopping it signals its whole process group.

bwrap reports its own failures on stderr as ``bwrap: ...`` before the server runs;
:func:`explain` turns them into an error that says what to do.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

from catalyst_mcp.errors import UpstreamUnavailable
from catalyst_mcp.upstreams.sandboxconfig import SandboxSettings

__all__ = ["BWRAP", "explain", "find_bwrap", "wrap"]

BWRAP = "bwrap"
PACKAGE_MARKER = "catalyst-package.json"  # packages/layout.py: an installed package's prefix
# mount points inside the sandbox (each gets an empty tmpfs), not files the gateway writes
ALWAYS_HIDDEN = ("/home", "/root", "/run", "/tmp", "/var/tmp")  # noqa: S108
FALLBACK_HOME = "/home/sandbox"
NAMESPACE_HINT = (
    "this machine does not let the gateway's user create the namespaces bubblewrap needs: "
    "unprivileged user namespaces are off (sysctl kernel.unprivileged_userns_clone=0 on "
    "Debian kernels, user.max_user_namespaces=0, or Ubuntu's "
    "kernel.apparmor_restrict_unprivileged_userns=1), or a container's seccomp or AppArmor "
    "profile forbids them (Docker's default profile does). Allow them, run the gateway where "
    "they are allowed, or set sandbox.enabled: false for this server"
)
NAMESPACE_SIGNS = (
    "namespace",
    "uid map",
    "gid map",
    "operation not permitted",
    "permission denied",
    "no permissions",
)


def find_bwrap(server: str, path: str | None = None) -> str:
    """The bwrap program, or UpstreamUnavailable saying how to get it."""
    found = shutil.which(BWRAP, path=path)
    if found is None:
        raise UpstreamUnavailable(
            server,
            f"cannot start {server}: sandbox.enabled needs bubblewrap (bwrap), which is not "
            "installed on this machine (Debian/Ubuntu: apt-get install bubblewrap; Fedora: "
            "dnf install bubblewrap); or set sandbox.enabled: false for it",
        )
    return found


def wrap(
    server: str,
    command: str,
    args: list[str],
    env: Mapping[str, str],
    cwd: str | None,
    sandbox: SandboxSettings,
    *,
    bwrap: str,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line that runs ``command args`` under bwrap, and its environment (``env``
    with HOME and TMPDIR pointing inside the sandbox). ``environ`` is the gateway's own (for
    its HOME and state folder). UpstreamUnavailable if a writable folder does not exist."""
    gateway_env = os.environ if environ is None else environ
    home = _home(env.get("HOME") or gateway_env.get("HOME"))
    hidden = _outermost([*ALWAYS_HIDDEN, home, *_state_folders(gateway_env), *sandbox.hidden])
    argv = [
        bwrap,
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    if not sandbox.network:
        argv.append("--unshare-net")
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for folder in hidden:
        if os.path.isdir(folder):  # a missing one hides nothing (and has no mount point)
            argv += ["--tmpfs", folder]
    argv += ["--dir", home]
    search = env.get("PATH") or gateway_env.get("PATH")
    wanted = _needed(command, args, cwd, search, sandbox.readable)
    wanted += _resolv_conf()
    for source, target in _dedupe(wanted):
        if _under(target, hidden):
            argv += ["--ro-bind", source, target]
    for folder in sandbox.writable:
        if not os.path.isdir(folder):
            raise UpstreamUnavailable(
                server,
                f"cannot start {server}: sandbox.writable names {folder}, which is not an "
                "existing folder (create it, or remove it from the list)",
            )
        argv += ["--bind", folder, folder]
    argv += ["--chdir", cwd or home, "--cap-drop", "ALL", "--", command, *args]
    inner = {**env, "HOME": home, "TMPDIR": "/tmp"}  # noqa: S108 - the sandbox's private /tmp
    return argv, inner


def explain(server: str, stderr: Iterable[str]) -> str | None:
    """What bwrap's own complaint (a ``bwrap: ...`` line) means, or None if it made none."""
    for line in stderr:
        if not line.startswith("bwrap: "):
            continue
        said = line.removeprefix("bwrap: ").strip()
        lowered = said.lower()
        if "can't find source path" in lowered:
            hint = "a path given to the sandbox does not exist"
        elif lowered.startswith("execvp"):
            hint = (
                "its command is not visible inside the sandbox: list the folder it lives in "
                "under sandbox.readable"
            )
        elif any(sign in lowered for sign in NAMESPACE_SIGNS):
            hint = NAMESPACE_HINT
        else:
            hint = "see bwrap(1), or set sandbox.enabled: false for this server"
        return f"{server} could not start in its sandbox (bwrap said: {said}): {hint}"
    return None


# ---- what the server needs to read -----------------------------------------------------------


def _home(value: str | None) -> str:
    """The sandbox's HOME: the gateway user's (emptied), if it is a folder other than /;
    else a fresh one in the private /home (or /tmp, on a machine without /home)."""
    if value and value.startswith("/") and os.path.normpath(value) != "/" and os.path.isdir(value):
        return os.path.normpath(value)
    return FALLBACK_HOME if os.path.isdir("/home") else "/tmp/home"  # noqa: S108 - private


def _state_folders(environ: Mapping[str, str]) -> list[str]:
    """The gateway's state folder (database, packages, lock), wherever XDG_STATE_HOME puts it."""
    base = environ.get("XDG_STATE_HOME")
    return [os.path.join(base, "catalyst")] if base and base.startswith("/") else []


def _needed(
    command: str,
    args: list[str],
    cwd: str | None,
    search: str | None,
    readable: Iterable[str],
) -> list[tuple[str, str]]:
    """(source, target) pairs the server must be able to read, whether hidden or not."""
    found: list[tuple[str, str]] = []
    program = command if "/" in command else shutil.which(command, path=search)
    if program is not None:
        found += _program(os.path.abspath(program), search)
    for path in (cwd, *args, *readable):
        if path and path.startswith("/") and os.path.exists(path):
            found += _same(path)
    return found


def _program(path: str, search: str | None) -> list[tuple[str, str]]:
    """An executable, its install folder, its package prefix, and the interpreter it names."""
    found = _installed(path)
    real = os.path.realpath(path)
    interpreter = _shebang(real, search)
    if interpreter is not None:
        found += _installed(interpreter)
    for candidate in (path, real):  # a venv: its base interpreter's installation
        base = _venv_home(candidate)
        if base is not None:
            found += _same(base)
    return found


def _installed(path: str) -> list[tuple[str, str]]:
    """``path`` with the folder it is installed in (``X`` of ``X/bin/prog``), resolved and as
    named, and the package prefix around it (a folder with an install marker)."""
    found: list[tuple[str, str]] = []
    for candidate in dict.fromkeys((path, os.path.realpath(path))):
        found += _same(candidate)
        parent = PurePosixPath(candidate).parent
        root = parent.parent if parent.name == "bin" else parent
        found += _same(str(root))
        prefix = _package_prefix(candidate)
        if prefix is not None:
            found += _same(prefix)
    return found


def _same(path: str) -> list[tuple[str, str]]:
    """Bind ``path`` at itself; a path through symlinks also at its resolved place."""
    real = os.path.realpath(path)
    if not os.path.exists(real):
        return []
    return [(real, path)] if real == path else [(real, path), (real, real)]


def _package_prefix(path: str) -> str | None:
    """The installed package ``path`` belongs to (up to 8 folders up), if any."""
    for parent in list(PurePosixPath(path).parents)[:8]:
        if os.path.isfile(parent / PACKAGE_MARKER):
            return str(parent)
    return None


def _shebang(path: str, search: str | None) -> str | None:
    """The interpreter a script's ``#!`` line names (through ``env``), if any."""
    try:
        with open(path, "rb") as script:
            head = script.readline(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].decode("utf-8", "replace").split()
    if not words:
        return None
    if PurePosixPath(words[0]).name == "env":
        names = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        return shutil.which(names[0], path=search) if names else None
    return words[0] if words[0].startswith("/") else None


def _venv_home(program: str) -> str | None:
    """A venv's base interpreter folder (``home =`` of its ``pyvenv.cfg``), installation too."""
    venv = PurePosixPath(program).parent.parent
    try:
        with open(venv / "pyvenv.cfg", encoding="utf-8") as cfg:
            for line in cfg:
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip().startswith("/"):
                    home = PurePosixPath(value.strip())
                    return str(home.parent if home.name == "bin" else home)
    except OSError:
        return None
    return None


def _resolv_conf() -> list[tuple[str, str]]:
    """/etc/resolv.conf often links into /run (systemd-resolved), which is hidden."""
    real = os.path.realpath("/etc/resolv.conf")
    return [(real, real)] if real != "/etc/resolv.conf" and os.path.exists(real) else []


def _outermost(paths: Iterable[str]) -> list[str]:
    """The paths, normalised, without those inside another one of them."""
    unique = sorted({os.path.normpath(p) for p in paths if p and p.startswith("/")})
    kept: list[str] = []
    for path in unique:
        if not _under(path, kept):
            kept.append(path)
    return kept


def _under(path: str, folders: Iterable[str]) -> bool:
    return any(path == folder or path.startswith(folder.rstrip("/") + "/") for folder in folders)


def _dedupe(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each target once, parents before children (bwrap mounts in order)."""
    chosen: dict[str, str] = {}
    for source, target in pairs:
        chosen.setdefault(target, source)
    return sorted(((s, t) for t, s in chosen.items()), key=lambda pair: pair[1])
