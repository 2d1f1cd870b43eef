"""Where each setting comes from: the config file, the environment, or its default.

Every setting can be given in the environment as ``CATALYST_`` plus its path, upper-cased, with
sections joined by ``__``, to any depth: ``gateway.port`` is ``CATALYST_GATEWAY__PORT``,
``auth.jwt.hs256_secret`` is ``CATALYST_AUTH__JWT__HS256_SECRET``, ``servers.github.command`` is
``CATALYST_SERVERS__GITHUB__COMMAND``. pydantic-settings' :class:`EnvSettingsSource` reads them
(names are case-insensitive; map keys set this way, like server names, come out lower-case); a
value for a list, a map or a whole section is YAML (so JSON too): ``'[a, b]'``, ``'{A: 1}'``;
``null`` is "unset". The environment wins over the file, value by value.

A ``CATALYST_*`` variable that names no setting (a typo such as ``CATALYST_AUTH_ENABLED``) is
not an error, since it may be meant for another version; it is reported as a warning naming the
closest setting (:func:`unknown_variables`), by ``catalyst serve`` at start and by
``catalyst config validate``. :func:`describe` lists the effective settings with the source of
each value, secrets masked (``catalyst config show``).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from catalyst_mcp.errors import ConfigProblem

__all__ = [
    "DELIMITER",
    "ENV_PREFIX",
    "OTHER_VARIABLES",
    "EnvLayer",
    "SettingValue",
    "describe",
    "read_environment",
    "setting_variables",
    "unknown_variables",
    "variable_of",
]

ENV_PREFIX = "CATALYST_"
DELIMITER = "__"
NONE_TEXT = "null"
MASK = "********"
# CATALYST_* variables that are not settings (docs/configuration.md, docs/security.md).
OTHER_VARIABLES: dict[str, str] = {
    "CATALYST_CONFIG": "the config file, when --config is not given",
    "CATALYST_DATABASE_URL": "the database, when storage.url is unset",
    "CATALYST_SECRET_KEY": "the secrets vault's key (never a setting: never in a file)",
    "CATALYST_SECRET_KEY_PREVIOUS": "the vault's previous key, while secrets are re-sealed",
    "CATALYST_AUDIT_KEY": "the key of the audit trail's argument digests",
    "CATALYST_API_KEY": "the API key catalyst connect and catalyst servers send the gateway "
    "(and client configs read)",
    "CATALYST_TEST_KUBECONFIG": "tests only: a kubeconfig for the live Kubernetes tests",
}
# Maps whose values are secrets however they are named (an upstream's env and headers carry
# tokens): shown masked.
SECRET_MAPS = frozenset({"env", "headers"})

Path_ = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EnvLayer:
    """What the environment sets: nested values to lay over the file's, and who set what."""

    data: dict[str, Any]
    variables: dict[Path_, str]  # setting path -> the variable that gives it
    unknown: list[ConfigProblem]  # CATALYST_* variables that name no setting


@dataclass(frozen=True, slots=True)
class SettingValue:
    """One effective setting: its dotted path, its value (secrets masked) and where from."""

    path: str
    value: Any
    source: str  # "default", "environment", or "file"
    where: str  # "", the variable's name, or "file:line"


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (not only ``os.environ``),
    reading complex values as YAML, of which JSON is a subset."""

    def __init__(self, model: type[BaseModel], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(
            cast("Any", model),
            case_sensitive=False,
            env_prefix=ENV_PREFIX,
            env_nested_delimiter=DELIMITER,
            env_parse_none_str=NONE_TEXT,
        )

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, False, False, NONE_TEXT)

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value  # validation then says what is wrong with it, naming the variable


def read_environment(model: type[BaseModel], environ: Mapping[str, str]) -> EnvLayer:
    """The settings of ``model`` that ``environ`` gives, and the ``CATALYST_*`` variables in it
    that name none."""
    known: dict[str, str] = {}
    variables: dict[Path_, str] = {}
    unknown: list[ConfigProblem] = []
    for name, value in sorted(environ.items()):
        if not name.upper().startswith(ENV_PREFIX) or name.upper() in OTHER_VARIABLES:
            continue
        parts = name[len(ENV_PREFIX) :].split(DELIMITER)
        path = _resolve(model, parts)
        if path is None:
            unknown.append(_unknown(model, name))
            continue
        known[name] = value
        variables[path] = name
        # a field given by its alias (``type`` for ``transport``) is located by either name
        variables.setdefault(
            tuple(p.lower() for p in name[len(ENV_PREFIX) :].split(DELIMITER)), name
        )
    data = _Environment(model, known)() if known else {}
    return EnvLayer(data, variables, unknown)


def unknown_variables(model: type[BaseModel], environ: Mapping[str, str]) -> list[ConfigProblem]:
    """Warnings for the ``CATALYST_*`` variables of ``environ`` that name no setting."""
    return read_environment(model, environ).unknown


def variable_of(path: tuple[str | int, ...]) -> str:
    """The environment variable of a setting path: ``("gateway", "port")`` ->
    ``CATALYST_GATEWAY__PORT``."""
    return ENV_PREFIX + DELIMITER.join(str(p).upper() for p in path)


def setting_variables(model: type[BaseModel]) -> list[str]:
    """Every setting's variable; map keys (a server's name) appear as ``<NAME>``."""
    return [variable_of(path) for path, _ in _leaves(model, ())]


def _unknown(model: type[BaseModel], name: str) -> ConfigProblem:
    candidates = setting_variables(model) + list(OTHER_VARIABLES)
    close = difflib.get_close_matches(name.upper(), candidates, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    message = f"{name} is not a setting and is ignored{hint}"
    return ConfigProblem("environment", None, message)


# ---- the shape of the settings ---------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> X, ``Annotated[X, ...]`` -> X (repeatedly)."""
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_map(annotation: Any) -> bool:
    return get_origin(annotation) is dict or annotation is dict


