"""Client overhead of `wb distill` (ledger, retries, progress, outputs) vs a plain openai client + semaphore.

Both talk to the same local OpenAI-compatible server (`tests.mock_server`, a fixed latency per reply,
in its own process) at concurrency 64 and 256, in the same run. Reports requests/s, the ratio, and the
client's CPU time per request. Run: `python bench/distill_client.py [--requests 3000 --latency 0.05]`.

`--faults` runs the fault mix instead (issue 14: 12% 429 with Retry-After, 6% 500, 4% dropped
connections, 5% slow, 5% truncated, one or several endpoints): `wb distill` against a fixed-concurrency
openai-asyncio client that retries every failure on its own (Retry-After for 429s, backoff otherwise),
which is what curator does (curator itself does not install beside this project's openai/transformers).
Run: `python bench/distill_client.py --faults --requests 2000 [--endpoints 2]`.

The default table also times a cached re-run: the same prompts into a new output directory, answered by the
response cache (`llm/cache.py`, in a temporary `$WB_CACHE_DIR` so the bench never touches yours) without
a request to the server; its rate is units written per second, against the baseline's requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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

    from llm.backends.openai_http import _limits

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


def run_distill(url: str, prompt_file: str, concurrency: int, out: Path, sent: int | None = None,
                cache: bool = True) -> tuple[float, float]:
    """(wall s, CPU s) of `wb distill` over the prompts; with `sent`, check that it sent exactly that many
    requests (0: a cached re-run); `cache=False` is `--no-cache`."""
    from distill_data.config import DistillConfig
    from distill_data.pipeline import distill

    shutil.rmtree(out, ignore_errors=True)
    cfg = DistillConfig(prompts=prompt_file, output=str(out), model="mock", base_url=[url], max_tokens=64,
                        max_concurrency=concurrency, progress_seconds=0, cache=cache)
    wall, cpu = time.perf_counter(), _cpu()
    manifest = distill(cfg)
    elapsed = time.perf_counter() - wall, _cpu() - cpu
    assert manifest["status_counts"]["ok"] == manifest["units"]
    if sent is not None:
        usage = manifest["usage"]
        assert usage["requests"] == sent and usage["requests"] + usage["cached_requests"] == manifest["units"], usage
    return elapsed


FAULT_MIX = "429=0.12,500=0.06,drop=0.04,slow=0.05,length=0.05"


async def _baseline_faults(urls: list[str], prompts: list[str], concurrency: int, max_attempts: int = 8) -> dict:
    """A fixed-concurrency client per endpoint that retries each failure by itself: a 429 waits its
    Retry-After, other faults back off exponentially with jitter; a retry waits outside the pool."""
    import openai

    from llm.backends.openai_http import _limits, _retry_after

    clients = [openai.AsyncOpenAI(base_url=u, api_key="x", max_retries=0, timeout=1800,
                                  http_client=openai.DefaultAsyncHttpxClient(limits=_limits(max(100, concurrency))))
               for u in urls]
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(len(prompts)):
        queue.put_nowait((i, 1))
    results: dict[int, str] = {}
    failed: set[int] = set()
    done = asyncio.Event()
    rng = random.Random(0)
    loop = asyncio.get_running_loop()

    def finish(i: int, status: str | None) -> None:
        if status is None:
            failed.add(i)
        else:
            results[i] = status
        if len(results) + len(failed) == len(prompts):
            done.set()

    async def worker(client) -> None:
        while True:
            i, attempt = await queue.get()
            try:
                r = await client.chat.completions.create(
                    model="mock", messages=[{"role": "user", "content": prompts[i]}], max_tokens=64)
                finish(i, "truncated" if r.choices[0].finish_reason == "length" else "ok")
                continue
            except openai.RateLimitError as exc:
                wait = _retry_after(exc.response.headers) or 1.0
            except (openai.APIStatusError, openai.APIConnectionError, openai.APITimeoutError):
                wait = min(60.0, 2.0 ** (attempt - 1)) * rng.uniform(0.5, 1.0)
            if attempt >= max_attempts:
                finish(i, None)
            else:
                loop.call_later(wait, queue.put_nowait, (i, attempt + 1))

    workers = [asyncio.create_task(worker(c)) for c in clients for _ in range(concurrency)]
    await done.wait()
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    for c in clients:
        await c.close()
    statuses = list(results.values())
    return {"rows": len(results) + len(failed), "duplicates": 0, "ok": statuses.count("ok"),
            "truncated": statuses.count("truncated"), "failed": len(failed)}


def run_fault_mix(urls: list[str], prompt_file: str, prompts: list[str], concurrency: int, out: Path) -> list[tuple]:
    """(name, wall s, CPU s, outcome counts) of the baseline and of `wb distill` on the same prompts."""
    import pyarrow.parquet as pq

    from distill_data.config import DistillConfig
    from distill_data.pipeline import distill
    from workbench.runfiles import PRODUCT

    rows = []
    wall, cpu = time.perf_counter(), _cpu()
    counts = asyncio.run(_baseline_faults(urls, prompts, concurrency))
    rows.append(("openai-asyncio, fixed concurrency, retries", time.perf_counter() - wall, _cpu() - cpu, counts, ""))
    shutil.rmtree(out, ignore_errors=True)
    cfg = DistillConfig(prompts=prompt_file, output=str(out), model="mock", base_url=urls, max_tokens=64,
                        max_concurrency=concurrency, progress_seconds=0)
    wall, cpu = time.perf_counter(), _cpu()
    manifest = distill(cfg)
    elapsed, used = time.perf_counter() - wall, _cpu() - cpu
    data = pq.read_table(out / PRODUCT, columns=["prompt_id", "sample_index"]).to_pylist()
    keys = {(r["prompt_id"], r["sample_index"]) for r in data}
    counts = {"rows": len(data), "duplicates": len(data) - len(keys), **manifest["status_counts"]}
    limits = ", ".join(f"limit {e['limit']:g} cuts {e['cuts']}" for e in manifest["faults"]["endpoints"])
    rows.append(("wb distill", elapsed, used, counts, limits))
    return rows


def fault_main(args) -> None:
    servers, urls = [], []
    for e in range(args.endpoints):
        port = _free_port()
        servers.append(subprocess.Popen(
            [sys.executable, "-m", "tests.mock_server", "--port", str(port), "--latency", str(args.latency),
             "--faults", args.fault_mix, "--slow-seconds", str(args.slow_seconds), "--retry-after",
             str(args.retry_after), "--seed", str(e)], cwd=ROOT, stdout=subprocess.PIPE))
        urls.append(f"http://127.0.0.1:{port}/v1")
    for server in servers:
        server.stdout.readline()  # "listening on ..."
    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    os.environ["WB_CACHE_DIR"] = str(tmp / "cache")  # a cache of its own: every run of the bench pays in full
    try:
        prompts = [f"fault mix q{i}" for i in range(args.requests)]
        pfile = tmp / "p.jsonl"
        pfile.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
        rows = run_fault_mix(urls, str(pfile), prompts, args.concurrency[0], tmp / "run")
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.requests} prompts, {args.endpoints} endpoint(s), concurrency {args.concurrency[0]} per "
          f"endpoint, faults {args.fault_mix} (slow +{args.slow_seconds:g} s, Retry-After {args.retry_after:g} s), "
          f"latency {args.latency * 1000:.0f} ms\n")
    print("| client | wall s | req/s | CPU s | rows | duplicates | ok | truncated | failed | wall / baseline | endpoints |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    base = rows[0][1]
    for name, wall, cpu, c, note in rows:
        print(f"| {name} | {wall:.1f} | {args.requests / wall:,.0f} | {cpu:.1f} | {c['rows']} | {c['duplicates']} | "
              f"{c['ok']} | {c['truncated']} | {c['failed']} | {wall / base:.2f} | {note} |")


def ledger_cpu_ms(requests: int = 3000) -> float:
    """CPU ms per request of the ledger alone: record a unit and commit it, as the runner does."""
    from llm.ledger import Ledger, UnitResult

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
    parser.add_argument("--faults", action="store_true", help="run the fault mix (see the docstring)")
    parser.add_argument("--fault-mix", default=FAULT_MIX)
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    args = parser.parse_args()
    if args.faults:
        fault_main(args)
        return
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.mock_server", "--port", str(port),
                               "--latency", str(args.latency)], cwd=ROOT, stdout=subprocess.PIPE)
    server.stdout.readline()  # "listening on ..."
    url = f"http://127.0.0.1:{port}/v1"
    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    os.environ["WB_CACHE_DIR"] = str(tmp / "cache")
    try:
        rows = []
        for c in args.concurrency:
            best = {"base": (1e9, 0.0), "wb": (1e9, 0.0), "nocache": (1e9, 0.0), "cached": (1e9, 0.0)}
            for rep in range(args.repeats):
                prompts = [f"bench c{c} r{rep} q{i}" for i in range(args.requests)]
                pfile = tmp / f"p{c}-{rep}.jsonl"
                pfile.write_text("".join(json.dumps({"prompt": p + " wb"}) + "\n" for p in prompts))
                runs = [("base", partial(run_baseline, url, prompts, c)),
                        ("nocache", partial(run_distill, url, str(pfile), c, tmp / f"nc{c}-{rep}", args.requests,
                                            False)),
                        ("wb", partial(run_distill, url, str(pfile), c, tmp / f"run{c}-{rep}", args.requests))]
                for name, fn in runs if rep % 2 == 0 else runs[::-1]:  # alternate who runs first
                    best[name] = min(best[name], fn())
                # the same prompts into a new directory: every sample from the cache, no request sent
                best["cached"] = min(best["cached"], run_distill(url, str(pfile), c, tmp / f"again{c}-{rep}", 0))
            rows.append((c, *best["base"], *best["wb"], *best["nocache"], *best["cached"]))
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.requests
    print(f"\n{n} requests per run, server latency {args.latency * 1000:.0f} ms, best of {args.repeats}\n")
    print("| run | concurrency | req/s (cached: units/s) | speed / baseline | CPU ms/req | requests sent |")
    print("|---|---|---|---|---|---|")
    for c, bw, bc, ww, wc, nw, nc, cw, cc in rows:
        for name, w, u, sent in (("openai + semaphore (baseline)", bw, bc, n), ("wb distill --no-cache", nw, nc, n),
                                 ("wb distill (writes the cache)", ww, wc, n),
                                 ("wb distill, cached re-run (new --output)", cw, cc, 0)):
            print(f"| {name} | {c} | {n / w:,.0f} | {bw / w:.2f} | {1000 * u / n:.2f} | {sent:,} |")
    print(f"\nledger alone (record + commit per request): {ledger_cpu_ms():.3f} CPU ms/request")


if __name__ == "__main__":
    main()
