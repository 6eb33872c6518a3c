"""Data browser on a large file: the app's lazy page against loading the table whole.

    python bench/app_browser.py                  # 1,000,000 rows of 1-3 KB texts
    python bench/app_browser.py --rows 200000

Writes a parquet of `--rows` rows (id, source, a 1-3 KB slice of the bundled GSM8K / Shakespeare /
Python text, a score) with the project's writer (zstd, one row group per 50k-row batch, as a run's
product), then, each in a fresh process on the same file:
- app: the Data browser page (AppTest, the real page script) opening the file and showing its first
  page, then the "Last" button jumping to the last page;
- baseline: what a page that loads the table whole does first (`polars.read_parquet`), and the size of
  the frame it would ship to the browser (Streamlit refuses messages over 200 MB).
Prints seconds, peak RSS and the ratio. Timings on a shared 2-core machine vary with other load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def corpus() -> str:
    data = REPO / "examples" / "data"
    parts = [(data / "tinyshakespeare" / n).read_text() for n in os.listdir(data / "tinyshakespeare")
             if n.endswith(".txt")]
    for name in ("gsm8k/train.jsonl", "python_stdlib/stdlib.jsonl"):
        for line in (data / name).read_text().splitlines():
            row = json.loads(line)
            parts.append(" ".join(str(v) for v in row.values() if isinstance(v, str)))
    return "\n".join(parts)


def make_file(path: Path, rows: int, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa

    from workbench.io import write_tables

    text = corpus()
    rng = np.random.default_rng(seed)

    def batches(size: int = 50_000):
        for lo in range(0, rows, size):
            n = min(size, rows - lo)
            starts = rng.integers(0, len(text) - 3000, n)
            lengths = rng.integers(1000, 3000, n)
            yield pa.table({"id": [f"row-{i}" for i in range(lo, lo + n)],
                            "source": rng.choice(["gsm8k", "shakespeare", "python"], n).tolist(),
                            "text": [text[s:s + k] for s, k in zip(starts.tolist(), lengths.tolist(), strict=True)],
                            "score": rng.random(n)})

    write_tables(batches(), path)


APP = """
import json, resource, sys, time
from streamlit.testing.v1 import AppTest
t = time.perf_counter()
at = AppTest.from_file(sys.argv[1], default_timeout=600)
at.query_params["path"] = sys.argv[2]
at.run()
first = time.perf_counter() - t
assert not at.exception, [e.value for e in at.exception]
shown = [m.value for m in at.markdown if m.value.startswith("page ")][0]
first_ids = list(at.dataframe[0].value["id"][:1])
t = time.perf_counter()
at.button(key="pg_last").click().run()
last = time.perf_counter() - t
assert not at.exception, [e.value for e in at.exception]
last_shown = [m.value for m in at.markdown if m.value.startswith("page ")][0]
last_ids = list(at.dataframe[0].value["id"][-1:])
print(json.dumps({"first_page_s": first, "last_page_s": last, "first": shown, "last": last_shown,
                  "first_id": first_ids, "last_id": last_ids,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BASELINE = """
import json, resource, sys, time
import polars as pl
t = time.perf_counter()
frame = pl.read_parquet(sys.argv[1])
head = frame.head(100)
seconds = time.perf_counter() - t
print(json.dumps({"first_page_s": seconds, "frame_mb": frame.estimated_size() / 2**20,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", help="directory to keep the generated file in (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        path = root / "big.parquet"
        if not path.exists():
            t = time.perf_counter()
            make_file(path, args.rows)
            print(f"wrote {args.rows:,} rows, {path.stat().st_size / 2**20:,.0f} MB on disk, in {time.perf_counter() - t:.0f} s")
        env = {**os.environ, "WB_UI_WORKSPACE": str(root),
               "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        app = run(APP, str(REPO / "app" / "views" / "browse.py"), "big.parquet", env=env)
        base = run(BASELINE, str(path), env=env)
    print(f"\n{'method':<34} {'first page s':>12} {'last page s':>12} {'peak RSS MB':>12}")
    print(f"{'app (lazy scan, AppTest page)':<34} {app['first_page_s']:>12.2f} {app['last_page_s']:>12.2f} {app['rss_mb']:>12,.0f}")
    print(f"{'baseline (read whole table)':<34} {base['first_page_s']:>12.2f} {'':>12} {base['rss_mb']:>12,.0f}")
    print(f"\nfirst page: app is {base['first_page_s'] / app['first_page_s']:.1f}x faster than reading the table; "
          f"the whole frame is {base['frame_mb']:,.0f} MB (Streamlit's message limit is 200 MB)")
    print(f"app first page: {app['first']} (first id {app['first_id']}); after Last: {app['last']} "
          f"(last id {app['last_id']})")
    print(f"first page under 3 s: {'yes' if app['first_page_s'] < 3 else 'NO'}")


if __name__ == "__main__":
    main()
