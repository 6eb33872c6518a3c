"""Bundled trainers: the training core, SFT, DPO, the GRPO family, and the small LM loop RegMix proxies use."""
