"""A recipe: a user's whole loop as one YAML file of `wb` steps; here it is read, checked and resolved into
each step's command line and fingerprint (`recipe_run.py` runs it, `recipe_plan.py` prices it).

    wb recipe plan examples/recipes/gsm8k.yaml     # requests, tokens and cost per step, before anything runs
    wb recipe run examples/recipes/gsm8k.yaml      # the steps in dependency order; a re-run redoes only changes
    wb recipe status examples/recipes/gsm8k.yaml   # each step: reused / to run / running / done / failed, and why

The file (relative paths are relative to the recipe file's folder, as in a compose or dvc.yaml file; the
steps run there):

    name: gsm8k                       # default: the file's name without .yaml
    workspace: ../runs/gsm8k          # where the steps' run directories go (default: runs/NAME)
    max_cost: 2.0                     # USD over every step (`--max-cost` overrides it)
    prices: {price_in: 0.5, price_out: 2.0, price_trained: 1.0}   # given to each step whose command takes them
    endpoints: {teacher: http://127.0.0.1:8000/v1}                # `{endpoint: teacher}` in an option
    steps:
      answers:
        command: distill              # the words after `wb`
        inputs: [examples/data/gsm8k/test.jsonl]   # its positional arguments
        options: {model: teacher, base_url: {endpoint: teacher}, max_tokens: 256, limit: 20}
        max_cost: 0.5                 # USD for this step
      sft:
        command: train sft
        options: {data: {from: answers}, model: {from: base, path: model}}

`{from: STEP}` is that step's run directory (`path:` names something inside it) and orders this step after
it; `after: [STEP]` orders without a reference. A command without `--output` (`wb mix run PLAN`) works in the
run directory of its first input, which must be `{from: STEP}`. Options are the command's own flags (`max_tokens` or
`max-tokens`), parsed by the command's own parser and checked by its config's validation, so a recipe
accepts exactly what the CLI does. Each step writes WORKSPACE/STEP-FINGERPRINT: the fingerprint hashes the
command, its resolved options except those that cannot change its result (`NOT_RESULT`: endpoints,
concurrency, retries, progress, prices, the cost cap) and the content of every input it names (a run's
manifest, a file's bytes), so a changed option gets a new directory and an unchanged step finds its old one.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from workbench import registry
from workbench.config import as_plain, build_config, load_yaml
from workbench.errors import InputError
from workbench.runfiles import INCOMPLETE, MANIFEST, read_json, write_atomic

# Options that decide where or how fast a step runs, or what it may spend, never what it computes.
NOT_RESULT = frozenset({
    "output", "overwrite", "debug", "argv", "api_key_env", "max_concurrency", "min_concurrency", "rpm", "tpm",
    "timeout", "max_attempts", "retry_base", "retry_max", "progress_seconds", "verify_workers", "workers",
    "threads", "log_every", "save_every", "keep_checkpoints", "max_cost", "price_in", "price_out",
    "price_trained", "price_sampled",
})
# Commands a recipe step cannot be: they run until stopped, print only, or are recipes themselves.
NOT_A_STEP = frozenset({("serve",), ("ui",), ("tinker", "serve"), ("recipe", "run"), ("recipe", "plan"),
                        ("recipe", "status"), ("runs",), ("lineage",), ("info",)})
STEP_KEYS = {"command", "inputs", "options", "max_cost", "after"}
RECIPE_KEYS = {"name", "workspace", "max_cost", "prices", "endpoints", "steps"}
HASHES = ".recipe-hashes.json"  # the workspace's cache of file hashes, by path, size and mtime


@dataclass
class Step:
    """One step as the file gives it: a `wb` command, its positional inputs and its options (raw values,
    `{from: ...}` and `{endpoint: ...}` references unresolved)."""

    name: str
    command: tuple[str, ...]
    inputs: list = field(default_factory=list)
    options: dict[str, object] = field(default_factory=dict)
    max_cost: float | None = None
    after: list[str] = field(default_factory=list)  # every step this one waits for (references included)


@dataclass
class Recipe:
    """A checked recipe file; `steps` are in dependency order."""

    path: Path
    name: str
    workspace: Path  # absolute
    max_cost: float | None = None
    prices: dict[str, float] = field(default_factory=dict)
    endpoints: dict[str, list[str]] = field(default_factory=dict)
    steps: dict[str, Step] = field(default_factory=dict)

    @property
    def base(self) -> Path:
        """The folder relative paths in the recipe start from, and the steps run in: the file's own."""
        return self.path.parent

    def where(self, value: str) -> Path:
        """A path the recipe names, from its folder."""
        return Path(value) if os.path.isabs(value) else self.base / value


