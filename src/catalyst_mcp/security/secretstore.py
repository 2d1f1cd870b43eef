"""Stored secrets in plain text for their users: the secrets table sealed by the vault.

:class:`SecretStore` is what the gateway and ``catalyst secrets`` use. It seals a value with the
active key before the :class:`~catalyst_mcp.storage.secrets.SecretRepo` stores it, and opens it
with the associated data of the row it came from when it is resolved, so a ciphertext moved to
another owner, scope or name fails to open instead of leaking.

Key rotation (:meth:`SecretStore.rotate`) reseals, in short batches, every value not sealed with
the active key. Each row is swapped in with a compare-and-swap on the sealed value read (its
key id and nonce, unique per seal), so a value written meanwhile always wins, even one sealed
again with the old key by a process not yet given the new one; it is then resealed in turn.
Gateways can keep serving (and writing new values) during a rotation as long as they have
both keys configured: ``CATALYST_SECRET_KEY`` the new one, ``CATALYST_SECRET_KEY_PREVIOUS`` the
old ones. A value that cannot be opened is reported by owner, scope and name; it never stops
the run.

No value ever appears in a ``repr``, a log line or an error message.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from catalyst_mcp.errors import ConfigError, ConfigProblem, Missing, StorageError
from catalyst_mcp.security.references import SECRET_NAME
from catalyst_mcp.security.vault import ENV_ACTIVE, KeyRing, Sealed, SecretUnreadable, Vault
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.secrets import ANY, SealedSecret, SecretRecord, SecretRepo

__all__ = ["ANY", "FailedSecret", "RotateReport", "SecretStore", "check_secret_name"]

log = logging.getLogger("catalyst.secrets")

NO_KEY = f"{ENV_ACTIVE} is not set: generate one with `catalyst secrets generate-key`"
ROTATE_BATCH = 100
# a resealed value may lose its compare-and-swap to a concurrent change: try again this often
_SWAP_ATTEMPTS = 3

Progress = Callable[[int, int], None]
_Outcome = Literal["resealed", "current", "gone"]


def check_secret_name(name: str) -> str:
    """``name`` if it is 1-128 letters, digits, ``_``, ``-`` or ``.``; StorageError if not."""
    if not SECRET_NAME.match(name):
        raise StorageError(
            f"secret name {name!r} must be 1-128 letters, digits, '_', '-' or '.'"
            if len(name) <= 128
            else "a secret name must be 1-128 letters, digits, '_', '-' or '.'"
        )
    return name


@dataclass(frozen=True, slots=True)
class FailedSecret:
    """A stored value a rotation could not reseal, and why (never the value)."""

    owner: str
    scope: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class RotateReport:
    """What :meth:`SecretStore.rotate` did: values resealed under the active key, values that
    already were, and values that could not be opened."""

    key_id: str
    resealed: int
    already_current: int
    failed: tuple[FailedSecret, ...]

    @property
    def ok(self) -> bool:
        """Whether every stored value is now sealed with the active key."""
        return not self.failed


def _sealed(row: SealedSecret) -> Sealed:
    return Sealed(row.key_id, row.nonce, row.ciphertext)


class SecretStore:
    """Put, resolve, list, delete and reseal secrets. ``vault`` None (no key configured) makes
    every operation raise :class:`ConfigError` saying how to configure one."""

    def __init__(self, db: Database, vault: Vault | None) -> None:
        self.repo = SecretRepo(db)
        self._vault = vault

    @classmethod
    def from_environ(cls, db: Database, environ: Mapping[str, str]) -> SecretStore:
        """A store with the keys of ``CATALYST_SECRET_KEY`` (and ``..._PREVIOUS``), or without
        a vault when the key is not set. ConfigError for a key that is set but invalid."""
        if not environ.get(ENV_ACTIVE, "").strip():
            return cls(db, None)
        return cls(db, Vault(KeyRing.from_environ(environ)))

    def __repr__(self) -> str:
        keys = self._vault.keyring if self._vault is not None else None
        return f"SecretStore({self.repo.db!r}, keys={keys!r})"

    @property
    def vault(self) -> Vault:
        """The vault; ConfigError when no key is configured."""
        if self._vault is None:
            raise ConfigError([ConfigProblem("environment", None, NO_KEY)])
        return self._vault

    def _require_key(self) -> None:
        """ConfigError when no key is configured (every operation needs one)."""
        _ = self.vault

    async def put(self, owner: str, scope: str, name: str, value: str) -> SecretRecord:
        """Seal ``value`` for ``owner`` (``*``: everyone) and ``scope`` (``*``: any server or
        pack) under the active key and store it, replacing any value of that name."""
        vault = self.vault
        check_secret_name(name)
        sealed = vault.seal(value, owner, scope, name)
        return await self.repo.put(
            owner, scope, name, sealed.key_id, sealed.nonce, sealed.ciphertext
        )

    async def resolve(self, owner: str, scope: str, name: str) -> str | None:
        """The value of ``name`` for ``owner`` calling ``scope``: the most specific one stored,
        (owner, scope) > (owner, *) > (*, scope) > (*, *); None if there is none.
        :class:`SecretUnreadable` if it cannot be opened (key missing, altered or moved)."""
        vault = self.vault
        row = await self.repo.candidates(owner, scope, name)
        if row is None:
            return None
        return vault.open(_sealed(row), row.owner, row.scope, row.name)

    async def delete(self, owner: str, scope: str, name: str) -> None:
        """Delete exactly this secret; Missing if it is not stored."""
        self._require_key()
        await self.repo.delete(owner, scope, name)

    async def list(
        self, owner: str | None = None, scope: str | None = None
    ) -> builtins.list[SecretRecord]:
        """Metadata of the stored secrets (of ``owner``, for ``scope``), never their values."""
        self._require_key()
        return await self.repo.list(owner, scope)

    async def rotate(
        self, progress: Progress | None = None, *, batch: int = ROTATE_BATCH
    ) -> RotateReport:
        """Reseal every stored value not sealed with the active key, ``batch`` rows at a time.

        ``progress(done, total)`` is called after each value (``total`` is counted when the run
        starts, and grows if values are added meanwhile). Values that cannot be opened are
        reported in :attr:`RotateReport.failed`; they do not stop the run.
        """
        vault = self.vault
        active = vault.keyring.active.key_id
        total = len(await self.repo.list())
        done = resealed = current = 0
        failed: list[FailedSecret] = []
        async for row in self.repo.iter_sealed(batch):
            try:
                outcome = await self._reseal(vault, row)
            except SecretUnreadable as exc:
                failed.append(FailedSecret(row.owner, row.scope, row.name, exc.message))
            else:
                if outcome == "resealed":
                    resealed += 1
                elif outcome == "current":
                    current += 1
            done += 1
            total = max(total, done)
            if progress is not None:
                progress(done, total)
        log.info(
            "secrets resealed under key %r: %d resealed, %d already current, %d failed",
            active,
            resealed,
            current,
            len(failed),
        )
        return RotateReport(active, resealed, current, tuple(failed))

    async def _reseal(self, vault: Vault, row: SealedSecret) -> _Outcome:
        """Reseal one row under the active key; SecretUnreadable if it cannot be opened."""
        for _ in range(_SWAP_ATTEMPTS):
            fresh = vault.reseal(_sealed(row), row.owner, row.scope, row.name)
            if fresh is None:
                return "current"
            swapped = await self.repo.replace_sealed(
                row, fresh.key_id, fresh.nonce, fresh.ciphertext
            )
            if swapped:
                return "resealed"
            try:  # changed meanwhile (a new value, another rotation): look again
                row = await self.repo.get(row.owner, row.scope, row.name)
            except Missing:
                return "gone"
        raise SecretUnreadable(
            f"secret {row.name!r} kept changing during the rotation: run the rotation again"
        )
