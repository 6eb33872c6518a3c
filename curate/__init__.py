"""Curation steps: filters, exact, MinHash and semantic dedup, benchmark decontamination, selection.

Run from the CLI as `wb curate`, `wb dedup`, `wb semdedup`, `wb decontam` and `wb select`. Every step works on Arrow batches and
every removed row lands in `removed.parquet` with a reason. Importing this package imports no torch.
"""

# The Python API (`from curate import curate, deduplicate, decontaminate, CurateConfig, DedupConfig, ...`),
# loaded on first use so that `import curate` stays light (the names differ from the submodules `dedup`
# and `decontam` on purpose: importing a submodule sets the package attribute of its name).
from workbench.lazy import lazy_exports  # noqa: E402

_API = {"curate": "curate.api", "deduplicate": "curate.api", "decontaminate": "curate.api", "CurateConfig": "curate.config",
        "DedupConfig": "curate.dedup", "DecontamConfig": "curate.decontam", "FilterSettings": "curate.filters",
        "select_rows": "curate.select", "SelectConfig": "curate.select", "semantic_dedup": "curate.semdedup",
        "SemDedupConfig": "curate.semdedup", "train_classifier": "curate.classifier",
        "TrainClassifierConfig": "curate.classifier", "question_curation": "curate.questions"}
__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)