def load_recipe(path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Recipe:
    """Read and check the recipe at `path`: known keys, known commands, references to steps that exist and
    no cycle. Raise `InputError` naming the file, the step and the key."""
    path = Path(path).resolve()
    raw = load_yaml(path)
    unknown = sorted(set(raw) - RECIPE_KEYS)
    if unknown:
        raise InputError(f"{path}: unknown key {unknown[0]!r}; a recipe has {', '.join(sorted(RECIPE_KEYS))}")
    name = str(raw.get("name") or path.stem)
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, dict) or not steps_raw:
        raise InputError(f"{path}: `steps` must be a mapping of step names to steps")
    endpoints = {str(k): v if isinstance(v, list) else [v] for k, v in (raw.get("endpoints") or {}).items()}
    prices = {str(k).replace("-", "_"): _number(v, f"{path}: prices.{k}") for k, v in (raw.get("prices") or {}).items()}
    steps = {str(k): _step(path, str(k), v) for k, v in steps_raw.items()}
    for step in steps.values():
        for dep in step.after:
            if dep not in steps:
                raise InputError(f"{path}: step {step.name!r} refers to step {dep!r}, which the recipe lacks")
        _check_endpoints(path, step, endpoints)
    cap = raw.get("max_cost")
    workspace = Path(workspace).resolve() if workspace else path.parent / (raw.get("workspace") or f"runs/{name}")
    return Recipe(path=path, name=name, workspace=Path(os.path.normpath(workspace)),
                  max_cost=None if cap is None else _number(cap, f"{path}: max_cost"), prices=prices,
                  endpoints=endpoints, steps={n: steps[n] for n in _order(path, steps)})


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError(f"{where}: expected a number of at least 0; got {value!r}")
    return float(value)


def _step(path: Path, name: str, raw: object) -> Step:
    where = f"{path}: step {name!r}"
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a mapping with `command` (and `inputs`, `options`)")
    unknown = sorted(set(raw) - STEP_KEYS)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r}; a step has {', '.join(sorted(STEP_KEYS))}")
    words = tuple(str(raw.get("command") or "").split())
    command = registry.BY_PATH.get(words)
    if command is None or command.module is None or words in NOT_A_STEP:
        steps = [c.name for c in registry.runnable() if c.path not in NOT_A_STEP]
        close = difflib.get_close_matches(" ".join(words), steps, 1)
        raise InputError(f"{where}: command {' '.join(words)!r} is not a step a recipe can run"
                         + (f"; did you mean {close[0]!r}?" if close else f"; one of: {', '.join(steps)}"))
    inputs = raw.get("inputs") or []
    inputs = inputs if isinstance(inputs, list) else [inputs]
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise InputError(f"{where}: `options` must be a mapping of option names to values")
    options = {str(k).replace("-", "_"): v for k, v in options.items()}
    after = [str(a) for a in (raw.get("after") or [])]
    for value in [*inputs, *options.values()]:
        after += [d for d in references(value) if d not in after]
    cap = raw.get("max_cost")
    return Step(name, words, inputs, options, None if cap is None else _number(cap, f"{where}: max_cost"), after)


def references(value: object) -> list[str]:
    """The steps a raw option value refers to with `{from: STEP}` (in lists too)."""
    if isinstance(value, list):
        return [d for v in value for d in references(v)]
    if isinstance(value, dict) and "from" in value:
        return [str(value["from"])]
    return []


def _check_endpoints(path: Path, step: Step, endpoints: dict[str, list[str]]) -> None:
    for value in step.options.values():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, dict) and "endpoint" in v and str(v["endpoint"]) not in endpoints:
                raise InputError(f"{path}: step {step.name!r} names endpoint {v['endpoint']!r}; the recipe's "
                                 f"`endpoints` has {', '.join(endpoints) or 'none'}")


def _order(path: Path, steps: dict[str, Step]) -> list[str]:
    """Step names in dependency order (file order among independent steps); InputError on a cycle."""
    from graphlib import CycleError, TopologicalSorter

    try:
        TopologicalSorter({n: s.after for n, s in steps.items()}).prepare()
    except CycleError as exc:
        raise InputError(f"{path}: the steps refer to each other in a cycle: {' -> '.join(exc.args[1])}") from None
    order: list[str] = []
    while len(order) < len(steps):  # the first step in file order whose steps before it are all placed
        order.append(next(n for n, s in steps.items() if n not in order and all(d in order for d in s.after)))
    return order


