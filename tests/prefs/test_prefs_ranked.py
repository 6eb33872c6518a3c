"""best-vs-worst and rejection sampling from a scripted server: scoring by verifier, judge rubric and a
reward model; ties, too few candidates, and the verifier overruling a judge."""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest
from prefs_helpers import fast_config, write_questions

from prefs.pipeline import make_pairs
from prefs.scoring import parse_score
from workbench.errors import InputError
from workbench.io import open_source
from workbench.schemas import detect_kind, validate_tables


def rows(run) -> tuple[dict, dict]:
    """(kept rows by question, removed rows by question)."""
    def by_question(table):
        return {r["prompt"][0]["content"] if "prompt" in r else r["messages"][0]["content"]: r
                for r in table.to_pylist()}
    return by_question(pq.read_table(run / "data.parquet")), by_question(pq.read_table(run / "removed.parquet"))


def test_best_vs_worst_by_verifier_one_and_two_models(tmp_path, scripted):
    s = scripted.scripts
    s.set("strong", "b-mixed", "[replies:#### 4|#### 5|#### 6|#### 4 again]")
    s.set("strong", "b-all-right", "[replies:#### 4|=4 #### 4]")
    s.set("strong", "b-truncated", "[length]")
    src = write_questions(tmp_path / "q.jsonl", ["b-mixed", "b-all-right", "b-truncated"])
    manifest = make_pairs(fast_config(src, tmp_path / "one", scripted.url, strategy="best-vs-worst", n=4,
                                       temperature=1.0, verify="math", weak_model=None))
    kept, removed = rows(tmp_path / "one")
    pair = kept["b-mixed"]
    assert (pair["chosen"][0]["content"], pair["rejected"][0]["content"]) == ("#### 4", "#### 5")
    assert (pair["chosen_sample"], pair["rejected_sample"], pair["chosen_score"], pair["rejected_score"]) == (0, 1, 1.0, 0.0)
    assert pair["chosen_model"] == pair["rejected_model"] == "strong" and pair["verdict"] == "chosen_correct"
    assert {q: r["reason"] for q, r in removed.items()} == {"b-all-right": "tied_scores",
                                                              "b-truncated": "too_few_candidates"}
    assert manifest["pair_stats"]["dropped"] == {"tied_scores": 1, "too_few_candidates": 1}
    assert manifest["scorer"] == "verifier" and list(manifest["models"]) == ["strong"]

    s.set("strong", "b-pool", "[replies:#### 5|#### 6]")
    s.set("weak", "b-pool", "[replies:#### 9|#### 4]")
    src = write_questions(tmp_path / "p.jsonl", ["b-pool"])
    make_pairs(fast_config(src, tmp_path / "two", scripted.url, strategy="best-vs-worst", n=2, verify="math"))
    pair = rows(tmp_path / "two")[0]["b-pool"]  # the weak model's correct sample beats the strong model's
    assert (pair["chosen_model"], pair["chosen_sample"], pair["rejected_model"], pair["rejected_sample"]) == (
        "weak", 1, "strong", 0)


def judge_script(text: str, request: dict) -> str:
    """The judge scores a response `rK ...` with K; anything else gets no score line."""
    if request.get("model") != "judge":
        return text
    response = re.search(r"Response:\n(.*?)\n\nRate", text, re.DOTALL).group(1)
    found = re.match(r"r(\d+)", response)
    return f"[reply:fine. SCORE: {found.group(1)}]" if found else "[reply:no idea]"


def test_best_vs_worst_by_judge_and_verifier_swap(tmp_path, scripted):
    s = scripted.scripts
    s.set("strong", "j-1", "[replies:r3 #### 4|r8 #### 4|r1 #### 4|unscored]")
    s.set("strong", "j-2", "[replies:r9 #### 7|r2 #### 4]")  # the judge prefers the wrong answer
    s.set("strong", "j-3", "[replies:r5 a|r5 b]")
    previous, scripted.script = scripted.script, lambda text, req: judge_script(s(text, req), req)
    try:
        src = write_questions(tmp_path / "q.jsonl", ["j-1", "j-2", "j-3"])
        manifest = make_pairs(fast_config(src, tmp_path / "run", scripted.url, strategy="best-vs-worst", n=4,
                                           temperature=1.0, weak_model=None, score="judge", judge_model="judge",
                                           verify="math"))
        before = sum(scripted.counts.values())
        make_pairs(fast_config(src, tmp_path / "run", scripted.url, strategy="best-vs-worst", n=4,
                                temperature=1.0, weak_model=None, score="judge", judge_model="judge", verify="math"))
        assert sum(scripted.counts.values()) == before  # generation and judge scores both resumed from the ledger
    finally:
        scripted.script = previous
    kept, removed = rows(tmp_path / "run")
    assert (kept["j-1"]["chosen"][0]["content"], kept["j-1"]["rejected"][0]["content"]) == ("r8 #### 4", "r1 #### 4")
    assert (kept["j-1"]["chosen_score"], kept["j-1"]["rejected_score"], kept["j-1"]["verdict"]) == (8.0, 1.0,
                                                                                                    "both_correct")
    assert kept["j-2"]["chosen"][0]["content"] == "r2 #### 4" and kept["j-2"]["verdict"] == "swapped"
    assert kept["j-2"]["chosen_score"] == 2.0  # swapped sides keep their own scores
    assert removed["j-3"]["reason"] == "tied_scores"
    assert manifest["scorer"] == "judge" and manifest["pair_stats"]["verifier"]["counts"]["swapped"] == 1
    assert parse_score("x SCORE: 11") is None and parse_score("SCORE: 3\nSCORE: 7.5") == 7.5


@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory, tiny_tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(3)
    config = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, num_labels=1,
                         pad_token_id=tiny_tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("rm") / "tiny-rm"
    LlamaForSequenceClassification(config).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


def test_best_vs_worst_by_reward_model(tmp_path, scripted, reward_model_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    replies = ["the answer is four", "4", "I think it might be 5, or maybe 6 after all", "#### 4"]
    scripted.scripts.set("strong", "rm-1", f"[replies:{'|'.join(replies)}]")
    src = write_questions(tmp_path / "q.jsonl", ["rm-1"])
    manifest = make_pairs(fast_config(src, tmp_path / "run", scripted.url, strategy="best-vs-worst", n=4,
                                       temperature=1.0, weak_model=None, score="reward-model",
                                       reward_model=str(reward_model_dir), reward_batch_size=3))
    tok = AutoTokenizer.from_pretrained(reward_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(reward_model_dir).eval()
    expected = []
    for reply in replies:  # one at a time: no padding, so the batched scores must match these
        text = tok.apply_chat_template([{"role": "user", "content": "rm-1"}, {"role": "assistant", "content": reply}],
                                       tokenize=False)
        with torch.no_grad():
            expected.append(float(model(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0, 0]))
    pair = rows(tmp_path / "run")[0]["rm-1"]
    best, worst = max(range(4), key=expected.__getitem__), min(range(4), key=expected.__getitem__)
    assert (pair["chosen_sample"], pair["rejected_sample"]) == (best, worst)
    assert pair["chosen_score"] == pytest.approx(expected[best], abs=1e-4)
    assert pair["rejected_score"] == pytest.approx(expected[worst], abs=1e-4)
    assert manifest["scorer"] == "reward-model"

    from transformers import AutoConfig, LlamaForSequenceClassification

    config = AutoConfig.from_pretrained(reward_model_dir)
    config.num_labels = 2
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm2")
    tok.save_pretrained(tmp_path / "rm2")
    with pytest.raises(InputError, match="one output label, got num_labels=2"):
        make_pairs(fast_config(src, tmp_path / "bad", scripted.url, strategy="best-vs-worst", n=4,
                                weak_model=None, score="reward-model", reward_model=str(tmp_path / "rm2")))


def test_rejection_sampling_keeps_best_of_k_as_sft(tmp_path, scripted):
    s = scripted.scripts
    s.set("strong", "rs-1", "[replies:#### 5|#### 4|so #### 4]")
    s.set("strong", "rs-2", "[replies:#### 5|#### 6|#### 7]")
    s.set("strong", "rs-3", "[400]")
    s.set("weak", "rs-2", "[replies:=#### 4]")
    src = write_questions(tmp_path / "q.jsonl", ["rs-1", "rs-2", "rs-3"])
    manifest = make_pairs(fast_config(src, tmp_path / "run", scripted.url, strategy="rejection-sampling", n=3,
                                       temperature=1.0, verify="math", weak_model=None))
    kept, removed = rows(tmp_path / "run")
    assert kept["rs-1"]["messages"] == [{"role": "user", "content": "rs-1"}, {"role": "assistant", "content": "#### 4"}]
    assert (kept["rs-1"]["sample_index"], kept["rs-1"]["score"], kept["rs-1"]["model"]) == (1, 1.0, "strong")
    assert {q: r["reason"] for q, r in removed.items()} == {"rs-2": "best_wrong", "rs-3": "no_candidates"}
    source = open_source(tmp_path / "run")
    assert detect_kind(source.schema()) == "sft" and validate_tables(source.iter_rows_with_file(), "sft") == 1
    assert manifest["kind"] == "sft" and manifest["pair_stats"]["lengths"]["chosen"]["tokens"]["count"] == 1

    # With a second model in the pool, its correct sample is the best of K.
    make_pairs(fast_config(src, tmp_path / "pool", scripted.url, strategy="rejection-sampling", n=3,
                            temperature=1.0, verify="math", limit=2))
    kept, _ = rows(tmp_path / "pool")
    assert kept["rs-2"]["model"] == "weak" and kept["rs-2"]["messages"][1]["content"] == "=#### 4"
    with pytest.raises(InputError, match="needs --verify"):
        make_pairs(fast_config(src, tmp_path / "x", scripted.url, strategy="rejection-sampling"))


def test_delta_with_an_llm_judge_as_verifier(tmp_path, scripted):
    s = scripted.scripts
    s.set("strong", "v-1", "[reply:#### 9]")
    s.set("weak", "v-1", "[reply:it is #### 4]")

    def verdicts(text: str, request: dict) -> str:
        if request.get("model") != "judge":
            return s(text, request)
        response = re.search(r"Response:\n(.*?)\n\nJudge", text, re.DOTALL).group(1)
        return "[reply:VERDICT: CORRECT]" if "#### 4" in response else "[reply:VERDICT: INCORRECT]"

    previous, scripted.script = scripted.script, verdicts
    try:
        src = write_questions(tmp_path / "q.jsonl", ["v-1"])
        make_pairs(fast_config(src, tmp_path / "run", scripted.url, verify="judge", judge_model="judge"))
    finally:
        scripted.script = previous
    pair = rows(tmp_path / "run")[0]["v-1"]
    assert (pair["chosen_model"], pair["verdict"], pair["chosen_verified"]) == ("weak", "swapped", True)
