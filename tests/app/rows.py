"""Rows the app's tests write: random word rows with planted duplicates, and JSONL files of any rows (one
module both the workspace fixture in conftest.py and the browser tests import by name)."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega").split()


def text_rows(n: int = 60, seed: int = 0) -> list[dict]:
    """Random word rows plus one exact and one near duplicate of the first two."""
    rng = random.Random(seed)
    rows = [{"id": f"r{i}", "text": " ".join(rng.choice(WORDS) for _ in range(30))} for i in range(n)]
    rows.append({"id": "dup-of-r0", "text": rows[0]["text"]})
    rows.append({"id": "near-r1", "text": rows[1]["text"] + " omega"})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path

