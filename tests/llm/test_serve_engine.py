"""`wb serve`'s engine: stop strings end generation, every EOS id stops, exact per-choice usage over HTTP,
continuous batching (a short request passes a long one; a large `n` is split by max_batch)."""

from __future__ import annotations

import asyncio
import json
import shutil

import httpx
import pytest

from llm.backends.base import SamplingParams
from llm.batcher import ContinuousBatcher, GenRequest

HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from llm.local_engine import LocalEngine

    return LocalEngine(tiny_model_dir)


def _tokens(engine, seed: int, max_tokens: int = 12) -> list[int]:
    """The token ids of one seeded sample (seeded samples do not depend on what else runs)."""
    (c,) = engine.generate_batch([GenRequest(HELLO, 1, SamplingParams(temperature=1.0, max_tokens=max_tokens,
                                                                        seed=seed, logprobs=True))])
    return [e["token_id"] for e in c.choices[0].logprobs]


@pytest.fixture(scope="module")
def two_eos(tiny_model_dir, tmp_path_factory, engine):
    """A copy of the tiny model whose generation_config lists two EOS ids, X and Y: the sample of seed `a`
    meets X at position 2 (before any Y), the sample of seed `b` meets Y at position 3 (before any X)."""
    for a in range(40):
        ta, tb = _tokens(engine, a), _tokens(engine, a + 100)
        x, y = ta[2], tb[3]
        if x != y and x not in ta[:2] and y not in ta[:3] and x not in tb[:4] and y not in tb[:3]:
            break
    else:
        pytest.fail("no two seeds with distinct early tokens")
    path = tmp_path_factory.mktemp("two-eos") / "tiny-two-eos"
    shutil.copytree(tiny_model_dir, path)
    config = json.loads((path / "generation_config.json").read_text())
    config["eos_token_id"] = [x, y]
    (path / "generation_config.json").write_text(json.dumps(config))
    return path, (a, x, ta), (a + 100, y, tb)


