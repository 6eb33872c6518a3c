"""Semantic search from the Data browser: `wb search FILE --json` run as a subprocess (the encoder code stays
in `curate/`; the app imports only the kernel), with the row embeddings cached per file under
`.wb-ui/search/` in the workspace so a second query embeds only itself."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from workbench.errors import InputError

CACHE = ".wb-ui/search"
SEARCH_SECONDS = 600  # embedding a large run on a CPU; the cache makes every later query fast


def search_argv(path: Path, query: str, encoder: str, encoder_model: str = "", top: int = 20) -> list[str]:
    """The `wb search` command line the browser runs (shown to the user as it is)."""
    argv = ["wb", "search", str(path), "--query", query, "--encoder", encoder, "--top", str(top), "--json"]
    return argv + (["--encoder-model", encoder_model] if encoder_model else [])


def cache_dir(root: Path, path: Path) -> Path:
    """One embeddings folder per searched file (its chunks are named by their texts and the encoder)."""
    digest = hashlib.blake2b(str(Path(path).resolve()).encode(), digest_size=8).hexdigest()
    return Path(root) / CACHE / f"{Path(path).parent.name}-{Path(path).stem}-{digest}"


def semantic_search(root: Path, path: Path, query: str, encoder: str, encoder_model: str = "",
                    top: int = 20) -> list[dict]:
    """Hits best first: rank, row, id, score, text. `InputError` with `wb search`'s one-line message when it
    refuses (no query, an encoder that cannot be loaded or reached)."""
    argv = search_argv(path, query, encoder, encoder_model, top)
    argv = [sys.executable, "-m", "workbench.cli", *argv[1:], "--cache", str(cache_dir(root, path))]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=SEARCH_SECONDS, check=False, cwd=root)
    except subprocess.TimeoutExpired:
        raise InputError(f"wb search did not finish within {SEARCH_SECONDS} s") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        raise InputError(lines[-1] if lines else f"wb search: exit code {done.returncode}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
