"""SmolLM2 through `wb serve` (chat template, stop at <|im_end|>, token counts) and `wb eval` in-process
(`--backend hf`) against the same model served over HTTP: identical greedy completions."""

from __future__ import annotations

import json
import urllib.request

import polars as pl
import pytest

from workbench.cli import main
from workbench.rundir import read_manifest

pytestmark = pytest.mark.real
TEMPLATE_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


def _chat(url: str, messages: list[dict], **params) -> dict:
    body = json.dumps({"model": "smollm2", "messages": messages, **params}).encode()
    request = urllib.request.Request(url + "/chat/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as resp:
        return json.loads(resp.read())


def test_serve_applies_the_chat_template_and_stops_at_im_end(smollm2_server, smollm2_tokenizer):
    url, log = smollm2_server
    assert "(float32, 1 threads on cpu)" in log.read_text()  # --dtype auto on CPU, --threads 1
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]
    out = _chat(url, messages, max_tokens=48, temperature=0)
    choice, usage = out["choices"][0], out["usage"]
    text = choice["message"]["content"]
    assert choice["finish_reason"] == "stop" and "Paris" in text
    assert not any(t in text for t in TEMPLATE_TOKENS) and not text.startswith("assistant")
    prompt_ids = smollm2_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                       return_dict=False)
    assert usage["prompt_tokens"] == len(prompt_ids)
    # the answer's tokens plus the <|im_end|> that ended it
    assert usage["completion_tokens"] == len(smollm2_tokenizer.encode(text, add_special_tokens=False)) + 1


def test_serve_stop_string_ends_the_answer_before_it(smollm2_server):
    url, _ = smollm2_server
    messages = [{"role": "user", "content": "List the numbers from 1 to 10, separated by commas."}]
    full = _chat(url, messages, max_tokens=40, temperature=0)["choices"][0]["message"]["content"]
    assert "5" in full
    cut = _chat(url, messages, max_tokens=40, temperature=0, stop=["5"])["choices"][0]
    assert cut["finish_reason"] == "stop" and cut["message"]["content"] == full[:full.index("5")]


def test_eval_in_process_and_through_serve_give_identical_completions(smollm2_dir, smollm2_server, tmp_path):
    url, _ = smollm2_server
    common = ["--benchmark", "gsm8k", "--limit", "2", "--max-tokens", "24", "--max-concurrency", "1",
              "--progress-seconds", "0"]
    assert main(["eval", "--model", str(smollm2_dir), "--backend", "hf", "--threads", "1", *common,
                 "--output", str(tmp_path / "hf")]) == 0
    assert main(["eval", "--model", "smollm2", "--base-url", url, *common, "--output", str(tmp_path / "served")]) == 0
    hf, served = (pl.read_parquet(tmp_path / d / "data.parquet").sort("item_id") for d in ("hf", "served"))
    assert hf.height == served.height == 2
    assert hf["content"].to_list() == served["content"].to_list()
    assert all(hf["content"].str.len_chars() > 0)
    assert hf["completion_tokens"].to_list() == served["completion_tokens"].to_list()
    manifest = read_manifest(tmp_path / "hf")
    assert manifest["config"]["dtype"] == "auto" and manifest["config"]["threads"] == 1
    assert manifest["runtime"] == [{"model": str(smollm2_dir), "dtype": "float32", "threads": 1, "device": "cpu"}]
    assert read_manifest(tmp_path / "served")["runtime"] == []  # the server loaded it, not this run
