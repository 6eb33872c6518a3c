"""`wb serve` over the tiny model: the OpenAI API surface, batching, and `wb distill` against it."""

from __future__ import annotations

import asyncio

import openai
import polars as pl
import pytest

from distill_data.config import DistillConfig
from distill_data.pipeline import distill
from llm.serve import BadRequest, parse_request
from tests.distill_data.distill_helpers import write_prompts


def test_models_and_chat_surface(serve_url):
    client = openai.OpenAI(base_url=serve_url, api_key="x", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny"]
    messages = [{"role": "user", "content": "hello there"}]
    r = client.chat.completions.create(model="tiny", messages=messages, n=3, temperature=1.0, top_p=0.9,
                                       max_tokens=6, seed=7, logprobs=True)
    assert len(r.choices) == 3 and [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.finish_reason in ("stop", "length") for c in r.choices)
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 18
    for c in r.choices:
        assert c.logprobs is not None and all(t.logprob <= 0 for t in c.logprobs.content)
    again = client.chat.completions.create(model="tiny", messages=messages, n=3, temperature=1.0, top_p=0.9,
                                           max_tokens=6, seed=7)
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]  # seeded
    greedy = client.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=4)
    assert greedy.choices[0].finish_reason == "length" and greedy.usage.completion_tokens == 4
    text = greedy.choices[0].message.content
    stop = text[len(text) // 2:] or text
    cut = client.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=4, stop=[stop])
    assert cut.choices[0].finish_reason == "stop" and stop not in cut.choices[0].message.content
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[], max_tokens=4)


def test_concurrent_requests_are_batched(tiny_model_dir):
    from llm.batcher import Batcher, GenRequest
    from llm.local_engine import LocalEngine

    engine = LocalEngine(tiny_model_dir)
    sizes: list[int] = []

    def spy(requests):
        sizes.append(len(requests))
        return engine.generate_batch(requests)

    async def main():
        batcher = Batcher(spy, max_batch=16, wait_seconds=0.05)
        from llm.backends.base import SamplingParams

        params = SamplingParams(temperature=0, max_tokens=3)
        out = await asyncio.gather(*(batcher.submit(GenRequest([{"role": "user", "content": f"q{i}"}], 1, params))
                                     for i in range(6)))
        await batcher.aclose()
        return out

    results = asyncio.run(main())
    assert len(results) == 6 and max(sizes) > 1 and sum(sizes) == 6


def test_parse_request_rejects_bad_fields():
    with pytest.raises(BadRequest, match="n"):
        parse_request({"messages": [{"role": "user", "content": "x"}], "n": 0})
    with pytest.raises(BadRequest, match="top_p"):
        parse_request({"messages": [{"role": "user", "content": "x"}], "top_p": 0})
    messages, n, params = parse_request({"messages": [{"role": "user", "content": "x"}], "stop": "END"})
    assert n == 1 and params.stop == ("END",)


def test_distill_against_wb_serve_with_n(tmp_path, serve_url):
    src = write_prompts(tmp_path / "p.jsonl", [[{"role": "user", "content": "What is 2+2?"}], [{"role": "user", "content": "Say hi"}]])
    cfg = DistillConfig(prompts=src, output=str(tmp_path / "run"), model="tiny", base_url=[serve_url], n=3,
                        max_tokens=5, temperature=1.0, seed=1, progress_seconds=0, price_in=1.0, price_out=2.0)
    manifest = distill(cfg)
    df = pl.read_parquet(tmp_path / "run" / "data.parquet")
    assert df.height == 6 and sorted(df["sample_index"].to_list()) == [0, 0, 1, 1, 2, 2]
    assert set(df["status"]) <= {"ok", "truncated"} and df["completion_tokens"].sum() > 0
    assert (df.filter(pl.col("finish_reason") == "length")["status"] == "truncated").all()
    usage = manifest["usage"]
    assert usage["requests"] == 2  # native n: one request per prompt
    assert usage["cost_usd"] == pytest.approx((usage["prefill_tokens"] + 2 * usage["sampled_tokens"]) / 1e6)


def test_hf_backend_in_process(tmp_path, tiny_model_dir):
    src = write_prompts(tmp_path / "p.jsonl", ["one", "two", "three"])
    cfg = DistillConfig(prompts=src, output=str(tmp_path / "run"), model=str(tiny_model_dir), backend="hf", n=2,
                        max_tokens=4, temperature=0.0, progress_seconds=0)
    manifest = distill(cfg)
    df = pl.read_parquet(tmp_path / "run" / "data.parquet")
    assert df.height == 6 and manifest["status_counts"]["failed"] == 0
    assert (df["completion_tokens"] <= 4).all()


def test_completions_endpoint_scores_prompts_only(serve_url, tiny_tokenizer):
    from llm.serve import parse_scoring_request

    client = openai.OpenAI(base_url=serve_url, api_key="x", max_retries=0)
    ids = tiny_tokenizer("hello there friend")["input_ids"]
    r = client.completions.create(model="tiny", prompt=ids, max_tokens=1, echo=True, logprobs=0)
    lp = r.choices[0].logprobs.token_logprobs
    assert len(lp) == len(ids) + 1 and lp[0] is None and all(v <= 0 for v in lp[1:])
    assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == 1
    text = client.completions.create(model="tiny", prompt="hello there friend", max_tokens=0, echo=True, logprobs=0)
    assert text.choices[0].logprobs.token_logprobs[1:] == pytest.approx(lp[1:len(ids)], abs=1e-5)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt=ids, max_tokens=5)
    for body, message in [({"prompt": ids, "logprobs": 0}, "echo=true"),
                          ({"prompt": [], "echo": True, "logprobs": 0}, "non-empty"),
                          ({"prompt": ids, "echo": True, "logprobs": 0, "max_tokens": 3}, "0 or 1")]:
        with pytest.raises(BadRequest, match=message):
            parse_scoring_request(body, tiny_tokenizer)
