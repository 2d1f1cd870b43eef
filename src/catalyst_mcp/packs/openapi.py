"""Generate a knowledge pack from an OpenAPI 3.0 or 3.1 document (``catalyst packs from-openapi``).

* **Connection**: one ``rest`` connection ``api``; ``base_url`` is ``servers[0].url`` with its
  variables set to their defaults (or ``--base-url``). A relative server URL is resolved
  against ``http://localhost``; a loopback or private host turns ``allow_private_network`` on.
* **Auth**: the first supported scheme of ``components.securitySchemes`` (those the document's
  ``security`` requirements name first): HTTP bearer/basic, apiKey in a header or the query,
  OAuth2 client credentials. Secret values are ``${env:<PACK>_TOKEN}``-style references.
* **Tools**: one per operation. The name is the ``operationId`` in snake_case (else method and
  path), made valid and unique; the description comes from ``summary`` and ``description``.
  Path, query and header parameters, and the top-level properties of a JSON request body
  object, become parameters (type, enum, minimum/maximum, minLength/maxLength, pattern,
  array items, required, default); ``$ref`` to the document is followed, cycles are cut.
  Annotations follow the method: GET/HEAD read-only, DELETE destructive, PUT/DELETE idempotent.
* **Fallbacks**: a parameter of a shape a pack cannot declare (an object in the query, an
  array of objects, a mix of types) is read as ``string`` when it is a path, query or header
  parameter of scalar alternatives; a body property that is an object is passed as it is
  (``type: object``). Anything else is left out when optional, and its operation skipped when
  required. A body that is not a JSON object with properties becomes one ``body`` parameter.
  Operations whose body is not JSON (multipart, form, binary) are skipped. Every such decision
  is reported in :attr:`Conversion.notes`.

This module walks the document: the connection, the auth and one tool per operation. How a
schema becomes a parameter is :mod:`catalyst_mcp.packs.openapi_schemas`; names, descriptions,
annotations and the YAML written are :mod:`catalyst_mcp.packs.openapi_output`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import yaml
from pydantic import ValidationError

from catalyst_mcp.errors import ConfigError, ConfigProblem
from catalyst_mcp.packs.openapi_output import (
    Flow,
    first_paragraph,
    param_name,
    to_yaml,
    tool_annotations,
    tool_description,
    unique_name,
    unique_tool_name,
)
from catalyst_mcp.packs.openapi_schemas import (
    Unsupported,
    first_error,
    schema_kind,
    schema_to_param,
)
from catalyst_mcp.packs.scaffold import env_prefix
from catalyst_mcp.packs.schema import Pack, ToolSpec
from catalyst_mcp.settings import SERVER_NAME

__all__ = ["Conversion", "convert", "load_spec", "pack_name_from", "to_yaml"]

Json = dict[str, Any]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SUPPORTED_METHODS = frozenset({"get", "put", "post", "delete", "head", "patch"})
IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
JSON_MEDIA = re.compile(r"^application/([\w.-]+\+)?json$", re.IGNORECASE)


@dataclass(slots=True)
class Conversion:
    """The generated pack, and everything a person should know about how it was made."""

    pack: Json
    source: str
    title: str
    notes: list[str] = field(default_factory=list)  # approximations, left-out parameters
    skipped: list[str] = field(default_factory=list)  # operations not made into tools
    env: dict[str, str] = field(default_factory=dict)  # variable -> what it holds
    operations: list[str] = field(default_factory=list)  # "GET /x (operationId)" per tool


def load_spec(path: Path) -> Json:
    """An OpenAPI document read from a JSON or YAML file; :class:`ConfigError` if unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _problem(str(path), f"cannot read it: {error}") from error
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise _problem(str(path), f"not valid JSON or YAML: {error}") from error
    if not isinstance(data, dict):
        raise _problem(str(path), "an OpenAPI document is a mapping")
    version = str(data.get("openapi", ""))
    if "swagger" in data:
        raise _problem(str(path), "Swagger 2.0 is not supported: convert it to OpenAPI 3 first")
    if not re.match(r"^3\.[01]\.", version):
        raise _problem(str(path), f"openapi: {version or '(missing)'}: only 3.0 and 3.1 are read")
    return data


