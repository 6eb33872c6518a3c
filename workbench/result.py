"""`RunResult`: what every Python entry point returns (the run directory, its manifest, its products).

```
from curate import dedup
result = dedup(DedupConfig(threshold=0.7), ["corpus.jsonl"], "runs/dd")
result.manifest["dropped"], result.data, result.read().num_rows
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workbench.rundir import PRODUCT, read_manifest


@dataclass(frozen=True)
class RunResult:
    path: Path
    manifest: dict

    @classmethod
    def of(cls, path: str | os.PathLike, manifest: dict | None = None) -> RunResult:
        """The result of the finished run at `path` (its manifest is read when not given)."""
        return cls(Path(path), manifest if manifest is not None else read_manifest(path))

    @property
    def stage(self) -> str:
        return str(self.manifest.get("stage"))

    @property
    def products(self) -> dict[str, Path]:
        """Every file the run wrote, by name (`data.parquet`, `removed.parquet`, `sft.parquet`, ...)."""
        names = self.manifest.get("outputs") or []
        return {n: self.path / n for n in names if (self.path / n).exists()}

    @property
    def data(self) -> Path | None:
        """The main product, `data.parquet`, when the run has one."""
        return self.path / PRODUCT if (self.path / PRODUCT).exists() else None

    def read(self, name: str = PRODUCT):
        """A product as an Arrow table."""
        import pyarrow.parquet as pq

        return pq.read_table(self.path / name)
