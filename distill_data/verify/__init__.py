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
    seen = ledger.verdicts(cfg.verify)
    todo = data.filter(pc.equal(data.column("status"), "ok"))
    keys = list(zip(todo.column("prompt_id").to_pylist(), todo.column("sample_index").to_pylist(), strict=True))
    rows = [j for j, k in enumerate(keys) if k not in seen]
    if not rows:
        return
    todo = todo.take(pa.array(rows, pa.int64()))
    keys = [keys[j] for j in rows]
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
    ledger.record_verdicts(cfg.verify, [(p, i, v, d) for (p, i), (v, d) in zip(keys, verdicts, strict=True)])
