"""Recipes: the file is checked like the CLI's flags; a second run reuses every step; a changed option re-runs
exactly that step and what depends on it; status says why. Steps are cheap `wb curate` runs (about a second
each); the generation side (plan, cap, SIGKILL) is in test_recipe_generation.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.errors import InputError
from workbench.lineage import trace
from workbench.recipe import load_recipe, resolve
from workbench.recipe_run import run, status

ROWS = [{"id": f"r{i}", "question": f"sort {i % 15} {i}", "answer": "#### 1"} for i in range(30)]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def loop(tmp_path, monkeypatch):
    """A three-step recipe in tmp_path: `clean` -> `tidy` (from clean), and `other`, independent."""
    monkeypatch.chdir(tmp_path)
    with open("rows.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in ROWS)
    return write(tmp_path / "loop.yaml", """
name: loop
workspace: ws
steps:
  clean:
    command: curate
    inputs: [rows.jsonl]
    options: {field: [question, answer], decontam: false, dedup: false, filters: [refusal]}
  tidy:
    command: curate
    inputs: [{from: clean}]
    options: {field: [question], decontam: false, no_dedup: true}
  other:
    command: curate
    inputs: [rows.jsonl]
    options: {decontam: false, dedup: false}
""")


def states(recipe_path: Path) -> dict[str, str]:
    return {s.name: s.state for s in status(load_recipe(recipe_path))}


def test_second_run_reuses_every_step_and_a_changed_option_reruns_it_and_its_dependants(loop, capsys):
    recipe = load_recipe(loop)
    assert list(recipe.steps) == ["clean", "tidy", "other"]  # dependency order, file order otherwise
    assert states(loop) == {"clean": "to run", "tidy": "to run", "other": "to run"}
    first = {s.name: s for s in run(recipe, echo=False)}
    assert {n: s.state for n, s in first.items()} == {"clean": "done", "tidy": "done", "other": "done"}
    tidy_input = json.loads((Path(first["tidy"].run_dir) / "manifest.json").read_text())["inputs"]
    assert first["clean"].run_dir in json.dumps(tidy_input)  # `from: clean` is clean's run directory
    stamps = {n: (Path(s.run_dir) / "manifest.json").stat().st_mtime_ns for n, s in first.items()}
    # lineage runs across the recipe's steps: tidy's row back through clean to the source file's row
    hops = trace(first["tidy"].run_dir, "r7")
    assert [(h.kind, h.stage) for h in hops] == [("kept", "curate"), ("kept", "curate"), ("source", None)]
    assert hops[1].path.startswith(first["clean"].run_dir) and hops[2].path.endswith("rows.jsonl") and hops[2].row == 7

    second = {s.name: s for s in run(load_recipe(loop), echo=False)}
    assert {n: s.state for n, s in second.items()} == {"clean": "reused", "tidy": "reused", "other": "reused"}
    assert {n: (Path(s.run_dir) / "manifest.json").stat().st_mtime_ns for n, s in second.items()} == stamps
    assert len(list(Path("ws").glob("*/manifest.json"))) == 3

    write(loop, loop.read_text().replace("filters: [refusal]", "filters: [refusal, degenerate_repetition]"))
    before = {s.name: s for s in status(load_recipe(loop))}
    assert before["clean"].state == "to run" and "option filters" in before["clean"].why
    assert before["tidy"].state == "to run" and before["tidy"].why == "after clean"
    assert before["other"].state == "reused"
    capsys.readouterr()
    third = {s.name: s for s in run(load_recipe(loop), echo=False)}
    out = capsys.readouterr().out
    assert {n: s.state for n, s in third.items()} == {"clean": "done", "tidy": "done", "other": "reused"}
    assert out.count("$ wb curate") == 2 and "[other] reused" in out
    assert third["clean"].run_dir != first["clean"].run_dir and third["other"].run_dir == first["other"].run_dir
    # the old runs stay: changing the option back would reuse them
    assert len(list(Path("ws").glob("*/manifest.json"))) == 5


def test_endpoints_concurrency_and_prices_leave_the_fingerprint_results_and_content_change_it(loop):
    def fingerprint(options: str) -> str:
        path = write(loop.parent / "gen.yaml", "steps:\n  gen:\n    command: distill\n    inputs: [rows.jsonl]\n"
                                               f"    options: {{model: m, prompt_field: question, {options}}}\n")
        recipe = load_recipe(path)
        return resolve(recipe, recipe.steps["gen"], {}).fingerprint

    base = fingerprint("base_url: http://127.0.0.1:1/v1, temperature: 0")
    assert fingerprint("base_url: [http://127.0.0.1:2/v1, http://127.0.0.1:3/v1], temperature: 0, "
                       "max_concurrency: 3, price_in: 9, progress_seconds: 0") == base
    assert fingerprint("base_url: http://127.0.0.1:1/v1, temperature: 0.5") != base
    Path("rows.jsonl").write_text(Path("rows.jsonl").read_text())  # same bytes, new mtime: same content
    assert fingerprint("base_url: http://127.0.0.1:1/v1, temperature: 0") == base
    with open("rows.jsonl", "a") as f:
        f.write(json.dumps({"id": "new", "question": "q", "answer": "a"}) + "\n")
    assert fingerprint("base_url: http://127.0.0.1:1/v1, temperature: 0") != base


@pytest.mark.parametrize(("text", "error"), [
    ("steps: {a: {command: curat, inputs: [x]}}", "step 'a': command 'curat' is not a step a recipe can run; "
                                                  "did you mean 'curate'?"),
    ("steps: {a: {command: curate, inputs: [{from: b}]}}", "step 'a' refers to step 'b', which the recipe lacks"),
    ("steps: {a: {command: curate, after: [b]}, b: {command: curate, after: [a]}}", "in a cycle"),
    ("steps: {a: {command: curate, inputs: [x], option: {}}}", "step 'a': unknown key 'option'"),
    ("stepz: {}", "unknown key 'stepz'"),
    ("steps: {a: {command: serve}}", "command 'serve' is not a step"),
])
def test_a_bad_recipe_gets_one_line_naming_the_file_and_step(tmp_path, text, error):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(InputError, match=None) as exc:
        load_recipe(path)
    assert error in str(exc.value) and str(path) in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(("options", "error"), [
    ("{decontam_ngram: 0}", "--decontam-ngram 0: must be at least 1"),  # the config's own range check
    ("{pii: maybe}", "argument --pii: invalid choice: 'maybe'"),  # the parser's choices
    ("{treshold: 0.5}", "unknown option 'treshold'; did you mean 'threshold'?"),
])
def test_step_options_are_checked_by_the_commands_own_parser_and_config(loop, options, error, capsys):
    write(loop, loop.read_text().replace("options: {decontam: false, dedup: false}", f"options: {options}"))
    assert main(["recipe", "status", str(loop)]) == 2
    err = capsys.readouterr().err
    assert error in err and "step 'other'" in err and len(err.strip().splitlines()) == 1


def test_the_example_recipes_load_and_every_step_resolves(capsys):
    examples = sorted((Path(__file__).resolve().parents[2] / "examples" / "recipes").glob("*.yaml"))
    assert examples
    for path in examples:
        statuses = status(load_recipe(path))
        assert statuses and all(s.state in ("to run", "reused", "done") for s in statuses), path
