"""Hub datasets (`hf://owner/name`), streamed through `datasets` when the machine is online.

Kept apart from io.py so that reading local files never imports `datasets`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from workbench.errors import InputError


def iter_hub_tables(name: str, split: str | None, batch_rows: int, limit: int | None = None) -> Iterator[pa.Table]:
    """Yield Arrow tables of a hub dataset's split (default `train`), streaming, at most `limit` rows."""
    import datasets

    config = None
    if ":" in name:  # hf://owner/name:config picks a dataset config
        name, config = name.split(":", 1)
    try:
        stream = datasets.load_dataset(name, config, split=split or "train", streaming=True)
    except Exception as exc:  # the hub client raises many types; all mean "cannot get it"
        raise InputError(
            f"hf://{name}: could not open the hub dataset ({type(exc).__name__}: {exc}); "
            "offline machines need a local copy (datasets save_to_disk, parquet or jsonl)"
        ) from exc
    seen = 0
    for batch in stream.iter(batch_size=batch_rows):
        table = pa.Table.from_pydict(batch)
        if limit is not None and seen + table.num_rows >= limit:
            yield table.slice(0, limit - seen)
            return
        seen += table.num_rows
        yield table
