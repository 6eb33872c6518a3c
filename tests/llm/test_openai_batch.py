"""`--backend openai-batch` against the fake files/batches API (tests/batch_server.py): the same rows and
verdicts as the online path at batch prices, request and byte splits, a batch that expires half done, error
lines, and a SIGKILL between submit and completion (the re-run polls; the fake counts batch creates)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from llm import LEDGER, Ledger, SamplingParams
from llm.backends.openai_batch import BatchLimits, OpenAIBatchBackend
from tests.batch_server import BatchServer
from tests.net import free_port
from workbench.cli import main
from workbench.rundir import read_manifest

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--progress-seconds", "0", "--batch-poll-seconds", "0.02", "--retry-base", "0.01", "--retry-max", "0.02"]


@pytest.fixture
def fake():
    server = BatchServer()
    server.url = server.start()
    yield server
    server.stop()


def _prompts(path: Path, prompts: list[str], answer: str = "#### 4") -> Path:
    path.write_text("".join(json.dumps({"prompt": p, "answer": answer}) + "\n" for p in prompts))
    return path


def _distill(url: str, prompts: Path, out: Path, *flags, backend: str = "openai-batch") -> int:
    return main(["distill", str(prompts), "--model", "mock", "--base-url", url, "--backend", backend,
                 "--output", str(out), *FAST, *map(str, flags)])


def _input_files(fake: BatchServer) -> list[list[dict]]:
    """The request lines of every batch the fake was asked to create, in order."""
    return [[json.loads(x) for x in fake.files[b["input_file_id"]].decode().splitlines()]
            for b in sorted(fake.batches.values(), key=lambda b: b["id"])]


def _user_texts(lines: list[dict]) -> list[str]:
    return [line["body"]["messages"][-1]["content"] for line in lines]


def _rows(out: Path) -> list[dict]:
    data = pl.read_parquet(out / "data.parquet").sort("prompt_id", "sample_index")
    return data.select("prompt_id", "sample_index", "status", "reasoning", "content", "finish_reason", "verified",
                       "completion_tokens").to_dicts()


def test_batch_distill_gives_the_online_rows_at_batch_prices(tmp_path, mock, fake, capsys):
    prompts = _prompts(tmp_path / "p.jsonl", ["b1 [reply:so #### 4]", "b2 [reply:#### 5]", "b3 [think][reply:#### 4]",
                                              "b4 [length]", "b5"])
    prices = ["--verify", "math", "--answer-field", "answer", "--price-in", 2, "--price-out", 4]
    assert _distill(mock.url, prompts, tmp_path / "online", *prices, backend="openai") == 0
    assert _distill(fake.url, prompts, tmp_path / "batch", *prices, "--batch-max-requests", 2) == 0
    assert _rows(tmp_path / "batch") == _rows(tmp_path / "online")
    assert [r["verified"] for r in _rows(tmp_path / "batch")] == [True, False, True, None, False]
    batch, online = read_manifest(tmp_path / "batch"), read_manifest(tmp_path / "online")
    assert batch["backend"] == "openai-batch" and batch["usage"]["requests"] == online["usage"]["requests"] == 5
    assert batch["usage"]["cost_usd"] == pytest.approx(online["usage"]["cost_usd"] * 0.5)
    # 5 requests under --batch-max-requests 2: three batches of 2, 2 and 1 lines, each line once
    assert fake.creates == 3 and sorted(len(f) for f in _input_files(fake)) == [1, 2, 2] and fake.lines_seen == 5
    ledger = Ledger(tmp_path / "batch" / LEDGER, batch["run_key"])
    assert ledger.usage_by_billing()["fresh"] == (0, 0, 0) and ledger.usage_by_billing()["batch"][0] == 5
    progress = json.loads((tmp_path / "batch" / "progress.json").read_text())
    assert progress["batches"] == {"completed": 3} and progress["usage"]["cost_usd"] == batch["usage"]["cost_usd"]
    err = capsys.readouterr().err
    for b in fake.batches:  # progress: submitted (validating), in progress, completed, per batch
        assert f"batch {b}: submitted, " in err and f"batch {b}: in_progress" in err and f"batch {b}: completed, " in err


def test_batches_are_cut_under_the_byte_limit_and_an_oversized_request_fails(tmp_path, fake):
    texts = [f"long{i} " + "x" * 250 for i in range(4)] + ["huge " + "y" * 2000]  # 2 lines fit in 1,024 bytes
    assert _distill(fake.url, _prompts(tmp_path / "p.jsonl", texts), tmp_path / "out", "--batch-max-bytes", 1024) == 0
    sizes = [len(fake.files[b["input_file_id"]]) for b in fake.batches.values()]
    assert max(sizes) <= 1024 and len(sizes) == 2 and sum(len(f) for f in _input_files(fake)) == 4
    rows = pl.read_parquet(tmp_path / "out" / "data.parquet").sort("prompt_id")
    assert rows["status"].to_list() == ["ok"] * 4 + ["failed"]
    assert "over --batch-max-bytes 1,024" in rows["error"][4]


def test_a_batch_that_expires_half_done_resubmits_only_the_rest(tmp_path, fake):
    fake.expire_batches, fake.lines_per_poll = 1, 1
    texts = [f"e{i}" for i in range(6)]
    assert _distill(fake.url, _prompts(tmp_path / "p.jsonl", texts), tmp_path / "out") == 0
    first, second = _input_files(fake)
    assert _user_texts(first) == texts and sorted(_user_texts(second)) == texts[3:]  # the 3 it never ran
    assert fake.lines_seen == 6 and fake.creates == 2
    assert pl.read_parquet(tmp_path / "out" / "data.parquet")["status"].to_list() == ["ok"] * 6
    with sqlite3.connect(tmp_path / "out" / LEDGER) as db:
        assert [s for (s,) in db.execute("SELECT status FROM batch_files ORDER BY rowid")] == ["expired", "completed"]
        assert db.execute("SELECT COUNT(*) FROM batch_requests WHERE pending=1").fetchone() == (0,)


def test_a_failed_line_fails_its_unit_a_5xx_line_goes_out_again_and_a_rerun_retries_the_failure(tmp_path, fake):
    prompts = _prompts(tmp_path / "p.jsonl", ["f1 [400]", "f2 [500:1]", "f3"])
    assert _distill(fake.url, prompts, tmp_path / "out") == 0
    rows = pl.read_parquet(tmp_path / "out" / "data.parquet").sort("prompt_id")
    assert rows["status"].to_list() == ["failed", "ok", "ok"] and rows["error"][0] == "400: scripted bad request"
    assert [_user_texts(f) for f in _input_files(fake)] == [["f1 [400]", "f2 [500:1]", "f3"], ["f2 [500:1]"]]
    assert _distill(fake.url, prompts, tmp_path / "out") == 0  # the re-run asks only the failed unit again
    assert [_user_texts(f) for f in _input_files(fake)][2:] == [["f1 [400]"]] and fake.lines_seen == 5


def test_a_failed_batch_fails_its_invalid_line_and_resubmits_the_rest_after_a_backoff(tmp_path, fake):
    fake.fail_batches = 2  # the first batch is refused for an invalid line, the second for the token queue
    assert _distill(fake.url, _prompts(tmp_path / "p.jsonl", ["v1", "v2 [invalid]", "v3"]), tmp_path / "out") == 0
    rows = pl.read_parquet(tmp_path / "out" / "data.parquet").sort("prompt_id")
    assert rows["status"].to_list() == ["ok", "failed", "ok"]
    assert rows["error"][1] == "batch batch-000002 refused the request: scripted invalid line"
    assert [sorted(_user_texts(f)) for f in _input_files(fake)] == [["v1", "v2 [invalid]", "v3"], ["v1", "v3"],
                                                                    ["v1", "v3"]]
    assert [b["status"] for b in fake.batches.values()] == ["failed", "failed", "completed"]


def test_api_errors_are_retried_with_the_run_backoff_and_a_dead_provider_fails_in_bounded_time(tmp_path, fake):
    fake.fail_polls = 3
    prompts = _prompts(tmp_path / "p.jsonl", ["r1"])
    assert _distill(fake.url, prompts, tmp_path / "out") == 0 and fake.creates == 1 and fake.fail_polls == 0
    dead = f"http://127.0.0.1:{free_port()}/v1"
    assert _distill(dead, prompts, tmp_path / "dead", "--max-attempts", 2) == 1
    with sqlite3.connect(tmp_path / "dead" / LEDGER) as db:
        (error,) = db.execute("SELECT error FROM units").fetchone()
    assert error.startswith("uploading a batch input file failed: connection error")


def test_sigkill_between_submit_and_completion_resumes_by_polling(tmp_path, fake):
    fake.hold.clear()  # batches stay in progress until the kill
    texts = [f"k{i}" for i in range(5)]
    prompts, out = _prompts(tmp_path / "p.jsonl", texts), tmp_path / "out"
    cmd = [sys.executable, "-m", "workbench.cli", "distill", str(prompts), "--model", "mock", "--base-url", fake.url,
           "--backend", "openai-batch", "--output", str(out), *FAST]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _recorded_batches(out / LEDGER):
            assert time.monotonic() < deadline and proc.poll() is None, "the run never recorded its batch"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert fake.creates == 1 and fake.lines_seen == 0
    fake.hold.set()
    assert _distill(fake.url, prompts, out) == 0
    assert fake.creates == 1 and fake.lines_seen == 5  # polled the killed run's batch; nothing sent twice
    rows = pl.read_parquet(out / "data.parquet")
    assert rows.height == 5 and rows["status"].to_list() == ["ok"] * 5


def _recorded_batches(path: Path) -> list[str]:
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path) as db:
            return [b for (b,) in db.execute("SELECT batch_id FROM batch_files WHERE batch_id IS NOT NULL")]
    except sqlite3.OperationalError:  # the table is not there yet
        return []


def test_a_batch_created_but_not_recorded_is_found_not_created_again(tmp_path, fake):
    """A kill between `POST /v1/batches` and recording its id: the re-run finds the batch by its input file."""
    fake.hold.clear()
    messages = [{"role": "user", "content": "lost [reply:found]"}]
    limits = BatchLimits(poll_seconds=0.02)

    async def submit_then_die() -> None:
        backend = OpenAIBatchBackend(fake.url, "mock", limits=limits)
        backend.attach_ledger(Ledger(tmp_path / LEDGER, "k"))
        task = asyncio.create_task(backend.chat(messages, 1, SamplingParams()))
        for _ in range(500):
            if any(b["batch_id"] for b in backend.store.batches()):
                break
            await asyncio.sleep(0.02)
        task.cancel()
        await backend.aclose()

    async def resume() -> str:
        backend = OpenAIBatchBackend(fake.url, "mock", limits=limits)
        backend.attach_ledger(Ledger(tmp_path / LEDGER, "k"))
        try:
            return (await backend.chat(messages, 1, SamplingParams())).choices[0].content
        finally:
            await backend.aclose()

    asyncio.run(submit_then_die())
    with sqlite3.connect(tmp_path / LEDGER) as db:
        db.execute("UPDATE batch_files SET batch_id=NULL, status='uploaded'")
    fake.hold.set()
    assert asyncio.run(resume()) == "found" and fake.creates == 1 and fake.lines_seen == 1


def test_eval_and_prefs_run_through_batches(tmp_path, fake):
    bench = tmp_path / "toy.jsonl"
    bench.write_text("".join(json.dumps({"id": k, "question": f"{k} {q}", "gold": "#### 5"}) + "\n"
                             for k, q in {"a": "[replies:#### 5|#### 6]", "b": "[reply:#### 7]"}.items()))
    assert main(["eval", "--base-url", fake.url, "--backend", "openai-batch", "--model", "m", "--benchmark", str(bench),
                 "--prompt-field", "question", "--answer-field", "gold", "--n", "2", "--temperature", "1",
                 "--output", str(tmp_path / "eval"), *FAST]) == 0
    metrics = read_manifest(tmp_path / "eval")["metrics"]["toy"]
    assert metrics["accuracy"] == pytest.approx(0.25) and metrics["pass@2"] == pytest.approx(0.5)
    assert fake.creates == 1 and {line["body"]["n"] for f in _input_files(fake) for line in f} == {2}

    fake.chat.script = lambda text, request: text + ("[reply:#### 4]" if request["model"] == "strong"
                                                     else "[reply:#### 3]")
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": q, "answer": "#### 4"}) + "\n" for q in ("p1", "p2")))
    assert main(["prefs", str(questions), "--prompt-field", "question", "--answer-field", "answer",
                 "--strong-model", "strong", "--strong-base-url", fake.url, "--strong-backend", "openai-batch",
                 "--weak-model", "weak", "--weak-base-url", fake.url, "--weak-backend", "openai-batch",
                 "--verify", "math", "--output", str(tmp_path / "prefs"), *FAST]) == 0
    pairs = pl.read_parquet(tmp_path / "prefs" / "data.parquet")
    assert pairs.height == 2 and {r[0]["content"] for r in pairs["chosen"]} == {"#### 4"}
    assert fake.creates == 3  # one batch per side


def test_a_judge_of_its_own_asks_through_its_own_batches(tmp_path, fake):
    fake.chat.script = lambda text, request: text + ("[reply:fine. VERDICT: CORRECT]" if request["model"] == "judge"
                                                     else "")
    prompts = _prompts(tmp_path / "p.jsonl", ["j1", "j2"])
    assert _distill(fake.url, prompts, tmp_path / "out", "--verify", "judge", "--judge-model", "judge") == 0
    rows = pl.read_parquet(tmp_path / "out" / "data.parquet")
    assert rows["verified"].to_list() == [True, True] and fake.creates == 2
    assert [{line["body"]["model"] for line in f} for f in _input_files(fake)] == [{"mock"}, {"judge"}]
    manifest = read_manifest(tmp_path / "out")
    ledger = Ledger(tmp_path / "out" / LEDGER, manifest["run_key"])
    assert ledger.usage_by_billing()["fresh"] == (0, 0, 0) and ledger.usage_by_billing()["batch"][0] == 4
    with sqlite3.connect(tmp_path / "out" / LEDGER) as db:  # the judge's batch is recorded apart, for a resume
        keys = [k for (k,) in db.execute("SELECT key FROM batch_files ORDER BY rowid")]
    assert keys == [f"{manifest['run_key']}|mock", f"{manifest['run_key']}|judge"]


def test_ledger_usage_keeps_batch_tokens_apart_and_reads_older_ledgers(tmp_path):
    path = tmp_path / LEDGER
    with sqlite3.connect(path) as db:  # a ledger written before usage had categories
        db.execute("CREATE TABLE usage (key TEXT NOT NULL, requests INTEGER, prefill_tokens INTEGER, "
                   "sampled_tokens INTEGER)")
        db.execute("INSERT INTO usage VALUES ('k', 2, 20, 40)")
    ledger = Ledger(path, "k")
    ledger.add_usage(1, 10, 5, "batch")
    ledger.add_usage(3, 30, 15, "batch")
    ledger.add_usage(1, 1, 1)
    ledger.flush()
    assert ledger.usage() == (7, 61, 61)
    assert ledger.usage_by_billing() == {"fresh": (3, 21, 41), "cached": (0, 0, 0), "batch": (4, 40, 20)}
    ledger.close()
