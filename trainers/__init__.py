"""Bundled trainers: the training core, SFT, DPO, the GRPO family, and the small LM loop RegMix proxies use.

- `client.TrainingClient`: `forward_backward`, `optim_step`, `sample`, `compute_logprobs`, `save_state`.
- `losses`: the losses as pure tensor functions, each with its formula and normalisation.
- `render` turns records into token ids and loss masks; `collate` lays them out (padded, padding-free,
  packed); `sft` and `dpo` are the loops behind `wb train sft` and `wb train dpo`; `lm` is the byte-level
  proxy LM loop RegMix uses.

Importing `trainers` imports no torch; the submodules that need it import it themselves.
"""
