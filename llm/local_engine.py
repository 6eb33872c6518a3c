"""Batched generation with a local transformers model: the engine behind `wb serve` and `--backend hf`.

Requests with equal sampling parameters share one left-padded `generate` call; each asks for `n` samples.
A sample that ends without EOS at the token budget gets finish_reason `length`; stop strings cut the
text and give `stop`. A request whose `cancel` event is set (its client went away) stops generating at
the next token; when every request of a batch is cancelled, `generate` returns.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from llm.backends.base import Choice, Completion, SamplingParams
from llm.batcher import GenRequest
from workbench.errors import InputError


class LocalEngine:
    """A transformers causal LM with its tokenizer's chat template."""

    def __init__(self, model_path: str | Path, device: str | None = None, dtype: str = "auto", threads: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llm.runtime import apply_threads, record_load, resolve_dtype

        path = Path(model_path)
        if not path.exists():
            raise InputError(f"{model_path}: no such model directory (a local transformers checkpoint is expected)")
        self.torch = torch
        self.name = path.name
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.chat_template is None:
            raise InputError(f"{model_path}: the tokenizer has no chat template")
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.threads = apply_threads(threads)
        self.dtype = resolve_dtype(dtype, self.device)  # the trainers resolve it the same way (llm.runtime)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, self.dtype)).to(self.device).eval()
        record_load(str(model_path), self.dtype, self.threads, self.device)
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.template_id = hashlib.sha256(self.tokenizer.chat_template.encode()).hexdigest()[:16]

    def generate_batch(self, requests: list[GenRequest]) -> list[Completion | Exception]:
        """One Completion (or the error for that request) per request, in order."""
        results: list[Completion | Exception | None] = [None] * len(requests)
        groups: dict[SamplingParams, list[int]] = {}
        for j, r in enumerate(requests):
            groups.setdefault(r.params, []).append(j)
        for params, members in groups.items():
            encoded = []
            for j in members:
                try:
                    ids = self.tokenizer.apply_chat_template(requests[j].messages, add_generation_prompt=True,
                                                             tokenize=True, return_dict=False)
                    if len(ids) >= self.max_positions:
                        raise ValueError(f"the prompt has {len(ids)} tokens; the model takes {self.max_positions}")
                    encoded.append((j, list(ids)))
                except Exception as exc:  # noqa: BLE001 - a bad request fails alone
                    results[j] = ValueError(str(exc))
            if encoded:
                for j, completion in zip([j for j, _ in encoded], self._generate(
                        [ids for _, ids in encoded], [requests[j].n for j, _ in encoded], params,
                        [requests[j].cancel for j, _ in encoded]), strict=True):
                    results[j] = completion
        return results  # type: ignore[return-value]

    def score(self, ids: list[int], greedy_next: bool = True) -> tuple[list[float], int, float]:
        """Log-probs of tokens 1..n-1 of `ids` given their prefixes (the prompt log-probs an echo request
        returns), and the next token after `ids` (argmax) with its log-prob."""
        torch = self.torch
        if not ids:
            raise ValueError("the prompt is empty")
        if len(ids) >= self.max_positions:
            raise ValueError(f"the prompt has {len(ids)} tokens; the model takes {self.max_positions}")
        if max(ids) >= len(self.tokenizer) or min(ids) < 0:
            raise ValueError(f"token ids must be in [0, {len(self.tokenizer)})")
        with torch.no_grad():
            logits = self.model(input_ids=torch.tensor([ids], device=self.device)).logits[0].float()
        logps = torch.log_softmax(logits, dim=-1)
        prompt = logps[:-1].gather(-1, torch.tensor(ids[1:], device=self.device).unsqueeze(-1)).squeeze(-1)
        nxt = int(logps[-1].argmax())
        return prompt.tolist(), nxt, float(logps[-1, nxt])

    def _generate(self, prompts: list[list[int]], ns: list[int], params: SamplingParams,
                  cancels: list[threading.Event] | None = None) -> list[Completion]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        torch = self.torch
        expanded = [ids for ids, n in zip(prompts, ns, strict=True) for _ in range(n)]
        cancel_B = [e for e, n in zip(cancels or [threading.Event()] * len(prompts), ns, strict=True) for _ in range(n)]

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.tensor([e.is_set() for e in cancel_B], dtype=torch.bool, device=input_ids.device)

        width = max(len(p) for p in expanded)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in expanded], device=self.device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in expanded], device=self.device)
        budget = max(1, min(params.max_tokens, self.max_positions - width))
        if params.seed is not None:
            torch.manual_seed(params.seed)
        sample = params.temperature > 0
        kwargs = {"do_sample": sample, "max_new_tokens": budget, "pad_token_id": pad,
                  "return_dict_in_generate": True, "output_scores": params.logprobs,
                  "stopping_criteria": StoppingCriteriaList([Cancelled()])}
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        with torch.no_grad():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        new_B_T = out.sequences[:, width:]
        logprobs_B_T = None
        if params.logprobs:
            logprobs_B_T = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        choices = [self._choice(new_B_T[b].tolist(), budget, params,
                                None if logprobs_B_T is None else logprobs_B_T[b].tolist()) for b in range(len(expanded))]
        completions, at = [], 0
        for ids, n in zip(prompts, ns, strict=True):
            group = choices[at:at + n]
            at += n
            completions.append(Completion(group, len(ids), sum(c.completion_tokens for c in group)))
        return completions

    def _choice(self, tokens: list[int], budget: int, params: SamplingParams, logprobs: list[float] | None) -> Choice:
        eos = self.tokenizer.eos_token_id
        eos_ids = set(eos) if isinstance(eos, list) else {eos}
        cut = next((k for k, t in enumerate(tokens) if t in eos_ids), None)
        finish = "stop" if cut is not None else ("length" if len(tokens) >= budget else "stop")
        kept = tokens if cut is None else tokens[:cut]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        for s in params.stop:
            if s and s in text:
                text, finish = text[:text.index(s)], "stop"
        entries = None
        if logprobs is not None:  # token ids ride along (and the EOS that ended it) so RL can train on them
            ended = tokens[:cut + 1] if cut is not None else kept
            entries = [{"token": self.tokenizer.decode([t]), "logprob": float(lp), "token_id": int(t)}
                       for t, lp in zip(ended, logprobs[:len(ended)], strict=True)]
        return Choice(text, None, finish, len(kept) + (1 if cut is not None else 0), entries)
