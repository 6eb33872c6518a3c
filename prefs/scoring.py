"""Scores that rank a prompt's samples: the verifier's verdict, an LLM judge's rubric score, or a reward model.

- `verifier`: 1.0 when the verifier says correct, 0.0 when wrong, null without a verdict.
- `judge`: a 1-10 rubric score (helpfulness, correctness, honesty) through the `llm` generation layer,
  ending in `SCORE: N`; no score line gives null.
- `reward-model`: the logit of a transformers sequence-classification model with one label, on the chat
  template's rendering of prompt + reply (Llama 3's rejection sampling ranks by such a model).
Judge and reward scores are recorded in the ledger's `scores` table, so scoring resumes too.
"""

from __future__ import annotations

import asyncio
import re

import pyarrow as pa
import pyarrow.compute as pc

from llm.generator import Generator
from llm.ledger import Ledger
from llm.verify.judge import RUBRIC as JUDGE_RUBRIC
from llm.verify.judge import judge_units
from workbench.errors import InputError

RUBRIC = JUDGE_RUBRIC.split("Judge whether")[0] + """Rate the response from 1 (useless or wrong) to 10 (correct, complete, clear and honest); with a
reference answer, a final answer that disagrees with it scores at most 3. Give a one-paragraph
justification, then a last line that is exactly `SCORE: N` with N an integer from 1 to 10."""
_SCORE = re.compile(r"SCORE:\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_score(text: str | None) -> float | None:
    """The last `SCORE: N` with 1 <= N <= 10, else None."""
    found = _SCORE.findall(text or "")
    if not found:
        return None
    value = float(found[-1])
    return value if 1 <= value <= 10 else None


def scorable(units: pa.Table) -> pa.Array:
    """Samples that can be ranked: status ok with a non-empty answer."""
    text = pc.utf8_trim_whitespace(pc.fill_null(units.column("content"), ""))
    return pc.and_(pc.equal(units.column("status"), "ok"), pc.greater(pc.utf8_length(text), 0))


async def judge_scores(units: pa.Table, judge: Generator) -> list[tuple[float | None, str]]:
    """(score, detail) per row of `units`, in order."""
    return await judge_units(units, judge, RUBRIC, parse_score, "score")


class RewardModel:
    """A transformers sequence-classification checkpoint with one output label, scoring chat transcripts."""

    def __init__(self, path: str, batch_size: int = 8):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        except OSError as exc:
            raise InputError(f"--reward-model {path}: cannot load a sequence-classification model ({exc})") from None
        if self.model.config.num_labels != 1:
            raise InputError(f"--reward-model {path}: expected a reward model with one output label, "
                             f"got num_labels={self.model.config.num_labels}")
        if self.tokenizer.chat_template is None:
            raise InputError(f"--reward-model {path}: the tokenizer has no chat template")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.tokenizer.padding_side = "right"
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 4096))
        self.batch_size = max(1, batch_size)
        self.torch = torch

    def score(self, prompts: list[list[dict]], replies: list[str]) -> list[float]:
        texts = [self.tokenizer.apply_chat_template([*p, {"role": "assistant", "content": r}], tokenize=False)
                 for p, r in zip(prompts, replies, strict=True)]
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                   truncation=True, max_length=self.max_length, add_special_tokens=False)
            with self.torch.no_grad():
                logits_B1 = self.model(**batch).logits
            out.extend(logits_B1[:, 0].float().tolist())
        return out


def scorer_id(kind: str, judge_model: str | None, reward_model: str | None) -> str:
    """The ledger's name for a scorer: a changed judge or reward model is scored afresh."""
    return f"judge:{judge_model}" if kind == "judge" else f"reward:{reward_model}"


async def record_missing_scores(kind: str, name: str, units: pa.Table, ledger: Ledger,
                                judge: Generator | None, reward: RewardModel | None) -> None:
    """Score the scorable units of one side that have no `name` score in its ledger yet."""
    seen = ledger.scores(name)
    todo = units.filter(scorable(units))
    keys = list(zip(todo.column("prompt_id").to_pylist(), todo.column("sample_index").to_pylist(), strict=True))
    rows = [j for j, k in enumerate(keys) if k not in seen]
    if not rows:
        return
    todo = todo.take(pa.array(rows, pa.int64()))
    keys = [keys[j] for j in rows]
    if kind == "judge":
        scored = await judge_scores(todo, judge)
    else:
        values = await asyncio.to_thread(reward.score, todo.column("prompt").to_pylist(),
                                         todo.column("content").to_pylist())
        scored = [(v, None) for v in values]
    ledger.record_scores(name, [(p, i, s, d) for (p, i), (s, d) in zip(keys, scored, strict=True)])


def add_scores(units: pa.Table, kind: str, ledger: Ledger, name: str | None) -> pa.Table:
    """Append a float `score` column: from the verdicts (`verifier`), the ledger (`judge`, reward), or nulls."""
    if kind == "verifier":
        score = pc.cast(units.column("verified"), pa.float64())
    elif kind in ("judge", "reward-model"):
        found = ledger.scores(name)
        keys = zip(units.column("prompt_id").to_pylist(), units.column("sample_index").to_pylist(), strict=True)
        score = pa.array([found.get(k, (None, None))[0] for k in keys], pa.float64())
    else:
        score = pa.nulls(units.num_rows, pa.float64())
    return units.append_column("score", score)
