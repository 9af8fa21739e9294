"""Settings declared once, as dataclass fields; flags and environment names derived from them.

Each process kind (gateway, indexer, operator) has one frozen dataclass whose fields are
declared with `setting(...)`. From a field `max_file_size` follow the flag `--max-file-size`
and the environment variable `CODEBASE_MCP_MAX_FILE_SIZE`; a flag beats the environment,
which beats the default. Names used by earlier releases still work for one release, with a
FutureWarning naming the new one. The README's tables are rendered from the same fields
(`settings_table`), and a test keeps them equal.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

ENV_PREFIX = "CODEBASE_MCP_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_UNSET = object()

T = TypeVar("T")


class InvalidSetting(ValueError):
    """A flag or environment variable holds a value that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class Spec:
    """How one field is configured: its help, its flag, its environment variable."""
    help: str
    flag: str | None  # None: environment only
    env: bool  # False: flag only
    old_env: tuple[str, ...]
    choices: tuple[str, ...] | None
    metavar: str | None
    separator: str | None  # list fields: how the environment value is split
    secret: bool
    default_text: str | None  # how the README shows the default when the value alone says too little
    parse: Callable[[str], Any] | None
    short: str | None


def setting(default: Any = None, *, help: str, flag: str | bool = True, short: str | None = None,
            env: bool = True, old_env: Sequence[str] = (), choices: Sequence[str] | None = None,
            metavar: str | None = None, separator: str | None = None, secret: bool = False,
            default_text: str | None = None, parse: Callable[[str], Any] | None = None) -> Any:
    """A settings field. `flag=False`: environment only; `env=False`: flag only. A boolean whose
    default is True takes a flag that turns it off (`watch` → `flag="--no-watch"`)."""
    spec = Spec(help=help, flag=flag if isinstance(flag, str) else (None if flag is False else ""), env=env,
                old_env=tuple(old_env), choices=tuple(choices) if choices else None, metavar=metavar,
                separator=separator, secret=secret, default_text=default_text, parse=parse, short=short)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for a list setting's default")
    return dataclasses.field(default=default, repr=not secret, metadata={"setting": spec})


def section(settings_class: type) -> Any:
    """A field holding another settings class (shared by several process kinds), loaded with this one."""
    return dataclasses.field(default_factory=settings_class, metadata={"section": settings_class})


def sections_of(settings_class: type) -> Iterator[tuple[str, type]]:
    for field in dataclasses.fields(settings_class):
        if "section" in field.metadata:
            yield field.name, field.metadata["section"]


def env_name(settings_class: type, field: dataclasses.Field) -> str:
    """ENV_PREFIX (or the class's `env_prefix`) + the field's name in capitals."""
    return getattr(settings_class, "env_prefix", ENV_PREFIX) + field.name.upper()


def flag_name(settings_class: type, field: dataclasses.Field) -> str | None:
    spec = _spec(field)
    if spec.flag is None:
        return None
    return spec.flag or getattr(settings_class, "flag_prefix", "--") + field.name.replace("_", "-")


def fields_of(settings_class: type) -> Iterator[dataclasses.Field]:
    for field in dataclasses.fields(settings_class):
        if "setting" in field.metadata:
            yield field


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, settings_class: type) -> None:
    """One flag per field. Defaults stay unset here so `load` can tell a given flag from an absent one."""
    for _, section_class in sections_of(settings_class):
        add_arguments(parser, section_class)
    for field in fields_of(settings_class):
        flag = flag_name(settings_class, field)
        if flag is None:
            continue
        spec = _spec(field)
        help_text = spec.help + (f" [env {env_name(settings_class, field)}]" if spec.env else "")
        kind = _kind(field)
        flags = [spec.short, flag] if spec.short else [flag]
        if kind is bool:
            parser.add_argument(*flags, dest=field.name, default=argparse.SUPPRESS, help=help_text,
                                action="store_false" if field.default is True else "store_true")
        elif kind is tuple:
            parser.add_argument(*flags, dest=field.name, default=argparse.SUPPRESS, help=help_text,
                                action="append", metavar=spec.metavar)
        else:
            parser.add_argument(*flags, dest=field.name, default=argparse.SUPPRESS, help=help_text,
                                choices=spec.choices, metavar=spec.metavar)


