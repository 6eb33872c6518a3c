"""`wb serve` under abandoned work: three n=128 x 500-token requests whose clients give up after 1 s, then
a 4-token request (its latency), then SIGTERM (time to exit). Each code tree runs in its own server.

    python bench/serve_abandoned.py                                    # this checkout, the tiny model
    python bench/serve_abandoned.py --baseline /path/to/old/checkout   # side by side with older code

Before cancellation on disconnect, the 4-token request waited for all 384 abandoned samples (280 s in
the report that found it) and the server ignored SIGTERM while generating; times over --cap are shown
as "> cap". CPU timings are noisy on a shared machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, seconds: float = 120.0) -> str:
    """The served model name once the server answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"{url}/models", timeout=1).json()["data"][0]["id"]
        except (httpx.HTTPError, ValueError, KeyError):
            time.sleep(0.2)
    raise RuntimeError(f"no server at {url}")


def measure(tree: str, model: str, cap: float) -> tuple[str, str]:
    """(latency of the 4-token request, SIGTERM-to-exit time) for the code in `tree`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", model, "--port", str(port)],
                            env={**os.environ, "PYTHONPATH": tree}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        name = wait_up(url)
        big = {"model": name, "messages": [{"role": "user", "content": "go"}], "n": 128, "max_tokens": 500,
               "temperature": 1.0}
        for _ in range(3):
            try:
                httpx.post(f"{url}/chat/completions", json=big, timeout=1.0)
            except httpx.HTTPError:
                pass  # the client gives up: abandoned work
        small = {"model": name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0}
        started = time.monotonic()
        try:
            status = httpx.post(f"{url}/chat/completions", json=small, timeout=cap).status_code
            latency = f"{time.monotonic() - started:.1f} s ({status})"
        except httpx.HTTPError:
            latency = f"> {cap:.0f} s (timed out)"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=cap)
            exit_time = f"{time.monotonic() - started:.1f} s"
        except subprocess.TimeoutExpired:
            exit_time = f"> {cap:.0f} s (still alive)"
        return latency, exit_time
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: the cached tiny model)")
    parser.add_argument("--baseline", help="another checkout to run side by side (its root directory)")
    parser.add_argument("--cap", type=float, default=90.0, help="seconds to wait for each measurement")
    args = parser.parse_args()
    if args.model is None:
        from demo.tiny_models import tiny_model_path

        args.model = str(tiny_model_path())
    rows = [("this checkout", *measure(str(Path(__file__).resolve().parents[1]), args.model, args.cap))]
    if args.baseline:
        rows.append((f"baseline {Path(args.baseline).name}", *measure(args.baseline, args.model, args.cap)))
    print(f"{'code':<24} {'4-token request after 3 abandoned n=128':<42} {'SIGTERM to exit':<20}")
    for code, latency, exit_time in rows:
        print(f"{code:<24} {latency:<42} {exit_time:<20}")


if __name__ == "__main__":
    main()
