"""What the app's browser tests share: `wb ui` as a subprocess on a free loopback port, and waiting for a
page's script run to finish. The `browser` and `page` fixtures live in tests/app/conftest.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.net import free_port

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serve_app(root: Path, log_path: Path) -> Iterator[str]:
    """`wb ui --workspace root` on a free 127.0.0.1 port (its output in `log_path`); yield its URL once
    healthy (bounded: 90 s); stop it by its own process group, SIGKILL after 10 s."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "ui", "--workspace", str(root),
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, Path(log_path).read_text()
                time.sleep(0.3)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def settle(page) -> None:
    """Wait until the page's script has finished its run."""
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=60_000)
