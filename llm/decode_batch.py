"""The running batch behind continuous batching: sequences join and leave between decode steps.

`RunningBatch` keeps one left-padded KV cache (transformers' DynamicCache) for every active sample.
`admit` prefills new prompts (once per prompt, repeated for its samples) and splices their cache rows in,
left-padding whichever side is shorter; `sample` draws each row's next token with that row's temperature,
top-p and seeded generator; `advance` drops the rows that ended (and the all-padding columns they leave)
and runs one forward step for the rest. Deciding when a sample ends (EOS, stop strings, budget, cancel)
is the engine's job (llm/local_engine.py).

Why not transformers' own continuous batching (`generate_batch`, `ContinuousBatchingManager` in 5.x): it
takes one GenerationConfig per manager, so no per-request temperature, top-p or seed, and no stop strings;
its paged cache and CUDA-graph path target GPUs. A padded batch over the model's plain forward serves
every decoder-only model with a DynamicCache on CPU and GPU alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(eq=False)
class Row:
    """One active sample: its owner (the engine's request state), sampling settings and what it drew."""

    owner: object
    index: int
    temperature: float
    top_p: float
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


def sample_generator(seed: int | None, index: int, device: str) -> torch.Generator | None:
    """A generator for sample `index` of a seeded request (None: the global RNG): the same seed gives the
    same samples whichever batch they run in; the samples of one request differ."""
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + index) % (2**63))


def _left_pad(t_B_H_L_D: torch.Tensor, k: int) -> torch.Tensor:
    if k == 0:
        return t_B_H_L_D
    shape = list(t_B_H_L_D.shape)
    shape[2] = k
    return torch.cat([t_B_H_L_D.new_zeros(shape), t_B_H_L_D], dim=2)


def _pad_mask(mask_B_L: torch.Tensor, k: int) -> torch.Tensor:
    return mask_B_L if k == 0 else torch.cat([mask_B_L.new_zeros((mask_B_L.shape[0], k)), mask_B_L], dim=1)


