"""One configuration approach for every CLI: a command's options are a typed dataclass whose fields
carry their help (``setting(...)``); ``add_options`` turns it into argparse flags, and
``options_from_args`` builds the dataclass from, in increasing priority:

1. the fields' defaults,
2. ``--config FILE.yaml`` (a mapping of field names; nested dataclasses as nested mappings),
3. ``--set key=value`` overrides (dotted keys for nested fields, repeatable),
4. the flags given on the command line.

Every value is converted to its field's type (``int``, ``float``, ``bool``, ``Path``, ``Literal``,
``X | None``, ``tuple``/``list``, ``dict``, nested dataclasses); an unknown key or a value of the wrong
type is a :class:`ConfigError` naming the valid keys or the expected type. Libraries receive the typed
dataclass, never an ``argparse.Namespace``."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from common.errors import ConfigError

T = TypeVar("T")
_NONE_WORDS = ("none", "null", "~")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")
_METAVARS = {Path: "PATH", int: "N", float: "X"}
_RESERVED = ("config", "set", "debug", "command")  # the shell's own flags


def setting(
    default: Any = None,
    help: str = "",  # noqa: A002 - reads as the argparse keyword it becomes
    *,
    default_factory: Any = dataclasses.MISSING,
    required: bool = False,
    flag: bool = True,
    short: str | None = None,
    metavar: str | None = None,
    repeat: bool = False,
    inline: bool = False,
) -> Any:
    """A dataclass field of a command's options.

    ``required``: must come from a flag, ``--config`` or ``--set`` (the default is a placeholder);
    ``flag=False``: settable through ``--config``/``--set`` only; ``repeat``: a list flag given once per
    item (``--source a=1 --source b=2``); ``inline``: a nested dataclass whose fields are addressed as if
    they were this class's own (``--set namespace=x`` rather than ``--set release.namespace=x``)."""
    metadata = {
        "help": help,
        "required": required,
        "flag": flag,
        "short": short,
        "metavar": metavar,
        "repeat": repeat,
        "inline": inline,
    }
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ---------------------------------------------------------------- types


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional_inner(kind: Any) -> Any | None:
    """``X`` for ``X | None`` (or ``Optional[X]``), else None."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(kind)) == 2:
            return args[0]
    return None


def type_name(kind: Any) -> str:
    inner = _optional_inner(kind)
    if inner is not None:
        return f"{type_name(inner)} or null"
    if typing.get_origin(kind) is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(kind)))
    if dataclasses.is_dataclass(kind):
        return "a mapping"
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        return f"a list of {type_name(typing.get_args(kind)[0])}"
    if origin is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "text", Path: "a path"}.get(
        kind, getattr(kind, "__name__", str(kind))
    )


def _scalar(kind: Any) -> bool:
    inner = _optional_inner(kind)
    kind = inner if inner is not None else kind
    return kind in (int, float, bool, str, Path) or typing.get_origin(kind) is typing.Literal


def _sequence_item(kind: Any) -> Any | None:
    inner = _optional_inner(kind)
    kind = inner if inner is not None else kind
    if typing.get_origin(kind) in (list, tuple):
        return typing.get_args(kind)[0]
    return None


def convert(value: Any, kind: Any, key: str, from_text: bool = False) -> Any:
    """``value`` (from YAML, or the text of a flag/``--set`` when ``from_text``) as a ``kind``."""
    inner = _optional_inner(kind)
    if inner is not None:
        if value is None or (from_text and str(value).strip().lower() in _NONE_WORDS):
            return None
        return convert(value, inner, key, from_text)
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise ConfigError(_bad_value(key, value, kind, choices))
        return value
    if dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        if from_text:
            value = _yaml(value, key)
        return build(kind, value if value is not None else {}, key)
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        if from_text and isinstance(value, str):
            value = _yaml(value, key) if value.lstrip().startswith("[") else [value]
        if not isinstance(value, (list, tuple)):
            value = [value]
        item = typing.get_args(kind)[0]
        items = [convert(v, item, f"{key}[{i}]", from_text) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if from_text and isinstance(value, str):
            value = _yaml(value, key)
        if not isinstance(value, Mapping):
            raise ConfigError(_bad_value(key, value, kind))
        item = typing.get_args(kind)[1]
        return {str(k): convert(v, item, f"{key}.{k}", from_text) for k, v in value.items()}
    return _convert_plain(value, kind, key)


def _convert_plain(value: Any, kind: Any, key: str) -> Any:
    text = value.strip() if isinstance(value, str) else None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE_WORDS + _FALSE_WORDS:
            return text.lower() in _TRUE_WORDS
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if text is not None:
            try:
                return int(text)
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if text is not None:
            try:
                return float(text)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif kind is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value)
    elif kind is Any:
        return value
    raise ConfigError(_bad_value(key, value, kind))


def _bad_value(key: str, value: Any, kind: Any, choices: Sequence[Any] | None = None) -> str:
    text = f"{key}: {value!r} is not {type_name(kind)}"
    if choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        text += f" (did you mean {close[0]!r}?)" if close else ""
    return text


def _yaml(text: str, key: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{key}: {text!r} is not valid YAML ({str(error).splitlines()[0]})") from None


# ---------------------------------------------------------------- schema


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _inline_class(cls: type, item: dataclasses.Field) -> type:
    return _hints(cls)[item.name]


def keys(cls: type) -> dict[str, Any]:
    """Key -> type of every setting of ``cls`` at the top level (inline fields' settings included)."""
    hints, out = _hints(cls), {}
    for item in _fields(cls):
        if item.metadata.get("inline"):
            out.update(keys(hints[item.name]))
        else:
            out[item.name] = hints[item.name]
    return out


def _unknown_key(key: str, where: str, valid: Iterable[str]) -> ConfigError:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown key {key!r} in {where}{hint}; valid keys: {', '.join(valid)}")


def _normal(key: Any) -> str:
    return str(key).strip().replace("-", "_")


def build(cls: type[T], data: Mapping[str, Any], section: str = "") -> T:
    """``cls`` from a mapping of its settings (``section``: the dotted key of a nested one, for
    messages): unknown keys and wrongly typed values are errors."""
    if not isinstance(data, Mapping):
        where = section or "the options"
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__} {data!r}")
    data = {_normal(k): v for k, v in data.items()}
    valid = keys(cls)
    for key in data:
        if key not in valid:
            raise _unknown_key(key, f"section {section!r}" if section else "the options", valid)
    hints, values = _hints(cls), {}
    for item in _fields(cls):
        if item.metadata.get("inline"):
            inner = hints[item.name]
            values[item.name] = build(inner, {k: v for k, v in data.items() if k in keys(inner)}, section)
        elif item.name in data:
            label = f"{section}.{item.name}" if section else item.name
            values[item.name] = convert(data[item.name], hints[item.name], label)
    return cls(**values)


