"""The New job forms come from the command registry: the app offers every command or the registry says why
not, and the forms the app lacked before the registry (eval, mix predict, mix confirm, select
train-classifier) build the exact `wb` argv."""

from __future__ import annotations

import pytest

from app import forms
from workbench import registry


def test_every_command_is_offered_in_the_app_or_says_why_not():
    for c in registry.runnable():
        if c.cli_only is None:
            assert c.name in forms.FORMS and forms.command_fields(c.name), c.name
        else:
            assert c.cli_only.strip(), f"wb {c.name}: neither offered in the app nor a reason why it is CLI-only"
            assert c.name not in forms.FORMS
    must = {"curate", "dedup", "decontam", "semdedup", "select", "select train-classifier", "distill", "eval",
            "prefs", "train sft", "train dpo", "train grpo", "train opd", "mix plan", "mix run", "mix fit",
            "mix search", "mix predict", "mix build", "mix confirm"}
    assert set(forms.FORMS) == must
    assert {c.name for c in registry.runnable() if not c.app} == {
        "info", "inspect", "validate", "convert", "model import", "serve", "tinker serve", "tinker usage", "runs",
        "lineage", "ui", "demo", "cache prune", "mix merge", "search", "recipe run", "recipe plan",
        "recipe status", "demo data", "demo domains", "demo report"}


@pytest.mark.parametrize(("command", "values", "argv"), [
    ("eval", {"model": "runs/sft/model", "benchmark": ["gsm8k"], "output": "runs/ev"},
     ["eval", "--model", "runs/sft/model", "--benchmark", "gsm8k", "--output", "runs/ev"]),
    ("mix predict", {"fit_dir": "runs/fit", "table": "new.parquet", "weight_tolerance": 0.05},
     ["mix", "predict", "runs/fit", "new.parquet", "--weight-tolerance", "0.05"]),
    ("mix confirm", {"mixture": "m.json", "output": "runs/conf", "seeds": 2},
     ["mix", "confirm", "m.json", "--output", "runs/conf", "--seeds", "2"]),
    ("select train-classifier", {"good": ["g.jsonl"], "bad": ["b.jsonl"], "output": "runs/clf"},
     ["select", "train-classifier", "--output", "runs/clf", "--good", "g.jsonl", "--bad", "b.jsonl"]),
])
def test_forms_the_app_lacked_render_and_build_their_command(command, values, argv):
    fields = forms.command_fields(command)
    flags = {f.flag for f in fields}
    known = {"eval": "--benchmark", "mix predict": "--weight-tolerance", "mix confirm": "--seeds",
             "select train-classifier": "--good"}[command]
    assert known in flags and "--config" not in flags
    got, yaml_values = forms.build_command(command, fields, forms.default_values(fields) | values)
    assert (sorted(got), got[:len(command.split())], yaml_values) == (sorted(argv), command.split(), {})


def test_new_forms_show_their_inputs_outside_the_folded_options():
    def key(command: str) -> set[str]:
        return {f.name for f in forms.key_options(forms.command_fields(command))}

    assert {"good", "bad"} <= key("select train-classifier")
    assert {"model", "benchmark", "backend", "base_url"} <= key("eval")
