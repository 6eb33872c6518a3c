"""Held-out benchmark accuracy while training: `--eval-benchmark gsm8k FILE... --eval-benchmark-every N`.

Every N steps (and before the first step and after the last) the policy answers each benchmark's items
greedily, the answers are verified in-process (math, exact, or a user `package.module:function`) and
`metrics.jsonl` gets `eval/<benchmark>/accuracy` with its 95% interval and truncation rate. Items come
from the same loader as `wb eval`, so a number logged here and one from `wb eval` (hf backend, greedy)
score the same items the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from evals import benchmark_metrics


@dataclass
class BenchItems:
    name: str
    verifier: str
    prompts: list  # message lists
    prompt_ids: list[list[int]]
    answers: list[str]


def load_bench_items(cfg, tokenizer) -> list[BenchItems]:
    """The items of `cfg.eval_benchmark`, rendered with the chat template; [] when none are asked for."""
    if not cfg.eval_benchmark:
        return []
    from evals import resolve_benchmarks
    from llm.prompts import load_prompts
    from trainers.rollouts import render_prompt
    from workbench.errors import InputError

    if cfg.eval_verify == "judge":
        raise InputError("--eval-verify judge: an LLM judge does not run inside training; evaluate the saved model "
                         "with `wb eval --verify judge --judge-model J` instead")
    out = []
    for b in resolve_benchmarks(cfg.eval_benchmark, cfg.eval_prompt_field, cfg.eval_answer_field, cfg.eval_verify):
        table, _, _ = load_prompts(b.source, b.prompt_field, b.answer_field, None, None, cfg.eval_limit)
        prompts = table.column("prompt").to_pylist()
        ids = [render_prompt(tokenizer, {"prompt": p}, f"{b.name}: item {i + 1}") for i, p in enumerate(prompts)]
        out.append(BenchItems(b.name, b.verifier, prompts, ids, table.column("answer").to_pylist()))
    return out


def bench_metrics(client, benches: list[BenchItems], max_new_tokens: int, chunk: int = 32) -> dict[str, float]:
    """Greedy answers of the current policy to every item, verified: `eval/<name>/accuracy`, `.../ci95_low`,
    `.../ci95_high`, `.../truncation_rate`."""
    from llm.verify import inline_verdicts

    tok = client.tokenizer
    out: dict[str, float] = {}
    for b in benches:
        texts, truncated = [], []
        for start in range(0, len(b.prompt_ids), chunk):
            for s in client.sample(b.prompt_ids[start:start + chunk], n=1, max_new_tokens=max_new_tokens,
                                   temperature=0.0):
                texts.append(tok.decode(s.tokens, skip_special_tokens=True))
                truncated.append(not s.tokens or s.tokens[-1] not in client.eos_ids)
        verdicts = inline_verdicts(b.verifier, b.prompts, texts, b.answers)
        m = benchmark_metrics([[v] for v, _ in verdicts], truncated=[[t] for t in truncated])
        out.update({f"eval/{b.name}/accuracy": m["accuracy"], f"eval/{b.name}/ci95_low": m["ci95"][0],
                    f"eval/{b.name}/ci95_high": m["ci95"][1], f"eval/{b.name}/truncation_rate": m["truncation_rate"]})
    return out
