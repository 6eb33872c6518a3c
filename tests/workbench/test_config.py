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
