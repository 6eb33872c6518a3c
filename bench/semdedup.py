"""Semantic dedup on CPU: embedding throughput, and the clustered SemDeDup rule against all-pairs search.

    python bench/semdedup.py [--rows 7473] [--encoder PATH] [--threshold 0.999] [--cluster-size 1000]

Rows are GSM8K train questions plus planted near-duplicates (a word added: " the " -> " the very ")
of every tenth question. The encoder is a tiny random BERT built locally (or `--encoder`, any local
transformers encoder, e.g. a sentence-transformers MiniLM directory). Both dedup methods run in this
process on the same embeddings: SemDeDup (spherical k-means, then pairwise cosine inside each cluster,
as `wb semdedup`) and the baseline, the exact all-pairs upper-triangle rule over the whole corpus.
Prints seconds, rows/s, the speed ratio, and the agreement and planted-duplicate recall of each; then
the dedup step alone on larger synthetic embedding sets (`--scale`), where all-pairs' rows^2 shows.
Timings are wall-clock on a machine other jobs share; the ratio is measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=7473, help="GSM8K questions to use (at most 7,473)")
    parser.add_argument("--encoder", help="a local transformers encoder (default: a tiny random BERT)")
    parser.add_argument("--threshold", type=float, default=0.999)
    parser.add_argument("--cluster-size", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--scale", type=int, nargs="*", default=[16000, 32000],
                        help="also time the dedup step alone on this many synthetic 64-d embeddings")
    args = parser.parse_args()

    import torch

    from curate.semdedup import Encoder, SemDedupConfig, nearest_earlier, plan_semdedup
    from demo.tiny_models import save_tiny_encoder, train_tokenizer
    from workbench.workspace import bundled_data_dir

    lines = (bundled_data_dir() / "gsm8k" / "train.jsonl").read_text().splitlines()[: args.rows]
    texts = [json.loads(line)["question"] for line in lines]
    originals = [i for i in range(0, len(texts), 10) if " the " in texts[i]]
    planted = {len(texts) + k: i for k, i in enumerate(originals)}
    texts += [texts[i].replace(" the ", " the very ", 1) for i in originals]
    encoder_path = args.encoder
    if encoder_path is None:
        encoder_path = str(save_tiny_encoder(Path(tempfile.mkdtemp()) / "tiny-bert", train_tokenizer(vocab_size=512)))
    encoder = Encoder(encoder_path, 512, args.batch_size, "cpu")
    print(f"{len(texts):,} rows ({len(planted)} planted near-duplicates); encoder {encoder_path} "
          f"(hidden {encoder.dim}); torch threads {torch.get_num_threads()}\n")

    started = time.perf_counter()
    x = encoder.embed(texts)
    embed_s = time.perf_counter() - started

    config = SemDedupConfig(threshold=args.threshold, cluster_size=args.cluster_size, keep="first")
    lengths = np.array([len(t) for t in texts])
    started = time.perf_counter()
    plan = plan_semdedup(x, config, lengths, None)
    sem_s = time.perf_counter() - started
    sem_removed = set(np.flatnonzero(plan.kept_as >= 0).tolist())

    started = time.perf_counter()
    best, _ = nearest_earlier(x)  # every row against every earlier row: the exact rule, no clusters
    brute_s = time.perf_counter() - started
    brute_removed = set(np.flatnonzero(best > args.threshold).tolist())

    def recall(removed: set[int]) -> float:
        return sum(p in removed for p in planted) / max(1, len(planted))

    rows = [("embed (mean pooled)", embed_s, None, None),
            (f"SemDeDup, {int(plan.cluster.max()) + 1} clusters", sem_s, len(sem_removed), recall(sem_removed)),
            ("all pairs (baseline)", brute_s, len(brute_removed), recall(brute_removed))]
    print(f"{'step':<28}{'seconds':>9}{'rows/s':>11}{'removed':>9}{'recall':>8}")
    for name, seconds, removed, rec in rows:
        extra = f"{removed:>9}{rec:>8.3f}" if removed is not None else ""
        print(f"{name:<28}{seconds:>9.2f}{len(texts) / seconds:>11,.0f}{extra}")
    same = len(sem_removed & brute_removed) / max(1, len(sem_removed | brute_removed))
    print(f"\nSemDeDup vs all pairs: {brute_s / sem_s:.1f}x faster; removed sets agree {same:.3f} (Jaccard); "
          "all pairs grows as rows^2, SemDeDup as rows^2 / clusters")
    if args.scale:
        print("\ndedup step only, synthetic embeddings (200 topics, 5% planted near-duplicates at cosine ~0.999):")
        print(f"{'rows':>8}{'SemDeDup s':>12}{'all pairs s':>13}{'ratio':>8}{'recall':>8}{'recall all':>11}")
        for n in args.scale:
            y, dups = synthetic(n, seed=n)
            started = time.perf_counter()
            plan = plan_semdedup(y, SemDedupConfig(threshold=0.99, cluster_size=args.cluster_size, keep="first"),
                                 np.ones(n), None)
            sem_n = time.perf_counter() - started
            started = time.perf_counter()
            best, _ = nearest_earlier(y)
            brute_n = time.perf_counter() - started
            rec = np.mean(plan.kept_as[dups] >= 0)
            rec_all = np.mean(best[dups] > 0.99)
            print(f"{n:>8,}{sem_n:>12.2f}{brute_n:>13.2f}{brute_n / sem_n:>8.1f}{rec:>8.3f}{rec_all:>11.3f}")


def synthetic(n: int, seed: int, dim: int = 64, topics: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around `topics` random directions, the last 5% near-copies of earlier rows."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dim))
    base = centres[rng.integers(topics, size=n)] + 0.8 * rng.normal(size=(n, dim))
    dups = np.arange(n - n // 20, n)
    base[dups] = base[rng.integers(0, n - n // 20, size=len(dups))] + 0.01 * rng.normal(size=(len(dups), dim))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    return base.astype(np.float32), dups


if __name__ == "__main__":
    main()
