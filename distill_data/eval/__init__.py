"""Evaluation: `wb eval` scores a model on benchmarks through the generation layer and the verifiers.

`metrics` holds the pure statistics (pass@k, maj@k, intervals, paired bootstrap); `benchmarks` resolves
bundled and user benchmarks; `pipeline` runs an evaluation into a run directory; `compare` reads runs.
"""
