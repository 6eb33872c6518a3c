"""Loopback servers for the distill tests: a scripted fault server and `wb serve` over the tiny model."""

from __future__ import annotations

import pytest

from tests.mock_server import MockServer


@pytest.fixture(scope="module")
def mock():
    server = MockServer(retry_after=0.05).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def serve_url(tiny_model_dir):
    from distill_data.generation.local_engine import LocalEngine
    from distill_data.serve import ServerThread, build_app

    thread = ServerThread(build_app(LocalEngine(tiny_model_dir), "tiny", max_batch=8))
    yield thread.start()
    thread.stop()

