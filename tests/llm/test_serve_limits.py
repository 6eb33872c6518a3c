"""`wb serve` under abuse: clients that leave, a full queue, SIGTERM mid-generation, streaming, unknown
models and malformed numbers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from llm.backends.base import Choice, Completion, SamplingParams
from llm.batcher import GenRequest
from llm.serve import ServerThread, build_app


class HeldEngine:
    """Generates until released or until every request of the batch is cancelled (bounded: 30 s)."""

    def __init__(self):
        self.release = threading.Event()
        self.batches: list[list[GenRequest]] = []
        self.cancelled: list[bool] | None = None

    def generate_batch(self, requests):
        self.batches.append(requests)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.release.is_set() and not all(r.cancel.is_set()
                                                                                   for r in requests):
            time.sleep(0.01)
        self.cancelled = [r.cancel.is_set() for r in requests]
        return [Completion([Choice("ok", None, "stop", 1)] * r.n, 1, r.n) for r in requests]


def _wait(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def held():
    engine = HeldEngine()
    thread = ServerThread(build_app(engine, "held", max_batch=8, max_pending=4))
    url = thread.start()
    yield engine, url
    engine.release.set()
    thread.stop()


def _body(n: int = 1, **kw) -> dict:
    return {"model": "held", "messages": [{"role": "user", "content": "hi"}], "n": n, "max_tokens": 8, **kw}


def test_a_client_that_disconnects_cancels_its_generation(held):
    engine, url = held
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{url}/chat/completions", json=_body(), timeout=0.5)
    assert _wait(lambda: engine.cancelled is not None), "the generation was not cancelled"
    assert engine.cancelled == [True]
    engine.release.set()
    ok = httpx.post(f"{url}/chat/completions", json=_body(), timeout=30)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "ok"


def test_a_full_queue_answers_429_with_retry_after(held):
    engine, url = held
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(
        r=httpx.post(f"{url}/chat/completions", json=_body(n=4), timeout=60)))
    worker.start()
    assert _wait(lambda: len(engine.batches) == 1)
    busy = httpx.post(f"{url}/chat/completions", json=_body(n=1), timeout=30)
    assert busy.status_code == 429 and int(busy.headers["Retry-After"]) >= 1
    assert "busy" in busy.json()["error"]["message"]
    streamed = httpx.post(f"{url}/chat/completions", json=_body(n=1, stream=True), timeout=30)
    assert streamed.status_code == 429
    engine.release.set()
    worker.join(60)
    assert first["r"].status_code == 200 and len(first["r"].json()["choices"]) == 4
    assert httpx.post(f"{url}/chat/completions", json=_body(n=2), timeout=30).status_code == 200


def test_unknown_model_is_404_and_bad_values_are_400(serve_url):
    client = openai.OpenAI(base_url=serve_url, api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="tiyn"):
        client.chat.completions.create(model="tiyn", messages=[{"role": "user", "content": "x"}], max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="role"):
        client.chat.completions.create(model="tiny", messages=[{"role": "hacker", "content": "x"}], max_tokens=2)
    for field, word in [(b'"temperature": NaN', b"NaN"), (b'"temperature": 1e999', b"finite"),
                        (b'"top_p": -Infinity', b"Infinity"), (b'"n": 2.5', b"integer"), (b'"n": "2"', b"number"),
                        (b'"max_tokens": true', b"number")]:
        body = b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], ' + field + b"}"
        r = httpx.post(f"{serve_url}/chat/completions", content=body, headers={"content-type": "application/json"},
                       timeout=30)
        assert r.status_code == 400 and word in r.content, (field, r.content)
    r = httpx.post(f"{serve_url}/completions", json={"model": "other", "prompt": "x", "echo": True, "logprobs": 0})
    assert r.status_code == 404


def test_stream_true_sends_server_sent_events(serve_url):
    client = openai.OpenAI(base_url=serve_url, api_key="x", max_retries=0)
    kw = dict(model="tiny", messages=[{"role": "user", "content": "hello"}], n=2, temperature=0, max_tokens=5)
    whole = client.chat.completions.create(**kw)
    texts, finish, usage = {0: "", 1: ""}, {}, None
    for chunk in client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}):
        assert chunk.object == "chat.completion.chunk" and chunk.model == "tiny"
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finish[c.index] = c.finish_reason
    assert [texts[0], texts[1]] == [c.message.content for c in whole.choices]
    assert finish == {0: whole.choices[0].finish_reason, 1: whole.choices[1].finish_reason}
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def test_the_engine_stops_a_cancelled_request_at_the_next_token(tiny_model_dir):
    from llm.local_engine import LocalEngine

    engine = LocalEngine(tiny_model_dir)
    request = GenRequest([{"role": "user", "content": "hi"}], 3, SamplingParams(temperature=1.0, max_tokens=300,
                                                                                   seed=0))
    request.cancel.set()
    (completion,) = engine.generate_batch([request])
    assert all(c.completion_tokens <= 1 for c in completion.choices)


@pytest.mark.slow
def test_sigterm_stops_a_busy_server_within_seconds(tiny_model_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(tiny_model_dir), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        assert _wait(lambda: _up(url), 120), proc.stderr.read() if proc.poll() is not None else "no server"
        body = {"model": "tiny-llama", "messages": [{"role": "user", "content": "go"}], "n": 128,
                "max_tokens": 500, "temperature": 1.0}
        threading.Thread(target=lambda: _post_quietly(url, body), daemon=True).start()
        time.sleep(2)  # the generation is running
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)  # generating n=128 x 500 tokens would take minutes here
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/models", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _post_quietly(url: str, body: dict) -> None:
    try:
        httpx.post(f"{url}/chat/completions", json=body, timeout=120)
    except httpx.HTTPError:
        pass


def test_serve_refuses_bad_ports_and_sizes_before_loading(tiny_model_dir, capsys):
    from workbench.cli import main

    for flags, word in [(["--port", "-1"], "--port -1"), (["--port", "70000"], "--port 70000"),
                        (["--max-queue", "0"], "--max-queue 0"), (["--max-batch", "0"], "--max-batch 0")]:
        assert main(["serve", str(tiny_model_dir), *flags]) == 2
        assert word in capsys.readouterr().err
