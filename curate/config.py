"""`CurateConfig`: every option of `wb curate`; filter and dedup settings are nested dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from curate.dedup import DedupConfig
from curate.filters import FILTERS, FilterSettings
from workbench.config import RunOptions, option


@dataclass
class CurateConfig(RunOptions):
    field: list[str] = option([], "fields to check: columns, `messages`, `messages.prompt`, `messages.response` "
                                  "(default: by record kind)")
    filters: list[str] = option(["length"], "filters in order: " + ", ".join(FILTERS))
    filter_settings: FilterSettings = option(FilterSettings(), "per-filter settings, e.g. "
                                             "{language: {languages: [en], min_score: 0.65}}", cli=False)
    on_bad_row: str = option("error", "a record training would refuse (no assistant turn, an unknown role): "
                                      "error stops the run naming its file and row, drop moves it to "
                                      "removed.parquet with its reason; the `turns` filter implies drop",
                             choices=["error", "drop"])
    pii: str = option("off", "emails, IPs, phones and secrets: off, redact (placeholders) or drop",
                      choices=["off", "redact", "drop"])
    decontam: bool = option(True, "drop rows sharing an n-gram with a benchmark")
    benchmark: list[str] = option(["gsm8k", "math500"], "benchmarks: bundled names or jsonl/parquet files")
    decontam_ngram: int = option(13, "words per decontamination n-gram", min=1)
    dedup: bool = option(True, "exact and near dedup after the filters")
    dedup_settings: DedupConfig = option(DedupConfig(), "dedup settings (see `wb dedup --help`); flags such as "
                                         "--threshold win", cli=False)
