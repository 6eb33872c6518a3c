"""Shared test set-up: offline hub, a private workspace, and the tiny tokenizer built once per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from tests import system_packages  # noqa: E402

system_packages.hide_packages()


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs"):
        system_packages.require(mark.args[0])


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after pytest's own short summary, before the counts
def pytest_terminal_summary(terminalreporter):
    result = yield
    line = system_packages.skipped_summary(terminalreporter.stats.get("skipped", []))
    if line:
        terminalreporter.write_line(line, yellow=True, bold=True)
    return result


@pytest.fixture(autouse=True)
def _private_workspace(tmp_path_factory, monkeypatch, request):
    monkeypatch.setenv("WB_HOME", str(tmp_path_factory.getbasetemp() / "wb-home"))
    # a response cache per test (llm/cache.py): a test's requests are never answered by another test's samples
    name = "".join(c if c.isalnum() else "_" for c in request.node.nodeid)[-120:]
    monkeypatch.setenv("WB_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "wb-cache" / name))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from demo.tiny_models import train_tokenizer

    return train_tokenizer(vocab_size=512)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    from demo.tiny_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", "llama", tiny_tokenizer)


@pytest.fixture(scope="module")
def mock():
    """A scripted OpenAI-compatible fault server on loopback (tests/mock_server.py)."""
    from tests.mock_server import MockServer

    server = MockServer(retry_after=0.05).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def serve_url(tiny_model_dir):
    """`wb serve` over the tiny model on loopback, shared by the generation, distill and eval tests."""
    from llm.local_engine import LocalEngine
    from llm.serve import ServerThread, build_app

    thread = ServerThread(build_app(LocalEngine(tiny_model_dir), "tiny", max_batch=8))
    yield thread.start()
    thread.stop()
