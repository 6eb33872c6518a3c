"""Lay token sequences out as model inputs: padded, padding-free, or packed; and pack them into bins.

- padded: one row per sequence, right-padded, with an attention mask.
- padding_free: all sequences concatenated into one row; position ids restart at 0 for each sequence.
- packed: sequences grouped by best-fit-decreasing into rows of at most `capacity` tokens, each row
  laid out padding-free, rows padded to the same length with a tail that is its own segment.

With no attention mask and restarting position ids, transformers builds a block-diagonal causal mask
(`find_packed_sequence_indices`), so no token attends across a sequence boundary (the model must be
called with `use_cache=False`). Every layout gives the same per-token log-probs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from trainers.render import Example

LAYOUTS = ("padded", "padding_free", "packed")


def collate(examples: Sequence[Example], layout: str = "padded", pad_id: int = 0,
            capacity: int | None = None) -> dict[str, torch.Tensor]:
    """A batch dict: input_ids, position_ids, loss_mask, seq_ids [B, T], and attention_mask for `padded`.

    `seq_ids[b, t]` is the index in `examples` of the sequence that token belongs to (-1 for padding),
    so per-sequence sums (DPO) are one `index_add`. `loss_mask` is False on padding and on each
    sequence's first token.
    """
    if layout == "padded":
        rows = [[i] for i in range(len(examples))]
    elif layout == "padding_free":
        rows = [list(range(len(examples)))]
    elif layout == "packed":
        rows = pack([len(e) for e in examples], capacity or max(len(e) for e in examples))
    else:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    width = max(sum(len(examples[i]) for i in row) for row in rows)
    shape = (len(rows), width)
    ids = np.full(shape, pad_id, dtype=np.int64)
    pos = np.zeros(shape, dtype=np.int64)
    mask = np.zeros(shape, dtype=bool)
    seq = np.full(shape, -1, dtype=np.int64)
    for b, row in enumerate(rows):
        t = 0
        for i in row:
            n = len(examples[i])
            ids[b, t : t + n] = examples[i].ids
            pos[b, t : t + n] = np.arange(n)
            mask[b, t : t + n] = examples[i].mask
            mask[b, t] = False
            seq[b, t : t + n] = i
            t += n
        pos[b, t:] = np.arange(width - t)  # padding tail: a segment of its own, never attended to
    batch = {"input_ids": torch.from_numpy(ids), "position_ids": torch.from_numpy(pos),
             "loss_mask": torch.from_numpy(mask), "seq_ids": torch.from_numpy(seq)}
    if layout == "padded":
        batch["attention_mask"] = torch.from_numpy(seq >= 0).long()
    return batch


def pack(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Best-fit-decreasing bins of indices whose lengths sum to at most `capacity` (longer ones alone)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    bins: list[list[int]] = []
    free: list[int] = []
    for i in order.tolist():
        n = lengths[i]
        fits = [k for k, f in enumerate(free) if f >= n]
        if fits:
            k = min(fits, key=lambda k: free[k])
            bins[k].append(i)
            free[k] -= n
        else:
            bins.append([i])
            free.append(max(capacity - n, 0))
    return bins


def trained_tokens(examples: Sequence[Example]) -> int:
    """Tokens that carry loss (a sequence's first token never does)."""
    return int(sum(int(e.mask[1:].sum()) for e in examples))


def token_seq_ids(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The sequence index of each masked token, aligned with the flat log-probs the client returns."""
    return batch["seq_ids"][batch["loss_mask"]]


def sequence_sums(logps_N: torch.Tensor, batch: dict[str, torch.Tensor], num_seqs: int) -> torch.Tensor:
    """Per-sequence sums of flat token log-probs: shape [num_seqs]."""
    ids = token_seq_ids(batch).to(logps_N.device)
    return torch.zeros(num_seqs, dtype=logps_N.dtype, device=logps_N.device).index_add(0, ids, logps_N)