# ---------------------------------------------------------------- overrides


def _kind_at(cls: type, path: list[str]) -> Any:
    """The type of the setting at a dotted path, or a ConfigError naming the valid keys."""
    kind: Any = cls
    for depth, part in enumerate(path):
        inner = _optional_inner(kind)
        kind = inner if inner is not None else kind
        if dataclasses.is_dataclass(kind):
            valid = keys(kind)
            if part not in valid:
                section = ".".join(path[:depth])
                raise _unknown_key(part, f"section {section!r}" if depth else "the options", valid)
            kind = valid[part]
        elif typing.get_origin(kind) is dict:
            kind = typing.get_args(kind)[1]
        else:
            raise ConfigError(f"{'.'.join(path[:depth])} is {type_name(kind)}, not a section with keys")
    return kind


def apply_override(cls: type, data: dict[str, Any], item: str) -> None:
    """Apply one ``key=value`` (dotted key) to the nested settings ``data`` of ``cls``; the value is
    converted to the setting's type at once, so a bad one is reported with its key."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"expected KEY=VALUE (e.g. --set {next(iter(keys(cls)))}=...)")
    path = [_normal(p) for p in key.split(".")]
    kind = _kind_at(cls, path)
    value = convert(raw, kind, ".".join(path), from_text=True)
    node = data
    for part in path[:-1]:
        child = node.get(part)
        node[part] = child = dict(child) if isinstance(child, Mapping) else {}
        node = child
    node[path[-1]] = value


def load_yaml_config(path: Path, configs: Path | None = None) -> dict[str, Any]:
    """A ``--config`` file: a YAML path, or a name of a file under ``configs`` (e.g. configs/release)."""
    if not path.exists() and configs is not None and (configs / f"{path}.yaml").is_file():
        path = configs / f"{path}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in configs.glob("*.yaml")) if configs is not None else []
        hint = f" or one of: {', '.join(names)}" if names else ""
        raise ConfigError(f"config file {path} not found; pass a YAML file{hint}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(error).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def resolve(
    cls: type[T],
    config: Path | None = None,
    overrides: Sequence[str] = (),
    flags: Mapping[str, Any] | None = None,
    configs: Path | None = None,
) -> T:
    """Defaults < config file < ``--set`` overrides < explicit flags, checked and typed."""
    data: dict[str, Any] = {}
    if config is not None:
        loaded = load_yaml_config(config, configs)
        try:
            build(cls, loaded)  # checked on its own, so that its mistakes are reported as the file's
        except ConfigError as error:
            raise ConfigError(f"config file {config}: {error}") from None
        data = {_normal(k): v for k, v in loaded.items()}
    for item in overrides:
        try:
            apply_override(cls, data, item)
        except ConfigError as error:
            raise ConfigError(f"--set {item}: {error}") from None
    data.update(flags or {})
    options = build(cls, data)
    missing = [
        f"--{k.replace('_', '-')}" for k in _required(cls) if getattr(_owner(options, cls, k), k) is None
    ]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)} (give it as a flag, in --config or with --set)")
    return options


def _required(cls: type) -> list[str]:
    hints, out = _hints(cls), []
    for item in _fields(cls):
        if item.metadata.get("inline"):
            out += _required(hints[item.name])
        elif item.metadata.get("required"):
            out.append(item.name)
    return out


def _owner(options: Any, cls: type, key: str) -> Any:
    for item in _fields(cls):
        if item.metadata.get("inline") and key in keys(_hints(cls)[item.name]):
            return _owner(getattr(options, item.name), _hints(cls)[item.name], key)
    return options


# ---------------------------------------------------------------- argparse


def _flag_help(item: dataclasses.Field, default: Any) -> str:
    text = item.metadata.get("help", "")
    if item.metadata.get("required"):
        return f"{text} (required)" if text else "(required)"
    if default in (None, False, (), []) or "default" in text.lower():
        return text
    shown = default.value if hasattr(default, "value") else default
    return f"{text} (default: {shown})" if text else f"(default: {shown})"


def _flag_fields(cls: type) -> list[tuple[dataclasses.Field, Any, Any]]:
    """(field, type, default) of every setting that is a flag, inline classes' included."""
    hints, out = _hints(cls), []
    defaults = _defaults(cls)
    for item in _fields(cls):
        kind = hints[item.name]
        if item.metadata.get("inline"):
            out += _flag_fields(kind)
        elif item.metadata.get("flag", True) and (_scalar(kind) or _sequence_item(kind) is not None):
            out.append((item, kind, defaults.get(item.name)))
    return out


