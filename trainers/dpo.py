"""Direct preference optimisation: `wb train dpo --model PATH --data PAIRS --output DIR`.

Rows are `prompt?`, `chosen`, `rejected` (strings or message lists; without `prompt` the two
conversations share all but their last message). Each pair is two sequences (padded rows) scored by summed log-probs
of the final assistant turn; `trainers.losses.dpo_loss` turns them into sigmoid / ipo / hinge /
sigmoid_norm / simpo losses. The reference is a frozen copy of the starting model, or with LoRA the base
model with the adapter disabled; by default its log-probs are computed once before training and cached
in the run directory under a fingerprint of the model, the data and the options that change them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llm.runtime import loaded_models
from trainers.config import DPO_LOSSES, TrainConfig, add_train_arguments
from workbench.config import option
from workbench.errors import InputError
from workbench.rundir import RunResult

REF_CACHE = "ref_logps.parquet"


@dataclass
class DPOConfig(TrainConfig):
    lr: float = option(5e-6, "peak learning rate")
    loss_type: str = option("sigmoid", "preference loss", choices=list(DPO_LOSSES))
    beta: float = option(0.1, "strength of the implicit KL penalty (SimPO: reward scale)", min=1e-9)
    label_smoothing: float = option(0.0, "probability that a label is flipped (conservative DPO); sigmoid losses")
    simpo_gamma: float = option(0.5, "SimPO target margin")
    rpo_alpha: float | None = option(None, "weight of an NLL term on the chosen answers added to the loss (RPO, "
                                     "TRL's rpo_alpha; e.g. 1.0); keeps chosen log-probs from falling", min=0.0)
    precompute_ref: bool = option(True, "score the reference once before training and cache it in the run")
    ref_cache: str | None = option(None, "where to cache reference log-probs (default: RUN/ref_logps.parquet)")


def render_fn(tokenizer, max_length: int):
    from trainers.render import render_preference, truncate

    def render(row: dict, where: str):
        pair = tuple(truncate(ex, max_length) for ex in render_preference(tokenizer, row, where))
        return pair if all(ex.mask[1:].any() for ex in pair) else "completion cut off by max_length"

    return render


def model_fingerprint(path: str) -> str:
    """A hash of a model directory's config and weight files (names, sizes, modification times)."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(p.iterdir()):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        h.update((p / "config.json").read_bytes())
    else:
        h.update(path.encode())
    return h.hexdigest()[:16]


def pair_logps(client, pairs: list, reference: bool) -> np.ndarray:
    """[len(pairs), 2] summed completion log-probs (chosen, rejected) without gradients."""
    from trainers.collate import collate, sequence_sums

    seqs = [ex for pair in pairs for ex in pair]
    batch = collate(seqs, "padded", client.tokenizer.pad_token_id)
    sums = sequence_sums(client.compute_logprobs(batch, reference=reference), batch, len(seqs))
    return sums.double().cpu().numpy().reshape(-1, 2)


