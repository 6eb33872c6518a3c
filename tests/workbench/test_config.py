"""Dataclass configs become flags; YAML fills in; flags win."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from workbench.config import add_config_arguments, build_config, option
from workbench.errors import InputError


@dataclass
class DedupConfig:
    threshold: float = option(0.8, "Jaccard threshold")
    ngram: int = option(5, "word n-gram size")
    fields: list[str] = option(["text"], "columns to compare")
    lowercase: bool = option(True, "lowercase before hashing")
    keep: str = option("first", "which duplicate to keep", choices=["first", "longest"])
    seed: int | None = option(None, "random seed")


def parse(argv, config_file=None):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, DedupConfig)
    return build_config(DedupConfig, parser.parse_args(argv), config_file)


def test_defaults_yaml_and_flags_in_that_order(tmp_path):
    assert parse([]) == DedupConfig()
    yaml_path = tmp_path / "dedup.yaml"
    yaml_path.write_text("threshold: 0.7\nngram: 3\nfields: [prompt, response]\n")
    cfg = parse(["--ngram", "7", "--no-lowercase", "--seed", "3"], yaml_path)
    assert cfg == DedupConfig(threshold=0.7, ngram=7, fields=["prompt", "response"], lowercase=False, seed=3)


def test_choices_are_enforced():
    with pytest.raises(SystemExit):
        parse(["--keep", "random"])


def test_unknown_yaml_key_is_named(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("treshold: 0.7\n")
    with pytest.raises(InputError, match="c.yaml: unknown option 'treshold'"):
        parse([], bad)


def test_list_defaults_are_not_shared():
    a, b = DedupConfig(), DedupConfig()
    a.fields.append("x")
    assert b.fields == ["text"]


def test_yaml_numbers_in_any_notation_become_the_field_type(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("threshold: 8e-1\nngram: 3\nfields: text\nseed: 7\n")
    assert parse([], path) == DedupConfig(threshold=0.8, ngram=3, fields=["text"], seed=7)
    path.write_text("ngram: abc\n")
    with pytest.raises(InputError, match="c.yaml: option 'ngram': expected an integer; got 'abc'"):
        parse([], path)


@dataclass
class Ranged:
    steps: int = option(10, "steps", min=1)
    fraction: float = option(0.1, "fraction", min=0.0, max=0.9)


def test_out_of_range_values_name_the_flag():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Ranged)
    with pytest.raises(InputError, match="--steps -1: must be at least 1"):
        build_config(Ranged, parser.parse_args(["--steps", "-1"]))
    with pytest.raises(InputError, match="--fraction 1.5: must be at most 0.9"):
        build_config(Ranged, parser.parse_args(["--fraction", "1.5"]))
