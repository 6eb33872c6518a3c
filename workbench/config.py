"""Command configs are dataclasses; this turns them into CLI flags, merges `--config x.yaml`, and checks them.

Each field carries a default and `metadata={"help": ...}` (plus `min`, `max`, `choices` where they apply).
Precedence: field default < YAML file < flags given on the command line. Nested settings are dataclasses
too (a YAML mapping under their name). `validate` is the one place options are checked, for YAML, flags
and Python alike: types, ranges, choices, and NaN or infinity refused for every float option. The CLI,
the Python API and the Streamlit app build the same config object. Every command's config extends
`RunOptions` (overwrite, the command line), which the CLI fills and the manifest records beside the config.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InputError


def option(default: object = None, help: str = "", **metadata: object):
    """A dataclass field with a default and help text (lists get a fresh copy per instance)."""
    if isinstance(default, list | dict) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help, **metadata})
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def run_option(default: object, help: str):
    """A field of `RunOptions`: set by the CLI (or a Python caller), never a flag or YAML option of its own."""
    return option(default, help, cli=False, run=True)


@dataclass
class RunOptions:
    """What every command's config carries besides its options: how its run directory is written, not what
    the run computes. The CLI fills it through `build_config` (`--overwrite` anywhere on the command line,
    and the argv it parsed); Python callers set `overwrite=True` where they mean it. The manifest records
    both beside the config (`overwrite`, `argv`, `command`), and a resumed run does not compare them."""

    overwrite: bool = run_option(False, "replace what the output directory holds (files that are not a wb run)")
    argv: list[str] | None = run_option(None, "the command line that started the run, as the manifest records "
                                              "it (default: the process's sys.argv)")


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of config class (or instance) `cls` that are options of the run, `RunOptions` left out."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("run")]


def _base_type(hint: object) -> tuple[type, bool]:
    """(element type, is_list) for hints like int, str | None, list[str]."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(args[0])
    if origin is list:
        (item,) = typing.get_args(hint) or (str,)
        return item, True
    if origin is typing.Literal:
        return type(typing.get_args(hint)[0]), False
    return hint if isinstance(hint, type) else str, False


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one `--flag` per field of the dataclass `cls` (flags left unset stay out of the namespace)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.metadata.get("cli") is False:
            continue
        kind, is_list = _base_type(hints[f.name])
        if dataclasses.is_dataclass(kind):
            continue  # nested settings come from YAML or Python
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f.metadata.get("help", "")
        if "default" not in help_text:  # some help texts already say what the default means
            help_text = f"{help_text} (default: {default})"
        kwargs: dict = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        elif typing.get_origin(hints[f.name]) is typing.Literal:
            kwargs["choices"] = typing.get_args(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif is_list:
            parser.add_argument(flag, nargs="+", type=kind, **kwargs)
        else:
            parser.add_argument(flag, type=kind, **kwargs)


def load_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def build_config(cls: type, args: argparse.Namespace | None = None, config_file: str | Path | None = None,
                 **overrides: object):
    """Build `cls` from defaults, then the YAML file, then flags present in `args`, then `overrides`."""
    names = {f.name for f in option_fields(cls)}
    values: dict = {}
    if config_file:
        from_file = load_yaml(config_file)
        unknown = sorted(set(from_file) - names)
        if unknown:
            raise InputError(f"{config_file}: unknown option {unknown[0]!r}; known options are {sorted(names)}")
        values.update(coerce_values(cls, from_file, str(config_file)))
    if args is not None:  # flags, and the `RunOptions` the CLI set on `args`
        every = {f.name for f in dataclasses.fields(cls)}
        values.update({k: v for k, v in vars(args).items() if k in every})
    values.update(overrides)
    config = cls(**values)
    validate(config)
    return config


def _coerce(value: object, kind: type, is_list: bool, where: str) -> object:
    if value is None:
        return None
    if dataclasses.is_dataclass(kind):
        if dataclasses.is_dataclass(value):
            return value
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping of settings; got {value!r:.60}")
        names = {f.name for f in option_fields(kind)}
        given = {str(k).replace("-", "_"): v for k, v in value.items()}
        unknown = sorted(set(given) - names)
        if unknown:
            raise InputError(f"{where}: unknown setting {unknown[0]!r}; settings are {', '.join(sorted(names))}")
        return kind(**coerce_values(kind, given, where.rstrip("'") + "."))
    if is_list:
        items = value if isinstance(value, list) else [value]
        return [_coerce(v, kind, False, where) for v in items]
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise InputError(f"{where}: expected true or false; got {value!r}")
    if kind in (int, float):
        try:
            number = kind(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise InputError(f"{where}: expected {'an integer' if kind is int else 'a number'}; got {value!r}")
        return number
    if kind is str and isinstance(value, int | float):
        return str(value)
    return value


def coerce_values(cls: type, values: dict, where: str) -> dict:
    """YAML values as the field types (YAML reads `1e-4` as a string; a lone string for a list field)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        kind, is_list = _base_type(hints[name])
        label = f"{where}{name}'" if where.endswith(".") else f"{where}: option '{name}'"
        out[name] = _coerce(value, kind, is_list, label)
    return out


def _check_value(f: dataclasses.Field, value: object, flag: str) -> None:
    if isinstance(value, list):
        for item in value:
            _check_value(f, item, flag)
        return
    choices = f.metadata.get("choices")
    if choices is not None and value is not None and value not in choices:
        raise InputError(f"{flag} {value!r}: must be one of {', '.join(map(str, choices))}")
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{flag} {value}: must be a finite number")
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if low is not None and value < low:
        raise InputError(f"{flag} {value}: must be at least {low}")
    if high is not None and value > high:
        raise InputError(f"{flag} {value}: must be at most {high}")


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def validate(config: object, prefix: str = "--") -> None:
    """Check every option of a config dataclass (and of its nested settings): the type, `choices` (or a
    Literal), `min`/`max`, and no NaN or infinity in any float. Raise `InputError` naming the option; the
    CLI, YAML files and Python calls all pass through here."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        flag = f"{prefix}{f.name.replace('_', '-')}" if prefix == "--" else f"{prefix}{f.name}"
        kind, is_list = _base_type(hints[f.name])
        if value is None:
            continue
        if dataclasses.is_dataclass(kind):
            if not dataclasses.is_dataclass(value):
                raise InputError(f"{flag}: expected {kind.__name__} settings; got {type(value).__name__}")
            validate(value, f"{flag.lstrip('-').replace('-', '_')}.")
            continue
        items = value if is_list and isinstance(value, list | tuple) else [value]
        if is_list and not isinstance(value, list | tuple):
            raise InputError(f"{flag}: expected a list; got {value!r:.60}")
        for item in items:
            if kind in _TYPE_NAMES and item is not None:
                ok = isinstance(item, kind) and not (kind is int and isinstance(item, bool))
                if kind is float and isinstance(item, int) and not isinstance(item, bool):
                    ok = True
                if not ok:
                    raise InputError(f"{flag}: expected {_TYPE_NAMES[kind]}; got {item!r:.60} "
                                     f"({type(item).__name__})")
        literal = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is typing.Literal else None
        if literal and value not in literal:
            raise InputError(f"{flag} {value!r}: must be one of {', '.join(map(str, literal))}")
        _check_value(f, value, flag)


def as_plain(config: object) -> object:
    """A config as plain JSON values: dataclasses as dicts of their options (`RunOptions` left out, at any
    depth), paths as strings; anything else as it is."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: as_plain(getattr(config, f.name)) for f in option_fields(config)}
    if isinstance(config, dict):
        return {str(k): as_plain(v) for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [as_plain(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    return config
