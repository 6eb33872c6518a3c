"""Near-dedup benchmark: `wb dedup` against the datasketch loop a user would otherwise write.

    python bench/dedup.py                           # short, long and web corpora, both methods
    python bench/dedup.py --corpus web --repeat 3   # the web corpus only, best of three runs each
    python bench/dedup.py --corpus short --docs 1000000 --no-baseline

Three corpora. "short": documents of 6-14 random sentences (~0.7 KB) from the bundled Shakespeare, GSM8K
and MATH-500 sentences; "long": the same sentences in documents of web-page length (300-1,500 words,
mean ~3 KB). "web": web-like pages (this machine has no internet, so they are generated): body words
drawn from a Zipf law over 60,000 pseudo-words (a realistic vocabulary, 2% with a non-ASCII letter),
in sentences and paragraphs, between the header, navigation, sidebar and footer lines of one of 60
sites, 8,876 pages in ~26 MB like the hidden web corpus of issue 29. Each corpus gets planted
near-duplicates (words replaced; for web pages also the same article under another site's
boilerplate: true Jaccard of word 5-gram sets from about 0.4 to 1.0, computed exactly) and exact copies.
Each method runs in its own process on the same parquet file with the same settings (128 perms,
threshold 0.8, word 5-grams); a row "is a near-duplicate" when it is a planted copy whose true Jaccard
to its original is >= 0.8. wb dedup runs as the `wb` process itself (`main()` with the command line as
its argv), warm (its compiled kernels in the on-disk cache, as on every run after the first) and cold
(an empty `NUMBA_CACHE_DIR`: every kernel compiled in the run).

Prints one table: docs, MB of text, wall seconds (spawn to exit) and CPU seconds (every thread, start-up
included), MB/s per core (MB of text / CPU seconds), peak RSS, precision, recall, and the speed ratios
against datasketch in the same run (CPU time is the fairer one on a shared machine; wb dedup hashes
batches on every core, datasketch uses one). "startup CPU s" is what the same command costs on 20
documents (interpreter, imports, loading the kernels), and the "after startup" columns subtract it.
Other sessions may load the machine: `--repeat 3` keeps the run with the least CPU time of three.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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


def sentence_counts(rng: np.random.Generator, n: int, long: bool, words_per_sentence: float) -> np.ndarray:
    """Sentences per document: 6-14 (short), or enough for 300-1,500 words with a long right tail (long)."""
    if not long:
        return rng.integers(6, 15, size=n)
    words = np.minimum(300 + rng.exponential(260, size=n), 1500)
    return np.maximum(np.rint(words / words_per_sentence), 1).astype(np.int64)


def plant_copies(path: Path, texts: list[str], ids: list[str], n_docs: int, rng: np.random.Generator,
                 words_of, edit_range) -> dict[str, float]:
    """Add `n_docs - len(texts)` planted copies of random originals (every 10th exact, the others with
    `rng.integers(*edit_range(len(words)))` words replaced; `words_of(k, orig)` gives copy k's words), write
    the corpus to `path` (originals first, so keep-first removes the copy; copies shuffled among themselves)
    and return {planted id: true Jaccard of word 5-gram sets with its original}."""
    n_orig = len(texts)
    truth: dict[str, float] = {}
    for k, orig in enumerate(rng.choice(n_orig, size=n_docs - n_orig, replace=False)):
        words = words_of(k, orig)
        edits = 0 if k % 10 == 0 else int(rng.integers(*edit_range(len(words))))
        for pos in rng.choice(len(words), size=edits, replace=False):
            words[pos] = f"w{k}x{pos}"
        copy = " ".join(words)
        a, b = shingles(texts[orig]), shingles(copy)
        truth[f"copy{k}"] = len(a & b) / len(a | b)
        texts.append(copy)
        ids.append(f"copy{k}")
    order = np.r_[np.arange(n_orig), n_orig + rng.permutation(len(texts) - n_orig)]
    pq.write_table(pa.table({"id": [ids[i] for i in order], "text": [texts[i] for i in order]}), path,
                   row_group_size=65536)
    return truth


def build_corpus(n_docs: int, path: Path, seed: int = 0, long: bool = False) -> dict[str, float]:
    """Write the corpus (short or web-length documents); return {planted id: true Jaccard with its original}."""
    rng = np.random.default_rng(seed)
    pool = sentence_pool()
    n_orig = int(n_docs * 0.9)
    lengths = sentence_counts(rng, n_orig, long, float(np.mean([len(s.split()) for s in pool])))
    picks = rng.integers(0, len(pool), size=int(lengths.sum()))
    bounds = np.r_[0, np.cumsum(lengths)]
    texts = [" ".join(pool[i] for i in picks[bounds[k]:bounds[k + 1]]) for k in range(n_orig)]
    ids = [f"doc{k}" for k in range(n_orig)]
    # up to 1/6 (short) or 1/15 (long) of the words: true Jaccard from ~0.5 to 1.0 in both corpora
    return plant_copies(path, texts, ids, n_docs, rng, lambda k, orig: texts[orig].split(),
                        lambda n: (1, max(2, n // (15 if long else 6))))


def web_vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    """`size` distinct pseudo-words from syllables, roughly short words first (the Zipf ranks follow this
    order, so frequent words tend to be short, as in English); about 2% carry a non-ASCII letter, as
    loanwords and names do on English pages."""
    onsets = ["", "b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "ch", "cl",
              "cr", "dr", "fl", "gr", "pl", "pr", "sh", "sl", "sp", "st", "str", "th", "tr", "wh"]
    nuclei = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "ie", "oo", "ou", "y"]
    codas = ["", "", "b", "ck", "d", "l", "ll", "m", "n", "nd", "ng", "nt", "p", "r", "rd", "s", "st", "t", "x"]
    words: set[str] = set()
    while len(words) < size:
        syllables = 1 + rng.poisson(1.0)
        word = "".join(onsets[rng.integers(len(onsets))] + nuclei[rng.integers(len(nuclei))] +
                       codas[rng.integers(len(codas))] for _ in range(syllables))
        if rng.random() < 0.02:
            word = word[0] + "éüöñçå"[rng.integers(6)] + word[1:]
        words.add(word)
    ordered = sorted(words)
    return [ordered[i] for i in np.argsort([len(w) + rng.normal(0, 2) for w in ordered], kind="stable")]


def web_pages(n: int, rng: np.random.Generator, vocab_size: int = 60_000) -> list[str]:
    """`n` web-like pages: body words drawn from a Zipf law (s = 1.05) over `vocab_size` pseudo-words, in
    sentences and paragraphs, between the header, navigation, sidebar and footer lines of one of 60 sites
    (boilerplate shared by every page of a site). Body length is log-normal: mean ~2.9 KB a page, a
    long right tail (the hidden web corpus had 8,876 pages in 26 MB)."""
    vocab = np.array(web_vocabulary(rng, vocab_size), dtype=object)
    cdf = np.cumsum(1.0 / np.arange(1, vocab_size + 1) ** 1.05)
    cdf /= cdf[-1]

    def sentences(count: int, lo: int, hi: int) -> list[str]:
        lengths = rng.integers(lo, hi, size=count)
        words = vocab[np.minimum(np.searchsorted(cdf, rng.random(int(lengths.sum()))), vocab_size - 1)]
        bounds = np.r_[0, np.cumsum(lengths)]
        out = []
        for k in range(count):
            part = list(words[bounds[k]:bounds[k + 1]])
            part[0] = part[0].capitalize()
            for pos in rng.integers(0, len(part) - 1, size=len(part) // 9):
                part[pos] += ","
            out.append(" ".join(part) + ".?!"[int(rng.choice(3, p=[0.9, 0.05, 0.05]))])
        return out

    def line(words: int) -> str:
        return " ".join(w.capitalize() for w in vocab[rng.integers(0, 3000, size=words)])

    sites = []
    for _ in range(60):
        name = line(2)
        header = [f"{name} - {line(3)}", " | ".join(line(1) for _ in range(rng.integers(5, 10)))]
        sidebar = [line(int(rng.integers(2, 5))) for _ in range(rng.integers(0, 6))]
        footer = [f"© 20{rng.integers(10, 27)} {name}. All rights reserved.", " | ".join(line(2) for _ in range(4)),
                  " ".join(sentences(1, 12, 25))]
        sites.append((header, sidebar, footer))
    pages = []
    body_words = np.minimum(np.exp(rng.normal(np.log(350), 0.75, size=n)), 12_000).astype(int)
    for k in range(n):
        header, sidebar, footer = sites[int(rng.integers(len(sites)))]
        body, left = [line(int(rng.integers(4, 10)))], int(body_words[k])
        while left > 0:
            paragraph = sentences(int(rng.integers(1, 7)), 6, 28)
            left -= sum(s.count(" ") + 1 for s in paragraph)
            body.append(" ".join(paragraph))
        pages.append("\n".join(header + body + sidebar + footer))
    return pages


def build_web_corpus(n_docs: int, path: Path, seed: int = 0) -> dict[str, float]:
    """Write `n_docs` web pages, 10% of them planted near-duplicates of others (words replaced, or the
    page moved to another site's boilerplate, and exact copies); return {planted id: true Jaccard}."""
    rng = np.random.default_rng(seed)
    n_orig = int(n_docs * 0.9)
    texts = web_pages(n_orig, rng)
    ids = [f"page{k}" for k in range(n_orig)]

    def words_of(k: int, orig: int) -> list[str]:
        lines = texts[orig].split("\n")
        if k % 10 == 1:  # the same article under another site's header and footer
            lines = texts[int(rng.integers(n_orig))].split("\n")[:2] + lines[2:-3] + lines[-3:][::-1]
        return "\n".join(lines).split(" ")

    return plant_copies(path, texts, ids, n_docs, rng, words_of, lambda n: (0, max(2, n // 15)))


def run_ours(corpus: Path, out: Path) -> list[str]:
    """`wb dedup` as its own process runs it: the worker's argv is the command line, so `main()` sees the
    process as `wb` itself (as `python -m workbench.cli` would)."""
    from workbench.cli import main
    from workbench.runfiles import REMOVED

    sys.argv = ["wb", "dedup", str(corpus), "--output", str(out), "--threshold", str(THRESHOLD),
                "--num-perm", str(NUM_PERM), "--ngram", str(NGRAM)]
    assert main() == 0
    return pq.read_table(out / REMOVED, columns=["id"])["id"].to_pylist()


def run_datasketch(corpus: Path, out: Path) -> list[str]:
    from datasketch import MinHash, MinHashLSH

    from workbench.runfiles import PRODUCT

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
    pq.write_table(table.take(pa.array(keep)), out / PRODUCT)
    return removed


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(method: str, corpus: Path, out: Path) -> None:
    removed = (run_ours if method == "ours" else run_datasketch)(corpus, out)
    (out / "bench_removed.json").write_text(json.dumps(removed))
    print(json.dumps({"cpu_seconds": cpu_seconds(), "peak_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux keeps `ru_maxrss` across exec, so a worker started by a parent
    holding the corpus would report the parent's size; VmHWM belongs to the worker's own memory map."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(method: str, corpus: Path, out: Path, numba_cache: Path | None = None) -> dict:
    """One run of `method` in a fresh process: wall seconds from spawning it to its exit, its CPU seconds
    (every thread, start-up included) and peak RSS, and the ids it removed. `numba_cache` is the compiled
    kernels' cache directory (`NUMBA_CACHE_DIR`): an empty one makes the run cold."""
    env = dict(os.environ, **({"NUMBA_CACHE_DIR": str(numba_cache)} if numba_cache else {}))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", method, "--corpus-file", str(corpus), "--out", str(out)],
                          capture_output=True, text=True, check=True, env=env)
    result = {"seconds": time.perf_counter() - started, **json.loads(proc.stdout.strip().splitlines()[-1])}
    result["removed"] = set(json.loads((out / "bench_removed.json").read_text()))
    return result


def score(removed: set[str], truth: dict[str, float]) -> tuple[float, float]:
    positives = {k for k, j in truth.items() if j >= THRESHOLD}
    tp = len(removed & positives)
    return tp / max(len(removed), 1), tp / max(len(positives), 1)


BUILDERS = {"short": lambda n, path: build_corpus(n, path), "long": lambda n, path: build_corpus(n, path, long=True),
            "web": lambda n, path: build_web_corpus(n, path)}


def run_corpus(name: str, docs: int, tmp: Path, baseline: bool, startup: dict[str, float], repeat: int,
               warm_cache: Path) -> list[dict]:
    """Build one corpus and time on it wb dedup warm (kernels in `warm_cache`), wb dedup cold (an empty
    cache: every kernel compiled in the run) and datasketch; each the run with the least CPU of `repeat`."""
    corpus = tmp / f"{name}.parquet"
    truth = BUILDERS[name](docs, corpus)
    mb = pc.sum(pc.binary_length(pq.read_table(corpus, columns=["text"])["text"])).as_py() / 1e6
    j = np.array(list(truth.values()))
    print(f"{name}: {docs:,} docs, {mb:,.1f} MB of text, {len(truth):,} planted copies "
          f"({(j >= THRESHOLD).sum():,} with J >= {THRESHOLD}, {((j >= 0.7) & (j < THRESHOLD)).sum():,} near misses "
          f"in [0.7, {THRESHOLD}))", flush=True)
    rows = []
    runs = [("ours", "warm"), ("ours", "cold")] + ([("datasketch", "-")] if baseline else [])
    for method, cache in runs:
        caches = [warm_cache if cache == "warm" else tmp / f"cold-{name}-{k}" if method == "ours" else None
                  for k in range(repeat)]
        r = min((measure(method, corpus, tmp / f"{name}-{method}-{cache}-{k}", caches[k]) for k in range(repeat)),
                key=lambda r: r["cpu_seconds"])
        r["precision"], r["recall"] = score(r.pop("removed"), truth)
        rows.append({"corpus": name, "method": method, "cache": cache, "docs": docs, "mb": mb,
                     "startup": startup[method], **r})
    return rows


def print_table(rows: list[dict]) -> None:
    """One row per corpus and method. Ratios are datasketch's seconds over the row's, same corpus, same run.
    "after startup" subtracts the CPU seconds the same command takes on 20 documents (interpreter,
    imports, loading the kernels), i.e. the per-core throughput on inputs large enough to hide start-up."""
    print("\n| corpus | method | kernels | docs | MB | wall s | CPU s | startup CPU s | MB/s per core | MB/s per core "
          "after startup | peak RSS MB | precision | recall | ratio (wall) | ratio (CPU) | ratio (CPU after startup) |")
    print("|" + "---|" * 16)
    for r in rows:
        base = next((b for b in rows if b["corpus"] == r["corpus"] and b["method"] == "datasketch"), None)
        work = max(r["cpu_seconds"] - r["startup"], 1e-9)
        ratio = (f"{base['seconds'] / r['seconds']:.1f}x | {base['cpu_seconds'] / r['cpu_seconds']:.1f}x | "
                 f"{(base['cpu_seconds'] - base['startup']) / work:.1f}x" if base else "- | - | -")
        label = "wb dedup" if r["method"] == "ours" else "datasketch"
        print(f"| {r['corpus']} | {label} | {r['cache']} | {r['docs']:,} | {r['mb']:.1f} | "
              f"{r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['startup']:.2f} | {r['mb'] / r['cpu_seconds']:.1f} | "
              f"{r['mb'] / work:.1f} | {r['peak_mb']:,.0f} | {r['precision']:.4f} | {r['recall']:.4f} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", choices=["short", "long", "web"], default=["short", "long", "web"])
    parser.add_argument("--docs", type=int, default=100_000, help="documents in the short corpus")
    parser.add_argument("--long-docs", type=int, default=10_000, help="documents in the long corpus (~3 KB each)")
    parser.add_argument("--web-docs", type=int, default=8_876, help="pages in the web corpus (~3 KB each)")
    parser.add_argument("--no-baseline", action="store_true", help="skip datasketch (slow at 1M docs)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per method and corpus; the least CPU is kept")
    parser.add_argument("--worker", choices=["ours", "datasketch"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.corpus_file, args.out)
    sizes = {"short": args.docs, "long": args.long_docs, "web": args.web_docs}
    with tempfile.TemporaryDirectory() as tmp:
        # the warm rows use a kernel cache filled by one run on a small corpus (as any run after the first
        # on an install); the cold rows an empty one, so they include compiling every kernel
        warm = Path(tmp) / "numba-cache"
        build_corpus(2000, Path(tmp) / "warm.parquet")
        measure("ours", Path(tmp) / "warm.parquet", Path(tmp) / "warm", warm)
        methods = ["ours"] + ([] if args.no_baseline else ["datasketch"])
        build_corpus(20, Path(tmp) / "tiny.parquet")
        startup = {m: min(measure(m, Path(tmp) / "tiny.parquet", Path(tmp) / f"tiny-{m}-{k}", warm)["cpu_seconds"]
                          for k in range(max(args.repeat, 2))) for m in methods}
        rows = [r for name in args.corpus for r in run_corpus(name, sizes[name], Path(tmp), not args.no_baseline,
                                                              startup, args.repeat, warm)]
    print_table(rows)


if __name__ == "__main__":
    main()
