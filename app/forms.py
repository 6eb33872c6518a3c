"""Job forms generated from the commands themselves: the registry (`workbench/registry.py`) says which
commands the app offers and their config dataclasses, the `wb` parser gives the arguments (positionals,
flags, choices), each command's config dataclass gives help text, defaults, ranges and the settings that
only a YAML file can carry (dict options, nested dataclasses shown as an expander of their fields).

`build_command` turns form values into the exact argv the CLI takes (only values that differ from the
defaults become flags) plus, when needed, a YAML mapping passed with `--config`. The app never builds a
config object of its own: the command it launches does, through the same code as on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import shlex
import typing
from dataclasses import dataclass, field
from pathlib import Path

from workbench.config import _base_type, option_fields
from workbench.errors import InputError
from workbench.registry import COMMANDS, Command

# form name ("train sft") -> the registry's row: its path is the argv prefix, its configs describe the flags
FORMS: dict[str, Command] = {c.name: c for c in COMMANDS if c.app}
SKIP_DESTS = {"help", "debug", "config"}


@dataclass
class Field:
    """One form input: a positional argument, a flag, or a setting carried in the YAML file."""

    name: str
    kind: str  # bool | int | float | str | choice | list | dict | nested
    default: object = None
    help: str = ""
    flag: str | None = None  # "--threshold"; None for positionals and YAML-only settings
    positional: bool = False
    many: bool = False  # a positional taking one or more values
    required: bool = False
    choices: list | None = None
    min: float | None = None
    max: float | None = None
    item: type = str  # element type of a list
    negatable: bool = True  # bool flags: --x / --no-x (else store_true)
    yaml_only: bool = False
    children: list[Field] = field(default_factory=list)


def _load(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def subparser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    """The argparse parser of `wb PATH...` (e.g. ("train", "sft"))."""
    from workbench.cli import build_parser

    parser = build_parser(path)
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _field_from_dataclass(f: dataclasses.Field, hint: object, flag: str | None, yaml_only: bool) -> Field:
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
    meta = f.metadata
    common = {"name": f.name, "help": meta.get("help", ""), "flag": flag, "yaml_only": yaml_only}
    if dataclasses.is_dataclass(hint):
        children = _dataclass_fields(hint, flags={}, yaml_only=True)  # type: ignore[arg-type]
        return Field(kind="nested", default={c.name: c.default for c in children}, children=children, **common)
    kind, is_list = _base_type(hint)
    choices = meta.get("choices") or (list(typing.get_args(hint)) if typing.get_origin(hint) is typing.Literal else None)
    if is_list:
        return Field(kind="list", default=list(default or []), item=kind, **common)
    if kind is dict or isinstance(default, dict):
        return Field(kind="dict", default=dict(default or {}), **common)
    name = "choice" if choices else {bool: "bool", int: "int", float: "float"}.get(kind, "str")
    return Field(kind=name, default=default, choices=list(choices) if choices else None, min=meta.get("min"),
                 max=meta.get("max"), **common)


def _dataclass_fields(cls: type, flags: dict[str, argparse.Action], yaml_only: bool) -> list[Field]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in option_fields(cls):  # the run options (--overwrite, argv) are the CLI's, not the config's fields
        action = flags.get(f.name)
        if action is None and not yaml_only and not dataclasses.is_dataclass(hints[f.name]) \
                and f.metadata.get("cli") is not False:
            continue  # a field the command sets itself (e.g. skipped for this subcommand)
        item = _field_from_dataclass(f, hints[f.name], action.option_strings[0] if action else None,
                                     yaml_only or action is None)
        if action is not None and item.kind == "bool":
            item.negatable = isinstance(action, argparse.BooleanOptionalAction)
        out.append(item)
    return out


def _field_from_action(action: argparse.Action) -> Field:
    positional = not action.option_strings
    many = action.nargs in ("+", "*")
    if isinstance(action, argparse._StoreTrueAction | argparse.BooleanOptionalAction):
        kind = "bool"
    elif action.choices:
        kind = "choice"
    elif many and not positional:
        kind = "list"
    else:
        kind = {int: "int", float: "float"}.get(action.type, "str")  # type: ignore[arg-type]
    default = None if action.default is argparse.SUPPRESS else action.default
    if kind == "bool":
        default = bool(default)
    return Field(name=action.dest, kind=kind, default=[] if many else default, help=action.help or "",
                 flag=None if positional else action.option_strings[0], positional=positional, many=many,
                 required=positional and action.nargs != "?" or bool(action.required),
                 choices=list(action.choices) if action.choices else None, item=action.type or str,
                 negatable=isinstance(action, argparse.BooleanOptionalAction))


def command_fields(command: str) -> list[Field]:
    """The form of `command` (a key of FORMS): positionals first, then flags, then YAML-only settings."""
    if command not in FORMS:
        raise InputError(f"{command}: not a command the app can launch; choose one of {sorted(FORMS)}")
    parser = subparser(FORMS[command].path)
    actions = [a for a in parser._actions if a.dest not in SKIP_DESTS and not isinstance(a, argparse._SubParsersAction)]
    flags = {a.dest: a for a in actions if a.option_strings}
    fields: list[Field] = [_field_from_action(a) for a in actions if not a.option_strings]
    seen = {f.name for f in fields}
    for i, spec in enumerate(FORMS[command].configs):
        for item in _dataclass_fields(_load(spec), flags, yaml_only=False):
            if item.name in seen or (item.yaml_only and i > 0):
                continue  # the first config owns the YAML file; later ones only describe flags
            seen.add(item.name)
            fields.append(item)
    fields += [_field_from_action(a) for a in actions if a.option_strings and a.dest not in seen]
    for f in fields:  # nested settings that flags already set (curate's dedup_settings) are not asked twice
        if f.kind == "nested" and not f.positional:
            f.children = [c for c in f.children if c.name not in flags]
            f.default = {c.name: c.default for c in f.children}
    fields = [f for f in fields if f.kind != "nested" or f.children]
    order = {"positional": 0, "flag": 1, "yaml": 2}
    return sorted(fields, key=lambda f: order["positional" if f.positional else "yaml" if f.yaml_only else "flag"])


def has_config_flag(command: str) -> bool:
    return any("--config" in a.option_strings for a in subparser(FORMS[command].path)._actions)


def default_values(fields: list[Field]) -> dict:
    return {f.name: (dict(f.default) if isinstance(f.default, dict) else
                     list(f.default) if isinstance(f.default, list) else f.default) for f in fields}


def _flag_args(f: Field, value: object) -> list[str]:
    if f.kind == "bool":
        if value:
            return [f.flag]  # type: ignore[list-item]
        return ["--no-" + f.flag[2:]] if f.negatable else []  # type: ignore[index]
    if f.kind == "list":
        return [f.flag, *map(str, value)] if value else []  # type: ignore[list-item,arg-type]
    return [f.flag, str(value)]  # type: ignore[list-item]


def _changed(value: object, default: object) -> bool:
    return value not in (None, "") and value != default


def build_command(command: str, fields: list[Field], values: dict) -> tuple[list[str], dict]:
    """(argv after `wb`, YAML settings) for the form values; raise `InputError` for a missing input or a value
    out of range, naming the field."""
    argv = list(FORMS[command].path)
    for f in fields:
        if not f.positional:
            continue
        value = values.get(f.name)
        items = [str(v) for v in (value if isinstance(value, list) else [value]) if v not in (None, "")]
        if f.required and not items:
            raise InputError(f"{f.name}: required; give {'one or more paths' if f.many else 'a value'}")
        argv += items
    yaml_values: dict = {}
    for f in fields:
        if f.positional:
            continue
        value = values.get(f.name, f.default)
        check_value(f, value)
        if f.yaml_only:
            if f.kind == "nested":
                changed = nested_changes(f, value)  # type: ignore[arg-type]
                if changed:
                    yaml_values[f.name] = changed
            elif _changed(value, f.default):
                yaml_values[f.name] = value
        elif f.required and value in (None, "", []):
            raise InputError(f"{f.flag}: required")
        elif _changed(value, f.default) or (f.kind == "bool" and value != f.default):
            argv += _flag_args(f, value)
    validate_values(command, fields, values)
    if yaml_values and not has_config_flag(command):
        raise InputError(f"wb {command} takes no --config; "
                         f"leave {sorted(yaml_values)[0]} at its default")
    return argv, yaml_values


def nested_changes(f: Field, value: dict | None) -> dict:
    """The settings of a nested field that differ from its defaults, as a nested mapping."""
    out = {}
    for c in f.children:
        v = (value or {}).get(c.name, c.default)
        if c.kind == "nested":
            sub = nested_changes(c, v)
            if sub:
                out[c.name] = sub
        elif _changed(v, c.default):
            out[c.name] = v
    return out


def validate_values(command: str, fields: list[Field], values: dict) -> None:
    """Build each config dataclass of the command from the form values and run the one validation every
    face of the workbench uses (types, ranges, choices, no NaN); raise its `InputError`."""
    from workbench.config import coerce_values, validate

    asked = {f.name for f in fields if not (f.positional and f.many)}
    for spec in FORMS[command].configs:
        cls = _load(spec)
        names = {f.name for f in option_fields(cls)} & asked
        given = {k: values[k] for k in names if values.get(k) not in (None, "")}
        try:
            config = cls(**coerce_values(cls, given, "the form"))
        except TypeError as exc:
            raise InputError(f"the form: {exc}") from None
        validate(config)


def check_value(f: Field, value: object) -> None:
    """Raise `InputError` for a number outside the field's range or a value not among its choices."""
    if f.kind == "nested" and isinstance(value, dict):
        for c in f.children:
            check_value(c, value.get(c.name))
        return
    if value is None or value == "":
        return
    name = f.flag or f.name
    if f.kind in ("int", "float") and isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InputError(f"{name}: must be a finite number")
        if f.min is not None and value < f.min:
            raise InputError(f"{name} {value}: must be at least {f.min}")
        if f.max is not None and value > f.max:
            raise InputError(f"{name} {value}: must be at most {f.max}")
    if f.kind == "choice" and f.choices and value not in f.choices:
        raise InputError(f"{name} {value!r}: must be one of {f.choices}")