def load(settings_class: type[T], args: argparse.Namespace | None = None,
         environ: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """The settings from flags (when parsed), then the environment, then the defaults."""
    environ = os.environ if environ is None else environ
    given = vars(args) if args is not None else {}
    values: dict[str, Any] = {name: load(section_class, args, environ)
                              for name, section_class in sections_of(settings_class) if name not in overrides}
    for field in fields_of(settings_class):
        if field.name in overrides:
            continue
        if field.name in given:
            value = _from_flag(field, given[field.name], flag_name(settings_class, field) or field.name)
        else:
            value = _from_environment(field, env_name(settings_class, field), environ)
        if value is not _UNSET:
            values[field.name] = value
    return settings_class(**values, **overrides)


def _from_flag(field: dataclasses.Field, raw: Any, flag: str) -> Any:
    kind = _kind(field)
    if kind is bool:
        return bool(raw)
    if kind is tuple:
        separator = _spec(field).separator
        items = [part.strip() for item in raw for part in (item.split(",") if separator in (None, ",") else [item])]
        return tuple(_convert(field, item, flag) for item in items if item)
    return _convert(field, raw, flag)


def _from_environment(field: dataclasses.Field, new_name: str, environ: Mapping[str, str]) -> Any:
    spec = _spec(field)
    if not spec.env:
        return _UNSET
    name = new_name
    if name not in environ:
        name = next((old for old in spec.old_env if old in environ), "")
        if not name:
            return _UNSET
        warnings.warn(f"{name} is deprecated and will stop working in the next release: "
                      f"set {new_name} instead", FutureWarning, stacklevel=4)
    text = environ[name]
    kind = _kind(field)
    if kind is bool:
        return _boolean(text, name)
    if kind is tuple:
        separator = spec.separator or ","
        return tuple(_convert(field, item.strip(), name) for item in text.split(separator) if item.strip())
    if not text and field.default is None:
        return None
    return _convert(field, text if spec.secret else text.strip(), name)  # a secret is checked as given


def _convert(field: dataclasses.Field, text: Any, source: str) -> Any:
    spec = _spec(field)
    if not isinstance(text, str):
        return text
    if spec.choices and text not in spec.choices:
        raise InvalidSetting(f"{source}={text!r}: choose one of {', '.join(spec.choices)}")
    converter = spec.parse or _scalar_parser(field)
    try:
        return converter(text)
    except (ValueError, TypeError) as exc:
        detail = str(exc) or f"not a valid {getattr(converter, '__name__', 'value')}"
        raise InvalidSetting(f"{source}={text!r}: {detail}") from None


def _boolean(text: str, source: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE or not lowered:
        return False
    raise InvalidSetting(f"{source}={text!r} is not a boolean: use true or false")


def _scalar_parser(field: dataclasses.Field) -> Callable[[str], Any]:
    kind = _kind(field)
    if kind is int:
        return _whole_number
    if kind is float:
        return _number
    if kind is Path:
        return lambda text: Path(text).expanduser()
    return str


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("not a whole number") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("not a number") from None


def _kind(field: dataclasses.Field) -> type:
    """The value type from the annotation text (the modules use `from __future__ import annotations`)."""
    annotation = str(field.type).replace(" ", "")
    base = annotation.split("|")[0]
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("Path", Path), ("tuple", tuple)):
        if base == name or base.startswith(name + "["):
            return kind
    return str


def _spec(field: dataclasses.Field) -> Spec:
    return field.metadata["setting"]


def settings_table(settings_class: type) -> str:
    """A Markdown table of the fields: flag, environment variable, default, what it does."""
    lines = ["| flag | environment | default | what it does |", "|---|---|---|---|"]
    lines += _table_rows(settings_class)
    return "\n".join(lines) + "\n"


def _table_rows(settings_class: type) -> list[str]:
    lines = []
    for field in fields_of(settings_class):
        spec = _spec(field)
        flag = flag_name(settings_class, field)
        flag_cell = (f"`{_escaped(_flag_usage(flag, field))}`" + (" (repeatable)" if _kind(field) is tuple else "")
                     if flag else "")
        env_cell = f"`{env_name(settings_class, field)}`" if spec.env else ""
        if spec.env and _kind(field) is tuple:
            env_cell += f" (`{spec.separator or ','}`-separated)"
        lines.append(f"| {flag_cell} | {env_cell} | {_default_cell(field)} | {_escaped(spec.help)} |")
    for _, section_class in sections_of(settings_class):
        lines += _table_rows(section_class)
    return lines


def _flag_usage(flag: str, field: dataclasses.Field) -> str:
    spec = _spec(field)
    if spec.choices:
        return f"{flag} {'|'.join(spec.choices)}"
    if _kind(field) is bool:
        return flag
    return f"{flag} {spec.metavar or field.name.upper()}"


def _default_cell(field: dataclasses.Field) -> str:
    spec = _spec(field)
    if spec.default_text is not None:
        return _escaped(spec.default_text)
    default = field.default
    if default is None or default == () or (default is False and _kind(field) is bool):
        return ""
    if default is True:
        return "on"
    return f"`{default}`"


def _escaped(text: str) -> str:
    return text.replace("|", "\\|")


def deprecated_names(settings_class: type) -> dict[str, str]:
    """Old environment name → the new one, for the fields that had one."""
    names = {old: env_name(settings_class, field)
             for field in fields_of(settings_class) for old in _spec(field).old_env}
    for _, section_class in sections_of(settings_class):
        names.update(deprecated_names(section_class))
    return names


def environment_names(settings_class: type, *, secret: bool | None = None,
                      only: Sequence[str] | None = None) -> set[str]:
    """The environment names of the fields (new and old): only the secret ones with `secret=True`,
    only the fields named in `only` when given."""
    names: set[str] = set()
    for field in fields_of(settings_class):
        spec = _spec(field)
        if only is not None and field.name not in only:
            continue
        if spec.env and (secret is None or spec.secret == secret):
            names |= {env_name(settings_class, field), *spec.old_env}
    if only is None:
        for _, section_class in sections_of(settings_class):
            names |= environment_names(section_class, secret=secret)
    return names


def variable(settings_class: type, field_name: str) -> str:
    """The environment name of one field, for a process that configures another (a Job, a child)."""
    for field in fields_of(settings_class):
        if field.name == field_name:
            return env_name(settings_class, field)
    raise KeyError(f"{settings_class.__name__} has no setting {field_name!r}")


def as_environment(settings_class: type, **values: Any) -> dict[str, str]:
    """Environment variables that configure `settings_class` fields with these values."""
    environment = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, (tuple, list)):
            separator = _spec(next(f for f in fields_of(settings_class) if f.name == name)).separator or ","
            value = separator.join(str(item) for item in value)
        environment[variable(settings_class, name)] = str(value)
    return environment
