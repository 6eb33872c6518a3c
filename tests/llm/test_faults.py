"""Every unit ends ok/truncated/failed correctly against a server that injects faults."""

from __future__ import annotations

import asyncio
import time

import polars as pl
import pytest

from distill_data.pipeline import distill
from llm.backends.base import SamplingParams
from llm.generator import Endpoint, Generator, RetryPolicy
from tests.distill_data.distill_helpers import fast_config, write_prompts
from workbench.errors import RunFailed
from workbench.rundir import read_manifest
from workbench.runfiles import run_state


def test_fault_matrix(tmp_path, mock):
    prompts = ["fm ok", "fm [429:2]", "fm [500:2]", "fm [drop:1]", "fm [400]", "fm [500:99]", "fm [length]",
               "fm [slow:0.2]"]
    src = write_prompts(tmp_path / "p.jsonl", prompts)
    manifest = distill(fast_config(src, tmp_path / "run", mock.url, n=2))
    df = pl.read_parquet(tmp_path / "run" / "data.parquet")
    assert df.height == 16 and df.select("prompt_id", "sample_index").n_unique() == 16
    by = {r["prompt"][0]["content"]: r for r in df.filter(pl.col("sample_index") == 0).to_dicts()}
    assert by["fm ok"]["status"] == "ok" and by["fm ok"]["attempts"] == 1
    assert by["fm [429:2]"]["status"] == "ok" and by["fm [429:2]"]["attempts"] == 3
    assert by["fm [500:2]"]["status"] == "ok" and by["fm [500:2]"]["attempts"] == 3
    assert by["fm [drop:1]"]["status"] == "ok" and by["fm [drop:1]"]["attempts"] == 2
    assert by["fm [400]"]["status"] == "failed" and by["fm [400]"]["error"].startswith("400: scripted bad request")
    assert by["fm [400]"]["attempts"] == 1 and mock.counts["fm [400]"] == 1  # other 4xx: never retried
    assert by["fm [500:99]"]["status"] == "failed" and "gave up after 4 attempts" in by["fm [500:99]"]["error"]
    assert mock.counts["fm [500:99]"] == 4  # bounded
    assert by["fm [length]"]["status"] == "truncated" and by["fm [length]"]["finish_reason"] == "length"
    assert mock.counts["fm [length]"] == 1  # truncation is recorded, not retried
    assert by["fm [slow:0.2]"]["status"] == "ok"
    assert manifest["status_counts"] == {"ok": 10, "truncated": 2, "failed": 4}
    assert manifest["faults"]["rate_limited"] == 2
    assert read_manifest(tmp_path / "run")["usage"]["requests"] == 6  # successful requests, native n=2
    sft = pl.read_parquet(tmp_path / "run" / "sft.parquet")
    assert sft.height == 10 and all(m[-1]["role"] == "assistant" for m in sft["messages"].to_list())


def test_server_ignoring_n_is_asked_for_the_rest(tmp_path, mock):
    src = write_prompts(tmp_path / "p.jsonl", ["n1 [one]", "n3"])
    distill(fast_config(src, tmp_path / "run", mock.url, n=3))
    df = pl.read_parquet(tmp_path / "run" / "data.parquet")
    assert df.height == 6 and set(df["status"]) == {"ok"}
    assert mock.counts["n1 [one]"] == 3 and mock.counts["n3"] == 1  # native n where the server honours it


def test_timeout_retries_then_fails(tmp_path, mock):
    src = write_prompts(tmp_path / "p.jsonl", ["to [slow:2]", "fine"])
    distill(fast_config(src, tmp_path / "run", mock.url, timeout=0.3, max_attempts=2))
    row = pl.read_parquet(tmp_path / "run" / "data.parquet").to_dicts()[0]
    assert row["status"] == "failed" and row["error"].startswith("timeout") and row["attempts"] == 2
    # when every unit failed, the run is failed, not complete (issue 25)
    src = write_prompts(tmp_path / "q.jsonl", ["to [slow:2]"])
    with pytest.raises(RunFailed, match=r"every unit failed \(1 of 1; first error: timeout \(gave up after 2"):
        distill(fast_config(src, tmp_path / "all", mock.url, timeout=0.3, max_attempts=2))
    assert run_state(tmp_path / "all").state == "failed"


def test_rate_limit_burst_halves_limit_and_pauses():
    class Dummy:
        name, native_n = "d", True

    endpoint = Endpoint(Dummy(), 16)
    before = time.monotonic()
    assert endpoint.on_rate_limit(2.0, 0.1) == 2.0  # the request waits Retry-After
    assert endpoint.limit == 16 and endpoint.free(time.monotonic())  # one 429 is not a burst
    for _ in range(4):
        endpoint.on_rate_limit(2.0, 0.1)  # 5 of at least 8 answers: a burst, one cut
    assert endpoint.limit == 8 and endpoint.cuts == 1 and endpoint.paused_until >= before + 2.0
    assert not endpoint.free(time.monotonic())
    endpoint.quiet_seconds = 1e9  # no probe upward: additive increase only
    for _ in range(200):
        endpoint.on_success()
    assert endpoint.limit == 16  # additive increase back to the cap


def test_backoff_is_exponential_with_bounded_jitter():
    import random

    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=8.0)
    rng = random.Random(0)
    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 8.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(50)]
        assert all(cap / 2 <= d <= cap for d in delays) and len(set(delays)) > 1


def test_endpoints_spread_load(mock):
    from llm.backends.openai_http import OpenAIBackend
    from tests.mock_server import MockServer

    other = MockServer().start()

    async def main():
        gen = Generator([Endpoint(OpenAIBackend(u, "mock"), 2) for u in (mock.url, other.url)],
                        SamplingParams(max_tokens=8), RetryPolicy(2, 0.01, 0.02))
        try:
            return await asyncio.gather(*(gen.complete([{"role": "user", "content": f"spread {i}"}])
                                          for i in range(8)))
        finally:
            await gen.aclose()

    try:
        outcomes = asyncio.run(main())
    finally:
        other.stop()
    used = {o.endpoint for o in outcomes}
    assert used == {mock.url, other.url} and all(o.completion for o in outcomes)


def test_429_storm_lowers_the_endpoint_limit(mock):
    from llm.backends.openai_http import OpenAIBackend

    async def main():
        endpoint = Endpoint(OpenAIBackend(mock.url, "mock"), 8)
        gen = Generator([endpoint], SamplingParams(max_tokens=8), RetryPolicy(4, 0.01, 0.02))
        try:
            outcomes = await asyncio.gather(*(gen.complete([{"role": "user", "content": f"storm {i} [429:1]"}])
                                              for i in range(8)))
        finally:
            await gen.aclose()
        return endpoint, gen, outcomes

    endpoint, gen, outcomes = asyncio.run(main())
    assert all(o.completion is not None and o.attempts == 2 for o in outcomes)
    assert gen.stats.rate_limited == 8 and endpoint.limit < 8  # halved by the burst, not yet fully regrown