def _chat(url: str, **body) -> dict:
    r = httpx.post(f"{url}/chat/completions", json={"model": "tiny", "messages": HELLO, **body}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_stop_string_ends_generation_and_only_returned_tokens_count(serve_url, engine):
    full = _chat(serve_url, max_tokens=16, temperature=1.0, seed=11, logprobs=True)["choices"][0]
    ids = [e["token_id"] for e in full["logprobs"]["content"]]
    decode = engine.tokenizer.decode
    # the stop string is token k's text, found nowhere before it: generation must end at token k
    k = next(k for k in range(2, len(ids)) if decode([ids[k]]).strip()
             and decode(ids).find(decode([ids[k]])) == len(decode(ids[:k])))
    stop = decode([ids[k]])
    cut = _chat(serve_url, max_tokens=16, temperature=1.0, seed=11, logprobs=True, stop=[stop])
    choice = cut["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] == decode(ids[:k])
    assert cut["usage"]["completion_tokens"] == k == len(choice["logprobs"]["content"]) < len(ids) == 16
    assert choice["usage"]["completion_tokens"] == k
    assert [e["token_id"] for e in choice["logprobs"]["content"]] == ids[:k]


def test_every_eos_id_of_the_generation_config_stops(two_eos):
    from llm.local_engine import LocalEngine

    path, (seed_a, x, ta), (seed_b, y, tb) = two_eos
    engine = LocalEngine(path)
    assert {x, y} <= engine.eos_ids
    out = engine.generate_batch([GenRequest(HELLO, 1, SamplingParams(temperature=1.0, max_tokens=12, seed=s,
                                                                    logprobs=True)) for s in (seed_a, seed_b)])
    for completion, tokens, at in ((out[0], ta, 3), (out[1], tb, 4)):
        (c,) = completion.choices
        assert c.finish_reason == "stop" and c.completion_tokens == at  # the EOS counted, nothing after it
        assert [e["token_id"] for e in c.logprobs] == tokens[:at]
        assert c.content == engine.tokenizer.decode(tokens[:at - 1], skip_special_tokens=True)


def test_trainer_sampling_and_tinker_sampling_stop_at_every_eos_id(two_eos):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainers.client import ClientConfig, TrainingClient
    from trainers.tinker_service.sampling import generate

    path, (_, x, _), (_, y, _) = two_eos
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    prompt = tokenizer.apply_chat_template(HELLO, add_generation_prompt=True, tokenize=True, return_dict=False)
    client = TrainingClient(model, tokenizer, ClientConfig(model=str(path)))
    assert {x, y, tokenizer.eos_token_id} == client.eos_ids
    torch.manual_seed(0)
    samples = client.sample([list(prompt)], n=24, max_new_tokens=10, temperature=1.0)
    ends = {s.tokens[-1] for s in samples if len(s.tokens) < 10}
    assert ends and ends <= {x, y, tokenizer.eos_token_id}
    for s in samples:  # nothing after the first EOS of any kind
        assert not set(s.tokens[:-1]) & client.eos_ids and len(s.logprobs) == len(s.tokens)
    seqs = generate(model, tokenizer, list(prompt), 24, {"temperature": 1.0, "max_tokens": 10, "seed": 0}, 512,
                    torch.device("cpu"))
    stopped = [s for s in seqs if s.stopped]
    assert stopped and all(s.tokens[-1] in {x, y, tokenizer.eos_token_id} for s in stopped)
    assert all(not set(s.tokens[:-1]) & {x, y} for s in seqs)


def test_per_choice_usage_over_http_is_each_samples_count(two_eos):
    from llm.backends.openai_http import OpenAIBackend
    from llm.local_engine import LocalEngine
    from llm.serve import ServerThread, build_app

    path = two_eos[0]
    thread = ServerThread(build_app(LocalEngine(path), "tiny", max_batch=8))
    url = thread.start()
    try:
        raw = _chat(url, n=4, max_tokens=12, temperature=1.0, seed=5, logprobs=True)
        counts = [len(c["logprobs"]["content"]) for c in raw["choices"]]
        assert [c["usage"]["completion_tokens"] for c in raw["choices"]] == counts
        assert raw["usage"]["completion_tokens"] == sum(counts)

        async def ask():
            backend = OpenAIBackend(url, "tiny")
            try:
                return await backend.chat(HELLO, 4, SamplingParams(temperature=1.0, max_tokens=12, seed=5))
            finally:
                await backend.aclose()

        completion = asyncio.run(ask())
    finally:
        thread.stop()
    assert [c.completion_tokens for c in completion.choices] == counts
    assert not any(c.tokens_estimated for c in completion.choices)
    assert len(set(counts)) > 1  # the samples differ in length, so an even split would be wrong


class Spy:
    """A LocalEngine that records how many samples run after each admission."""

    def __init__(self, engine):
        self.engine = engine
        self.widths: list[int] = []

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def admit(self, picks: list) -> None:
        self.engine.admit(picks)
        self.widths.append(self.engine.running)


def test_a_short_request_passes_a_long_one_and_a_large_n_is_split(engine):
    spy = Spy(engine)
    order: list[str] = []

    async def main():
        batcher = ContinuousBatcher(spy, max_batch=4)

        async def run(tag: str, n: int, max_tokens: int):
            out = await batcher.submit(GenRequest(HELLO, n, SamplingParams(temperature=0, max_tokens=max_tokens)))
            order.append(tag)
            return out

        long = asyncio.create_task(run("long", 10, 200))
        for _ in range(2000):  # bounded: until the long request runs
            if engine.running:
                break
            await asyncio.sleep(0.005)
        short = await run("short", 1, 3)
        result = await long
        await batcher.aclose()
        return short, result

    short, long = asyncio.run(main())
    assert order == ["short", "long"]
    assert len(long.choices) == 10 and all(c.completion_tokens == 200 for c in long.choices)
    assert short.choices[0].completion_tokens == 3
    assert max(spy.widths) == 4  # n=10 never ran wider than max_batch


def test_a_weight_load_waits_for_started_requests_and_new_ones_wait_for_it(tiny_model_dir, tmp_path):
    import threading

    import torch

    from llm.local_engine import LocalEngine
    from llm.weight_updates import VersionedEngine

    versioned = VersionedEngine(LocalEngine(tiny_model_dir), tmp_path)
    weights = tmp_path / "w.pt"
    torch.save({k: v + 0.01 for k, v in versioned.engine.model.state_dict().items()}, weights)

    async def main():
        batcher = ContinuousBatcher(versioned, max_batch=4)
        greedy = SamplingParams(temperature=0, max_tokens=120)
        long = asyncio.create_task(batcher.submit(GenRequest(HELLO, 6, greedy)))  # 6 > max_batch: split
        for _ in range(2000):  # bounded: until the long request runs
            if versioned.engine.running:
                break
            await asyncio.sleep(0.005)
        loader = threading.Thread(target=versioned.load, args=(str(weights), 1))
        loader.start()
        for _ in range(2000):  # bounded: until the load waits
            if versioned._loading:
                break
            await asyncio.sleep(0.005)
        short = await batcher.submit(GenRequest(HELLO, 1, SamplingParams(temperature=0, max_tokens=2)))
        first = await long
        await asyncio.to_thread(loader.join, 60)
        await batcher.aclose()
        return first, short

    first, short = asyncio.run(main())
    assert first.extra["weight_version"] == 0 and len(first.choices) == 6  # all six samples on the old weights
    assert short.extra["weight_version"] == 1 and versioned.version == 1
