"""Fixtures for curate tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from curate_corpus import write_jsonl


@pytest.fixture
def jsonl(tmp_path):
    """Write rows as a jsonl file under tmp_path and return its path."""
    def _write(name: str, rows: list[dict]) -> Path:
        return write_jsonl(tmp_path / name, rows)
    return _write
