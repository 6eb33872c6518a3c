"""prefs: preference pairs (delta learning, best-vs-worst) and rejection-sampled SFT data, built on
the `llm` generation layer, ledger and verifiers. Run: `wb prefs PROMPTS --output DIR ...`."""

# Python API: `from prefs import make_pairs, PrefsConfig` (loaded on first use).
from workbench.lazy import lazy_exports  # noqa: E402

_API = {"make_pairs": "prefs.pipeline", "PrefsConfig": "prefs.config"}
__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)
