"""Knowledge packs for the pack benchmark: a folder of realistic generated packs.

``write_folder`` writes N pack files holding T tools in all, plus the SQLite database the SQL
packs query. Packs come in three kinds, by position: SQL only (half of them), REST only (three in
ten) and mixed (SQL and REST connections, two in ten). Tools have described parameters with
constraints (bounds, lengths, patterns, enums, arrays, identifier allow-lists), annotations, some
output schemas; packs have resources (static text and a template), some prompts, limits and
tests. Nothing here contacts the REST base URL: loading never does.

``rest_pack`` is the one-tool pack of the call-overhead measurement (``pack__get_item``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import yaml

DOMAINS = ("crm", "billing", "inventory", "support", "hr", "shipping", "analytics", "catalog")
ENTITIES = ("customers", "invoices", "products", "tickets", "employees", "parcels", "events")
TOKEN_ENV = "BENCH_PACKS_API_TOKEN"  # the REST packs' bearer token: ${env:...}, set by the bench
Json = dict[str, Any]


def pack_kind(index: int) -> str:
    return ("sql", "sql", "sql", "sql", "sql", "rest", "rest", "rest", "mixed", "mixed")[index % 10]


def pack_name(index: int) -> str:
    return f"{DOMAINS[index % len(DOMAINS)]}-{index:03d}"


def pack_file(folder: Path, index: int) -> Path:
    return folder / f"{pack_name(index)}.yaml"


def tool_counts(packs: int, tools: int) -> list[int]:
    """``tools`` spread over ``packs`` as evenly as possible (at least one each)."""
    base, extra = divmod(tools, packs)
    return [max(1, base + (1 if i < extra else 0)) for i in range(packs)]


# ---- tools ----------------------------------------------------------------------------------


def sql_tool(variant: int, suffix: str, entity: str) -> Json:
    """One of six SQL tool shapes over the ``records`` table."""
    shape = variant % 6
    name = ("find", "get", "list", "by_ids", "by_status", "totals")[shape] + f"_{entity}_{suffix}"
    ro = {"readOnlyHint": True, "openWorldHint": False}
    if shape == 0:
        return {
            "name": name,
            "description": f"{entity.title()} whose name contains a text (case-insensitive).",
            "annotations": ro,
            "parameters": {
                "name": {
                    "type": "string",
                    "required": True,
                    "minLength": 1,
                    "maxLength": 100,
                    "description": "Part of the name",
                },
                "limit": {"type": "integer", "default": 10, "minimum": 1, "maximum": 100},
            },
            "sql": {
                "connection": "db",
                "statement": "SELECT id, name, email, city FROM records "
                "WHERE name LIKE '%' || :name || '%' ORDER BY name LIMIT :limit",
                "max_rows": 100,
            },
        }
    if shape == 1:
        return {
            "name": name,
            "description": f"One of the {entity} by id.",
            "annotations": ro,
            "parameters": {
                "id": {"type": "integer", "required": True, "minimum": 1, "description": "Its id"}
            },
            "sql": {
                "connection": "db",
                "statement": "SELECT id, name, email, city, status, created_on FROM records "
                "WHERE id = :id",
            },
            "output_schema": {
                "type": "object",
                "properties": {
                    "rows": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "name"],
                            "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
                        },
                    },
                    "truncated": {"type": "boolean"},
                },
                "required": ["rows", "truncated"],
            },
        }
    if shape == 2:
        return {
            "name": name,
            "description": f"All {entity}, sorted by a column of your choice.",
            "annotations": ro,
            "parameters": {
                "sort_by": {"type": "string", "default": "name", "description": "Sort column"},
                "limit": {"type": "integer", "default": 20, "minimum": 1, "maximum": 100},
            },
            "sql": {
                "connection": "db",
                "statement": "SELECT id, name, city, created_on FROM records "
                "ORDER BY {sort_by}, id LIMIT :limit",
                "identifiers": {"sort_by": ["name", "city", "created_on"]},
            },
        }
    if shape == 3:
        return {
            "name": name,
            "description": f"Several {entity} at once, by their ids.",
            "annotations": ro,
            "parameters": {
                "ids": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1},
                    "minItems": 1,
                    "maxItems": 50,
                    "required": True,
                }
            },
            "sql": {
                "connection": "db",
                "statement": "SELECT id, name, status FROM records WHERE id IN :ids ORDER BY id",
            },
        }
    if shape == 4:
        return {
            "name": name,
            "description": f"{entity.title()} in one status, created on or after a date.",
            "annotations": ro,
            "parameters": {
                "status": {
                    "type": "string",
                    "required": True,
                    "enum": ["open", "pending", "closed"],
                },
                "since": {
                    "type": "string",
                    "default": "2000-01-01",
                    "pattern": r"^\d{4}-\d{2}-\d{2}$",
                    "description": "YYYY-MM-DD",
                },
            },
            "sql": {
                "connection": "db",
                "statement": "SELECT id, name, created_on FROM records "
                "WHERE status = :status AND created_on >= :since ORDER BY created_on DESC",
                "max_rows": 200,
            },
        }
    return {
        "name": name,
        "description": f"Count and total amount of {entity} per city, largest first.",
        "annotations": ro,
        "parameters": {
            "top": {"type": "integer", "default": 10, "minimum": 1, "maximum": 100},
            "min_amount": {"type": "number", "default": 0, "minimum": 0},
        },
        "sql": {
            "connection": "db",
            "statement": "SELECT city, COUNT(*) AS n, SUM(amount_cents) / 100.0 AS total "
            "FROM records WHERE amount_cents >= :min_amount * 100 "
            "GROUP BY city ORDER BY total DESC LIMIT :top",
        },
    }


def rest_tool(variant: int, suffix: str, entity: str) -> Json:
    """One of five REST tool shapes on the ``api`` connection."""
    shape = variant % 5
    name = ("get", "search", "create", "update", "delete")[shape] + f"_{entity}_{suffix}"
    if shape == 0:
        return {
            "name": name,
            "description": f"One of the {entity} by id, with its main fields.",
            "annotations": {"readOnlyHint": True, "openWorldHint": True},
            "parameters": {"id": {"type": "integer", "required": True, "minimum": 1}},
            "rest": {
                "connection": "api",
                "path": f"/{entity}/{{id}}",
                "project": "{id: id, name: name, status: status, updated: updated_at}",
                "errors": {"404": f"no such {entity[:-1]}"},
            },
            "output_schema": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}},
            },
        }
    if shape == 1:
        return {
            "name": name,
            "description": f"Search {entity} by text and tags, one page at a time.",
            "annotations": {"readOnlyHint": True},
            "parameters": {
                "q": {"type": "string", "required": True, "minLength": 2, "maxLength": 200},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 30}},
                "page": {"type": "integer", "default": 1, "minimum": 1, "maximum": 1000},
                "per_page": {"type": "integer", "default": 20, "minimum": 1, "maximum": 100},
            },
            "rest": {
                "connection": "api",
                "path": f"/{entity}",
                "query": {"q": "{q}", "tag": "{tags}", "page": "{page}", "per_page": "{per_page}"},
                "project": "items[].{id: id, name: name}",
            },
        }
    if shape == 2:
        return {
            "name": name,
            "description": f"Create one of the {entity}.",
            "annotations": {"readOnlyHint": False, "destructiveHint": False},
            "parameters": {
                "name": {"type": "string", "required": True, "minLength": 1, "maxLength": 120},
                "email": {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+$"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
                "attributes": {"type": "object", "description": "Free-form attributes"},
            },
            "rest": {
                "connection": "api",
                "method": "POST",
                "path": f"/{entity}",
                "body": {
                    "name": "{name}",
                    "email": "{email}",
                    "tags": "{tags}",
                    "attributes": "{attributes}",
                    "source": "catalyst: {name}",
                },
                "project": "{id: id, url: url}",
                "errors": {"422": "the API refused the record (check name and email)"},
            },
        }
    if shape == 3:
        return {
            "name": name,
            "description": f"Change the status of one of the {entity}.",
            "annotations": {"idempotentHint": True},
            "parameters": {
                "id": {"type": "integer", "required": True, "minimum": 1},
                "status": {"type": "string", "required": True, "enum": ["open", "closed"]},
                "note": {"type": "string", "maxLength": 500},
            },
            "rest": {
                "connection": "api",
                "method": "PATCH",
                "path": f"/{entity}/{{id}}",
                "headers": {"X-Request-Source": "catalyst"},
                "body": {"status": "{status}", "note": "{note}"},
                "errors": {"404": f"no such {entity[:-1]}", "4xx": "the API refused the change"},
            },
        }
    return {
        "name": name,
        "description": f"Delete one of the {entity} (cannot be undone).",
        "annotations": {"destructiveHint": True, "idempotentHint": True},
        "parameters": {"id": {"type": "integer", "required": True, "minimum": 1}},
        "rest": {"connection": "api", "method": "DELETE", "path": f"/{entity}/{{id}}"},
    }


# ---- packs ----------------------------------------------------------------------------------


def make_pack(index: int, tools: int, base_url: str, extra_tool: str | None = None) -> Json:
    """Pack number ``index`` with ``tools`` tools (plus ``extra_tool`` for a reload edit)."""
    kind = pack_kind(index)
    name = pack_name(index)
    entity = ENTITIES[index % len(ENTITIES)]
    connections: Json = {}
    if kind in ("sql", "mixed"):
        connections["db"] = {
            "type": "sql",
            "url": "sqlite:///${pack_dir}/bench.db",
            "read_only": True,
            "timeout_seconds": 10,
        }
    if kind in ("rest", "mixed"):
        api: Json = {
            "type": "rest",
            "base_url": base_url,
            "headers": {"Accept": "application/json", "User-Agent": "catalyst-bench"},
            "allow_private_network": True,
            "timeout_seconds": 10,
            "retries": {"attempts": 2, "backoff_seconds": 0.1},
        }
        if index % 2:
            api["auth"] = {"type": "bearer", "token": f"${{env:{TOKEN_ENV}}}"}
        else:
            api["auth"] = {"type": "api_key", "name": "X-Api-Key", "value": f"${{env:{TOKEN_ENV}}}"}
        connections["api"] = api

    specs: list[Json] = []
    for j in range(tools):
        on_rest = kind == "rest" or (kind == "mixed" and j % 2)
        make = rest_tool if on_rest else sql_tool
        specs.append(make(index + j, str(j), entity))
    if extra_tool is not None:
        make = rest_tool if kind == "rest" else sql_tool
        spec = make(index, "x", entity)
        spec["name"] = extra_tool
        specs.append(spec)

    resources: list[Json] = [
        {
            "uri": f"{name}://guide",
            "name": "guide",
            "mime_type": "text/markdown",
            "text": f"# {name}\n\nTools over the {entity} of the {kind} backend.\n",
        }
    ]
    if kind == "rest":
        resources.append(
            {
                "uri_template": f"{name}://{entity}/{{id}}",
                "name": "record",
                "mime_type": "application/json",
                "parameters": {"id": {"type": "integer"}},
                "rest": {"connection": "api", "path": f"/{entity}/{{id}}", "project": "@"},
            }
        )
    else:
        resources.append(
            {
                "uri_template": f"{name}://{entity}/{{id}}",
                "name": "record",
                "mime_type": "application/json",
                "parameters": {"id": {"type": "integer"}},
                "sql": {
                    "connection": "db",
                    "statement": "SELECT id, name, email, city FROM records WHERE id = :id",
                },
            }
        )
    pack: Json = {
        "pack": name,
        "description": f"{entity.title()} of the {DOMAINS[index % len(DOMAINS)]} system "
        f"(generated for the benchmark, {kind}).",
        "connections": connections,
        "tools": specs,
        "resources": resources,
    }
    if index % 2 == 0:
        pack["prompts"] = [
            {
                "name": "review",
                "description": f"Review one of the {entity}.",
                "arguments": [
                    {"name": "id", "required": True, "description": "Its id"},
                    {"name": "focus", "description": "What to look at"},
                ],
                "messages": [
                    {"role": "user", "text": f"Review {entity[:-1]} {{id}}, focusing on {{focus}}."}
                ],
            }
        ]
    if index % 3 == 0:
        pack["limits"] = {"concurrency": 8, "rate_per_second": 20, "burst": 40}
    first = specs[0]
    required = [p for p, spec in first.get("parameters", {}).items() if spec.get("required")]
    pack["tests"] = [
        {
            "name": "refuses a call without its required arguments",
            "tool": first["name"],
            "arguments": {},
            "expect": {"is_error": bool(required)},
        }
    ]
    return pack


def dump(pack: Json) -> str:
    header = "# yaml-language-server: $schema=../docs/pack.schema.json\n"
    return header + yaml.safe_dump(pack, sort_keys=False, allow_unicode=True, width=100)


def write_database(path: Path, rows: int = 200) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, name TEXT, email TEXT, "
            "city TEXT, status TEXT, created_on TEXT, amount_cents INTEGER)"
        )
        db.execute("DELETE FROM records")
        cities = ("Paris", "Lyon", "Berlin", "Madrid", "Oslo")
        db.executemany(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    f"Record {i}",
                    f"r{i}@example.com",
                    cities[i % len(cities)],
                    ("open", "pending", "closed")[i % 3],
                    f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
                    1000 + 37 * i,
                )
                for i in range(1, rows + 1)
            ],
        )
    path.chmod(0o644)


def write_folder(folder: Path, packs: int, tools: int, base_url: str) -> dict[str, int]:
    """Write ``packs`` pack files with ``tools`` tools in all; what was written, counted."""
    folder.mkdir(parents=True, exist_ok=True)
    write_database(folder / "bench.db")
    counts = {"packs": 0, "tools": 0, "sql_tools": 0, "rest_tools": 0, "resources": 0}
    counts["prompts"] = 0
    for index, n in enumerate(tool_counts(packs, tools)):
        pack = make_pack(index, n, base_url)
        pack_file(folder, index).write_text(dump(pack), encoding="utf-8")
        counts["packs"] += 1
        counts["tools"] += len(pack["tools"])
        counts["sql_tools"] += sum(1 for t in pack["tools"] if "sql" in t)
        counts["rest_tools"] += sum(1 for t in pack["tools"] if "rest" in t)
        counts["resources"] += len(pack["resources"])
        counts["prompts"] += len(pack.get("prompts", []))
    return counts


def rest_pack(base_url: str) -> Json:
    """The call-overhead pack: ``get_item(id)`` over the local endpoint, projected."""
    return {
        "pack": "pack",
        "description": "One REST tool over the benchmark's local endpoint.",
        "connections": {
            "api": {
                "type": "rest",
                "base_url": base_url,
                "headers": {"Accept": "application/json"},
                "allow_private_network": True,
                "timeout_seconds": 5,
            }
        },
        "tools": [
            {
                "name": "get_item",
                "description": "One item by id: its name, price and tags.",
                "annotations": {"readOnlyHint": True},
                "parameters": {
                    "id": {"type": "integer", "required": True, "minimum": 1, "maximum": 1000000}
                },
                "rest": {
                    "connection": "api",
                    "path": "/items/{id}",
                    "project": "{id: id, name: name, price: price_cents, tags: tags, "
                    "in_stock: stock.available}",
                    "errors": {"404": "no such item"},
                },
            }
        ],
    }
