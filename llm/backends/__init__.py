"""Generation backends: OpenAI-compatible HTTP, in-process transformers, in-process vLLM (extra)."""
