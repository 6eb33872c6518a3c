"""`wb serve` fuzzed: a seeded, bounded stream of malformed requests (bad fields, bad JSON, bad headers,
clients that leave mid-body) against the real engine over the tiny model. Every one must get a clean 4xx
with a JSON message (or a 200 where the mutation happens to be valid): no 500, no traceback in the
server's log, no request left hanging."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import socket
from pathlib import Path

import httpx
import pytest

from llm.serve import ServerThread, build_app

LEAKS = ("Traceback", 'File "', "site-packages", "/tmp/", "Error:", str(Path(__file__).resolve().parents[2]))
CASES = 400  # the bounded loop: mutated bodies per run
NASTY = [None, True, False, 0, -1, 1.0, 2.5, -0.0, 10**400, -(10**400), 2**63, 2**64, 1e308, "", "x", "1", "NaN",
         "\u0000", "\ud800", [], [None], [[[]]], {}, {"a": 1}, {"include_usage": "yes"}, "x" * 5000,
         [{"role": "user"}], [{"type": "text"}], [1.5], [-1], [10**30]]
TEXT_FIELDS = ["model", "messages", "n", "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop",
               "stream", "stream_options", "logprobs"]
SCORE_FIELDS = ["model", "prompt", "echo", "logprobs", "max_tokens"]
RAW = [b"", b"{", b"[" * 100_000, b"{\"messages\": " + b"[" * 100_000, b"\xff\xfe", b"null", b"123", b"\"str\"",
       b'{"messages": NaN}', b'{"temperature": Infinity, "messages": []}', b"{'single': 'quotes'}",
       b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": ' + b"9" * 400 + b"}",
       b'{"messages": [{"role": "user", "content": "hi"}], "stream_options": "x", "stream": true}',
       b'{"model": "tiny", "prompt": [1, 2], "echo": true, "logprobs": 0, "max_tokens": 1.0}']


class ShortEngine:
    """The tiny model's LocalEngine with every request's max_tokens cut to 2, so a fuzzed `max_tokens` of
    10**18 is parsed and accepted as a client sends it but generates for milliseconds."""

    def __init__(self, engine):
        self.engine = engine

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def generate_batch(self, requests: list) -> list:
        for r in requests:
            r.params = dataclasses.replace(r.params, max_tokens=min(r.params.max_tokens, 2))
        return self.engine.generate_batch(requests)


class Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def fuzzed(tiny_model_dir):
    from llm.local_engine import LocalEngine

    thread = ServerThread(build_app(ShortEngine(LocalEngine(tiny_model_dir)), "tiny", max_batch=8))
    errors = Errors()  # attached after uvicorn configured its loggers (which replaces their handlers)
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "workbench.http")]
    for logger in loggers:
        logger.addHandler(errors)
    url = thread.start()
    yield url, errors
    thread.stop()
    for logger in loggers:
        logger.removeHandler(errors)


def _mutations(rng: random.Random):
    """(path, body bytes) pairs: valid bodies with one to three fields set to nasty values, then raw bytes."""
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    score = {"model": "tiny", "prompt": [5, 6, 7], "echo": True, "logprobs": 0, "max_tokens": 0}
    for _ in range(CASES):
        path, base, fields = rng.choice([("/chat/completions", chat, TEXT_FIELDS),
                                         ("/completions", score, SCORE_FIELDS)])
        body = dict(base)
        for field in rng.sample(fields, rng.randint(1, 3)):
            body[field] = rng.choice(NASTY)
        if rng.random() < 0.3 and isinstance(body.get("messages"), list) and body["messages"]:
            body["messages"] = [{"role": rng.choice(["user", "x", None, 5]), "content": rng.choice(NASTY)}]
        yield path, json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
    for raw in RAW:
        yield "/chat/completions", raw
        yield "/completions", raw


def test_a_bounded_fuzz_gets_only_clean_answers(fuzzed):
    url, errors = fuzzed
    counts = {"tried": 0, "clean 4xx": 0, "200": 0, "5xx": 0, "hangs": 0}
    bad: list[tuple] = []
    with httpx.Client(timeout=60) as client:
        for path, raw in _mutations(random.Random(26)):
            counts["tried"] += 1
            try:
                r = client.post(url + path, content=raw, headers={"content-type": "application/json"})
            except httpx.TimeoutException:
                counts["hangs"] += 1
                bad.append((path, raw[:80], "timeout"))
                continue
            if r.status_code == 200:
                counts["200"] += 1
            elif 400 <= r.status_code < 500 and isinstance(r.json()["error"]["message"], str) \
                    and not any(word in r.text for word in LEAKS):
                counts["clean 4xx"] += 1
            else:
                counts["5xx" if r.status_code >= 500 else "clean 4xx"] += 1
                bad.append((path, raw[:80], r.status_code, r.text[:200]))
    print("fuzz counts:", counts)
    assert not bad, bad[:5]
    assert counts["tried"] == CASES + 2 * len(RAW) and counts["5xx"] == counts["hangs"] == 0
    assert counts["clean 4xx"] > CASES // 2 and counts["200"] > 0  # both sides of the parser were reached
    assert not errors.records, [r.getMessage() for r in errors.records[:3]]


def _raw(url: str, request: bytes, read: bool = True) -> bytes:
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request)
        if not read:
            return b""
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_bad_headers_and_clients_that_leave_mid_body(fuzzed):
    url, errors = fuzzed
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    for _ in range(5):  # a client announces 1000 bytes, sends 10 and leaves
        _raw(url, head + b"Content-Length: 1000\r\n\r\n{\"messages", read=False)
    answer = _raw(url, head + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"mes\r\n")  # leaves mid-chunk
    assert b" 500 " not in answer
    ok = httpx.post(f"{url}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                     "max_tokens": 2}, timeout=60)
    assert ok.status_code == 200  # the server is still fine
    assert not errors.records, [r.getMessage() for r in errors.records[:3]]
