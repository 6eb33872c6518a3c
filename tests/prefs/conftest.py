"""Servers for the prefs tests: one scripted server answering per model, and two `wb serve` tiny models
(a "weak" one and a "strong" one trained further on GSM8K answers)."""

from __future__ import annotations

import pytest

from tests.mock_server import MockServer


class Scripts:
    """Per-model scripts: `set(model, question, markers)`; unknown questions keep the default reply."""

    def __init__(self):
        self.by_model: dict[str, dict[str, str]] = {}

    def set(self, model: str, question: str, markers: str) -> None:
        self.by_model.setdefault(model, {})[question] = markers

    def __call__(self, text: str, request: dict) -> str:
        return self.by_model.get(request.get("model"), {}).get(text, text)


@pytest.fixture(scope="module")
def scripted():
    scripts = Scripts()
    server = MockServer(retry_after=0.05, script=scripts).start()
    server.scripts = scripts
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory, tiny_model_dir):
    """A weak model (the tiny model after 60 GSM8K steps) and a strong one (100 steps more): path -> losses."""
    from prefs_helpers import train_on_gsm8k

    root = tmp_path_factory.mktemp("models")
    weak, weak_losses = train_on_gsm8k(tiny_model_dir, root / "tiny-weak", steps=60)
    strong, strong_losses = train_on_gsm8k(weak, root / "tiny-strong", steps=100, skip=480)
    return {"weak": (weak, weak_losses), "strong": (strong, strong_losses)}


@pytest.fixture(scope="session")
def tiny_servers(tiny_pair):
    """URLs of `wb serve` over the weak and strong tiny models, served as "weak" and "strong"."""
    import torch

    from llm.local_engine import LocalEngine
    from llm.serve import ServerThread, build_app

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models generate many times faster on one thread of a busy 2-core machine
    servers = {name: ServerThread(build_app(LocalEngine(path), name, max_batch=8))
               for name, (path, _) in tiny_pair.items()}
    yield {name: server.start() for name, server in servers.items()}
    for server in servers.values():
        server.stop()
    torch.set_num_threads(threads)
