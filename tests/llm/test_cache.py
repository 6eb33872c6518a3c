"""The response cache (llm/cache.py): a request answered once is served from the cache by any later run of the
workspace (counted as cached, at no cost), per sample index; `--no-cache` opts out; pruning goes by last use."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from distill_data.pipeline import distill
from llm.cache import CACHE_FILE, ResponseCache, cache_dir, model_identity, parse_age
from tests.distill_data.distill_helpers import fast_config, write_prompts
from workbench.errors import InputError
from workbench.runfiles import run_state

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mock():
    """A mock server of this test's own: its request counts start at zero (the shared one is per module)."""
    from tests.mock_server import MockServer

    server = MockServer(retry_after=0.05).start()
    yield server
    server.stop()


def _asked(mock) -> list[tuple[str, int]]:
    """Record (message, n) of every request the mock answers."""
    seen: list[tuple[str, int]] = []

    def script(text: str, request: dict) -> str:
        seen.append((text, int(request.get("n") or 1)))
        return text

    mock.script = script
    return seen


def _ledger_billing(run: Path) -> dict[str, int]:
    with sqlite3.connect(run / "ledger.sqlite") as conn:
        return dict(conn.execute("SELECT billing, COUNT(*) FROM units GROUP BY billing").fetchall())


def test_a_second_run_in_a_new_directory_sends_no_request(tmp_path, mock):
    asked = _asked(mock)
    src = write_prompts(tmp_path / "p.jsonl", [f"cache {i}" for i in range(6)], answer=[str(i) for i in range(6)])
    first = distill(fast_config(src, tmp_path / "a", mock.url, n=2, price_in=1.0, price_out=2.0, limit=4))
    assert len(asked) == 4 and first["usage"]["cached_requests"] == 0
    # a new output directory, more prompts (--limit 4 -> 6) and a verifier: only the 2 new prompts are sent
    second = distill(fast_config(src, tmp_path / "b", mock.url, n=2, price_in=1.0, price_out=2.0, verify="exact",
                                 answer_field="answer"))
    assert [t for t, _ in asked[4:]] == ["cache 4", "cache 5"]
    usage = second["usage"]
    assert usage["requests"] == 2 and usage["cached_requests"] == 4
    assert usage["sampled_tokens"] == 2 * 10 and usage["cached_sampled_tokens"] == 4 * 10
    assert usage["prefill_tokens"] == 2 * 2 and usage["cached_prefill_tokens"] == 4 * 2
    assert usage["cost_usd"] == pytest.approx((4 * 1.0 + 20 * 2.0) / 1e6)  # cached tokens cost nothing
    assert _ledger_billing(tmp_path / "b") == {"cached": 8, "fresh": 4}
    a = pl.read_parquet(tmp_path / "a" / "data.parquet")
    b = pl.read_parquet(tmp_path / "b" / "data.parquet")
    assert b.head(8)["content"].to_list() == a["content"].to_list()  # the very samples of the first run
    assert b["billing"].to_list() == ["cached"] * 8 + ["fresh"] * 4
    from app import generation  # the app's generation monitor shows the cached tokens apart

    shown = generation.stats(tmp_path / "b", run_state(tmp_path / "b"))
    assert (shown["sampled_tokens"], shown["cached_sampled_tokens"], shown["cached_requests"]) == (20, 40, 4)
    # a third run of all six: nothing sent, every unit cached
    third = distill(fast_config(src, tmp_path / "c", mock.url, n=2))
    assert len(asked) == 6 and third["usage"]["requests"] == 0 and third["usage"]["cached_requests"] == 6


