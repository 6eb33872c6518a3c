"""Read a dataset for training: validate every row against its record kind, render it to token ids.

Errors name the file and the 1-based row. Rows that render to nothing trainable after truncation are
dropped and counted by reason, never silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from workbench.errors import SchemaError
from workbench.io import Source, open_source
from workbench.runfiles import SFT
from workbench.schemas import KIND_LABELS, detect_kind, prompt_alias, validate_table


@dataclass
class Rendered:
    source: Source
    items: list = field(default_factory=list)  # what `render` returned, one per kept row
    rows_in: int = 0
    dropped: Counter = field(default_factory=Counter)


# the product of a run that a trainer of a record kind reads instead of `data.parquet`, when the run has it
KIND_PRODUCTS = {"sft": SFT}


def kind_product(spec: str, kind: str) -> tuple[str, bool]:
    """(what to read, whether rows a verifier marked wrong are dropped) for training on `spec` as `kind`.

    A distill run's `data.parquet` holds one row per unit (failed and truncated ones too); its SFT product
    is `sft.parquet` (ok rows as messages), and rows whose verdict is false are not trained on."""
    from pathlib import Path

    from workbench.rundir import read_manifest

    path = Path(spec)
    product = KIND_PRODUCTS.get(kind)
    if product is None or not path.is_dir() or not (path / product).exists():
        return spec, False
    manifest = read_manifest(path)
    verified = ((manifest.get("config") or {}).get("verify") or "none") != "none"
    return str(path / product), verified


def load_rendered(spec: str, kind: str, render: Callable[[dict, str], object | None],
                  rename: dict[str, str] | None = None) -> Rendered:
    """Validate `spec` as `kind` records and call `render(row, where)` on each row.

    `render` returns the rendered item, or a string naming why the row is dropped. `rename` maps the
    source's column names to the record kind's (e.g. GSM8K's question/answer to prompt/completion).
    """
    spec, verified_only = kind_product(spec, kind)
    source = open_source(spec)
    rename = {k: v for k, v in (rename or {}).items() if k != v}
    if kind == "sft" and "messages" in source.schema().names:
        rename = {}  # conversations need no field options; --prompt-field etc. name columns of flat rows
    missing = [k for k in rename if k not in source.schema().names]
    if missing:
        raise SchemaError(f"{spec}: no column {missing[0]!r} (named by a --*-field option); "
                          f"columns are {source.schema().names}")
    names = [rename.get(n, n) for n in source.schema().names]
    found = detect_kind(pa.schema([(n, pa.null()) for n in names]))
    if kind == "rl_prompts" and "prompt" in names:
        found = kind  # prompt rows may carry any other columns (answers, completions): rewards read them by name
    if found != kind:
        hint = ""
        alias = prompt_alias(pa.schema([(n, pa.null()) for n in names]))
        if kind == "sft" and alias and "answer" in names:
            hint = f" (pass --prompt-field {alias} --completion-field answer)"
        elif kind == "rl_prompts" and alias:
            hint = f" (pass --prompt-field {alias})"
        raise SchemaError(f"{spec}: expected {KIND_LABELS[kind]} records but the columns {names} "
                          f"look like {KIND_LABELS[found]}{hint}")
    out = Rendered(source)
    for path, first, table in source.iter_rows_with_file():
        table = table.rename_columns([rename.get(n, n) for n in table.column_names])
        validate_table(table, kind, path.name, first)
        for i, row in enumerate(table.to_pylist()):
            out.rows_in += 1
            if verified_only and row.get("verified") is False:
                out.dropped["not_verified"] += 1
                continue
            item = render(row, f"{path.name}: row {first + i + 1}")
            if isinstance(item, str):
                out.dropped[item] += 1
            else:
                out.items.append(item)
    if not out.items:
        raise SchemaError(f"{spec}: no trainable rows ({dict(out.dropped) or 'the source is empty'})")
    return out
