"""A small example MCP server (official Python SDK): a notebook kept in memory.

Catalyst's bundled example config runs it as a stdio upstream, so `make serve` shows a working
gateway with no network access. Run it alone with `python examples/servers/notes_server.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mcp.server.mcpserver import MCPServer

server = MCPServer("notes", version="1.0.0", instructions="Keep and search short notes.")
NOTES: dict[int, str] = {1: "Catalyst serves every upstream behind one MCP endpoint."}


@server.tool()
def add_note(text: str) -> int:
    """Store a note; returns its id."""
    note_id = max(NOTES, default=0) + 1
    NOTES[note_id] = text
    return note_id


@server.tool()
def search_notes(query: str) -> list[dict[str, object]]:
    """Notes whose text contains `query` (case-insensitive)."""
    q = query.lower()
    return [{"id": i, "text": t} for i, t in NOTES.items() if q in t.lower()]


@server.tool()
def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@server.resource("notes://{note_id}", mime_type="text/plain")
def note(note_id: str) -> str:
    """One note by id."""
    return NOTES.get(int(note_id), "")


@server.resource("notes://all", mime_type="text/plain")
def all_notes() -> str:
    """Every note, one per line."""
    return "\n".join(f"{i}: {t}" for i, t in NOTES.items())


@server.prompt()
def summarize_notes(topic: str) -> str:
    """Ask the model to summarise the notes about a topic."""
    return f"Summarise my notes about {topic}. Read notes://all first."


if __name__ == "__main__":
    server.run("stdio")
