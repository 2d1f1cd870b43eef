"""Starter pack files for ``catalyst packs new``: commented, valid as written, with tests.

* ``sql``: a SQLite database next to the pack (``${pack_dir}``), with the SQL to create a tiny
  one (:data:`SAMPLE_SQL`); its ``tests:`` pass against that database.
* ``rest``: an HTTP API, with the SSRF policy (``allow_private_network``) and auth through an
  ``${env:...}`` reference explained. The auth block is commented out, because a pack that
  references an unset variable does not load: uncomment it once the variable is set.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["SAMPLE_SQL", "Kind", "env_prefix", "next_steps", "pack_text"]

Kind = Literal["sql", "rest"]

SAMPLE_SQL = (
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_on TEXT);\n"
    "INSERT INTO items (name, created_on) VALUES\n"
    "  ('first item', '2024-01-15'), ('second item', '2024-02-20');\n"
)

_SQL = """\
# Knowledge pack "@NAME@": tools, resources and prompts over a SQL database.
# Written by `catalyst packs new`; docs/packs.md describes every key. For completion and
# checks in your editor: catalyst packs schema -o pack.schema.json, then make the first line
# of this file  # yaml-language-server: $schema=pack.schema.json
#
# The database is @NAME@.db next to this file. Create a small one to start with:
#
#   sqlite3 @DB@ <<'SQL'
@SQL@#   SQL
#
# Then: catalyst packs validate @FILE@ && catalyst packs test @FILE@
pack: @NAME@
description: Items of the @NAME@ database (say here what the pack is about).

connections:
  db:
    type: sql
    # ${pack_dir} is the folder of this file. PostgreSQL works the same way; keep passwords
    # out of the file with an environment reference:
    #   url: "postgresql://app:${env:@ENV@_DB_PASSWORD}@db.internal:5432/@NAME@"
    url: "sqlite:///${pack_dir}/@NAME@.db"
    read_only: true         # enforced by the database: a write fails
    timeout_seconds: 10     # time limit of one statement

tools:
  - name: find_items
    description: Items whose name contains a text, oldest first.
    annotations: {readOnlyHint: true, openWorldHint: false}
    parameters:
      text: {type: string, required: true, minLength: 1, description: "Part of the item's name"}
      limit: {type: integer, default: 10, minimum: 1, maximum: 100, description: "Rows at most"}
    sql:
      connection: db
      # :text and :limit are bound parameters: a value never becomes SQL text.
      statement: >-
        SELECT id, name, created_on FROM items
        WHERE name LIKE '%' || :text || '%' ORDER BY id LIMIT :limit

  - name: get_item
    description: One item by id.
    annotations: {readOnlyHint: true, openWorldHint: false}
    parameters:
      id: {type: integer, required: true, minimum: 1, description: "Item id"}
    sql:
      connection: db
      statement: SELECT id, name, created_on FROM items WHERE id = :id

resources:
  - uri: "@SCHEME@://schema"
    name: schema
    description: The tables of the database, for the model to read first.
    mime_type: text/plain
    text: |
      items(id, name, created_on)
  - uri_template: "@SCHEME@://items/{id}"
    name: item
    description: One item as JSON.
    mime_type: application/json
    parameters:
      id: {type: integer}
    sql:
      connection: db
      statement: SELECT id, name, created_on FROM items WHERE id = :id

prompts:
  - name: summarize_items
    description: Summarize the items whose name contains a text.
    arguments:
      - {name: text, required: true, description: "Part of the item's name"}
    messages:
      - role: user
        text: Call @NAME@__find_items with text "{text}" and summarize what you find.

# Example calls with the results they must give: `catalyst packs test @FILE@` runs them.
# `structured` matches as a subset: objects by the keys given, lists from the start.
tests:
  - name: finds an item by part of its name
    tool: find_items
    arguments: {text: first}
    expect:
      structured: {rows: [{id: 1, name: first item}]}
  - name: the text is required
    tool: find_items
    arguments: {}
    expect: {is_error: true, text_contains: "missing required argument 'text'"}
  - name: an item as a resource
    read: "@SCHEME@://items/2"
    expect:
      structured: {name: second item}
"""

_REST = """\
# Knowledge pack "@NAME@": tools and resources over an HTTP API.
# Written by `catalyst packs new`; docs/packs.md describes every key. For completion and
# checks in your editor: catalyst packs schema -o pack.schema.json, then make the first line
# of this file  # yaml-language-server: $schema=pack.schema.json
# Next: set base_url (and auth) for your API, adapt the tools, then
#   catalyst packs validate @FILE@
pack: @NAME@
description: The @NAME@ API (say here what the pack is about).

