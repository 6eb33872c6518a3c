"""Evaluation: `wb eval` scores a model on benchmarks through the generation layer and the verifiers.

`metrics` holds the pure statistics (pass@k, maj@k, intervals, paired bootstrap); `benchmarks` resolves
bundled and user benchmarks; `pipeline` runs an evaluation into a run directory; `compare` reads runs.

Python API: `from evals import evaluate, EvalConfig, compare_runs` and, for a trainer's in-run eval,
`resolve_benchmarks` and `benchmark_metrics` (loaded on first use).
"""

from workbench.lazy import lazy_exports  # noqa: E402

_API = {"evaluate": "evals.pipeline", "EvalConfig": "evals.config", "compare_runs": "evals.compare",
        "benchmark_metrics": "evals.metrics", "resolve_benchmarks": "evals.benchmarks"}
__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)
