"""Test corpora for curate: documents cut from the bundled Shakespeare text, and an independent
(pure Python) n-gram Jaccard to check the vectorised code against."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from workbench.workspace import bundled_data_dir


def shakespeare_words() -> list[str]:
    return (bundled_data_dir() / "tinyshakespeare" / "input.txt").read_text().split()


def make_docs(count: int, length: int = 120, offset: int = 0) -> list[str]:
    words = shakespeare_words()
    return [" ".join(words[offset + i * length: offset + (i + 1) * length]) for i in range(count)]


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    tokens = re.sub(r"[^\w\s]", " ", text.lower()).split()
    if len(tokens) < n:
        return {tuple(tokens)}
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def jaccard(a: str, b: str, n: int = 5) -> float:
    x, y = shingles(a, n), shingles(b, n)
    return len(x & y) / len(x | y)


def mutate(text: str, edits: int, seed: int) -> str:
    """Replace `edits` words at random positions with words that occur nowhere in the corpus."""
    rng = random.Random(seed)
    words = text.split()
    for k, pos in enumerate(rng.sample(range(len(words)), edits)):
        words[pos] = f"zzq{seed}x{k}"
    return " ".join(words)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
