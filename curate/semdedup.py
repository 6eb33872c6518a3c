"""Semantic dedup (SemDeDup, Abbas et al. 2023, as NeMo Curator runs it), on CPU or GPU.

    wb semdedup SOURCE... --encoder MODEL --output DIR [--threshold 0.95] [--keep hard] [--field messages.prompt]

1. Embed each row's text with a user-chosen encoder (a hub id or a local path loaded with
   `transformers.AutoModel`), mean-pooled over tokens and L2-normalised. Embeddings are written in
   chunks under the run directory, named by a hash of their texts and the encoder, so a killed run
   re-embeds only the chunks it had not finished and a changed input is never served stale vectors.
2. Cluster with spherical k-means (k-means++ seeding, a fixed seed).
3. Inside each cluster, order rows by the keep policy and drop every row whose cosine similarity to an
   earlier row of the order is above the threshold (NeMo: the upper triangle of the cluster's similarity
   matrix). The removed row's `duplicate_of` is the kept row its chain of nearest earlier rows leads to,
   with `similarity` the cosine to that kept row; `detail` names the nearest earlier row.
Keep policies: `hard` (keep rows far from their centroid first: NeMo's default), `easy` (near the
centroid first), `random`, `first`, `longest`, `score:COL`. `clusters.parquet` keeps every row's cluster,
similarity to its centroid and to its nearest earlier row, for inspection.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.fields import field_text
from curate.inputs import Inputs
from curate.removed import Outputs, with_reasons
from workbench.config import RunOptions, option, validate
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir, RunResult
from workbench.runfiles import temp_path

KEEP = ("hard", "easy", "random", "first", "longest", "score:COL")
CHUNK_ROWS = 4096
EMBEDDINGS = "embeddings"
CLUSTERS = "clusters.parquet"  # every row's cluster, distance and fate


@dataclass
class SemDedupConfig(RunOptions):
    field: list[str] = option([], "fields to embed: columns, `messages`, `messages.prompt`, `messages.response` "
                                  "(default: by record kind)")
    encoder: str = option("", "encoder model: a hub id or a local path (transformers AutoModel), mean-pooled")
    threshold: float = option(0.95, "cosine similarity above which a row duplicates an earlier one", min=0.0,
                              max=1.0)
    clusters: int = option(0, "k-means clusters (0: one per --cluster-size rows)", min=0)
    cluster_size: int = option(1000, "rows per cluster when --clusters is 0", min=1)
    kmeans_iterations: int = option(30, "k-means iterations (stops early when assignments settle)", min=1)
    keep: str = option("hard", "which row of a duplicate group survives: hard (far from the centroid), easy "
                               "(near it), random, first, longest, score:COL")
    seed: int = option(0, "seed of k-means and of --keep random")
    batch_size: int = option(32, "texts per encoder forward pass", min=1)
    max_length: int = option(512, "tokens per text (longer texts are truncated)", min=8)
    device: str = option("auto", "cpu, cuda, or auto (cuda when available)")


def check_keep(keep: str) -> None:
    if keep in KEEP[:-1] or (keep.startswith("score:") and len(keep) > 6):
        return
    raise InputError(f"--keep {keep!r}: expected one of {', '.join(KEEP)}")


class Encoder:
    """Mean-pooled, L2-normalised embeddings from a transformers encoder."""

    def __init__(self, name: str, max_length: int, batch_size: int, device: str):
        import torch
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name)
            self.model = AutoModel.from_pretrained(name).eval()
        except (OSError, ValueError) as exc:
            raise InputError(f"--encoder {name}: cannot load it as a transformers model ({exc})") from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.model.to(self.device)
        positions = getattr(self.model.config, "max_position_embeddings", None) or max_length
        self.max_length = min(max_length, int(positions))
        self.batch_size = batch_size
        self.torch = torch
        self.dim = int(self.model.config.hidden_size)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors; texts are batched by length to waste little padding."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            batch = self.tokenizer([texts[i] or " " for i in rows], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)
            with self.torch.inference_mode():
                hidden_BTD = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                                        ).last_hidden_state
                mask_BT1 = batch["attention_mask"].unsqueeze(-1).to(hidden_BTD.dtype)
                mean_BD = (hidden_BTD * mask_BT1).sum(1) / mask_BT1.sum(1).clamp(min=1)
                unit_BD = self.torch.nn.functional.normalize(mean_BD.float(), dim=-1)
            out[rows] = unit_BD.cpu().numpy()
        return out


def embed_inputs(inputs: Inputs, fields: list[str], config: SemDedupConfig, folder: Path,
                 progress: object | None = None, make_encoder: Callable[[], object] | None = None) -> np.ndarray:
    """Embeddings of every input row, in order; chunks already in `folder` (a resumed run) are reused.
    `make_encoder` gives the encoder (anything with `embed(texts)`) when a chunk must be embedded (default:
    `config.encoder` loaded with transformers); `wb search` passes an embeddings endpoint this way."""
    encoder = None
    parts, pending, chunk = [], [], 0
    used: set[Path] = set()

    def flush(texts: list[str]) -> None:
        nonlocal encoder, chunk
        # the name carries a hash of the texts and the encoder, so a changed input or encoder is re-embedded
        key = hashlib.sha256("\x00".join([config.encoder, str(config.max_length), *texts]).encode()).hexdigest()
        path = folder / f"{chunk:06d}-{key[:16]}.npy"
        cached = np.load(path) if path.exists() else None
        if cached is None or len(cached) != len(texts):
            if encoder is None:
                encoder = make_encoder() if make_encoder else Encoder(config.encoder, config.max_length,
                                                                      config.batch_size, config.device)
            cached = encoder.embed(texts)
            folder.mkdir(exist_ok=True)  # only now: a run that fails to load its encoder leaves nothing
            tmp = temp_path(path)
            with open(tmp, "wb") as f:  # a file object: np.save would append .npy to a name
                np.save(f, cached)
            os.replace(tmp, path)
        parts.append(cached)
        used.add(path)
        chunk += 1
        if progress is not None:
            progress.update(done=sum(len(p) for p in parts), phase="embed")

    for table in inputs.batches():
        pending.extend(field_text(table, fields).to_pylist())
        while len(pending) >= CHUNK_ROWS:
            flush(pending[:CHUNK_ROWS])
            pending = pending[CHUNK_ROWS:]
    if pending:
        flush(pending)
    for stale in set(folder.glob("*.npy")) - used if folder.is_dir() else ():  # from an earlier input
        stale.unlink()
    return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)


def kmeans(x: np.ndarray, k: int, iterations: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means on unit rows: (cluster of each row, unit centroids). k-means++ seeding."""
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centroids = np.empty((k, x.shape[1]), dtype=np.float32)
    centroids[0] = x[rng.integers(n)]
    closest = 1.0 - x @ centroids[0]
    for c in range(1, k):
        weights = np.clip(closest, 0, None) ** 2
        total = weights.sum()
        pick = rng.choice(n, p=weights / total) if total > 0 else rng.integers(n)
        centroids[c] = x[pick]
        closest = np.minimum(closest, 1.0 - x @ centroids[c])
    labels = np.full(n, -1)
    for _ in range(iterations):
        new = np.argmax(x @ centroids.T, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, x)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        centroids = np.where(empty[:, None], centroids, sums / np.maximum(norms, 1e-12)).astype(np.float32)
    return labels, centroids