def _field_named(model: type[BaseModel], key: str) -> tuple[str, FieldInfo] | None:
    key = key.lower()
    for name, field in model.model_fields.items():
        if name.lower() == key or (field.alias or "").lower() == key:
            return name, field
    return None


def _resolve(model: type[BaseModel], parts: list[str]) -> Path_ | None:
    """The setting path ``parts`` name (field names, map keys lower-cased), or None."""
    if not parts or any(not p for p in parts):
        return None
    annotation: Any = model
    path: list[str] = []
    for part in parts:
        annotation = _unwrap(annotation)
        if _is_model(annotation):
            found = _field_named(annotation, part)
            if found is None:
                return None
            path.append(found[0])
            annotation = found[1].annotation
        elif _is_map(annotation):
            path.append(part.lower())
            args = get_args(annotation)
            annotation = args[1] if len(args) == 2 else Any
        else:
            return None  # past a plain value
    return tuple(path)


def _leaves(model: type[BaseModel], prefix: Path_) -> Iterator[tuple[Path_, FieldInfo]]:
    """Every plain setting of ``model`` (type-level: a map's key is ``<NAME>``)."""
    for name, field in model.model_fields.items():
        annotation = _unwrap(field.annotation)
        path = (*prefix, name)
        if _is_model(annotation):
            yield from _leaves(annotation, path)
        elif _is_map(annotation) and _is_model(_unwrap(get_args(annotation)[-1])):
            yield from _leaves(_unwrap(get_args(annotation)[-1]), (*path, "<NAME>"))
        else:
            yield path, field


# ---- catalyst config show --------------------------------------------------------------------

Source = Literal["default", "environment", "file"]


def describe(
    settings: BaseModel,
    file_lines: Mapping[tuple[str | int, ...], int],
    file: str | None,
    env: EnvLayer,
) -> list[SettingValue]:
    """Every effective setting of ``settings`` with the source of its value, secrets masked.

    ``file_lines`` are the located paths of the config file (``LocatedYaml.lines``)."""
    out: list[SettingValue] = []
    for path, value, field in _values(settings, ()):
        source: Source = "default"
        where = ""
        variable = _longest(env.variables, path)
        located = file_lines.get(path) if file is not None else None
        if variable is not None:
            source, where = "environment", variable
        elif located is not None:
            source, where = "file", f"{file}:{located}"
        out.append(SettingValue(".".join(path), _masked(path, value, field), source, where))
    return out


def _longest(table: Mapping[Any, Any], path: Path_) -> Any:
    for end in range(len(path), 0, -1):
        found = table.get(path[:end])
        if found is not None:
            return found
    return None


def _values(model: BaseModel, prefix: Path_) -> Iterator[tuple[Path_, Any, FieldInfo]]:
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        path = (*prefix, name)
        if isinstance(value, BaseModel):
            yield from _values(value, path)
        elif (
            isinstance(value, dict)
            and value
            and all(isinstance(v, BaseModel) for v in value.values())
        ):
            for key, item in value.items():
                yield from _values(item, (*path, str(key)))
        else:
            yield path, _plain(value), field


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _masked(path: Path_, value: Any, field: FieldInfo) -> Any:
    """Secrets hidden: fields kept out of ``repr``, an upstream's env and headers, and the
    password of any URL."""
    if path[-1] in SECRET_MAPS and isinstance(value, dict):
        return dict.fromkeys(value, MASK)
    if not field.repr and value not in (None, ""):
        return _url_masked(value) if _is_url(value) else MASK
    if _is_url(value):
        return _url_masked(value)
    return value


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and "://" in value


def _url_masked(url: str) -> str:
    """``scheme://user:pass@host`` -> ``scheme://user:********@host``; query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:{MASK}@{host}"
    query = "&".join(
        f"{p.partition('=')[0]}={MASK}" if "=" in p else p for p in parts.query.split("&") if p
    )
    return parts._replace(netloc=netloc, query=query).geturl()