connections:
  api:
    type: rest
    # Every action's path is appended to this URL.
    base_url: "https://api.example.com/v1"
    headers: {Accept: application/json}
    # Secrets stay out of this file: ${env:NAME} reads the gateway's environment. A pack that
    # references an unset variable does not load, so uncomment this once it is set
    # (export @ENV@_TOKEN=...). Other types: basic (username, password), api_key (name,
    # value, in: header|query), oauth2_client_credentials (token_url, client_id,
    # client_secret, scopes).
    # auth:
    #   type: bearer
    #   token: "${env:@ENV@_TOKEN}"
    timeout_seconds: 10
    # Requests to loopback and private addresses (127.0.0.0/8, 10/8, 172.16/12, 192.168/16,
    # ::1, fc00::/7) are refused, so that a pack cannot reach into the gateway's own network.
    # For an API on this machine or your network (http://127.0.0.1:8080) set it to true.
    # Link-local and cloud-metadata addresses are refused always.
    allow_private_network: false

tools:
  - name: search_items
    description: Items matching a text.
    annotations: {readOnlyHint: true, openWorldHint: true}
    parameters:
      query: {type: string, required: true, minLength: 1, description: "What to look for"}
      limit: {type: integer, default: 10, minimum: 1, maximum: 100}
    rest:
      connection: api
      method: GET
      path: /items
      # "{param}" alone is the value with its JSON type; an absent optional one is left out.
      query: {q: "{query}", limit: "{limit}"}
      # JMESPath on the JSON response: what the model gets as structured content.
      project: "items[].{id: id, name: name}"

  - name: get_item
    description: One item by id.
    annotations: {readOnlyHint: true, openWorldHint: true}
    parameters:
      id: {type: integer, required: true, minimum: 1}
    rest:
      connection: api
      method: GET
      path: /items/{id}     # {id} is percent-encoded into the path
      errors: {"404": "There is no item with this id."}

  - name: create_item
    description: Create an item.
    annotations: {readOnlyHint: false, destructiveHint: false, openWorldHint: true}
    parameters:
      name: {type: string, required: true, minLength: 1}
      tags: {type: array, items: {type: string}, description: "Labels of the item"}
    rest:
      connection: api
      method: POST
      path: /items
      body: {name: "{name}", tags: "{tags}"}   # built as JSON, never by templating text

# Example calls with the results they must give, run by `catalyst packs test @FILE@`
# (--record keeps the API's answers, redacted, so that --replay runs them offline):
# tests:
#   - name: finds items
#     tool: search_items
#     arguments: {query: first}
#     expect: {structured: {result: [{name: first item}]}}
"""


def env_prefix(name: str) -> str:
    """The prefix of a pack's environment variables: ``my-api`` -> ``MY_API``."""
    prefix = name.upper().replace("-", "_")
    return prefix if not prefix[:1].isdigit() else f"PACK_{prefix}"


def pack_text(name: str, kind: Kind, file: str, db: str) -> str:
    """The starter pack ``name`` of ``kind``; ``file`` and ``db`` are paths shown in comments."""
    template = _SQL if kind == "sql" else _REST
    sql = "".join(f"#   {line}\n" for line in SAMPLE_SQL.splitlines())
    replacements = {
        "@NAME@": name,
        "@ENV@": env_prefix(name),
        "@SCHEME@": name.lower().replace("_", "-"),
        "@FILE@": file,
        "@DB@": db,
        "@SQL@": sql,
    }
    for token, value in replacements.items():
        template = template.replace(token, value)
    return template


def next_steps(name: str, kind: Kind, file: str, db: str) -> list[str]:
    """What to do after ``packs new``, one line each."""
    if kind == "sql":
        return [
            f"1. create the database {db} (the SQL is at the top of {file}), e.g.",
            f'   sqlite3 {db} "{" ".join(SAMPLE_SQL.split())}"',
            f"2. catalyst packs validate {file}",
            f"3. catalyst packs test {file}",
            "4. serve it: packs.path in catalyst.yaml names its folder; then catalyst serve",
        ]
    return [
        f"1. set base_url in {file}; for auth, export {env_prefix(name)}_TOKEN=... and "
        "uncomment the auth block",
        f"2. catalyst packs validate {file}",
        f"3. add tests, then catalyst packs test {file} --record (and --replay offline)",
        "4. serve it: packs.path in catalyst.yaml names its folder; then catalyst serve",
    ]
