"""prefs: preference pairs (delta learning, best-vs-worst) and rejection-sampled SFT data, built on
distill_data's generation layer, ledger and verifiers. Run: `wb prefs PROMPTS --output DIR ...`."""
