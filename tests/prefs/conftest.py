"""Servers for the prefs tests: one scripted server answering per model, and two `wb serve` tiny models
(a "weak" one and a "strong" one trained further on GSM8K answers)."""

from __future__ import annotations

import pytest

from distill_data.mock_server import MockServer


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
def strong_model(tmp_path_factory, tiny_model_dir):
    """The tiny model trained 150 steps more on GSM8K answers; returns (path, losses)."""
    from prefs_helpers import train_on_gsm8k

    return train_on_gsm8k(tiny_model_dir, tmp_path_factory.mktemp("models") / "tiny-strong", steps=150)


@pytest.fixture(scope="session")
def tiny_servers(tiny_model_dir, strong_model):
    """URLs of `wb serve` over the weak (untrained) and strong tiny models, served as "weak" and "strong"."""
    from distill_data.local_engine import LocalEngine
    from distill_data.serve import ServerThread, build_app

    threads = {name: ServerThread(build_app(LocalEngine(path), name, max_batch=8))
               for name, path in (("weak", tiny_model_dir), ("strong", strong_model[0]))}
    urls = {name: thread.start() for name, thread in threads.items()}
    yield urls
    for thread in threads.values():
        thread.stop()
