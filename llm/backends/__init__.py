"""Generation backends: OpenAI-compatible HTTP, a provider's batch API, in-process transformers, in-process vLLM (extra)."""
