"""The generation layer every job that samples from a model uses: distill, prefs, judges, eval, OPD.

The narrow interface: an `EndpointSpec` (model, base URLs, backend, API-key variable, timeout,
concurrency), `open_generator(spec, sampling, retry)` -> a `Generator` with adaptive concurrency and
retries, the durable `Ledger` of units, and `run_units` which drives pending units through a generator
into a ledger. Backends live in `backends/`; `batcher` and `local_engine` serve in-process models.
"""

from distill_data.generation.backends.base import Choice, Completion, SamplingParams
from distill_data.generation.budget import RateBudget
from distill_data.generation.generator import Generator, Outcome, RetryPolicy
from distill_data.generation.ledger import LEDGER, Ledger, UnitResult
from distill_data.generation.runner import Progress, run_units
from distill_data.generation.spec import (
           EndpointSpec,
           expand_base_urls,
           open_endpoints,
           open_generator,
           run_key,
)

__all__ = ["Choice", "Completion", "EndpointSpec", "Generator", "LEDGER", "Ledger", "Outcome", "Progress",
           "RateBudget", "RetryPolicy", "SamplingParams", "UnitResult", "expand_base_urls", "open_endpoints", "open_generator", "run_key",
           "run_units"]
