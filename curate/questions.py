"""The question side of the recipe: decontaminate and dedup prompts with curate/ before any generation.

OpenThoughts-style pipelines clean the questions first (a duplicate question costs n teacher samples; a
benchmark question leaks the test set). `question_curation(options)` returns the hook `load_prompts`
calls; every removed prompt is counted by its curate reason (`contaminated:gsm8k_test`,
`exact_duplicate`, `near_duplicate`) in the manifest's `dropped`.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from llm.prompts import QuestionHook
from workbench.records import message_text


def question_curation(decontam: list[str], dedup: bool, ngram: int = 13, threshold: float = 0.8) -> QuestionHook | None:
    """A hook dropping prompts that share an `ngram`-gram with a benchmark and (if `dedup`) duplicates."""
    if not decontam and not dedup:
        return None
    from curate.decontam import DecontamConfig, DecontamFilter, benchmarks_from
    from curate.dedup import DedupConfig, plan_dedup

    benchmarks = benchmarks_from(DecontamConfig(benchmark=decontam, ngram=ngram)) if decontam else []

    def hook(table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
        work = pa.table({"id": table["prompt_id"], "source": pa.array(["prompts"] * table.num_rows, pa.string()),
                         "text": pa.array([message_text(p, ("user",), "\n") for p in table["prompt"].to_pylist()],
                                           pa.large_string())})
        dropped: Counter[str] = Counter()
        if benchmarks:
            step = DecontamFilter(["text"], benchmarks, ngram)
            work = step.apply(work)
            dropped.update(step.dropped)
        if dedup and work.num_rows:
            with tempfile.TemporaryDirectory() as tmp:
                plan = plan_dedup(lambda: iter([work]), ["text"], DedupConfig(threshold=threshold), Path(tmp))
            removed = plan.reason != None  # noqa: E711
            dropped.update(plan.reason[removed].tolist())
            work = work.filter(pa.array(~removed))
        return table.filter(pc.is_in(table["prompt_id"], value_set=work["id"])), dict(dropped)

    return hook