def _problem(file: str, message: str) -> ConfigError:
    return ConfigError([ConfigProblem(file, None, message)])


def pack_name_from(title: str) -> str:
    """A valid pack name from a document title: ``Swagger Petstore`` -> ``swagger-petstore``."""
    words = re.findall(r"[A-Za-z0-9]+", title.lower())
    name = ""
    for word in words:
        candidate = f"{name}-{word}" if name else word
        if len(candidate) > 32:
            break
        name = candidate
    return name or "api"


def convert(
    spec: Json,
    *,
    source: str = "openapi",
    name: str | None = None,
    base_url: str | None = None,
    include_tags: tuple[str, ...] = (),
) -> Conversion:
    """The pack for ``spec`` (validated against the pack format) and notes on how it was made."""
    info = spec.get("info")
    info = info if isinstance(info, dict) else {}
    title = str(info.get("title") or "API")
    name = name or pack_name_from(title)
    if not SERVER_NAME.match(name):
        raise _problem(source, f"pack name {name!r}: letters and digits joined by '-' or '_'")
    conv = Conversion({}, source, title)
    doc = _Document(spec, conv)
    connection = doc.connection(base_url, env_prefix(name))
    tools = doc.tools(include_tags)
    description = title + (f" {info['version']}" if info.get("version") else "")
    summary = first_paragraph(str(info.get("description") or ""))
    conv.pack = {
        "pack": name,
        "description": f"{description}: {summary}" if summary else description,
        "connections": {"api": connection},
        "tools": tools,
    }
    try:
        Pack.model_validate(conv.pack)
    except ValidationError as error:  # a bug of this module: say so plainly
        raise _problem(
            source, f"the generated pack is not valid (please report): {error}"
        ) from error
    return conv


# ---- the document ---------------------------------------------------------------------------