class _Parser(argparse.ArgumentParser):
    """A command's own parser whose errors name the recipe step instead of exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise InputError(f"{self.prog}: {message}")


def command_parser(words: tuple[str, ...], where: str = "") -> argparse.ArgumentParser:
    """The parser of `wb WORDS` alone, built by the command's own `add_arguments` (errors raise InputError
    prefixed with `where`)."""
    parser = _Parser(prog=where or f"wb {' '.join(words)}", add_help=False)
    importlib.import_module(registry.BY_PATH[words].module).add_arguments(parser)  # type: ignore[arg-type]
    return parser


def flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """A parser's actions by option string (`--max-tokens`)."""
    return {s: a for a in parser._actions for s in a.option_strings}


def takes(words: tuple[str, ...], option: str) -> bool:
    """Whether `wb WORDS` has the flag of `option` (`max_cost` -> `--max-cost`)."""
    return "--" + option.replace("_", "-") in flags(command_parser(words))


@dataclass
class Resolved:
    """A step ready to run or to price: its argv (without `--output`), the parsed options, its fingerprint
    (None while an input it refers to is not a finished run) and what the fingerprint hashed."""

    step: Step
    argv: list[str]
    options: dict[str, object]
    fingerprint: str | None
    hashed: dict
    waiting: list[str]  # the referred steps that have no finished run yet
    base: Path = Path(".")  # the recipe's folder, which relative paths start from
    in_place: Path | None = None  # the run directory a command without --output works in (its first input)

    def run_dir(self, workspace: Path) -> Path | None:
        """Where the step's run is: WORKSPACE/STEP-FINGERPRINT, or the directory an in-place step works in."""
        if not self.fingerprint:
            return None
        return self.in_place or workspace / f"{self.step.name}-{self.fingerprint}"


def resolve(recipe: Recipe, step: Step, dirs: dict[str, Path | None]) -> Resolved:
    """`step` with references replaced (`dirs`: each earlier step's run directory, None when unknown), its
    options parsed and checked as the CLI does, and its fingerprint. Raise `InputError` naming the step."""
    where = f"{recipe.path}: step {step.name!r}"
    waiting = [d for d in step.after if dirs.get(d) is None or not (dirs[d] / MANIFEST).exists()  # type: ignore[operator]
               or (dirs[d] / INCOMPLETE).exists()]  # type: ignore[operator]
    parser = command_parser(step.command, where)
    known = flags(parser)
    in_place = None
    if "--output" not in known:  # a step at work in the run directory it is given first (`wb mix run PLAN`)
        first = step.inputs[0] if step.inputs else None
        if not (isinstance(first, dict) and "from" in first and not first.get("path")):
            raise InputError(f"{where}: `wb {' '.join(step.command)}` takes no --output, so it works in the run "
                             "directory it is given: make its first input {from: STEP}")
        in_place = dirs.get(str(first["from"])) or recipe.workspace / f"{first['from']}-PENDING"
    options = {**{k: v for k, v in recipe.prices.items() if "--" + k.replace("_", "-") in known}, **step.options}
    argv = [str(v) for item in step.inputs for v in _values(recipe, item, dirs)]
    for key, value in options.items():
        argv += _flag(where, known, key, [v for item in (value if isinstance(value, list) else [value])
                                          for v in _values(recipe, item, dirs)], value)
    ns = parser.parse_args(argv if in_place else [*argv, "--output", str(recipe.workspace / step.name)])
    resolved = _resolved_options(step, ns, where)
    if waiting:
        return Resolved(step, argv, resolved, None, {}, waiting, recipe.base, in_place)
    fingerprint, hashed = fingerprint_of(step.command, resolved, recipe.workspace, recipe.base)
    return Resolved(step, argv, resolved, fingerprint, hashed, [], recipe.base, in_place)


