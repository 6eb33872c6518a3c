"""Client overhead of `wb distill` (ledger, retries, progress, outputs) vs a plain openai client + semaphore.

Both talk to the same local OpenAI-compatible server (`tests.mock_server`, a fixed latency per reply,
in its own process) at concurrency 64 and 256, in the same run. Reports requests/s, the ratio, and the
client's CPU time per request. Run: `python bench/distill_client.py [--requests 3000 --latency 0.05]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _baseline(url: str, prompts: list[str], concurrency: int) -> None:
    import openai

    from distill_data.generation.backends.openai_http import _limits

    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, timeout=1800,
                                http_client=openai.DefaultAsyncHttpxClient(limits=_limits(max(100, concurrency))))
    gate = asyncio.Semaphore(concurrency)

    async def one(text: str) -> str | None:
        try:
            r = await client.chat.completions.create(model="mock", messages=[{"role": "user", "content": text}],
                                                     max_tokens=64)
            return r.choices[0].message.content
        finally:
            gate.release()

    # Acquire before creating each task, so at most one coroutine waits on the semaphore: gathering all
    # tasks up front makes Python 3.11's Semaphore.acquire scan thousands of waiters (O(n) per acquire).
    tasks = []
    for p in prompts:
        await gate.acquire()
        tasks.append(asyncio.create_task(one(p)))
    results = await asyncio.gather(*tasks)
    await client.close()
    assert all(r is not None for r in results)


def run_baseline(url: str, prompts: list[str], concurrency: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    asyncio.run(_baseline(url, prompts, concurrency))
    return time.perf_counter() - wall, _cpu() - cpu


def run_distill(url: str, prompt_file: str, concurrency: int, out: Path) -> tuple[float, float]:
    from distill_data.config import DistillConfig
    from distill_data.pipeline import distill

    shutil.rmtree(out, ignore_errors=True)
    cfg = DistillConfig(prompts=prompt_file, output=str(out), model="mock", base_url=[url], max_tokens=64,
                        max_concurrency=concurrency, progress_seconds=0)
    wall, cpu = time.perf_counter(), _cpu()
    manifest = distill(cfg)
    elapsed = time.perf_counter() - wall, _cpu() - cpu
    assert manifest["status_counts"]["ok"] == manifest["units"]
    return elapsed


def ledger_cpu_ms(requests: int = 3000) -> float:
    """CPU ms per request of the ledger alone: record a unit and commit it, as the runner does."""
    from distill_data.generation.ledger import Ledger, UnitResult

    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(Path(tmp) / "ledger.sqlite", "bench")
        cpu = _cpu()
        for i in range(requests):
            ledger.add_usage(1, 10, 64)
            ledger.record(UnitResult(str(i), 0, "h", "ok", None, "x" * 500, "stop", None, 10, 64, 1, "e"))
            ledger.maybe_flush()
        used = _cpu() - cpu
        ledger.close()
    return 1000 * used / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=2, help="best of N per cell")
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.mock_server", "--port", str(port),
                               "--latency", str(args.latency)], cwd=ROOT, stdout=subprocess.PIPE)
    server.stdout.readline()  # "listening on ..."
    url = f"http://127.0.0.1:{port}/v1"
    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    try:
        rows = []
        for c in args.concurrency:
            best = {"base": (1e9, 0.0), "wb": (1e9, 0.0)}
            for rep in range(args.repeats):
                prompts = [f"bench c{c} r{rep} q{i}" for i in range(args.requests)]
                pfile = tmp / f"p{c}-{rep}.jsonl"
                pfile.write_text("".join(json.dumps({"prompt": p + " wb"}) + "\n" for p in prompts))
                runs = [("base", partial(run_baseline, url, prompts, c)),
                        ("wb", partial(run_distill, url, str(pfile), c, tmp / f"run{c}-{rep}"))]
                for name, fn in runs if rep % 2 == 0 else runs[::-1]:  # alternate who runs first
                    best[name] = min(best[name], fn())
            rows.append((c, *best["base"], *best["wb"]))
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.requests
    print(f"\n{n} requests per run, server latency {args.latency * 1000:.0f} ms, best of {args.repeats}\n")
    print("| concurrency | baseline req/s | wb distill req/s | wb / baseline | baseline CPU ms/req | wb CPU ms/req |")
    print("|---|---|---|---|---|---|")
    for c, bw, bc, ww, wc in rows:
        print(f"| {c} | {n / bw:,.0f} | {n / ww:,.0f} | {bw / ww:.2f} | {1000 * bc / n:.2f} | {1000 * wc / n:.2f} |")
    print(f"\nledger alone (record + commit per request): {ledger_cpu_ms():.3f} CPU ms/request")


if __name__ == "__main__":
    main()
