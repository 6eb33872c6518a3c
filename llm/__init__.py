"""The generation layer every job that samples from a model uses: distill, prefs, judges, eval, OPD.

The narrow interface: an `EndpointSpec` (model, base URLs, backend, API-key variable, timeout,
concurrency), `open_generator(spec, sampling, retry)` -> a `Generator` with adaptive concurrency and
retries, the durable `Ledger` of units, and `run_units` which drives pending units through a generator
into a ledger. Backends live in `backends/`; `batcher` and `local_engine` serve in-process models.
"""

from llm.backends.base import Choice, Completion, SamplingParams
from llm.budget import RateBudget
from llm.generator import Generator, Outcome, RetryPolicy
from llm.ledger import LEDGER, Ledger, UnitResult
from llm.runner import Progress, run_units
from llm.spec import (
           EndpointSpec,
           expand_base_urls,
           open_endpoints,
           open_generator,
           run_key,
)

__all__ = ["Choice", "Completion", "EndpointSpec", "Generator", "LEDGER", "Ledger", "Outcome", "Progress",
           "RateBudget", "RetryPolicy", "SamplingParams", "UnitResult", "expand_base_urls", "open_endpoints", "open_generator", "run_key",
           "run_units"]
