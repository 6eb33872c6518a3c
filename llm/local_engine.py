"""Generation with a local transformers model: the engine behind `wb serve` and `--backend hf`.

Continuous batching: `prepare` tokenizes a request into a `Job` of `n` samples, `admit` adds samples to
the running batch (llm/decode_batch.py), `step` decodes one token for every running sample and returns
the jobs that completed; samples join and leave between steps (llm/batcher.py's `ContinuousBatcher`
drives it). A sample ends at any EOS id of the generation config or tokenizer (`stop`, the EOS counted
and kept in its log-probs), when a stop string completes (`stop`, the text cut before it, only the tokens
returned counted), at its token budget (`length`), or at the next token once its request's `cancel` is
set. `generate_batch` runs a list of requests to the end (tests, VersionedEngine's callers).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from llm.backends.base import Choice, Completion
from llm.batcher import GenRequest
from llm.eos import eos_ids
from workbench.errors import InputError


@dataclass(eq=False)
class Job:
    """One request being generated: its prompt ids, token budget and a Choice slot per sample."""

    request: GenRequest
    prompt: list[int]
    budget: int
    choices: list[Choice | None]
    admitted: int = 0
    done: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.done == len(self.choices)


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
        self.eos_ids = eos_ids(self.model.generation_config, self.tokenizer)
        from llm.decode_batch import RunningBatch

        self.batch = RunningBatch(self.model, self.tokenizer.pad_token_id, self.device)
        odd = self.batch.unsupported_layers()
        if odd:
            raise InputError(f"{model_path}: continuous batching needs full-attention KV cache layers; this model "
                             f"has {', '.join(odd)}")

    @property
    def running(self) -> int:
        """Samples in the running batch."""
        return len(self.batch.rows)

    def accepts_new(self) -> bool:
        """Whether new jobs may start now (VersionedEngine says no while weights wait to load)."""
        return True

    def prepare(self, request: GenRequest) -> Job:
        """Tokenize a request with the chat template; ValueError if the model cannot take it."""
        try:
            ids = list(self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True,
                                                          tokenize=True, return_dict=False))
        except Exception as exc:  # noqa: BLE001 - a bad request fails alone
            raise ValueError(str(exc)) from None
        if len(ids) >= self.max_positions:
            raise ValueError(f"the prompt has {len(ids)} tokens; the model takes {self.max_positions}")
        budget = max(1, min(request.params.max_tokens, self.max_positions - len(ids)))
        return Job(request, ids, budget, [None] * request.n)

    def admit(self, picks: list[tuple[Job, int]]) -> None:
        """Start sample `i` of each (job, i); the samples of one job share one prefill row."""
        from llm.decode_batch import Row, sample_generator

        groups: dict[int, tuple[Job, list[Row]]] = {}
        for job, i in picks:
            p = job.request.params
            row = Row(job, i, p.temperature, p.top_p, sample_generator(p.seed, i, self.device))
            groups.setdefault(id(job), (job, []))[1].append(row)
            job.admitted += 1
        if groups:
            self.batch.admit([job.prompt for job, _ in groups.values()], [rows for _, rows in groups.values()])

    def step(self) -> list[Job]:
        """Decode one token for every running sample; the jobs whose last sample ended in this step."""
        if not self.batch.rows:
            return []
        tokens, logps = self.batch.sample()
        keep, finished = [], []
        for row, token, logp in zip(self.batch.rows, tokens, logps, strict=True):
            job: Job = row.owner
            choice = self._advance(job, row, token, logp)
            keep.append(choice is None)
            if choice is not None:
                job.choices[row.index] = choice
                job.done += 1
                if job.complete:
                    finished.append(job)
        self.batch.advance(keep, tokens)
        return finished

    def reset(self) -> None:
        """Drop every running sample (after a failed step)."""
        self.batch.clear()

    def completion(self, job: Job) -> Completion:
        choices = [c or Choice("", None, "stop", 0) for c in job.choices]
        return Completion(choices, len(job.prompt), sum(c.completion_tokens for c in choices), dict(job.extra))

    def generate_batch(self, requests: list[GenRequest]) -> list[Completion | Exception]:
        """Run `requests` to the end in one running batch: one Completion (or that request's error) each."""
        if self.batch.rows:
            raise RuntimeError("generate_batch while a ContinuousBatcher drives this engine; submit through it")
        results: list[Completion | Exception | None] = [None] * len(requests)
        jobs: dict[int, Job] = {}
        for j, request in enumerate(requests):
            try:
                jobs[j] = self.prepare(request)
            except ValueError as exc:
                results[j] = exc
        self.admit([(job, i) for job in jobs.values() for i in range(job.request.n)])
        steps = sum(job.budget for job in jobs.values()) + 1  # every step ends at least one token of one sample
        while self.batch.rows and steps > 0:
            self.step()
            steps -= 1
        for j, job in jobs.items():
            results[j] = self.completion(job)
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

    def _advance(self, job: Job, row, token: int, logp: float) -> Choice | None:
        """Add `token` to a sample; its Choice if the sample ended (cancel, EOS, stop string, budget)."""
        params = job.request.params
        if job.request.cancel.is_set():
            return self._choice(row, len(row.tokens), "stop", params.logprobs)
        row.tokens.append(token)
        row.logprobs.append(logp)
        if token in self.eos_ids:
            return self._choice(row, len(row.tokens), "stop", params.logprobs, eos=True)
        if params.stop:
            hit = self._stop_cut(row.tokens, params.stop)
            if hit is not None:
                return self._choice(row, hit[0], "stop", params.logprobs, text=hit[1])
        if len(row.tokens) >= job.budget:
            return self._choice(row, len(row.tokens), "length", params.logprobs)
        return None

    def _stop_cut(self, tokens: list[int], stops: tuple[str, ...]) -> tuple[int, str] | None:
        """(tokens returned, text) when a stop string has just completed, else None. The text is cut before
        the stop string; the tokens returned are the fewest whose text covers it."""
        window = max(len(s) for s in stops) + 4  # a token adds at least one character, bar partial UTF-8
        decode = self.tokenizer.decode
        tail = decode(tokens[-window:], skip_special_tokens=True)
        if not any(s and s in tail for s in stops):
            return None
        full = decode(tokens, skip_special_tokens=True)
        text = full[:min(full.index(s) for s in stops if s and s in full)]
        k = len(tokens)
        while k > 0 and len(decode(tokens[:k - 1], skip_special_tokens=True)) >= len(text):
            k -= 1
        return k, text

    def _choice(self, row, count: int, finish: str, logprobs: bool, eos: bool = False,
                text: str | None = None) -> Choice:
        """A finished sample's Choice over its first `count` tokens (an ending EOS is counted, not shown)."""
        kept = row.tokens[:count]
        if text is None:
            text = self.tokenizer.decode(kept[:-1] if eos else kept, skip_special_tokens=True)
        entries = None
        if logprobs:  # token ids ride along (and the EOS that ended it) so RL can train on them
            entries = [{"token": self.tokenizer.decode([t]), "logprob": float(lp), "token_id": int(t)}
                       for t, lp in zip(kept, row.logprobs[:count], strict=True)]
        return Choice(text, None, finish, count, entries)

