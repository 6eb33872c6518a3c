"""The command registry is the one list of `wb` commands: every row runs, the parser holds exactly its rows
and the README's command table is the generated one (the app's side: tests/app/test_job_forms.py)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import registry
from workbench.cli import build_parser, command_path

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "python -m workbench.registry --readme README.md"


def load(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    return dict(action.choices) if action else {}


def parser_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every command path below `parser`, nested subparsers included."""
    out = set()
    for name, sp in subparsers(parser).items():
        out |= {(*prefix, name)} | parser_paths(sp, (*prefix, name))
    return out


def parser_of(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser(path)
    for name in path:
        parser = subparsers(parser)[name]
    return parser


def test_every_row_names_a_module_with_its_entry_points_and_its_configs():
    for c in registry.runnable():
        module = importlib.import_module(c.module)
        assert callable(getattr(module, "add_arguments", None)), f"{c.module} has no add_arguments (wb {c.name})"
        assert callable(getattr(module, "run", None)), f"{c.module} has no run (wb {c.name})"
        for spec in c.configs:
            assert dataclasses.is_dataclass(load(spec)), spec
    namespaces = [c for c in registry.COMMANDS if c.module is None]
    assert [c.name for c in namespaces] == ["mix", "train", "model", "cache", "tinker", "recipe"]
    for c in namespaces:
        assert registry.subcommands(c.path) and not c.configs and c.cli_only is None
    assert len(registry.BY_PATH) == len(registry.COMMANDS)  # no path twice
    assert all(c.help and "\n" not in c.help for c in registry.COMMANDS)


def test_the_parser_holds_exactly_the_registry_commands():
    assert parser_paths(build_parser()) == set(registry.BY_PATH)
    assert sorted(subparsers(build_parser())) == sorted(c.name for c in registry.subcommands(()))
    assert list(subparsers(subparsers(build_parser())["mix"])) == [
        "plan", "run", "merge", "fit", "search", "predict", "build", "confirm"]


def test_each_command_gets_its_own_arguments_and_its_configs_flags():
    for c in registry.runnable():
        parser = parser_of(c.path)
        dests = {a.dest for a in parser._actions} - {"help", "debug", "overwrite"}
        assert dests, f"wb {c.name}: its module added no arguments"
        for spec in c.configs:
            fields = {f.name for f in dataclasses.fields(load(spec))}
            assert dests & fields, f"wb {c.name}: no flag for any field of {spec}"
    assert "sources" in {a.dest for a in parser_of(("select",))._actions}
    clf = {a.dest for a in parser_of(("select", "train-classifier"))._actions}
    assert {"good", "bad", "output", "config"} <= clf and "sources" not in clf


def test_command_path_takes_the_longest_registered_prefix_of_the_words():
    assert command_path(["train", "sft", "--model", "m"]) == ("train", "sft")
    assert command_path(["select", "train-classifier", "--good", "g.jsonl"]) == ("select", "train-classifier")
    assert command_path(["select", "a.jsonl", "--keep", "3"]) == ("select",)
    assert command_path(["mix", "fit", "--output", "out", "results.parquet"]) == ("mix", "fit")
    assert command_path(["--json"]) == command_path(["nonsense", "x"]) == command_path([]) == ()


def test_building_a_parser_imports_only_the_command_being_run():
    code = ("import sys; from workbench.cli import build_parser; build_parser(); before = set(sys.modules); "
            "build_parser(('mix', 'fit')); after = set(sys.modules) - before; "
            "stages = ('curate', 'mixopt', 'distill_data', 'prefs', 'evals', 'trainers', 'llm', 'demo', 'app'); "
            "print(sorted(m for m in before if m.split('.')[0] in stages), 'mixopt.commands.fit' in after, "
            "'mixopt.commands.plan' in after, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["[]", "True", "False", "False"]


def test_help_lists_every_command_under_its_group():
    text = build_parser().format_help()
    for c in registry.runnable():
        assert f"  {c.name} " in text, c.name
    heads = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert heads[-10:] == ["look at data", "curate", "mix", "generate", "evaluate", "train", "serve", "watch",
                           "recipes", "demo"]
    assert text.index("train:") < text.index("  train sft ") < text.index("  train opd ") < text.index("serve:")


def test_readme_command_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert registry.readme_table(readme) == registry.markdown_table(), (
        f"README.md's command table differs from the registry; regenerate it with `{REGENERATE}`")


def test_write_readme_replaces_only_the_table_between_the_markers(tmp_path):
    start, end = registry.MARKERS
    path = tmp_path / "README.md"
    path.write_text(f"# x\n\nbefore\n{start}\n| old |\n{end}\nafter\n")
    registry.write_readme(path)
    text = path.read_text()
    assert text.startswith("# x\n\nbefore\n" + start + "\n| command | group |") and text.endswith(f"{end}\nafter\n")
    assert "| `wb mix confirm` | mix |" in text and "| old |" not in text
    path.write_text("no markers\n")
    with pytest.raises(ValueError, match="no <!-- commands:start -->"):
        registry.write_readme(path)
