"""Sampling for the service: Tinker's SamplingParams on `transformers.generate`.

Stops are token ids or strings (every EOS id of the model's generation config and the tokenizer always stops); the stop token stays in the sequence,
as Tinker returns it. Log-probs are the raw model's (before temperature or top-p/top-k), which is what
importance sampling against the trainer's log-probs needs at temperature 1. A `seed` makes a request
reproducible without disturbing the generator state other requests draw from.
"""

from __future__ import annotations

import torch

from llm.eos import eos_ids
from trainers.tinker_service.protocol import RequestError, Sequence


def _number(params: dict, name: str, default, kind: type):
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise RequestError(f"sampling_params.{name} must be a number, got {value!r}")
    return kind(value)


def generate(model, tokenizer, prompt: list[int], n: int, params: dict, max_context: int,
             device: torch.device) -> list[Sequence]:
    """`n` completions of `prompt` under Tinker's SamplingParams (temperature 0 = greedy); each keeps its
    stop token and its raw per-token log-probs; raise RequestError for parameters out of range."""
    room = max_context - len(prompt)
    temperature = _number(params, "temperature", 1.0, float)
    top_p = _number(params, "top_p", 1.0, float)
    top_k = _number(params, "top_k", -1, int)
    max_tokens = _number(params, "max_tokens", room, int)
    if temperature < 0 or not 0 < top_p <= 1:
        raise RequestError(f"sampling_params: temperature must be >= 0 and top_p in (0, 1]; got {temperature}, {top_p}")
    if max_tokens < 1 or max_tokens > room:
        raise RequestError(f"sampling_params.max_tokens must be in [1, {room}] for a {len(prompt)}-token prompt "
                           f"(context {max_context}); got {max_tokens}")
    stop = params.get("stop") or []
    stop = [stop] if isinstance(stop, str | int) else list(stop)
    stop_ids = {int(s) for s in stop if isinstance(s, int)} | eos_ids(getattr(model, "generation_config", None),
                                                                      tokenizer)
    stop_strs = [s for s in stop if isinstance(s, str) and s]
    kwargs = dict(max_new_tokens=max_tokens, eos_token_id=sorted(stop_ids),
                  pad_token_id=tokenizer.pad_token_id, return_dict_in_generate=True, output_logits=True)
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k if top_k > 0 else 0)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if stop_strs:
        kwargs.update(stop_strings=stop_strs, tokenizer=tokenizer)
    ids = torch.tensor([prompt] * n, device=device)  # n rows, not num_return_sequences: greedy allows that
    seeded = params.get("seed") is not None
    # a seeded request draws from its own generator state; the others advance the shared one
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], enabled=seeded):
        if seeded:
            torch.manual_seed(int(params["seed"]))
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    new = out.sequences[:, len(prompt):]
    # raw per-token log-probs: the model's distribution, before temperature or top-p/top-k
    logps = torch.log_softmax(torch.stack(out.logits, 1).float(), -1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
    result = []
    for j in range(new.shape[0]):
        toks = new[j].tolist()
        end, stopped = len(toks), False
        for k, t in enumerate(toks):
            if t in stop_ids or (stop_strs and any(s in tokenizer.decode(toks[:k + 1]) for s in stop_strs)):
                end, stopped = k + 1, True
                break
        result.append(Sequence(toks[:end], logps[j, :end].tolist(), stopped))
    return result
