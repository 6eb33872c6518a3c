"""What `wb serve`'s body and prompt caps save: one oversized chat request against the server with its
default caps and against the same server with the caps lifted (`--max-body-mb 1024 --max-prompt-tokens
10**9`, the old behaviour), side by side. For each: the big request's status and time, the worst latency
of `/v1/models` polled meanwhile (does the server freeze?) and the server's peak resident memory.

    python bench/serve_limits.py [--mb 5] [--model DIR]     # the tiny model by default; Linux (/proc)
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"caps lifted (before)": ["--max-body-mb", "1024", "--max-prompt-tokens", str(10**9)], "defaults": []}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(model: str, flags: list[str], body: bytes, timeout: float) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", model, "--port", str(port), *flags],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        idle = peak_rss_mb(proc.pid)
        result: dict = {}

        def big() -> None:
            t0 = time.perf_counter()
            try:
                r = httpx.post(f"{url}/chat/completions", content=body, timeout=timeout,
                               headers={"Content-Type": "application/json"})
                result["status"] = r.status_code
            except httpx.HTTPError as exc:
                result["status"] = type(exc).__name__
            result["seconds"] = time.perf_counter() - t0

        worker = threading.Thread(target=big)
        worker.start()
        worst = 0.0
        end = time.monotonic() + timeout
        while worker.is_alive() and time.monotonic() < end:  # bounded by the request's own timeout
            t0 = time.perf_counter()
            try:
                httpx.get(f"{url}/models", timeout=timeout)
            except httpx.HTTPError:
                pass
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.05)
        worker.join(timeout)
        return {**result, "worst_models_s": worst, "idle_mb": idle, "peak_mb": peak_rss_mb(proc.pid)}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[5.0, 1.5],
                        help="sizes of the oversized chat body in MB (default: 5, over the 2 MiB body cap, and "
                             "1.5, under it but over the prompt cap)")
    parser.add_argument("--model", help="a model directory (default: the tiny test model, built here)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one request may take")
    args = parser.parse_args()
    model = args.model
    if model is None:
        sys.path.insert(0, str(ROOT))
        from demo.tiny_models import save_tiny_model

        model = str(save_tiny_model(Path(tempfile.mkdtemp(prefix="serve-limits-")) / "tiny", "llama"))
    print(f"model {Path(model).name}; one oversized chat request per row, /v1/models polled meanwhile")
    print("| body MB | server | status | request s | worst /v1/models s | RSS growth MB |")
    print("|---|---|---|---|---|---|")
    for mb in args.mb:
        words = int(mb * 1e6 / 6)
        body = b'{"messages": [{"role": "user", "content": "' + b"hello " * words + b'"}], "max_tokens": 1}'
        rows = {name: measure(model, flags, body, args.timeout) for name, flags in CONFIGS.items()}
        for name, r in rows.items():
            print(f"| {len(body) / 1e6:.1f} | {name} | {r['status']} | {r['seconds']:.2f} | {r['worst_models_s']:.2f} "
                  f"| {r['peak_mb'] - r['idle_mb']:.0f} |")
        before, after = rows["caps lifted (before)"], rows["defaults"]
        print(f"| {len(body) / 1e6:.1f} | ratio before/after | | {before['seconds'] / max(after['seconds'], 1e-3):.0f}x "
              f"| {before['worst_models_s'] / max(after['worst_models_s'], 1e-3):.1f}x | |")


if __name__ == "__main__":
    main()