def keep_order(members: np.ndarray, centroid_sim: np.ndarray, policy: str, lengths: np.ndarray,
               scores: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """The members of one cluster in the order they claim to be kept (ties go to the earlier row)."""
    if policy == "hard":
        key = centroid_sim[members]  # least similar to the centroid first
    elif policy == "easy":
        key = -centroid_sim[members]
    elif policy == "random":
        key = rng.random(len(members))
    elif policy == "first":
        key = np.zeros(len(members))
    elif policy == "longest":
        key = -lengths[members].astype(np.float64)
    else:
        key = -np.nan_to_num(scores[members], nan=-np.inf)
    return members[np.lexsort((members, key))]


def nearest_earlier(x: np.ndarray, max_cells: int = 2**25) -> tuple[np.ndarray, np.ndarray]:
    """For each row j of `x` (in order): the highest cosine to a row i < j, and that i (-1 for row 0).
    Columns go in blocks so that a block's similarity matrix holds at most `max_cells` floats."""
    m = len(x)
    block = max(1, min(m, max_cells // max(m, 1)))
    best = np.full(m, -np.inf, dtype=np.float32)
    which = np.full(m, -1, dtype=np.int64)
    for lo in range(0, m, block):
        hi = min(m, lo + block)
        sims = x[:hi] @ x[lo:hi].T  # rows 0..hi-1 against columns lo..hi-1
        sims[np.arange(hi)[:, None] >= np.arange(lo, hi)[None, :]] = -np.inf
        which[lo:hi] = np.argmax(sims, axis=0)
        best[lo:hi] = sims[which[lo:hi], np.arange(hi - lo)]
    which[best == -np.inf] = -1
    return best, which


@dataclass
class SemPlan:
    """What semantic dedup decided for every row."""

    cluster: np.ndarray
    centroid_sim: np.ndarray
    nearest_sim: np.ndarray
    nearest: np.ndarray  # row index of the nearest earlier row in keep order, -1 for none
    kept_as: np.ndarray  # for removed rows: the kept row their chain leads to; -1 for kept rows
    similarity: np.ndarray  # cosine to kept_as


def plan_semdedup(x: np.ndarray, config: SemDedupConfig, lengths: np.ndarray, scores: np.ndarray | None) -> SemPlan:
    """Cluster the unit rows of `x` and decide, per cluster in keep order, which rows are duplicates."""
    n = len(x)
    if n == 0:
        empty = np.zeros(0)
        return SemPlan(empty.astype(np.int64), empty, empty, empty.astype(np.int64), empty.astype(np.int64), empty)
    k = config.clusters or max(1, math.ceil(n / config.cluster_size))
    labels, centroids = kmeans(x, k, config.kmeans_iterations, config.seed)
    centroid_sim = np.einsum("ij,ij->i", x, centroids[labels]) if n else np.zeros(0)
    nearest_sim = np.full(n, np.nan, dtype=np.float32)
    nearest = np.full(n, -1, dtype=np.int64)
    rng = np.random.default_rng(config.seed)
    for c in range(len(centroids)):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            continue
        ordered = keep_order(members, centroid_sim, config.keep, lengths, scores, rng)
        best, which = nearest_earlier(x[ordered])
        has = which >= 0
        nearest_sim[ordered[has]] = best[has]
        nearest[ordered[has]] = ordered[which[has]]
    removed = np.nan_to_num(nearest_sim, nan=-np.inf) > config.threshold
    kept_as = np.where(removed, nearest, -1)
    for _ in range(n):  # follow chains of removed rows to a kept one (each step moves earlier in the order)
        chained = (kept_as >= 0) & removed[np.maximum(kept_as, 0)]
        if not chained.any():
            break
        kept_as[chained] = nearest[kept_as[chained]]
    similarity = np.full(n, np.nan, dtype=np.float32)
    rows = np.flatnonzero(kept_as >= 0)
    similarity[rows] = np.einsum("ij,ij->i", x[rows], x[kept_as[rows]])
    return SemPlan(labels, centroid_sim, nearest_sim, nearest, kept_as, similarity)


def semantic_dedup(config: SemDedupConfig, sources: Sequence[str | os.PathLike],
                   output: str | os.PathLike) -> RunResult:
    """Embed, cluster and drop semantic duplicates, writing the run to `output` (`wb semdedup`)."""
    validate(config)
    if not config.encoder:
        raise InputError("--encoder is required: a hub id or a local path of a transformers encoder")
    check_keep(config.keep)
    inputs = Inputs([str(s) for s in sources])
    fields = inputs.fields(config.field)
    score_col = config.keep.split(":", 1)[1] if config.keep.startswith("score:") else None
    if score_col and score_col not in inputs.schema.names:
        raise InputError(f"--keep {config.keep}: no column {score_col!r}; columns are {inputs.schema.names}")
    guard = ("threshold", "clusters", "cluster_size", "kmeans_iterations", "keep", "seed", "batch_size", "device")
    with RunDir(output, "semdedup", config, inputs=inputs.sources, resumable=True, resume_guard=guard) as run:
        x = embed_inputs(inputs, fields, config, run.path / EMBEDDINGS, run.progress)
        run.progress.update(phase="cluster", force=True)
        ids, lengths, scores = [], [], []
        for table in inputs.batches():
            ids.extend(table["id"].to_pylist())
            lengths.append(pc.utf8_length(field_text(table, fields)).to_numpy(zero_copy_only=False))
            if score_col:
                scores.append(table[score_col].cast(pa.float64()).to_numpy(zero_copy_only=False))
        lengths_all = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        plan = plan_semdedup(x, config, lengths_all, np.concatenate(scores) if score_col else None)
        write_table(pa.table({
            "id": pa.array(ids, pa.string()), "cluster": pa.array(plan.cluster, pa.int64()),
            "centroid_similarity": pa.array(plan.centroid_sim, pa.float32()),
            "nearest_earlier": pa.array([ids[i] if i >= 0 else None for i in plan.nearest], pa.string()),
            "nearest_similarity": pa.array(plan.nearest_sim, pa.float32(), from_pandas=True),
        }), run.path / CLUSTERS)
        outputs = Outputs(run.product, inputs.schema)
        offset = 0
        try:
            for table in inputs.batches():
                rows = np.arange(offset, offset + table.num_rows)
                gone = plan.kept_as[rows] >= 0
                removed = None
                if gone.any():
                    r = rows[gone]
                    removed = with_reasons(
                        table.filter(pa.array(gone)), ["semantic_duplicate"] * len(r),
                        [f"cosine {plan.nearest_sim[i]:.4f} to {ids[plan.nearest[i]]} in cluster {plan.cluster[i]}"
                         for i in r],
                        duplicate_of=[ids[plan.kept_as[i]] for i in r],
                        cluster_id=[f"sem-{plan.cluster[i]}" for i in r],
                        similarity=[float(plan.similarity[i]) for i in r])
                outputs.write(table.filter(pa.array(~gone)), removed)
                offset += table.num_rows
            outputs.close()
        except BaseException:
            outputs.abort()
            raise
        stats = {"fields": fields, "rows": len(ids), "clusters": int(plan.cluster.max() + 1) if len(ids) else 0,
                 "embedding_dim": int(x.shape[1]), "removed": int((plan.kept_as >= 0).sum())}
        manifest = run.finish(rows_in=len(ids), rows_out=outputs.kept, dropped=dict(outputs.reasons),
                              semdedup=stats)
    return RunResult.of(output, manifest)
