"""Benchmark decontamination: drop rows sharing a normalised word n-gram (default 13) with an eval set.

Benchmark questions and answers are normalised like everything else (NFKC, lowercase, punctuation
and line breaks to spaces, whitespace collapsed), so text re-wrapped across short lines still matches.
GSM8K's calculator annotations (`<<3*4=12>>`) are stripped first. Bundled: `gsm8k` (GSM8K test) and
`math500` (MATH-500); any jsonl/parquet with question/answer (or problem/solution, prompt) fields works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.normalize import Tokens, ngram_hashes, tokenize
from curate.step import Decision, Filter
from workbench.config import RunOptions, option
from workbench.errors import InputError

BUNDLED = {"gsm8k": ("gsm8k/test.jsonl", "gsm8k_test"), "math500": ("math500/test.jsonl", "math500")}
QUESTION_FIELDS = ("question", "problem", "prompt", "input")
ANSWER_FIELDS = ("answer", "solution", "completion", "output")


@dataclass
class DecontamConfig(RunOptions):
    benchmark: list[str] = option(["gsm8k", "math500"], "benchmarks: bundled names (gsm8k, math500) or "
                                                        "jsonl/parquet files with question/answer fields")
    ngram: int = option(13, "words per n-gram; a row sharing one n-gram with a benchmark item is dropped")
    field: list[str] = option([], "fields to check: columns, `messages`, `messages.prompt`, `messages.response` "
                                  "(default: by record kind)")


@dataclass
class Benchmark:
    """A benchmark's sorted n-gram hashes and, aligned, the item each came from."""

    name: str
    ngrams: np.ndarray
    items: np.ndarray
    size: int

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hit mask, item index of each hash; -1 where no hit)."""
        if len(self.ngrams) == 0:
            return np.zeros(len(hashes), bool), np.full(len(hashes), -1)
        pos = np.minimum(np.searchsorted(self.ngrams, hashes), len(self.ngrams) - 1)
        hit = self.ngrams[pos] == hashes
        return hit, np.where(hit, self.items[pos], -1)


def load_benchmark(spec: str, n: int) -> Benchmark:
    """Index a bundled benchmark by name, or a file; raise `InputError` if it has no question/answer text."""
    from workbench.io import open_source
    from workbench.workspace import bundled_data_dir

    if spec in BUNDLED:
        path, name = bundled_data_dir() / BUNDLED[spec][0], BUNDLED[spec][1]
    else:
        path = Path(spec)
        name = f"{path.parent.name}_{path.stem}" if path.stem in ("test", "train", "data") else path.stem
        if not path.exists():
            raise InputError(f"--benchmark {spec}: no such file, and not a bundled benchmark "
                             f"({', '.join(BUNDLED)})")
    table = open_source(path).read()
    columns = [c for c in (*QUESTION_FIELDS, *ANSWER_FIELDS) if c in table.column_names]
    if not columns:
        raise InputError(f"{path}: a benchmark needs a question/problem/prompt or answer/solution column; "
                         f"columns are {table.column_names}")
    hashes, items = [], []
    for column in columns:
        text = pc.fill_null(table[column].combine_chunks().cast(pa.large_string()), "")
        text = pc.replace_substring_regex(text, r"<<[^>]*>>", " ")  # GSM8K calculator annotations
        h, doc_of, _ = _ngrams(text, n)
        hashes.append(h)
        items.append(doc_of)
    hashes, items = np.concatenate(hashes), np.concatenate(items)
    order = np.argsort(hashes, kind="stable")
    return Benchmark(name, hashes[order], items[order], table.num_rows)


def _ngrams(texts: pa.Array, n: int):
    tokens = tokenize(texts)
    return ngram_hashes(tokens.hashes, tokens.offsets, n)


class DecontamFilter(Filter):
    """Drops rows with an n-gram from any benchmark: reason `contaminated:<benchmark>`, detail the span."""

    name = "decontam"

    def __init__(self, fields: list[str], benchmarks: list[Benchmark], n: int):
        super().__init__(fields)
        self.benchmarks = benchmarks
        self.n = n
        self.matches: dict[str, int] = {b.name: 0 for b in benchmarks}

    def decide(self, texts: pa.Array) -> list[Decision]:
        tokens = tokenize(texts)
        hashes, doc_of, starts = ngram_hashes(tokens.hashes, tokens.offsets, self.n)
        decisions: list[Decision] = [True] * len(texts)
        for bench in self.benchmarks:
            hit, item = bench.lookup(hashes)
            hits = np.flatnonzero(hit)  # doc_of is sorted, so each document's hits are contiguous
            if len(hits) == 0:
                continue
            docs, first = np.unique(doc_of[hits], return_index=True)
            for doc, mine in zip(docs, np.split(hits, first[1:]), strict=True):
                if decisions[doc] is not True:
                    continue
                span = _span(tokens, starts[mine], self.n)
                self.matches[bench.name] += 1
                decisions[doc] = (False, f"contaminated:{bench.name}",
                                  f"{len(mine)} shared {self.n}-grams with {bench.name} item {int(item[mine[0]])}: "
                                  f"\"{span}\"")
        return decisions


def _span(tokens: Tokens, starts: np.ndarray, n: int, limit: int = 400) -> str:
    """The normalised words of the first run of overlapping matched n-grams."""
    first = int(starts[0])
    end = first + n
    for s in starts[1:]:
        if s > end:
            break
        end = int(s) + n
    text = tokens.text(first, end)
    return text if len(text) <= limit else text[:limit] + "..."


def benchmarks_from(config: DecontamConfig) -> list[Benchmark]:
    if not config.benchmark:
        raise InputError("decontamination needs at least one --benchmark")
    if config.ngram < 1:
        raise InputError(f"--ngram {config.ngram}: expected a positive number of words")
    return [load_benchmark(spec, config.ngram) for spec in config.benchmark]
