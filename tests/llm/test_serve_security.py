"""`wb serve` as a browser page or a stranger on the network would try it: the weight endpoint's token,
directory and versions, cross-origin and non-JSON requests, DNS rebinding, and the body and prompt caps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
import torch

from llm.backends.base import Choice, Completion
from llm.serve import CHARS_PER_TOKEN, ServerThread, build_app
from llm.weight_updates import OUTSIDE, VersionedEngine, weight_routes

TOKEN = "test-token-26"


@pytest.fixture(scope="module")
def weights(tiny_model_dir, tmp_path_factory):
    """An in-process server with weight updates from `root/allowed`; `root/outside` holds a valid state
    dict the server must never load."""
    from llm.local_engine import LocalEngine

    root = tmp_path_factory.mktemp("weights")
    (root / "allowed").mkdir()
    (root / "outside").mkdir()
    engine = VersionedEngine(LocalEngine(tiny_model_dir), root / "allowed")
    state = {k: v.clone() for k, v in engine.model.state_dict().items()}
    torch.save(state, root / "outside" / "evil.pt")
    thread = ServerThread(build_app(engine, "tiny", extra_routes=weight_routes(engine, TOKEN)))
    url = thread.start()
    yield url, root, engine, state
    thread.stop()


def _push(url: str, body: dict, token: str | None = TOKEN, **headers) -> httpx.Response:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/weights", json=body, headers={**auth, **headers}, timeout=60)


def test_the_issue_s_text_plain_post_is_refused_and_loads_nothing(weights):
    url, root, engine, _ = weights
    before = engine.version
    r = httpx.post(f"{url}/weights", content=f'{{"path": "{root}/outside/evil.pt", "version": 666}}',
                   headers={"Content-Type": "text/plain", "Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]
    assert engine.version == before


def test_weight_updates_need_the_token(weights):
    url, root, engine, state = weights
    torch.save(state, root / "allowed" / "ok.pt")
    for token in (None, "wrong", TOKEN + "x", ""):
        r = _push(url, {"path": "ok.pt", "version": 1000}, token=token)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", token
    assert engine.version != 1000
    r = httpx.post(f"{url}/weights", json={"path": "ok.pt", "version": 1000}, timeout=30,
                   headers={"Authorization": f"Basic {TOKEN}"})
    assert r.status_code == 401


def test_only_the_weights_dir_loads_with_one_message_for_every_refusal(weights, tmp_path):
    url, root, engine, state = weights
    (root / "allowed" / "link.pt").unlink(missing_ok=True)
    (root / "allowed" / "link.pt").symlink_to(root / "outside" / "evil.pt")
    (root / "allowed" / "sub").mkdir(exist_ok=True)
    (root / "allowed" / "text.pt").write_text("SECRET-BYTES")
    refused = [str(root / "outside" / "evil.pt"), "../outside/evil.pt", "link.pt", "sub", "/etc/passwd",
               "/no/such/file.pt", "missing.pt", "/etc", "a\u0000b", "x" * 300]
    before = engine.version
    for path in refused:
        r = _push(url, {"path": path, "version": before + 1})
        assert r.status_code == 400 and r.json()["error"]["message"] == OUTSIDE, (path, r.text)
    r = _push(url, {"path": "text.pt", "version": before + 1})
    assert r.status_code == 400 and "SECRET" not in r.text and "'S'" not in r.text
    assert engine.version == before


def test_versions_must_increase_unless_a_run_restarts(weights):
    url, root, engine, state = weights
    torch.save(state, root / "allowed" / "v.pt")
    assert _push(url, {"path": "v.pt", "version": 5, "restart": True}).json() == {"version": 5}
    for version in (5, 4, 0):
        r = _push(url, {"path": str(root / "allowed" / "v.pt"), "version": version})
        assert r.status_code == 400 and "not newer" in r.json()["error"]["message"]
    assert _push(url, {"path": "v.pt", "version": 6}).json() == {"version": 6}
    assert _push(url, {"path": "v.pt", "version": 2, "restart": True}).json() == {"version": 2}
    assert httpx.get(f"{url}/weights", timeout=30).json() == {"version": 2}
    for body, word in [({"path": "v.pt", "version": 2**70}, "below 2**63"), ({"path": "v.pt", "version": 3.0},
                                                                          "non-negative integer"),
                       ({"path": "v.pt", "version": 3, "restart": "yes"}, "restart")]:
        r = _push(url, body)
        assert r.status_code == 400 and word in r.json()["error"]["message"]


def test_cross_origin_requests_and_foreign_hosts_are_refused(weights):
    url, root, engine, state = weights
    port = url.split(":")[2].split("/")[0]
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    for headers, status in [({"Origin": "http://evil.example"}, 403), ({"Origin": "null"}, 403),
                            ({"Origin": f"http://localhost:{port}"}, 403),
                            ({"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}, 403),
                            ({"Origin": f"http://127.0.0.1:{port}"}, 200), ({"Host": f"localhost:{port}"}, 200)]:
        r = httpx.post(f"{url}/chat/completions", json=body, headers=headers, timeout=60)
        assert r.status_code == status, (headers, r.text)
    r = _push(url, {"path": "v.pt", "version": 10**6}, Origin="http://evil.example")
    assert r.status_code == 403 and engine.version != 10**6
    for path in ("/chat/completions", "/weights", "/completions"):
        r = httpx.request("OPTIONS", f"{url}{path}", timeout=30, headers={
            "Origin": f"http://127.0.0.1:{port}", "Access-Control-Request-Method": "POST"})
        assert r.status_code == 405 and not [h for h in r.headers if h.lower().startswith("access-control")]
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        r = httpx.post(f"{url}/chat/completions", content=b'{"messages": []}', timeout=30,
                       headers={"Content-Type": ctype} if ctype else {})
        assert r.status_code == 415, ctype
    r = httpx.post(f"{url}/chat/completions", content=b"{}", headers={"Content-Type": "application/json; charset=utf-8"},
                   timeout=30)
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]


class CountingEngine:
    """Answers "ok" at once and counts what reaches generation; tokenizes with the tiny tokenizer."""

    def __init__(self, tokenizer, max_positions: int = 512):
        self.tokenizer = tokenizer
        self.max_positions = max_positions
        self.generated = 0

    def generate_batch(self, requests):
        self.generated += len(requests)
        return [Completion([Choice("ok", None, "stop", 1)] * r.n, 1, r.n) for r in requests]


def test_bodies_and_prompts_are_capped_before_tokenizing(tiny_tokenizer, monkeypatch):
    engine = CountingEngine(tiny_tokenizer)
    thread = ServerThread(build_app(engine, "tiny", max_body_bytes=64_000, max_prompt_tokens=100))
    url = thread.start()
    calls = []
    real = type(tiny_tokenizer).__call__
    monkeypatch.setattr(type(tiny_tokenizer), "__call__", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    try:
        big = b'{"messages": [{"role": "user", "content": "' + b"a" * 100_000 + b'"}]}'
        r = httpx.post(f"{url}/chat/completions", content=big, headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 413 and "64,000 bytes" in r.json()["error"]["message"]

        def chunks():  # no Content-Length: the cap holds while reading
            for _ in range(100):
                yield b"a" * 1000

        r = httpx.post(f"{url}/chat/completions", content=chunks(), headers={"Content-Type": "application/json"},
                       timeout=30)
        assert r.status_code == 413
        long = "word " * (100 * CHARS_PER_TOKEN // 5 + 1)
        r = httpx.post(f"{url}/chat/completions", json={"messages": [{"role": "user", "content": long}]}, timeout=30)
        assert r.status_code == 400 and "characters" in r.json()["error"]["message"]
        r = httpx.post(f"{url}/completions", json={"prompt": long, "echo": True, "logprobs": 0}, timeout=30)
        assert r.status_code == 400 and "characters" in r.json()["error"]["message"]
        assert calls == []  # neither was tokenized
        r = httpx.post(f"{url}/chat/completions", json={"messages": [{"role": "user", "content": "word " * 200}]},
                       timeout=30)
        assert r.status_code == 400 and "at most 100" in r.json()["error"]["message"]  # counted: over 100 tokens
        r = httpx.post(f"{url}/completions", json={"prompt": list(range(101)), "echo": True, "logprobs": 0},
                       timeout=30)
        assert r.status_code == 400 and "at most 100" in r.json()["error"]["message"]
        r = httpx.post(f"{url}/completions", json={"prompt": [len(tiny_tokenizer)], "echo": True, "logprobs": 0},
                       timeout=30)
        assert r.status_code == 400 and f"0 to {len(tiny_tokenizer) - 1}" in r.json()["error"]["message"]
        assert engine.generated == 0
        r = httpx.post(f"{url}/chat/completions", json={"messages": [{"role": "user", "content": "word " * 10}]},
                       timeout=30)
        assert r.status_code == 200 and engine.generated == 1
    finally:
        thread.stop()


def test_the_issue_s_500s_are_400s_naming_the_field(serve_url):
    chat = '{"model": "tiny", "messages": [{"role": "user", "content": "x"}], '
    for raw, word in [(chat + '"max_tokens": ' + "9" * 400 + "}", "max_tokens"),
                      (chat + '"stream": true, "stream_options": "x"}', "stream_options"),
                      (chat + '"seed": ' + "1" * 30 + "}", "seed"),
                      (chat + '"temperature": ' + "1" * 400 + "}", "temperature"),
                      ("[" * 100_000, "nested"),
                      (chat + '"stop": [""]}', "stop"),
                      (chat + '"model": ["tiny"]}', "model")]:
        r = httpx.post(f"{serve_url}/chat/completions", content=raw, headers={"Content-Type": "application/json"},
                       timeout=60)
        assert r.status_code == 400 and word in r.json()["error"]["message"], (raw[:60], r.text)
    r = httpx.post(f"{serve_url}/completions", json={"model": "tiny", "prompt": [1, 2], "echo": True, "logprobs": 0,
                                                     "max_tokens": 1.0}, timeout=60)
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
    r = httpx.get(f"{serve_url}/nowhere", timeout=30)
    assert r.status_code == 404 and r.json()["error"]["message"] == "Not Found"


def test_the_openai_sdk_still_works_through_the_guard(serve_url, tiny_tokenizer):
    client = openai.OpenAI(base_url=serve_url, api_key="x", max_retries=0)
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens <= 2
    ids = tiny_tokenizer("hello there")["input_ids"]
    s = client.completions.create(model="tiny", prompt=ids, max_tokens=0, echo=True, logprobs=0)
    assert len(s.choices[0].logprobs.token_logprobs) == len(ids)


def test_serve_refuses_weight_updates_without_a_directory(tiny_model_dir, tmp_path, capsys):
    import socket

    from workbench.cli import main

    with socket.socket() as busy:  # a port in use: a server that skipped these checks still stops, not runs
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        for flags, words in [(["--allow-weight-updates"], "--weights-dir DIR"),
                             (["--allow-weight-updates", "--weights-dir", str(tmp_path / "no")], "no such directory"),
                             (["--weights-dir", str(tmp_path)], "go with --allow-weight-updates"),
                             (["--max-body-mb", "0"], "--max-body-mb 0"), (["--max-prompt-tokens", "0"], "at least 1")]:
            assert main(["serve", str(tiny_model_dir), "--port", port, *flags]) == 2
            assert words in capsys.readouterr().err


@pytest.mark.slow
def test_wb_serve_prints_a_generated_token_once(tiny_model_dir, tmp_path):
    import socket

    from tests.llm.test_serve_limits import _up, _wait

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "WB_WEIGHTS_TOKEN"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(tiny_model_dir), "--port", str(port),
                             "--allow-weight-updates", "--weights-dir", str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        assert _wait(lambda: _up(url), 120)
        token = proc.stdout.readline().rsplit(" ", 1)[1].strip()
        assert len(token) >= 40
        assert httpx.post(f"{url}/weights", json={"path": "x.pt", "version": 1}, timeout=30).status_code == 401
        r = httpx.post(f"{url}/weights", json={"path": "x.pt", "version": 1}, timeout=30,
                       headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 400 and r.json()["error"]["message"] == OUTSIDE
    finally:
        proc.terminate()
        proc.wait(30)


def test_an_unexpected_error_is_a_json_500_that_names_nothing(tiny_tokenizer):
    from starlette.routing import Route

    async def broken(request):
        raise RuntimeError("secret detail /home/user/.ssh")

    thread = ServerThread(build_app(CountingEngine(tiny_tokenizer), "tiny",
                                    extra_routes=[Route("/v1/broken", broken, methods=["POST"])]))
    url = thread.start()
    try:
        r = httpx.post(f"{url}/broken", json={}, timeout=30)
        assert r.status_code == 500 and r.json()["error"]["message"] == "internal server error"
        assert "secret" not in r.text and "Traceback" not in r.text
        assert httpx.get(f"{url}/models", timeout=30).status_code == 200
    finally:
        thread.stop()
