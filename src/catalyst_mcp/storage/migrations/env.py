"""Alembic's environment for Catalyst: run by :mod:`catalyst_mcp.storage.migrate` only.

There is no ``alembic.ini`` and no URL here: the caller opens the connection (inside its own
event loop and transaction) and passes it in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from catalyst_mcp.storage.base import Base

__all__: list[str] = []


def run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None or context.is_offline_mode():
        raise RuntimeError(
            "Catalyst's migrations run through `catalyst db upgrade` "
            "(catalyst_mcp.storage.migrate), not the alembic command"
        )
    context.configure(
        connection=connection,
        # Only its naming convention is used: the migrations are written by hand.
        target_metadata=Base.metadata,
        render_as_batch=True,
        on_version_apply=config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        context.run_migrations()


run()
