"""A local service that speaks Tinker's API over the training core, metered per token.

    protocol.py  wire formats (protobuf bodies and results, tinker:// paths)
    futures.py   futures and the worker that runs each model's requests in seq_id order
    losses.py    cross_entropy, importance_sampling, ppo, cispo, dro (sums, as in Tinker)
    engine.py    the base model, one LoRA adapter + optimiser per client, samplers, checkpoints
    sampling.py  SamplingParams on transformers' generate: seeds, stop tokens/strings, raw log-probs
    metering.py  requests and prefill/sampled/trained tokens per session and model; prices; budget
    server.py    the Starlette routes and `serve` (`wb tinker serve`)
    usage.py     `wb tinker usage`: a running service's usage as a table
"""
