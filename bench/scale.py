"""Local vs Ray: `wb curate` (length filter, decontamination, exact + near dedup) on the same corpus with
`--engine local` and `--engine ray` (a local Ray started by the run, as a user would get it).

    python bench/scale.py --docs 50000 [--steps-only]

The corpus is bench/dedup.py's (real sentences, planted exact and near duplicates) as one parquet file.
Each engine runs in its own process; the peak memory is the largest summed RSS of that process and every
process under it (Ray's raylet, GCS and workers included), sampled every 0.2 s. Prints rows/s, wall,
peak memory, the ratio, and whether both wrote identical data.parquet and removed.parquet.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_engine(engine: str, corpus: Path, out: Path, steps_only: bool) -> tuple[float, float]:
    """(wall seconds, peak RSS of the process tree in MB) of one `wb curate` run."""
    import psutil

    cmd = [sys.executable, "-m", "workbench.cli", "curate", str(corpus), "--output", str(out), "--engine", engine]
    if steps_only:
        cmd.append("--no-dedup")
    started = time.perf_counter()
    log = open(out.parent / f"{engine}.log", "w+")  # a file, not a pipe: Ray logs enough to fill a pipe
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"})
    parent, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - started
    log.seek(0)
    if proc.returncode != 0:
        raise SystemExit(f"{engine}: wb curate failed:\n{log.read()[-2000:]}")
    return wall, peak / 2**20


def identical(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    from workbench.runfiles import PRODUCT, REMOVED

    return all(pq.read_table(a / name).equals(pq.read_table(b / name)) for name in (PRODUCT, REMOVED))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--steps-only", action="store_true", help="filters and decontamination, no dedup")
    args = parser.parse_args()
    from bench.dedup import build_corpus

    with tempfile.TemporaryDirectory(prefix="wb-scale-") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus.parquet"
        build_corpus(args.docs, corpus)
        size_mb = corpus.stat().st_size / 2**20
        rows = {}
        for engine in ("local", "ray"):
            rows[engine] = run_engine(engine, corpus, tmp / engine, args.steps_only)
        same = identical(tmp / "local", tmp / "ray")
    what = "filters + decontamination" if args.steps_only else "filters + decontamination + exact/near dedup"
    print(f"\nwb curate ({what}) on {args.docs:,} documents ({size_mb:.1f} MB parquet); Ray: a local Ray "
          f"started by the run; other jobs may share this machine's cores\n")
    print("| engine | wall s | rows/s | peak RSS MB (process tree) | wall / local |")
    print("|---|---|---|---|---|")
    base = rows["local"][0]
    for engine, (wall, peak) in rows.items():
        print(f"| {engine} | {wall:.1f} | {args.docs / wall:,.0f} | {peak:,.0f} | {wall / base:.2f} |")
    print(f"\nidentical data.parquet and removed.parquet: {same}")


if __name__ == "__main__":
    main()