def _defaults(cls: type) -> dict[str, Any]:
    out = {}
    for item in _fields(cls):
        if item.default is not dataclasses.MISSING:
            out[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            out[item.name] = item.default_factory()
    return out


def add_options(parser: argparse.ArgumentParser, cls: type, configs: Path | None = None) -> None:
    """A flag per scalar setting of ``cls`` (``--field-name``), plus ``--config``, ``--set``, ``--debug``.

    Flags default to "not given" so that ``options_from_args`` can tell them from the config file's
    values; the help shows each field's default."""
    clash = sorted(set(keys(cls)) & set(_RESERVED))
    if clash:
        raise TypeError(f"{cls.__name__}: settings may not be named {clash} (flags of every command)")
    names = f" (a YAML file or a name under {configs.relative_to(configs.parents[1])})" if configs else ""
    parser.set_defaults(_options_class=cls, _configs=configs)
    group = parser.add_argument_group("configuration (every command)")
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"YAML file of settings{names}; flags and --set override it",
    )
    group.add_argument(
        "--set",
        dest="_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting (dotted key for nested ones; repeatable); valid keys: "
        + ", ".join(sorted(keys(cls))),
    )
    group.add_argument("--debug", action="store_true", help="show the traceback of an error")
    for item, kind, default in _flag_fields(cls):
        _add_flag(parser, item, kind, default)


def _add_flag(parser: argparse.ArgumentParser, item: dataclasses.Field, kind: Any, default: Any) -> None:
    names = [f"--{item.name.replace('_', '-')}"]
    if item.metadata.get("short"):
        names.insert(0, item.metadata["short"])
    help_text = _flag_help(item, default)
    common = {"dest": item.name, "default": argparse.SUPPRESS, "help": help_text}
    inner = _optional_inner(kind)
    base = inner if inner is not None else kind
    if base is bool:
        action = argparse.BooleanOptionalAction if default else "store_true"
        parser.add_argument(*names, action=action, **common)
        return
    metavar = item.metadata.get("metavar")
    if item.metadata.get("repeat"):
        parser.add_argument(*names, action="append", metavar=metavar, **common)
        return
    if typing.get_origin(base) is typing.Literal:
        parser.add_argument(*names, choices=typing.get_args(base), metavar=metavar, **common)
        return
    parser.add_argument(*names, metavar=metavar or _METAVARS.get(base, item.name.upper()), **common)


def options_from_args(args: argparse.Namespace) -> Any:
    """The typed options of the parsed command line (see the module docstring for the priority)."""
    cls = args._options_class
    given = {
        name: value
        for name, value in vars(args).items()
        if not name.startswith("_") and name not in _RESERVED
    }
    flags = {}
    flag_kinds = {item.name: kind for item, kind, _ in _flag_fields(cls)}
    for name, value in given.items():
        if name in flag_kinds:
            label = f"--{name.replace('_', '-')}"
            flags[name] = convert(value, flag_kinds[name], label, from_text=True)
    return resolve(cls, getattr(args, "config", None), args._overrides, flags, args._configs)