def _values(recipe: Recipe, item: object, dirs: dict[str, Path | None]) -> list:
    """A raw value as the strings it stands for: a reference's run directory (or what lies in it), an
    endpoint's URLs, anything else as it is."""
    if isinstance(item, dict) and "from" in item:
        run = dirs.get(str(item["from"])) or recipe.workspace / f"{item['from']}-PENDING"
        return [str(run / str(item["path"])) if item.get("path") else str(run)]
    if isinstance(item, dict) and "endpoint" in item:
        return list(recipe.endpoints[str(item["endpoint"])])
    if isinstance(item, dict):
        raise InputError(f"{recipe.path}: a mapping value must be {{from: STEP}} or {{endpoint: NAME}}; got {item}")
    return [item]


def _flag(where: str, known: dict[str, argparse.Action], key: str, values: list, raw: object) -> list[str]:
    """The argv of one option: `--key v ...`; a boolean as `--key` / `--no-key` (left out when the flag has no
    negative form); None or an empty list left out."""
    name = "--" + key.replace("_", "-")
    if name not in known:
        close = difflib.get_close_matches(name, list(known), 1)
        raise InputError(f"{where}: unknown option {key!r}" + (f"; did you mean {close[0][2:]!r}?" if close else ""))
    if raw is None or values == []:
        return []
    if isinstance(raw, bool):
        negative = "--no-" + key.replace("_", "-")
        return [name] if raw else [negative] if negative in known else []
    return [name, *map(str, values)]


def _resolved_options(step: Step, ns: argparse.Namespace, where: str) -> dict[str, object]:
    """Every option of the step as the command resolves it: its config's defaults under what was given
    (`build_config` checks ranges and choices as for the CLI), positionals included."""
    given = dict(vars(ns))
    resolved: dict[str, object] = {}
    # each config the command's flags come from; a `--config` file is hashed as an input and checked by the
    # command itself when it runs
    for spec in registry.BY_PATH[step.command].configs:
        module, name = spec.split(":")
        cls = getattr(importlib.import_module(module), name)
        try:
            config = build_config(cls, ns)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        resolved = {**as_plain(config), **resolved}  # type: ignore[dict-item]
    return {**resolved, **given}


def fingerprint_of(command: tuple[str, ...], options: dict[str, object], workspace: Path,
                   base: Path) -> tuple[str, dict]:
    """(fingerprint, what it hashed): the command, the options that change results, and the content
    fingerprint of every option value naming an existing file or directory (relative ones from `base`)."""
    kept = {k: options[k] for k in sorted(options) if k not in NOT_RESULT and not k.endswith("base_url")}
    cache = _HashCache(workspace)
    inputs = {}
    for value in kept.values():
        for v in value if isinstance(value, list) else [value]:
            path = base / v if isinstance(v, str) and v else None  # an absolute v replaces base
            if path is not None and v not in inputs and path.exists():
                inputs[v] = content_fingerprint(path, cache)
    cache.save()
    hashed = {"command": " ".join(command), "options": kept, "inputs": inputs}
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:12], hashed


def content_fingerprint(path: Path, cache: _HashCache | None = None) -> str:
    """What `path` holds, as a hash: the manifest of the finished run it is (or lies in: `run/model`), else
    its bytes (a directory: every file's relative name and bytes). Cached by path, size and mtime."""
    cache = cache or _HashCache(None)
    for run in [path, *list(path.parents)[:2]]:
        if (run / MANIFEST).is_file() and not (run / INCOMPLETE).exists():
            inside = str(path.relative_to(run)) if run != path else ""
            # a file in a run is hashed too: a step working in that run (`wb mix run PLAN`) rewrites it
            own = f":{inside}:{cache.file(path)}" if path.is_file() and inside else f":{inside}" if inside else ""
            return "run:" + cache.file(run / MANIFEST) + own
    if path.is_file():
        return "file:" + cache.file(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.relative_to(path)}\0{cache.file(p)}\n".encode())
    return f"dir:{h.hexdigest()}"


class _HashCache:
    """sha256 of files by (path, size, mtime), kept in the workspace so a large model or source file is read
    once, not on every `wb recipe status`."""

    def __init__(self, workspace: Path | None):
        self.path = workspace / HASHES if workspace else None
        try:
            self.known = (read_json(self.path) or {}) if self.path else {}
        except InputError:
            self.known = {}  # a corrupt cache is only slower
        self.changed = False

    def file(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
        hit = self.known.get(key)
        if isinstance(hit, list) and hit[0] == stamp:
            return hit[1]
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        self.known[key] = [stamp, h.hexdigest()]
        self.changed = True
        return h.hexdigest()

    def save(self) -> None:
        if self.path and self.changed and self.path.parent.is_dir():
            write_atomic(self.path, self.known, durable=False)
