"""Many endpoints: AIMD that recovers (floor, probe upward), health (drain and probe), RPM/TPM budgets,
`--base-url` files, and the random fault mix of the client benchmark."""

from __future__ import annotations

import asyncio
import socket

import polars as pl
import pytest

from distill_data.pipeline import distill
from llm import endpoint as endpoint_mod
from llm.budget import RateBudget
from llm.endpoint import FAILURES_DOWN, PROBE_FIRST, Endpoint
from llm.spec import expand_base_urls
from tests.distill_data.distill_helpers import fast_config, write_prompts
from tests.mock_server import MockServer
from workbench.errors import InputError


class Dummy:
    name, native_n = "d", True


@pytest.fixture
def clock(monkeypatch):
    """A fake monotonic clock for the endpoint controller: `clock[0] += seconds` moves time."""
    now = [1000.0]
    monkeypatch.setattr(endpoint_mod, "monotonic", lambda: now[0])
    return now


def test_scattered_429s_never_cut_but_bursts_do_down_to_the_floor(clock):
    e = Endpoint(Dummy(), 64, quiet_seconds=5.0)
    assert e.floor == 8  # max // 8 by default
    for i in range(400):  # one 429 in 8 answers, spread out: the limit stays put
        clock[0] += 0.01
        if i % 8 == 0:
            assert e.on_rate_limit(1.0, 0.5) == 1.0
        else:
            e.on_success()
    assert e.limit == 64 and e.cuts == 0 and e.paused_until < clock[0]
    for _ in range(10):  # a storm: every answer a 429, one cut per Retry-After interval
        for _ in range(40):
            e.on_rate_limit(1.0, 0.5)
        clock[0] += 1.01
    assert e.limit == 8 and e.cuts >= 3  # halved, never below the floor


def test_limit_probes_upward_after_a_quiet_interval(clock):
    e = Endpoint(Dummy(), 64, min_concurrency=2, quiet_seconds=2.0)
    for _ in range(8):
        e.on_rate_limit(0.5, 0.5)
    assert e.limit == 32
    for _ in range(6):  # every 0.6 s an interval passes, 4 cuts leave it at the floor
        clock[0] += 0.6
        for _ in range(32):
            e.on_rate_limit(0.5, 0.5)
    assert e.limit == 2
    clock[0] += 0.5
    e.on_success()
    assert e.limit == 2.5  # within the quiet interval: additive
    steps = []
    for _ in range(6):
        clock[0] += 2.0
        e.on_success()
        steps.append(e.limit)
    assert steps == [5.0, 10.0, 20.0, 40.0, 64.0, 64.0]  # doubling per quiet interval, capped


def test_failing_endpoint_is_drained_then_probed(clock):
    e = Endpoint(Dummy(), 16)
    for _ in range(FAILURES_DOWN - 1):
        e.on_failure()
    assert e.healthy and e.free(clock[0])
    e.on_failure()
    assert not e.healthy and not e.free(clock[0]) and e.wakes_at(clock[0]) == clock[0] + PROBE_FIRST
    e.on_failure()  # stragglers sent before it went down do not extend the wait
    assert e.down_until == clock[0] + PROBE_FIRST
    clock[0] += PROBE_FIRST
    assert e.free(clock[0])  # one probe
    e.inflight = 1
    assert not e.free(clock[0])
    e.inflight = 0
    e.on_failure()  # the probe failed: twice as long
    assert e.down_until == clock[0] + 2 * PROBE_FIRST
    clock[0] += 2 * PROBE_FIRST
    e.on_success()  # the probe came back
    assert e.healthy and e.limit == e.floor == 2 and e.free(clock[0])


def test_budget_buckets_wait_and_settle():
    async def main():
        b = RateBudget(rpm=600)
        for _ in range(600):  # a full minute's worth at once
            await b.take(0)
        assert b.waited == 0
        await b.take(0)  # the bucket is empty: wait for one request at 10/s
        assert 0 < b.waited <= 0.1
        t = RateBudget(tpm=1000)
        assert await t.take(5000) == 1000  # capped at a minute's budget so it can ever pass
        t.settle(1000, 1200)  # it used more than reserved: the bucket goes into debt
        assert t._tokens < -150
        off = RateBudget()
        assert not off.active and await off.take(10**9) == 0

    asyncio.run(main())


def test_base_url_file(tmp_path):
    f = tmp_path / "endpoints.txt"
    f.write_text("# teachers\nhttp://127.0.0.1:8001/v1\n\nhttp://127.0.0.1:8002/v1  # second\nhttp://127.0.0.1:8001/v1\n")
    assert expand_base_urls(["http://127.0.0.1:8000/v1", str(f)]) == (
        "http://127.0.0.1:8000/v1", "http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1")
    with pytest.raises(InputError, match="not a URL"):
        expand_base_urls(["localhost:8000"])
    f.write_text("http://127.0.0.1:8001/v1\nlocalhost:9\n")
    with pytest.raises(InputError, match=r"endpoints.txt:2: 'localhost:9' is not a URL"):
        expand_base_urls([str(f)])


def test_dead_endpoint_is_drained(tmp_path, mock):
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{dead}\n{mock.url}\n")
    src = write_prompts(tmp_path / "p.jsonl", [f"dead {i}" for i in range(60)])
    manifest = distill(fast_config(src, tmp_path / "run", str(urls), max_concurrency=4, max_attempts=8))
    df = pl.read_parquet(tmp_path / "run" / "data.parquet")
    assert df.height == 60 and set(df["status"]) == {"ok"} and set(df["endpoint"]) == {mock.url}
    states = {e["endpoint"]: e for e in manifest["faults"]["endpoints"]}
    assert states[dead]["healthy"] is False and states[mock.url]["healthy"] is True
    # drained: the dead endpoint saw the requests in flight when it failed and a probe or two, not 60+
    assert manifest["faults"]["errors"]["connection error"] < 4 + FAILURES_DOWN + 6


def test_random_fault_mix_writes_each_unit_once_and_labels_truncations(tmp_path):
    faults = {"429": 0.12, "500": 0.06, "drop": 0.04, "slow": 0.05, "length": 0.05}
    server = MockServer(retry_after=0.05, faults=faults, slow_seconds=0.2, seed=3).start()
    try:
        src = write_prompts(tmp_path / "p.jsonl", [f"mix {i}" for i in range(150)])
        manifest = distill(fast_config(src, tmp_path / "run", server.url, max_concurrency=16, max_attempts=12,
                                       rpm=60_000, tpm=10_000_000))
    finally:
        server.stop()
    df = pl.read_parquet(tmp_path / "run" / "data.parquet")
    assert df.height == 150 and df.select("prompt_id", "sample_index").n_unique() == 150
    assert set(df["status"]) <= {"ok", "truncated"}
    # every truncated reply the server sent is one unit labelled truncated (not re-requested)
    assert (df["status"] == "truncated").sum() == server.injected["length"] > 0
    assert manifest["faults"]["rate_limited"] == server.injected["429"] > 0