def parse_text(f: Field, text: str) -> object:
    """A text input's value as the field's type (lists are space-separated, quotes allowed; dicts are YAML)."""
    import yaml

    text = (text or "").strip()
    if f.kind == "list" or f.many:
        try:
            parts = shlex.split(text)
        except ValueError as exc:
            raise InputError(f"{f.flag or f.name}: {exc}") from None
        return [_convert(f, p) for p in parts]
    if f.kind == "dict":
        try:
            value = yaml.safe_load(text) if text else {}
        except yaml.YAMLError as exc:
            raise InputError(f"{f.name}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(value, dict):
            raise InputError(f"{f.name}: expected a mapping such as `key: value`")
        return value
    return text or None


def _convert(f: Field, text: str) -> object:
    if f.item in (int, float):
        try:
            return f.item(text)
        except ValueError:
            raise InputError(f"{f.flag or f.name}: {text!r} is not {'an integer' if f.item is int else 'a number'}") from None
    return text


def format_text(f: Field, value: object) -> str:
    """The inverse of `parse_text`, for filling a text input."""
    import yaml

    if f.kind == "list" or f.many:
        return shlex.join(map(str, value or []))
    if f.kind == "dict":
        return yaml.safe_dump(value, sort_keys=False).strip() if value else ""
    return "" if value is None else str(value)


def to_yaml(values: dict, fields: list[Field]) -> str:
    """The form's settings (not its inputs and outputs) as YAML, the format `--config` reads."""
    import yaml

    skip = {"output"} | {f.name for f in fields if f.positional}
    return yaml.safe_dump({k: v for k, v in values.items() if k not in skip}, sort_keys=False)


def from_yaml(text: str, fields: list[Field], where: str = "the YAML file") -> dict:
    """Settings from YAML text, checked against the form's fields; raise `InputError` naming the bad key."""
    import yaml

    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise InputError(f"{where}: expected a mapping of option names to values")
    by_name = {f.name: f for f in fields}
    out = {}
    for key, value in loaded.items():
        name = str(key).replace("-", "_")
        if name not in by_name:
            raise InputError(f"{where}: unknown option {key!r}")
        f = by_name[name]
        if f.kind in ("int", "float") and value is not None:
            try:
                value = (int if f.kind == "int" else float)(value)
            except (TypeError, ValueError):
                raise InputError(f"{where}: option {key!r}: expected a number; got {value!r}") from None
        check_value(f, value)
        out[name] = value
    return out


KEY_OPTIONS = ("model", "data", "prompts", "teacher", "backend", "base_url", "strong_model", "strong_backend",
               "weak_model", "weak_backend", "strategy", "prompt_field", "answer_field", "completion_field",
               "verify", "reward", "target", "benchmark", "good", "bad")


def key_options(fields: list[Field]) -> list[Field]:
    """The flags a newcomer must look at for this command (models, data, endpoints), shown outside the
    folded list of all options."""
    return [f for f in fields if not f.positional and not f.yaml_only and f.name in KEY_OPTIONS]


# Options that name a file or directory ("path") and options that name a model ("model": a local model
# directory, or a model's name on an endpoint when its role has a base URL; see `served_by_endpoint`). Every
# other option (a served model name such as `teacher_model`, a field name, a verifier) is sent as typed.
PATH_OPTIONS = {"data": "path", "prompts": "path", "against": "path", "eval_data": "path", "good": "path",
                "bad": "path", "benchmark": "path", "decontam": "path", "eval_benchmark": "path",
                "classifier": "path", "encoder": "path", "reward_model": "path", "teacher": "path",
                "model": "model", "strong_model": "model", "weak_model": "model", "judge_model": "model"}


def path_kind(f: Field) -> str | None:
    """"path" for a field that takes a file or directory, "model" for a local-directory-or-served-name model
    field, None for any other (positionals are always paths)."""
    return "path" if f.positional else PATH_OPTIONS.get(f.name)


def served_by_endpoint(name: str, values: dict) -> bool:
    """Whether model field `name` names a model on an endpoint (its role's `*base_url` is given, or its
    backend is openai), as `llm.options.endpoint_spec` decides; a judge without endpoints of its own uses
    the main model's."""
    prefix = name[: -len("model")]
    backend = values.get(prefix + "backend") or "auto"
    if backend in ("hf", "vllm"):
        return False
    if values.get(prefix + "base_url") or backend == "openai":
        return True
    if prefix == "judge_":
        return served_by_endpoint("strong_model" if "strong_model" in values else "model", values)
    return False


def takes_path(f: Field, values: dict) -> bool:
    """Whether `f`'s value is a path under the current form values (a model field only without an endpoint)."""
    kind = path_kind(f)
    return kind == "path" or (kind == "model" and not served_by_endpoint(f.name, values))


def resolve_inputs(fields: list[Field], values: dict, root: Path) -> dict:
    """Input paths as the job will see them: only fields that take a path (`takes_path`) are resolved; a path
    that exists as typed is kept; one that names a run or file in the workspace (`curated`,
    `demo/sft/model`) becomes that path; anything else is left for the command to report. A model's name
    on an endpoint is sent as typed, even when a run of that name exists in the workspace."""
    def resolve(item: object) -> object:
        if not isinstance(item, str) or not item or Path(item).exists():
            return item
        candidate = Path(root) / item
        return str(candidate) if candidate.exists() else item

    out = dict(values)
    for f in fields:
        if takes_path(f, values):
            value = out.get(f.name)
            out[f.name] = [resolve(v) for v in value] if isinstance(value, list) else resolve(value)
    return out


def resolution_notes(fields: list[Field], typed: dict, resolved: dict) -> list[str]:
    """One line per input the form changed (`--data cur -> /ws/cur`) or kept on purpose (a served model
    name), for the form to show before launch."""
    notes = []
    for f in fields:
        label = f.flag or f.name
        before, after = typed.get(f.name), resolved.get(f.name)
        if before != after:
            notes.append(f"`{label}` {format_text(f, before)} → `{format_text(f, after)}` (found in the workspace)")
        elif path_kind(f) == "model" and before and served_by_endpoint(f.name, typed):
            notes.append(f"`{label}` {before}: a model name on the endpoint, sent as typed")
    return notes


def command_of_argv(argv: list[str]) -> str:
    """The form (a key of FORMS) that an argv after `wb` runs: the longest command path it starts with."""
    matches = [name for name, c in FORMS.items() if tuple(argv[: len(c.path)]) == c.path]
    if not matches:
        raise InputError(f"`{shlex.join(argv)}`: not a command the app can launch")
    return max(matches, key=lambda name: len(FORMS[name].path))


def values_from_argv(argv: list[str]) -> tuple[str, dict]:
    """(form, values) that rebuild the command `wb ARGV` in the New job form (Clone): the flags it gave and
    the settings of its `--config` file, the rest left at their defaults; `--output` is left out, so a clone
    writes a new run. Raise `InputError` for a command line the command's parser refuses."""
    import contextlib
    import io

    command = command_of_argv(argv)
    parser = subparser(FORMS[command].path)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parsed = vars(parser.parse_args(argv[len(FORMS[command].path):]))
    except SystemExit:
        said = err.getvalue().strip().splitlines()
        raise InputError(f"`{shlex.join(argv)}`: {said[-1] if said else 'not a valid command line'}") from None
    fields = command_fields(command)
    values = {f.name: parsed[f.name] for f in fields if f.name in parsed and f.name != "output"}
    config = parsed.get("config")
    if config and Path(config).is_file():
        values.update({k: v for k, v in from_yaml(Path(config).read_text(), fields, str(config)).items()
                       if k != "output"})
    return command, values


def command_for_display(argv: list[str], yaml_values: dict, config_path: Path | None) -> str:
    from app.jobs import command_line

    return command_line(argv + (["--config", str(config_path)] if yaml_values and config_path else []))