def read_ref_cache(path: Path):
    """The cached table at `path`; `InputError` if the file is not a reference log-prob cache (it would
    be overwritten otherwise)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    not_cache = f"--ref-cache {path}: not a reference log-prob cache written by wb train dpo"
    if path.is_dir():
        raise InputError(f"{not_cache} (a directory); pass a file path")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{not_cache} ({str(exc).splitlines()[0][:200]}); refusing to overwrite it") from None
    if b"wb" not in (table.schema.metadata or {}) or not {"chosen", "rejected"} <= set(table.column_names):
        raise InputError(f"{not_cache} (columns {table.column_names}); refusing to overwrite it")
    return table


def reference_table(client, pairs: list, cfg: DPOConfig, fingerprint: str, may_compute: bool = True,
                    log=print) -> np.ndarray:
    """Reference log-probs of every pair, read from the cache when its fingerprint matches, else computed
    (before any training step, so the current weights are the reference) and cached. `may_compute` is
    False when resuming a full fine-tune, whose starting weights are no longer in memory."""
    import pyarrow as pa

    path = Path(cfg.ref_cache) if cfg.ref_cache else Path(cfg.output) / REF_CACHE
    if path.exists():
        table = read_ref_cache(path)
        meta = json.loads((table.schema.metadata or {}).get(b"wb", b"{}"))
        if meta.get("fingerprint") == fingerprint and table.num_rows == len(pairs):
            log(f"reference log-probs: cached in {path}")
            return np.stack([table["chosen"].to_numpy(), table["rejected"].to_numpy()], 1)
    if not may_compute:
        raise InputError(f"{path}: resuming needs the reference log-probs cached when this run started, but they "
                         "are missing or were made for other data or options; start again in a new --output")
    out = np.concatenate([pair_logps(client, pairs[i : i + cfg.batch_size], reference=True)
                          for i in range(0, len(pairs), cfg.batch_size)])
    if client.rank == 0:
        from workbench.io import write_table

        table = pa.table({"chosen": out[:, 0], "rejected": out[:, 1]})
        write_table(table.replace_schema_metadata({"wb": json.dumps({"fingerprint": fingerprint})}), path)
    log(f"reference log-probs: computed for {len(pairs):,} pairs, cached in {path}")
    return out


def pair_loss(cfg: DPOConfig, ref_pairs, lengths, num_pairs: int, chosen_tokens: int = 0):
    """The loss function for a batch of sequences laid out chosen, rejected, chosen, rejected, ...;
    `ref_pairs` is [pairs, 2] reference log-probs (None for SimPO), `lengths` the completion lengths,
    `chosen_tokens` the chosen completion tokens of the whole step (the RPO term's denominator)."""
    from trainers.collate import sequence_sums
    from trainers.losses import dpo_loss, rpo_nll

    def loss_fn(logps, batch):
        pol = sequence_sums(logps, batch, len(lengths)).view(-1, 2)
        dev = pol.device
        rc, rr = (ref_pairs[:, 0].to(dev), ref_pairs[:, 1].to(dev)) if ref_pairs is not None else (None, None)
        loss, metrics = dpo_loss(pol[:, 0], pol[:, 1], rc, rr, lengths[0::2].to(dev), lengths[1::2].to(dev),
                                 cfg.loss_type, cfg.beta, cfg.label_smoothing, cfg.simpo_gamma, num_pairs)
        if cfg.rpo_alpha:
            nll = rpo_nll(pol[:, 0], chosen_tokens)
            loss = loss + cfg.rpo_alpha * nll
            # logged per chosen token of this micro-batch (the step's record averages micro-batches by pairs)
            metrics["nll/chosen"] = float(-pol[:, 0].detach().sum()) / max(float(lengths[0::2].sum()), 1.0)
        return loss, metrics

    return loss_fn


def train_dpo(cfg: DPOConfig, log=print) -> RunResult:
    """Run (or resume) DPO into `cfg.output`; return the manifest."""
    import torch

    from trainers.client import TrainingClient, all_reduce_sum, client_config, dist_info, load_tokenizer
    from trainers.collate import collate, sequence_sums
    from trainers.loop import StepPlan, latest_checkpoint, run_dir, train_loop, train_usage
    from trainers.records import load_rendered

    cfg.check()
    output = Path(cfg.output)
    if cfg.ref_cache and Path(cfg.ref_cache).exists():
        read_ref_cache(Path(cfg.ref_cache))  # refuse a file that is not a cache before any work
    tokenizer = load_tokenizer(cfg.model)
    data = load_rendered(cfg.data, "preference", render_fn(tokenizer, cfg.max_length))
    pairs = data.items
    rank, world, _ = dist_info()
    log = log if rank == 0 else (lambda *_: None)
    plan = StepPlan([[i] for i in range(len(pairs))], cfg.batch_size, cfg.grad_accum, cfg.seed, world, rank)
    total = plan.total_steps(cfg.epochs, cfg.max_steps)
    client = TrainingClient.load(client_config(cfg, total), tokenizer)
    needs_ref = cfg.loss_type != "simpo"
    ref = None
    if needs_ref and cfg.precompute_ref:
        fingerprint = hashlib.sha256(json.dumps([
            model_fingerprint(cfg.model), data.source.fingerprint(), cfg.max_length, cfg.lora_r,
            tokenizer.chat_template]).encode()).hexdigest()[:16]
        # with LoRA the reference (adapter disabled) can always be recomputed; a full fine-tune cannot
        may_compute = client.is_lora or latest_checkpoint(output) is None
        ref = reference_table(client, pairs, cfg, fingerprint, may_compute, log)
    elif needs_ref:
        client.freeze_reference()
    log(f"dpo: {len(pairs):,} pairs, {total} steps, loss {cfg.loss_type}, beta {cfg.beta}, "
        f"reference {'precomputed' if ref is not None else 'online' if needs_ref else 'none (simpo)'}")

    def step_fn(step: int) -> dict:
        micro = plan.micro_batches(step)
        num_pairs = int(all_reduce_sum(sum(len(mb) for mb in micro)))
        chosen_tokens = int(all_reduce_sum(sum(int(pairs[i][0].mask[1:].sum()) for mb in micro for i in mb)))
        sums: dict[str, float] = {}
        tokens = trained = 0
        for mb in micro:
            seqs = [ex for i in mb for ex in pairs[i]]
            batch = collate(seqs, "padded", tokenizer.pad_token_id)
            lengths = torch.tensor([int(ex.mask[1:].sum()) for ex in seqs], dtype=torch.float32)
            if ref is not None:
                ref_pairs = torch.from_numpy(ref[mb])
            elif needs_ref:
                ref_pairs = sequence_sums(client.compute_logprobs(batch, reference=True), batch, len(seqs)).view(-1, 2)
            else:
                ref_pairs = None

            out = client.forward_backward(batch, pair_loss(cfg, ref_pairs, lengths, num_pairs, chosen_tokens))
            for k, v in out.items():  # the loss is already a share of the step; the rest are pair means
                sums[k] = sums.get(k, 0.0) + (v if k == "loss" else v * len(mb) / num_pairs)
            tokens += sum(len(ex) for ex in seqs)
            trained += int(lengths.sum())
        record = {k: all_reduce_sum(v) for k, v in sums.items()}
        return {**record, "tokens": int(all_reduce_sum(tokens)), "trained_tokens": int(all_reduce_sum(trained)),
                "epoch": round((step + 1) / plan.steps_per_epoch, 4)}

    with run_dir(output, "train-dpo", cfg, rank, inputs=[data.source], own=(REF_CACHE,)) as run:
        last = train_loop(client, cfg, output, total, step_fn, log=log, progress=run.progress)
        client.save_model(output / "model")
        usage = train_usage(cfg, int(last.get("trained_tokens_total", 0)))
        return run.finish(rows_in=data.rows_in, rows_out=len(pairs), dropped=dict(data.dropped), usage=usage,
                          steps=total, final=last, model_dir=str(output / "model"), runtime=loaded_models(cfg.model))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`wb train dpo`: `--config` and one flag per DPOConfig field."""
    add_train_arguments(parser, DPOConfig)


def run(args: argparse.Namespace) -> int:
    from workbench.config import build_config

    manifest = train_dpo(build_config(DPOConfig, args, getattr(args, "config", None)))
    final = manifest["final"]
    print(f"wrote {manifest['model_dir']} (final loss {final.get('loss', float('nan')):.4f}, "
          f"margin {final.get('rewards/margins', float('nan')):.4f})")
    return 0