class RunningBatch:
    """The rows being decoded, their KV cache, attention mask and the logits for their next token."""

    def __init__(self, model, pad_id: int, device: str):
        import inspect

        self.model = model
        # transformers 5.x renames forward's `past_key_values` to `cache`; take whichever this version has
        names = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in names else "past_key_values"
        self.pad_id = pad_id
        self.device = device
        self.rows: list[Row] = []
        self.cache = None
        self.mask_B_L: torch.Tensor | None = None
        self.logits_B_V: torch.Tensor | None = None

    @torch.no_grad()
    def unsupported_layers(self) -> list[str]:
        """Cache layer kinds this batch cannot splice (sliding-window, linear attention: they keep state
        beyond plain per-position keys and values), found with a one-token forward; [] when all is well."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        ids = torch.tensor([[self.pad_id]], device=self.device)
        self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **{self.cache_arg: cache})
        return sorted({type(layer).__name__ for layer in cache.layers} - {"DynamicLayer"})

    def clear(self) -> None:
        self.rows, self.cache, self.mask_B_L, self.logits_B_V = [], None, None, None

    @torch.no_grad()
    def admit(self, prompts: list[list[int]], rows: list[list[Row]]) -> None:
        """Prefill `prompts` (one forward for all) and add `rows[i]` (the samples of prompt i) to the batch."""
        width = max(len(p) for p in prompts)
        ids_B_L = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        mask_B_L = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        pos_B_L = (mask_B_L.cumsum(-1) - 1).clamp(min=0)
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids_B_L, attention_mask=mask_B_L, position_ids=pos_B_L, use_cache=True,
                         logits_to_keep=1, **{self.cache_arg: cache})
        repeats = torch.tensor([len(r) for r in rows], device=self.device)
        for layer in cache.layers:
            layer.keys = layer.keys.repeat_interleave(repeats, dim=0)
            layer.values = layer.values.repeat_interleave(repeats, dim=0)
        mask_B_L = mask_B_L.repeat_interleave(repeats, dim=0)
        logits_B_V = out.logits[:, -1].float().repeat_interleave(repeats, dim=0)
        flat = [r for group in rows for r in group]
        if not self.rows:
            self.rows, self.cache, self.mask_B_L, self.logits_B_V = flat, cache, mask_B_L, logits_B_V
            return
        have, new = self.mask_B_L.shape[1], mask_B_L.shape[1]
        width = max(have, new)
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width - have), _left_pad(theirs.keys, width - new)])
            mine.values = torch.cat([_left_pad(mine.values, width - have), _left_pad(theirs.values, width - new)])
        self.mask_B_L = torch.cat([_pad_mask(self.mask_B_L, width - have), _pad_mask(mask_B_L, width - new)])
        self.logits_B_V = torch.cat([self.logits_B_V, logits_B_V])
        self.rows += flat

    def sample(self) -> tuple[list[int], list[float]]:
        """Each row's next token and its log-prob under the distribution it was drawn from (temperature and
        top-p applied; the raw model's for greedy rows)."""
        logits_B_V = self.logits_B_V
        temps_B = torch.tensor([r.temperature for r in self.rows], device=self.device)
        greedy_B = temps_B == 0
        scaled_B_V = logits_B_V / torch.where(greedy_B, 1.0, temps_B).unsqueeze(-1)
        top_p_B = torch.tensor([1.0 if r.temperature == 0 else r.top_p for r in self.rows], device=self.device)
        if bool((top_p_B < 1).any()):  # drop the tail once the kept mass reaches top_p (the top token stays)
            probs_B_V, order_B_V = torch.softmax(scaled_B_V, -1).sort(-1, descending=True)
            before_B_V = probs_B_V.cumsum(-1) - probs_B_V
            drop_B_V = torch.zeros_like(before_B_V, dtype=torch.bool).scatter(-1, order_B_V,
                                                                             before_B_V >= top_p_B.unsqueeze(-1))
            scaled_B_V = scaled_B_V.masked_fill(drop_B_V, float("-inf"))
        logp_B_V = torch.log_softmax(scaled_B_V, -1)
        tokens = logp_B_V.argmax(-1).tolist()
        sampled = [b for b, row in enumerate(self.rows) if row.temperature > 0]
        if sampled:
            probs_B_V = logp_B_V.exp()
            for b in sampled:  # one draw per row: each row may have its own seeded generator
                tokens[b] = int(torch.multinomial(probs_B_V[b], 1, generator=self.rows[b].generator))
        picked = logp_B_V.gather(-1, torch.tensor(tokens, device=self.device).unsqueeze(-1)).squeeze(-1)
        return tokens, picked.tolist()

    @torch.no_grad()
    def advance(self, keep: list[bool], tokens: list[int]) -> None:
        """Drop the rows not kept, then feed each kept row its new token (one forward step)."""
        idx = [b for b, k in enumerate(keep) if k]
        if not idx:
            self.clear()
            return
        if len(idx) < len(self.rows):
            sel = torch.tensor(idx, device=self.device)
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[sel], layer.values[sel]
            self.mask_B_L = self.mask_B_L[sel]
            self.rows = [self.rows[b] for b in idx]
            lead = int(self.mask_B_L.any(0).int().argmax())  # columns that are padding in every row left
            if lead:
                self.mask_B_L = self.mask_B_L[:, lead:]
                for layer in self.cache.layers:
                    layer.keys, layer.values = layer.keys[:, :, lead:], layer.values[:, :, lead:]
        pos_B_1 = self.mask_B_L.sum(-1, keepdim=True)
        self.mask_B_L = torch.cat([self.mask_B_L, self.mask_B_L.new_ones((len(idx), 1))], dim=1)
        ids_B_1 = torch.tensor([[tokens[b]] for b in idx], device=self.device)
        out = self.model(input_ids=ids_B_1, attention_mask=self.mask_B_L, position_ids=pos_B_1, use_cache=True,
                         **{self.cache_arg: self.cache})  # the cache grows in place
        self.logits_B_V = out.logits[:, -1].float()
