"""Answer verifiers: `math` (math-verify in a process pool), `code` (tests in a sandboxed subprocess),
`judge` (an LLM rubric through the generation layer). Verdicts are columns; nothing is dropped here.

`verify_units` checks every `ok` unit that has no verdict in the ledger yet and records verdicts there,
so verification resumes too. Truncated and failed units get no verdict (null).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from distill_data.generation import Generator
from distill_data.ledger import Ledger


async def verify_units(cfg, data: pa.Table, ledger: Ledger, gen: Generator) -> None:
    """Verify what is left to verify with `cfg.verify`; verdicts go to the ledger in batches."""
    await verify_many(cfg, [(data, ledger)], gen)


async def verify_many(cfg, parts: list[tuple[pa.Table, Ledger]], gen: Generator) -> None:
    """`verify_units` over several (units, ledger) parts in one verifier call (one process pool), e.g. the
    models of a prefs run; each part's verdicts go to its own ledger."""
    todos, keys, owners = [], [], []
    for part, (data, ledger) in enumerate(parts):
        seen = ledger.verdicts(cfg.verify)
        todo = data.filter(pc.equal(data.column("status"), "ok"))
        found = list(zip(todo.column("prompt_id").to_pylist(), todo.column("sample_index").to_pylist(), strict=True))
        rows = [j for j, k in enumerate(found) if k not in seen]
        todos.append(todo.take(pa.array(rows, pa.int64())).select(["prompt", "content", "answer", "tests"]))
        keys += [found[j] for j in rows]
        owners += [part] * len(rows)
    if not keys:
        return
    todo = pa.concat_tables(todos)
    if cfg.verify == "math":
        from distill_data.verify.math import verify_math

        verdicts = await verify_math(todo.column("content").to_pylist(), todo.column("answer").to_pylist(),
                                     cfg.verify_workers)
    elif cfg.verify == "code":
        from distill_data.verify.code import verify_code

        verdicts = await verify_code(todo.column("content").to_pylist(), todo.column("tests").to_pylist(),
                                     cfg.code_timeout, cfg.code_memory_mb, cfg.verify_workers)
    else:
        from distill_data.verify.judge import verify_judge

        verdicts = await verify_judge(cfg, todo, gen)
    for part, (_, ledger) in enumerate(parts):
        mine = [(p, i, v, d) for (p, i), (v, d), o in zip(keys, verdicts, owners, strict=True) if o == part]
        if mine:
            ledger.record_verdicts(cfg.verify, mine)