def test_n4_then_n8_asks_only_for_the_four_new_samples(tmp_path, mock):
    asked = _asked(mock)
    src = write_prompts(tmp_path / "p.jsonl", ["more a", "more b", "more c"])
    distill(fast_config(src, tmp_path / "n4", mock.url, n=4, temperature=0.8))  # temperature > 0, no seed
    assert sorted(asked) == [("more a", 4), ("more b", 4), ("more c", 4)]
    result = distill(fast_config(src, tmp_path / "n8", mock.url, n=8, temperature=0.8))
    assert sorted(asked[3:]) == [("more a", 4), ("more b", 4), ("more c", 4)]
    data = pl.read_parquet(tmp_path / "n8" / "data.parquet")
    assert data.height == 24 and set(data["status"]) == {"ok"}
    assert data.filter(pl.col("sample_index") < 4)["billing"].unique().to_list() == ["cached"]
    assert data.filter(pl.col("sample_index") >= 4)["billing"].unique().to_list() == ["fresh"]
    assert result["usage"]["sampled_tokens"] == 3 * 20 and result["usage"]["cached_sampled_tokens"] == 3 * 20


def test_no_cache_and_changed_parameters_send_again(tmp_path, mock):
    asked = _asked(mock)
    src = write_prompts(tmp_path / "p.jsonl", ["again"])
    distill(fast_config(src, tmp_path / "a", mock.url))
    distill(fast_config(src, tmp_path / "b", mock.url, cache=False))  # --no-cache: sent, and nothing read
    distill(fast_config(src, tmp_path / "c", mock.url, seed=7))  # another seed is another request
    distill(fast_config(src, tmp_path / "d", mock.url, system="be brief"))  # other messages too
    assert len(asked) == 4


def test_another_server_under_the_same_model_name_is_not_served_from_the_cache(tmp_path, mock):
    from tests.mock_server import MockServer

    src = write_prompts(tmp_path / "p.jsonl", ["origin"])
    distill(fast_config(src, tmp_path / "a", mock.url))
    other = MockServer().start()
    try:
        distill(fast_config(src, tmp_path / "b", other.url))
        assert other.counts["origin"] == 1  # "mock" on another endpoint may be another model
        distill(fast_config(src, tmp_path / "c", mock.url, base_url=[mock.url, other.url]))
        assert mock.counts["origin"] == 1 and other.counts["origin"] == 1  # a replica added: still cached
    finally:
        other.stop()


def test_eval_reuses_the_cache_across_output_directories(tmp_path, mock):
    from evals.config import EvalConfig
    from evals.pipeline import evaluate

    bench = write_prompts(tmp_path / "b.jsonl", ["2+2 [reply:4]", "3+3 [reply:6]"], answer=["4", "6"])
    cfg = dict(model="mock", base_url=[mock.url], benchmark=[bench], progress_seconds=0, verify="exact")
    first = evaluate(EvalConfig(**cfg, output=str(tmp_path / "e1")))
    second = evaluate(EvalConfig(**cfg, output=str(tmp_path / "e2")))
    assert sum(mock.counts.values()) == 2
    assert second["metrics"] == first["metrics"] and second["usage"]["cached_requests"] == 2


def test_prune_drops_what_no_run_used_lately(tmp_path, mock):
    src = write_prompts(tmp_path / "p.jsonl", ["old", "new"])
    distill(fast_config(src, tmp_path / "a", mock.url))
    path = cache_dir() / CACHE_FILE
    with sqlite3.connect(path) as conn:  # "old" was last used ten days ago
        key = conn.execute("SELECT key FROM samples ORDER BY rowid LIMIT 1").fetchone()[0]
        conn.execute("UPDATE samples SET used_at = ? WHERE key = ?", (time.time() - 10 * 86400, key))
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "cache", "prune", "--older-than", "7d"], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "pruned 1 samples" in out.stdout and "1 kept" in out.stdout
    distill(fast_config(src, tmp_path / "b", mock.url))
    assert mock.counts["old"] == 2 and mock.counts["new"] == 1  # the pruned sample is asked again
    assert parse_age("12h") == 43200 and parse_age("2w") == 14 * 86400
    with pytest.raises(InputError, match="--older-than '7 days'"):
        parse_age("7 days")


