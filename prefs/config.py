"""`PrefsConfig`: every option of `wb prefs`, with help text; it is written into the manifest.

The endpoint options (shared by the strong, weak and judge models), prompt, verification and progress
options are `llm.options.JobOptions`; each model adds only its name, endpoints and backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm.options import JobOptions, backend_option, base_url_option
from llm.reasoning import THINK_FORMATS
from workbench.config import option

STRATEGIES = ("delta", "best-vs-worst", "rejection-sampling")
SCORERS = ("auto", "verifier", "judge", "reward-model")


@dataclass
class PrefsConfig(JobOptions):
    strategy: str = option("delta", "how pairs are made", choices=list(STRATEGIES))
    strong_model: str = option("", "the stronger model (chosen side for delta): served name or local path")
    strong_base_url: list[str] = base_url_option("the strong model")
    strong_backend: str = backend_option("the strong model")
    weak_model: str | None = option(None, "the weaker model (rejected side for delta; optional otherwise)")
    weak_base_url: list[str] = base_url_option("the weak model")
    weak_backend: str = backend_option("the weak model")
    n: int = option(1, "samples per prompt from each model (delta pairs sample i with sample i)", min=1)
    temperature: float = option(0.0, "sampling temperature for both models (0: greedy, as in delta learning)",
                               min=0.0)
    top_p: float = option(1.0, "nucleus sampling", min=0.0, max=1.0)
    max_tokens: int = option(2048, "completion budget per sample", min=1)
    seed: int | None = option(None, "sampling seed sent to the backends")
    score: str = option("auto", "how best-vs-worst and rejection-sampling rank samples (auto: the verifier)",
                        choices=list(SCORERS))
    on_inverted: str = option("swap", "a pair whose chosen answer the verifier marks wrong and rejected right",
                              choices=["swap", "drop"])
    reward_model: str | None = option(None, "sequence-classification checkpoint for --score reward-model")
    reward_batch_size: int = option(8, "sequences per reward-model forward pass", min=1)
    judge_model: str | None = option(None, "judge model for --verify judge / --score judge (default: strong)")
    judge_base_url: list[str] = base_url_option("the judge (default: the strong model's, with its backend)")
    judge_backend: str = backend_option("the judge")
    source: str | None = option(None, "value of the `source` column (default: the prompt file's name)")
    think_format: str = option("think-tags", "how reasoning is rendered into the assistant messages",
                               choices=list(THINK_FORMATS))
