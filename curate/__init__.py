"""Curation steps: filters, exact and MinHash near dedup, benchmark decontamination.

Run from the CLI as `wb curate`, `wb dedup` and `wb decontam`. Every step works on Arrow batches and
every removed row lands in `removed.parquet` with a reason. Importing this package imports no torch.
"""

# The Python API (`from curate import curate, dedup, decontam, CurateConfig, DedupConfig, DecontamConfig`),
# loaded on first use so that `import curate` stays light.
_API = {"curate": "curate.api", "dedup": "curate.api", "decontam": "curate.api", "CurateConfig": "curate.config",
        "DedupConfig": "curate.dedup", "DecontamConfig": "curate.decontam", "FilterSettings": "curate.filters"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'curate' has no attribute {name!r}")