def test_local_model_identity_follows_its_files(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"a")
    before = model_identity(str(model), "hf", "tmpl")
    time.sleep(0.01)
    (model / "model.safetensors").write_bytes(b"bb")  # retrained weights at the same path: another model
    assert model_identity(str(model), "hf", "tmpl") != before
    assert model_identity("gpt-x", "openai", "server-side") == json.dumps({"model": "gpt-x", "backend": "http"})


_WRITER = """
import sys
from llm.backends.base import Choice
from llm.cache import ResponseCache
cache = ResponseCache(sys.argv[1])
for k in range(300):
    cache.put(f"k{k}", [(i, Choice(f"{sys.argv[2]} {k}-{i}", None, "stop", 3)) for i in range(4)], 7, "o")
    assert len(cache.get(f"k{k}", [0, 1, 2, 3], ("o",))) == 4
"""


def test_two_processes_writing_at_once_keep_the_cache_whole(tmp_path, mock):
    path = tmp_path / "shared" / CACHE_FILE
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name], cwd=ROOT, env=env,
                                stderr=subprocess.PIPE) for name in ("one", "two")]
    for w in writers:
        assert w.wait(120) == 0, w.stderr.read().decode()
    cache = ResponseCache(path)
    assert cache.count() == 300 * 4  # the same keys from both: one row each, the first writer's
    assert cache.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cache.close()
    # two `wb distill` processes on the same prompts at once, into their own directories, one cache
    src = write_prompts(tmp_path / "p.jsonl", [f"both {i} [slow:0.02]" for i in range(30)])
    runs = [subprocess.Popen([sys.executable, "-m", "workbench.cli", "distill", src, "--output", str(tmp_path / d),
                              "--model", "mock", "--base-url", mock.url, "--max-concurrency", "4",
                              "--progress-seconds", "0"], cwd=ROOT, env=env, stderr=subprocess.PIPE)
            for d in ("r1", "r2")]
    for r in runs:
        assert r.wait(120) == 0, r.stderr.read().decode()
    sent = sum(mock.counts.values())
    assert 30 <= sent <= 60
    third = distill(fast_config(src, tmp_path / "r3", mock.url))
    assert sum(mock.counts.values()) == sent and third["usage"]["cached_requests"] == 30
    for d in ("r1", "r2"):
        assert pl.read_parquet(tmp_path / d / "data.parquet").height == 30
    with sqlite3.connect(cache_dir() / CACHE_FILE) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 30


def test_every_billing_is_counted_once_and_priced_apart(tmp_path):
    from llm.ledger import Ledger, run_usage

    ledger = Ledger(tmp_path / "ledger.sqlite", "k")
    ledger.add_usage(2, 100, 40)
    ledger.add_usage(1, 50, 20, "cached")
    ledger.add_usage(3, 300, 60, "batch")  # the batch backend's category
    ledger.flush()
    with pytest.raises(ValueError, match="billing 'free'"):
        ledger.add_usage(1, 1, 1, "free")
    assert ledger.usage() == (5, 400, 100)  # paid: fresh and batch
    online = run_usage([ledger], 1.0, 2.0)
    assert (online.requests, online.prefill_tokens, online.sampled_tokens) == (5, 400, 100)
    assert (online.cached_requests, online.cached_prefill_tokens, online.cached_sampled_tokens) == (1, 50, 20)
    assert (online.batch_requests, online.batch_prefill_tokens, online.batch_sampled_tokens) == (3, 300, 60)
    assert online.cost_usd == pytest.approx((400 * 1.0 + 100 * 2.0) / 1e6)
    halved = run_usage([ledger], 1.0, 2.0, batch_prices=(0.5, 1.0))
    assert halved.cost_usd == pytest.approx((100 * 1.0 + 40 * 2.0 + 300 * 0.5 + 60 * 1.0) / 1e6)
    ledger.close()
