"""`--max-cost`: a job stops cleanly when its ledger's cost reaches the cap, keeps what it did, and continues
from there when the cap is raised and the same command re-run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from distill_data.pipeline import distill
from tests.distill_data.distill_helpers import fast_config, write_prompts
from workbench.errors import CostCapReached, InputError
from workbench.runfiles import run_state

ROOT = Path(__file__).resolve().parents[2]
# the mock answers 5 completion tokens per sample: at $200,000 per million out, every request costs $1 exactly
PRICES = dict(price_in=0.0, price_out=200_000.0)


@pytest.fixture
def mock():
    from tests.mock_server import MockServer

    server = MockServer(retry_after=0.05).start()
    yield server
    server.stop()


def test_the_cap_stops_a_distill_and_raising_it_continues(tmp_path, mock):
    texts = [f"cap {i}" for i in range(8)]
    src = write_prompts(tmp_path / "p.jsonl", texts)
    out = tmp_path / "run"
    one_at_a_time = dict(max_concurrency=1, cache=False, **PRICES)
    with pytest.raises(CostCapReached, match=r"stopped at the cost cap: \$3\.0000 spent of --max-cost 3;"):
        distill(fast_config(src, out, mock.url, max_cost=3.0, **one_at_a_time))
    st = run_state(out)
    assert st.state == "failed" and st.error.startswith("stopped at the cost cap")
    assert sum(mock.counts.values()) == 3 and st.usage["cost_usd"] == pytest.approx(3.0)
    with pytest.raises(CostCapReached, match=r"\$5\.0000 spent of --max-cost 5;"):  # raised: two more
        distill(fast_config(src, out, mock.url, max_cost=5.0, **one_at_a_time))
    assert sum(mock.counts.values()) == 5
    with pytest.raises(CostCapReached):  # the same cap again: nothing more is sent
        distill(fast_config(src, out, mock.url, max_cost=5.0, **one_at_a_time))
    assert sum(mock.counts.values()) == 5
    done = distill(fast_config(src, out, mock.url, max_cost=100.0, **one_at_a_time))
    assert [mock.counts[t] for t in texts] == [1] * 8  # every prompt sent once over the four invocations
    assert done["usage"]["requests"] == 8 and done["usage"]["cost_usd"] == pytest.approx(8.0)
    data = pl.read_parquet(out / "data.parquet")
    assert data.height == 8 and set(data["status"]) == {"ok"}
    assert run_state(out).state == "complete"


def test_cached_samples_cost_nothing_under_the_cap(tmp_path, mock):
    src = write_prompts(tmp_path / "p.jsonl", [f"free {i}" for i in range(4)])
    distill(fast_config(src, tmp_path / "a", mock.url, **PRICES))
    result = distill(fast_config(src, tmp_path / "b", mock.url, max_cost=0.5, **PRICES))  # all cached: no stop
    assert result["usage"]["cost_usd"] == 0.0 and result["usage"]["cached_requests"] == 4
    assert sum(mock.counts.values()) == 4


def test_max_cost_needs_a_price_and_the_cli_says_why_it_stopped(tmp_path, mock):
    src = write_prompts(tmp_path / "p.jsonl", ["cli 0", "cli 1", "cli 2"])
    with pytest.raises(InputError, match=r"--max-cost 1 needs --price-in and/or --price-out"):
        distill(fast_config(src, tmp_path / "x", mock.url, max_cost=1.0))
    assert not (tmp_path / "x").exists()
    cmd = [sys.executable, "-m", "workbench.cli", "distill", src, "--output", str(tmp_path / "cli"), "--model", "mock",
           "--base-url", mock.url, "--max-concurrency", "1", "--progress-seconds", "0", "--price-out", "200000",
           "--max-cost", "1"]
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1 and sum(mock.counts.values()) == 1
    assert out.stderr.strip().splitlines()[-1].endswith(
        "stopped at the cost cap: $1.0000 spent of --max-cost 1; the work done is kept: raise --max-cost and "
        "re-run the same command to continue")


def test_prefs_sides_share_one_cap_and_the_cache(tmp_path, mock):
    from prefs.pipeline import make_pairs
    from tests.prefs.prefs_helpers import fast_config as prefs_config
    from tests.prefs.prefs_helpers import write_questions

    src = write_questions(tmp_path / "q.jsonl", [f"pair {i}" for i in range(3)])
    capped = dict(max_concurrency=1, strategy="delta", **PRICES)
    # strong and weak run at once, one request each in flight: the cap may be passed by the one still going
    with pytest.raises(CostCapReached, match=r"spent of --max-cost 2;") as stop:
        make_pairs(prefs_config(src, tmp_path / "p", mock.url, max_cost=2.0, **capped))
    sent = sum(mock.counts.values())
    assert sent in (2, 3) and f"${sent}.0000 spent" in str(stop.value)
    done = make_pairs(prefs_config(src, tmp_path / "p", mock.url, max_cost=10.0, **capped))
    assert sum(mock.counts.values()) == 6 and done["usage"]["cost_usd"] == pytest.approx(6.0)
    assert set(mock.counts.values()) == {2}  # each prompt once per model (the mock counts per message)
    again = make_pairs(prefs_config(src, tmp_path / "p2", mock.url, **capped))  # a new directory: all cached
    assert sum(mock.counts.values()) == 6
    assert again["usage"]["requests"] == 0 and again["usage"]["cached_requests"] == 6
    assert again["rows_out"] == done["rows_out"]


def test_the_cap_stops_an_eval_and_raising_it_continues(tmp_path, mock):
    from evals.config import EvalConfig
    from evals.pipeline import evaluate

    bench = write_prompts(tmp_path / "b.jsonl", ["1+1 [reply:2]", "2+2 [reply:4]", "3+3 [reply:7]"],
                          answer=["2", "4", "6"])
    cfg = dict(model="mock", base_url=[mock.url], benchmark=[bench], progress_seconds=0, verify="exact",
               output=str(tmp_path / "e"), max_concurrency=1, **PRICES)
    with pytest.raises(CostCapReached, match=r"\$1\.0000 spent of --max-cost 1;"):
        evaluate(EvalConfig(**cfg, max_cost=1.0))
    assert sum(mock.counts.values()) == 1
    result = evaluate(EvalConfig(**cfg, max_cost=3.0))
    assert sum(mock.counts.values()) == 3 and result["usage"]["cost_usd"] == pytest.approx(3.0)
    assert result["metrics"]["b"]["accuracy"] == pytest.approx(2 / 3)
