"""Bundled trainers: the training core, SFT, DPO, the RL core with the GRPO family and on-policy distillation.

- `client.TrainingClient`: `forward_backward`, `optim_step`, `sample`, `compute_logprobs`, `save_state`.
- `losses`: the losses as pure tensor functions, each with its formula and normalisation.
- `tinker_service`: `wb tinker serve`, the core behind Tinker's HTTP API, metered per token.
- `render` turns records into token ids and loss masks; `collate` lays them out (padded, padding-free,
  packed); `sft` and `dpo` are the loops behind `wb train sft` and `wb train dpo`.
- `rl`: the RL core (options, items, one policy step, the step loop) that the recipes `grpo` (the GRPO
  family) and `opd` (on-policy distillation) are built on.

Importing `trainers` imports no torch; the submodules that need it import it themselves.
"""

# Python API: `from trainers import train_sft, train_dpo, train_grpo, train_opd` and their configs (loaded on
# first use, so importing `trainers` still imports no torch).
from workbench.lazy import lazy_exports  # noqa: E402

_API = {"train_sft": "trainers.sft", "SFTConfig": "trainers.sft", "train_dpo": "trainers.dpo",
        "DPOConfig": "trainers.dpo", "train_grpo": "trainers.grpo", "GRPOConfig": "trainers.grpo",
        "train_opd": "trainers.opd", "OPDConfig": "trainers.opd",
        "serve_tinker": "trainers.tinker_service.server", "TinkerServeConfig": "trainers.tinker_service.server"}
__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)
