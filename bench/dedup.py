"""Near-dedup benchmark: `wb dedup` against the datasketch loop a user would otherwise write.

    python bench/dedup.py --docs 100000            # both methods
    python bench/dedup.py --docs 1000000 --no-baseline

Builds a corpus of real text (documents of 6-14 random sentences from the bundled Shakespeare, GSM8K
and MATH-500 text), plants near-duplicates by replacing words (true Jaccard of word 5-gram sets from
0.5 to 1.0, computed exactly) and exact copies, then runs each method in its own process on the same
parquet file with the same settings (128 perms, threshold 0.8, word 5-grams) and writes kept rows.
A row "is a near-duplicate" when it is a planted copy whose true Jaccard to its original is >= 0.8.
Prints docs/s, wall and CPU seconds, peak RSS, precision, recall and the speed ratios (CPU time is
the fairer one on a shared machine; wb dedup hashes batches on every core, datasketch uses one).
wb dedup first runs once on a small corpus so that its compiled kernels are in the on-disk cache.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
THRESHOLD, NUM_PERM, NGRAM = 0.8, 128, 5


def sentence_pool() -> list[str]:
    from workbench.workspace import bundled_data_dir

    data = bundled_data_dir()
    text = [line.strip() for line in (data / "tinyshakespeare" / "input.txt").read_text().splitlines()]
    for name in ("gsm8k/train.jsonl", "gsm8k/test.jsonl", "math500/test.jsonl"):
        for line in (data / name).read_text().splitlines():
            row = json.loads(line)
            text += re.split(r"(?<=[.?!])\s+|\n+", row["question"] + "\n" + row["answer"])
    return sorted({s for s in text if len(s.split()) >= 5})


def shingles(text: str) -> set[str]:
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    if len(words) < NGRAM:
        return {" ".join(words)}
    return {" ".join(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


def build_corpus(n_docs: int, path: Path, seed: int = 0) -> dict[str, float]:
    """Write the corpus; return {planted id: true Jaccard with its original}."""
    rng = np.random.default_rng(seed)
    pool = sentence_pool()
    n_orig = int(n_docs * 0.9)
    lengths = rng.integers(6, 15, size=n_orig)
    picks = rng.integers(0, len(pool), size=int(lengths.sum()))
    bounds = np.r_[0, np.cumsum(lengths)]
    texts = [" ".join(pool[i] for i in picks[bounds[k]:bounds[k + 1]]) for k in range(n_orig)]
    ids = [f"doc{k}" for k in range(n_orig)]
    truth: dict[str, float] = {}
    for k, orig in enumerate(rng.choice(n_orig, size=n_docs - n_orig, replace=False)):
        words = texts[orig].split()
        edits = 0 if k % 10 == 0 else int(rng.integers(1, max(2, len(words) // 6)))
        for pos in rng.choice(len(words), size=edits, replace=False):
            words[pos] = f"w{k}x{pos}"
        copy = " ".join(words)
        a, b = shingles(texts[orig]), shingles(copy)
        truth[f"copy{k}"] = len(a & b) / len(a | b)
        texts.append(copy)
        ids.append(f"copy{k}")
    # originals first so that keep-first removes the copy; copies are shuffled among themselves
    order = np.r_[np.arange(n_orig), n_orig + rng.permutation(len(texts) - n_orig)]
    pq.write_table(pa.table({"id": [ids[i] for i in order], "text": [texts[i] for i in order]}), path,
                   row_group_size=65536)
    return truth


def run_ours(corpus: Path, out: Path) -> list[str]:
    from workbench.cli import main

    code = main(["dedup", str(corpus), "--output", str(out), "--threshold", str(THRESHOLD),
                 "--num-perm", str(NUM_PERM), "--ngram", str(NGRAM)])
    assert code == 0
    return pq.read_table(out / "removed.parquet", columns=["id"])["id"].to_pylist()


def run_datasketch(corpus: Path, out: Path) -> list[str]:
    from datasketch import MinHash, MinHashLSH

    table = pq.read_table(corpus)
    ids, texts = table["id"].to_pylist(), table["text"].to_pylist()
    sets = [[s.encode() for s in shingles(t)] for t in texts]
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    removed, keep = [], []
    for i, m in enumerate(MinHash.bulk(sets, num_perm=NUM_PERM)):
        if lsh.query(m):
            removed.append(ids[i])
        else:
            lsh.insert(ids[i], m)
            keep.append(i)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.take(pa.array(keep)), out / "data.parquet")
    return removed


def worker(method: str, corpus: Path, out: Path) -> None:
    started = time.perf_counter()
    removed = (run_ours if method == "ours" else run_datasketch)(corpus, out)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    (out / "bench_removed.json").write_text(json.dumps(removed))
    print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux keeps `ru_maxrss` across exec, so a worker started by a parent
    holding the corpus would report the parent's size; VmHWM belongs to the worker's own memory map."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(method: str, corpus: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", method, "--corpus", str(corpus), "--out", str(out)],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["removed"] = set(json.loads((out / "bench_removed.json").read_text()))
    return result


def score(removed: set[str], truth: dict[str, float]) -> tuple[float, float]:
    positives = {k for k, j in truth.items() if j >= THRESHOLD}
    tp = len(removed & positives)
    return tp / max(len(removed), 1), tp / max(len(positives), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--no-baseline", action="store_true", help="skip datasketch (slow at 1M docs)")
    parser.add_argument("--worker", choices=["ours", "datasketch"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.corpus, args.out)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.parquet"
        truth = build_corpus(args.docs, corpus)
        j = np.array(list(truth.values()))
        print(f"{args.docs:,} docs, {len(truth):,} planted copies ({(j >= THRESHOLD).sum():,} with J >= {THRESHOLD}, "
              f"{((j >= 0.7) & (j < THRESHOLD)).sum():,} near misses in [0.7, {THRESHOLD}))")
        methods = ["ours"] + ([] if args.no_baseline else ["datasketch"])
        # wb dedup's compiled kernels are cached on disk after their first run (once per install); warm
        # that cache on a small corpus so the timed run measures dedup, not compilation
        build_corpus(2000, Path(tmp) / "warm.parquet")
        measure("ours", Path(tmp) / "warm.parquet", Path(tmp) / "warm")
        results = {m: measure(m, corpus, Path(tmp) / m) for m in methods}
    print("\n| method | docs/s | wall s | CPU s | peak RSS MB | precision | recall | speed ratio (wall) | ratio (CPU) |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = results.get("datasketch", results["ours"])
    for name, r in results.items():
        p, rec = score(r["removed"], truth)
        label = "wb dedup" if name == "ours" else "datasketch MinHash.bulk + MinHashLSH"
        print(f"| {label} | {args.docs / r['seconds']:,.0f} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
              f"{r['peak_mb']:,.0f} | {p:.4f} | {rec:.4f} | {base['seconds'] / r['seconds']:.1f}x | "
              f"{base['cpu_seconds'] / r['cpu_seconds']:.1f}x |")


if __name__ == "__main__":
    main()