class _Document:
    def __init__(self, spec: Json, conv: Conversion) -> None:
        self.spec = spec
        self.conv = conv
        self.base_url = ""

    def note(self, text: str) -> None:
        self.conv.notes.append(text)

    # $ref: local references only, followed in chains, cycles refused

    def deref(self, node: Any, seen: tuple[str, ...] = ()) -> tuple[Any, tuple[str, ...]]:
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                raise Unsupported(f"$ref {ref!r} is not inside the document")
            if ref in seen:
                raise Unsupported(f"$ref {ref} is part of a cycle")
            seen = (*seen, ref)
            target = self.pointer(ref)
            siblings = {k: v for k, v in node.items() if k != "$ref"}  # 3.1: summary, description
            node = {**target, **siblings} if isinstance(target, dict) else target
        return node, seen

    def pointer(self, ref: str) -> Any:
        node: Any = self.spec
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise Unsupported(f"$ref {ref} points to nothing")
        return node

    def schema(self, node: Any, seen: tuple[str, ...] = ()) -> Json:
        """A schema with references followed and ``allOf`` merged into one mapping."""
        node, seen = self.deref(node, seen)
        if not isinstance(node, dict):
            return {}
        if "allOf" not in node:
            return node
        merged: Json = {k: v for k, v in node.items() if k != "allOf"}
        for part in node["allOf"] if isinstance(node["allOf"], list) else []:
            sub = self.schema(part, seen)
            for key, value in sub.items():
                if key == "properties" and isinstance(value, dict):
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required" and isinstance(value, list):
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    # the connection

    def connection(self, override: str | None, prefix: str) -> Json:
        url = override or self._server_url()
        parts = urlsplit(url)
        if not parts.scheme:
            url = urljoin("http://localhost/", url)
            self.note(
                f"the server URL {url.removeprefix('http://localhost')!r} is relative: base_url "
                "is http://localhost + it; give --base-url with the API's address"
            )
            parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _problem(self.conv.source, f"server URL {url!r} is not an http(s) URL")
        if parts.query or parts.fragment:
            self.note("the query and fragment of the server URL are left out of base_url")
        self.base_url = urlunsplit(parts._replace(query="", fragment="")).rstrip("/")
        conn: Json = {"type": "rest", "base_url": self.base_url}
        if _is_private(parts.hostname):
            conn["allow_private_network"] = True
            self.note(
                f"allow_private_network is on: {parts.hostname} is a loopback or private "
                "address, which REST connections refuse otherwise"
            )
        auth = self._auth(prefix)
        if auth is not None:
            conn["auth"] = auth
        return conn

    def _server_url(self) -> str:
        servers = self.spec.get("servers")
        server = servers[0] if isinstance(servers, list) and servers else {"url": "/"}
        if not isinstance(server, dict):
            return "/"
        url = str(server.get("url") or "/")
        variables = server.get("variables")
        variables = variables if isinstance(variables, dict) else {}

        def value(match: re.Match[str]) -> str:
            var = variables.get(match[1])
            if isinstance(var, dict) and var.get("default") is not None:
                return str(var["default"])
            raise _problem(
                self.conv.source, f"server variable {{{match[1]}}} has no default: use --base-url"
            )

        return re.sub(r"\{([^}]+)\}", value, url)

    def _auth(self, prefix: str) -> Json | None:
        components = self.spec.get("components")
        schemes = components.get("securitySchemes") if isinstance(components, dict) else None
        if not isinstance(schemes, dict) or not schemes:
            return None
        used = _security_names(self.spec)
        order = [n for n in used if n in schemes] + [n for n in schemes if n not in used]
        for scheme_name in order:
            try:
                scheme, _ = self.deref(schemes[scheme_name])
            except Unsupported as error:
                self.note(f"security scheme {scheme_name!r} left out: {error}")
                continue
            auth = self._one_auth(scheme_name, scheme, prefix) if isinstance(scheme, dict) else None
            if auth is not None:
                others = [n for n in used if n != scheme_name and n in schemes]
                if others:
                    self.note(
                        f"auth uses security scheme {scheme_name!r}; a connection has one auth, "
                        f"so {', '.join(map(repr, others))} are not used"
                    )
                return auth
        return None

    def _one_auth(self, scheme_name: str, scheme: Json, prefix: str) -> Json | None:
        kind = scheme.get("type")
        http = str(scheme.get("scheme", "")).lower()
        where = f"security scheme {scheme_name!r}"
        if kind == "http" and http == "bearer":
            token = self._env(f"{prefix}_TOKEN", f"bearer token ({where})")
            return {"type": "bearer", "token": token}
        if kind == "http" and http == "basic":
            user = self._env(f"{prefix}_USERNAME", f"user name ({where})")
            password = self._env(f"{prefix}_PASSWORD", f"password ({where})")
            return {"type": "basic", "username": user, "password": password}
        if kind == "apiKey" and scheme.get("in") in ("header", "query") and scheme.get("name"):
            key = self._env(f"{prefix}_API_KEY", f"API key ({where})")
            return {
                "type": "api_key",
                "name": str(scheme["name"]),
                "in": scheme["in"],
                "value": key,
            }
        flows = scheme.get("flows") if kind == "oauth2" else None
        flow = flows.get("clientCredentials") if isinstance(flows, dict) else None
        if isinstance(flow, dict) and flow.get("tokenUrl"):
            client_id = self._env(f"{prefix}_CLIENT_ID", f"OAuth2 client id ({where})")
            secret = self._env(f"{prefix}_CLIENT_SECRET", f"OAuth2 client secret ({where})")
            scopes = flow.get("scopes")
            return {
                "type": "oauth2_client_credentials",
                "token_url": urljoin(self.base_url + "/", str(flow["tokenUrl"])),
                "client_id": client_id,
                "client_secret": secret,
                "scopes": sorted(scopes) if isinstance(scopes, dict) else [],
            }
        what = f"{kind} {http}".strip() if kind != "apiKey" else f"apiKey in {scheme.get('in')}"
        self.note(
            f"{where} left out: {what} is not supported (bearer, basic, apiKey in a header "
            "or the query, oauth2 clientCredentials are)"
        )
        return None

    def _env(self, variable: str, meaning: str) -> str:
        self.conv.env[variable] = meaning
        return f"${{env:{variable}}}"

    # the tools

    def tools(self, include_tags: tuple[str, ...]) -> list[Json]:
        paths = self.spec.get("paths")
        tools: list[Json] = []
        names: set[str] = set()
        left_out = 0
        for path, item in (paths if isinstance(paths, dict) else {}).items():
            try:
                item, _ = self.deref(item)
            except Unsupported as error:
                self.conv.skipped.append(f"{path}: {error}")
                continue
            if not isinstance(item, dict):
                continue
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                where = f"{method.upper()} {path}"
                if include_tags and not set(include_tags) & set(op.get("tags") or []):
                    left_out += 1
                    continue
                if method not in SUPPORTED_METHODS:
                    self.conv.skipped.append(f"{where}: {method.upper()} is not supported")
                    continue
                try:
                    tool = self._tool(str(path), method, op, item, names)
                except Unsupported as error:
                    self.conv.skipped.append(f"{where}: {error}")
                    continue
                names.add(tool["name"])
                tools.append(tool)
                op_id = f" ({op['operationId']})" if op.get("operationId") else ""
                self.conv.operations.append(where + op_id)
        if left_out:
            tags = ", ".join(include_tags)
            self.note(f"{left_out} operation(s) without the tag(s) {tags} left out")
        return tools

    def _tool(self, path: str, method: str, op: Json, item: Json, taken: set[str]) -> Json:
        where = f"{method.upper()} {path}"
        params: dict[str, Json] = {}
        action: Json = {"connection": "api", "method": method.upper(), "path": path}
        declared = self._parameters(item, op)
        for spec in declared:
            self._parameter(where, spec, params, action)
        in_path = {str(spec["name"]) for spec in declared if spec["in"] == "path"}
        for var in re.findall(r"\{([^}]+)\}", path):
            if var not in in_path:  # a path variable the operation did not declare
                local = unique_name(param_name(var), params)
                params[local] = Flow(type="string", required=True)
                action["path"] = action["path"].replace(f"{{{var}}}", f"{{{local}}}")
                self.note(f"{where}: path variable {{{var}}} is not declared: read as a string")
        if "requestBody" in op:
            self._body(where, method, op["requestBody"], params, action)
        tool: Json = {"name": unique_tool_name(op.get("operationId"), method, path, taken)}
        summary = " ".join(str(op.get("summary") or "").split())
        if summary and len(summary) <= 100:
            tool["title"] = summary
        tool["description"] = tool_description(op, where)
        tool["annotations"] = tool_annotations(method)
        if params:
            tool["parameters"] = params
        tool["rest"] = action
        try:
            ToolSpec.model_validate(tool)
        except ValidationError as error:
            raise Unsupported(first_error(error)) from error
        return tool

    def _parameters(self, item: Json, op: Json) -> list[Json]:
        """The operation's parameters, path-level ones first, overridden by (name, in)."""
        merged: dict[tuple[str, str], Json] = {}
        for raw in [*(item.get("parameters") or []), *(op.get("parameters") or [])]:
            spec, _ = self.deref(raw)
            if isinstance(spec, dict) and "name" in spec and "in" in spec:
                merged[(str(spec["name"]), str(spec["in"]))] = spec
        return list(merged.values())

    def _parameter(self, where: str, spec: Json, params: dict[str, Json], action: Json) -> None:
        name, place = str(spec["name"]), str(spec["in"])
        required = bool(spec.get("required")) or place == "path"
        if place == "header" and name.lower() in IGNORED_HEADERS:
            return
        try:
            if place == "cookie":
                raise Unsupported("cookie parameters are not supported")
            if "schema" not in spec:
                raise Unsupported("a parameter described by 'content' is not supported")
            param = schema_to_param(self, spec["schema"], place, required, spec.get("description"))
        except Unsupported as error:
            if required:
                raise Unsupported(f"required {place} parameter {name!r}: {error}") from error
            self.note(f"{where}: {place} parameter {name!r} left out: {error}")
            return
        local = unique_name(param_name(name), params, place)
        params[local] = param
        if place == "path":
            action["path"] = action["path"].replace(f"{{{name}}}", f"{{{local}}}")
        elif place == "query":
            action.setdefault("query", {})[name] = f"{{{local}}}"
        else:
            action.setdefault("headers", {})[name] = f"{{{local}}}"

    def _body(
        self, where: str, method: str, raw: Any, params: dict[str, Json], action: Json
    ) -> None:
        body, _ = self.deref(raw)
        if not isinstance(body, dict):
            return
        content = body.get("content")
        content = content if isinstance(content, dict) else {}
        media = next((m for m in content if JSON_MEDIA.match(str(m))), None)
        required = bool(body.get("required"))
        if method in ("get", "head"):
            self.note(f"{where}: the request body is left out ({method.upper()} has none)")
            return
        if media is None:
            kinds = ", ".join(map(str, content)) or "no media type"
            if required:
                raise Unsupported(f"the request body is {kinds} (only JSON bodies are supported)")
            self.note(f"{where}: the optional {kinds} request body is left out")
            return
        if media.lower() != "application/json":
            action["headers"] = {**action.get("headers", {}), "Content-Type": media}
        media_type = content[media] if isinstance(content[media], dict) else {}
        schema = self.schema(media_type.get("schema", {}))
        properties = schema.get("properties")
        if schema_kind(self, schema) == "object" and isinstance(properties, dict) and properties:
            try:
                action["body"] = self._body_properties(where, schema, params)
                return
            except Unsupported as error:
                self.note(f"{where}: the body is one 'body' parameter: {error}")
        try:
            param = schema_to_param(self, schema, "body", required, body.get("description"))
        except Unsupported as error:
            if required:
                raise Unsupported(f"the request body: {error}") from error
            self.note(f"{where}: the optional request body is left out: {error}")
            return
        local = unique_name("body", params)
        params[local] = param
        action["body"] = f"{{{local}}}"

    def _body_properties(self, where: str, schema: Json, params: dict[str, Json]) -> Json:
        required = set(schema.get("required") or [])
        body: Json = {}
        added: dict[str, Json] = {}
        for prop, raw in schema["properties"].items():
            try:
                prop_schema = self.schema(raw)
                if prop_schema.get("readOnly"):
                    continue  # set by the server, never sent
                param = schema_to_param(self, prop_schema, "body", prop in required)
            except Unsupported as error:
                if prop in required:
                    raise Unsupported(f"required property {prop!r}: {error}") from error
                self.note(f"{where}: body property {prop!r} left out: {error}")
                continue
            local = unique_name(param_name(str(prop)), {**params, **added}, "body")
            added[local] = param
            body[str(prop)] = f"{{{local}}}"
        params.update(added)
        return body


# ---- servers and security -------------------------------------------------------------------


def _security_names(spec: Json) -> list[str]:
    """Scheme names in the order the document's requirements use them (global first)."""
    names: list[str] = []
    requirements = list(spec.get("security") or [])
    paths = spec.get("paths")
    for item in (paths if isinstance(paths, dict) else {}).values():
        for method in METHODS:
            op = item.get(method) if isinstance(item, dict) else None
            if isinstance(op, dict):
                requirements.extend(op.get("security") or [])
    for requirement in requirements:
        for name in requirement if isinstance(requirement, dict) else ():
            if name not in names:
                names.append(str(name))
    return names


def _is_private(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback
