"""Post-training filters on planted rows: each keeps the good row and drops the broken one with its reason,
on plain columns and on `messages` rows; and on GSM8K with planted broken variants, nothing clean goes."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.filters import build_filters
from curate.filters.degenerate_repetition import tail_loop
from curate.planted import CONTROLS, TARGETS, plant
from workbench.errors import InputError
from workbench.workspace import bundled_data_dir

QUESTION = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
            "How many clips did Natalia sell altogether in April and May?")
ANSWER = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether "
          "in April and May.\n#### 72")
LOOP = ANSWER.replace("\n#### 72", " Wait, let me check the total again." * 8 + " Wait, let me")
FRENCH = ("Résolvons ce problème étape par étape. D'abord, nous calculons combien de pinces Natalia a vendues en "
          "mai, puis nous additionnons les deux mois. La réponse finale est donc 72.\n#### 72")


def decide(name: str, rows: list[dict], fields: list[str], **settings) -> list:
    """(reason or None) per row after running one filter over a table of `rows`."""
    (step,) = build_filters([name], {name: settings} if settings else {}, fields)
    table = pa.Table.from_pylist([{"id": str(i), **r} for i, r in enumerate(rows)])
    kept, removed = step.process(table)
    reasons = dict(zip(removed["id"].to_pylist(), removed["reason"].to_pylist(), strict=True)) if removed else {}
    assert kept.num_rows + len(reasons) == table.num_rows
    return [reasons.get(str(i)) for i in range(len(rows))]


def qa(answer: str, question: str = QUESTION) -> dict:
    return {"question": question, "answer": answer}


@pytest.mark.parametrize("name,settings,bad,reason", [
    ("degenerate_repetition", {}, LOOP, "degenerate_repetition:ngram_loop"),
    ("degenerate_repetition", {}, ANSWER + "\n" + "\n".join(["Let me recompute: 48+24 = 72 clips."] * 40) + "\n#### 72",
     "degenerate_repetition:compression"),
    ("truncated_reasoning", {}, "<think>\nFirst, May is 48/2 = 24. Then the total", "truncated_reasoning:unclosed_think"),
    ("truncated_reasoning", {}, "<think>\nMay is 24, total 72.\n</think>\n  ", "truncated_reasoning:empty_answer"),
    ("truncated_reasoning", {"require_answer": ["gsm8k", "boxed"]}, ANSWER[:60], "truncated_reasoning:no_final_answer"),
    ("truncated_reasoning", {"require_answer": r"#### \d+"}, ANSWER.replace("72", "seventy-two"),
     "truncated_reasoning:no_final_answer"),
    ("refusal", {}, "I’m sorry, but I can’t help with that.", "refusal:refuses"),
    ("refusal", {}, "As an AI language model, I think: " + ANSWER, "refusal:boilerplate"),
    ("refusal", {"extra_phrases": ["not my job"]}, "That is not my job.", "refusal:refuses"),
    ("language_mismatch", {}, FRENCH, "language_mismatch:response_fr"),
    ("language_mismatch", {}, "我们先算五月卖了多少个夹子，然后把两个月的数量加起来。所以答案是七十二。", "language_mismatch:script_cjk"),
    ("code_syntax", {}, ANSWER + "\n```python\ndef total()\n    return 48 + 24\n```", "code_syntax:python"),
    ("code_syntax", {}, ANSWER + "\n```python\nprint(48 + 24)\n", "code_syntax:unclosed_fence"),
    ("turns", {}, "   ", "turns:empty_turn"),
    ("length_ratio", {}, "72", "length_ratio:low"),
    ("length_ratio", {"max_ratio": 2}, ANSWER + " " + " ".join(["Indeed."] * 80), "length_ratio:high"),
])
def test_filter_keeps_the_answer_and_drops_the_planted_row(name, settings, bad, reason):
    assert decide(name, [qa(ANSWER), qa(bad)], ["question", "answer"], **settings) == [None, reason]


def test_ngram_tail_finds_a_loop_cut_inside_its_unit():
    words = "so the answer is clear . but wait let me re check".split()
    assert tail_loop(["start", *words * 4, *words[:5]], 60) == (len(words), len(words) * 4 + 5)
    assert tail_loop("a b c d e f g h".split(), 60)[1] == 0


def test_a_loop_is_a_loop_with_or_without_surrounding_whitespace():
    loop = "very very important and " * 10  # issue 25: kept with the trailing space, dropped without
    variants = [loop, loop.strip(), "\n" + loop + "\n\n", "\t" + loop.strip()]
    assert decide("degenerate_repetition", [qa(v) for v in variants], ["question", "answer"]) == [
        "degenerate_repetition:ngram_loop"] * 4


def test_a_refusal_late_in_a_long_answer_and_good_code_are_kept():
    late = ANSWER + " " + "More detail follows here. " * 30 + "I cannot provide a proof, but the total is 72."
    doctest = "```python\n>>> 48 + 24\n72\n```\n```\nnot python: {\n```\n#### 72"
    assert decide("refusal", [qa(late)], ["question", "answer"]) == [None]
    assert decide("code_syntax", [qa(doctest)], ["question", "answer"]) == [None]
    assert decide("code_syntax", [qa(doctest)], ["question", "answer"], untagged=True) == ["code_syntax:python"]


def test_finish_reason_length_from_the_ledger_is_truncated():
    rows = [{"prompt": QUESTION, "content": ANSWER, "finish_reason": r} for r in ("stop", "length", None)]
    assert decide("truncated_reasoning", rows, ["prompt", "content"]) == [None, "truncated_reasoning:finish_length", None]


def test_curate_sft_config_on_a_distill_run(tmp_path):
    """`wb distill`'s data.parquet: prompt as messages, reasoning and content apart, finish_reason."""
    from workbench.cli import main

    prompt = [{"role": "user", "content": QUESTION}]
    rows = [{"id": "ok", "prompt": prompt, "reasoning": "May is 24.", "content": ANSWER, "finish_reason": "stop"},
            {"id": "cut", "prompt": prompt, "reasoning": "May is 24. Then", "content": "", "finish_reason": "length"},
            {"id": "think", "prompt": prompt, "reasoning": "Long thought.", "content": " ", "finish_reason": "stop"},
            {"id": "loop", "prompt": prompt, "reasoning": None, "content": LOOP, "finish_reason": "stop"},
            {"id": "no", "prompt": prompt, "reasoning": None, "content": "I'm sorry, but I can't help with that.",
             "finish_reason": "stop"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "units.parquet")
    config = str(bundled_data_dir().parent / "configs" / "curate-sft.yaml")
    assert main(["curate", str(tmp_path / "units.parquet"), "--output", str(tmp_path / "out"), "--config", config,
                 "--no-dedup", "--no-decontam"]) == 0
    removed = pq.read_table(tmp_path / "out" / "removed.parquet")
    assert dict(zip(removed["id"].to_pylist(), removed["reason"].to_pylist(), strict=True)) == {
        "cut": "turns:empty_turn", "think": "turns:empty_turn", "loop": "truncated_reasoning:no_final_answer",
        "no": "truncated_reasoning:no_final_answer"}
    assert decide("truncated_reasoning", [{k: v for k, v in r.items() if k != "id"} for r in rows[1:3]],
                  ["prompt", "content"]) == [
        "truncated_reasoning:finish_length", "truncated_reasoning:empty_answer"]


def conversation(*turns: tuple[str, str]) -> dict:
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


def test_turns_on_messages_rows():
    good = conversation(("system", "Be brief."), ("user", QUESTION), ("assistant", ANSWER))
    tool = conversation(("user", "Time?"), ("assistant", "Calling clock."), ("tool", "12:00"), ("assistant", "Noon."))
    rows = [good, tool,
            conversation(("user", QUESTION), ("user", "again?"), ("assistant", ANSWER)),
            conversation(("user", QUESTION), ("assistant", "")),
            conversation(("user", QUESTION)),
            conversation(("user", QUESTION), ("robot", ANSWER)),
            conversation(),
            conversation(*[("user", "a"), ("assistant", "b")] * 3)]
    assert decide("turns", rows, ["messages"], max_turns=4) == [
        None, None, "turns:role_order", "turns:empty_turn", "turns:no_response", "turns:unknown_role",
        "turns:empty_turn", "turns:too_many"]
    assert decide("turns", rows[4:5], ["messages"], require_response=False, min_turns=1) == [None]


def test_messages_rows_check_the_response_not_the_prompt():
    quoting = conversation(("user", "My boss said 'I'm sorry, but I can't pay you.' What now?"),
                           ("assistant", "Ask for the payment in writing and keep a record of your hours."))
    refusing = conversation(("user", QUESTION), ("assistant", "I'm sorry, but I can't help with that."))
    french = conversation(("user", QUESTION), ("assistant", FRENCH))
    assert decide("refusal", [quoting, refusing], ["messages"]) == [None, "refusal:refuses"]
    assert decide("refusal", [quoting], ["messages.prompt"]) == ["refusal:refuses"]
    assert decide("language_mismatch", [french, conversation(("user", QUESTION), ("assistant", ANSWER))],
                  ["messages"]) == ["language_mismatch:response_fr", None]


def test_check_picks_the_prompt_or_both_sides():
    bad_code = "Fix this:\n```python\ndef f(:\n    pass\n```"
    row = conversation(("user", bad_code), ("assistant", "Add the missing parameter name."))
    assert decide("code_syntax", [row], ["messages"]) == [None]
    assert decide("code_syntax", [row], ["messages"], check="both") == ["code_syntax:python"]
    assert decide("code_syntax", [qa(ANSWER, question=bad_code)], ["question", "answer"], check="prompt") == [
        "code_syntax:python"]
    with pytest.raises(InputError, match="no prompt side"):
        build_filters(["refusal"], {"refusal": {"check": "prompt"}}, ["answer"])
    with pytest.raises(InputError, match="must be response, prompt or both"):
        build_filters(["refusal"], {"refusal": {"check": "all"}}, ["answer"])


def test_preference_rows_check_chosen_and_rejected_each():
    (step,) = build_filters(["degenerate_repetition"], {}, ["prompt", "chosen", "rejected"])
    table = pa.table({"id": ["a", "b"], "prompt": [QUESTION] * 2, "chosen": [LOOP, ANSWER],
                      "rejected": [ANSWER, ANSWER]})
    kept, removed = step.process(table)
    assert kept["id"].to_pylist() == ["b"]
    assert removed["detail"][0].as_py().startswith("chosen: the last")


def test_pair_filter_needs_both_sides_and_bad_settings_are_input_errors():
    with pytest.raises(InputError, match="compares a prompt with a response"):
        build_filters(["length_ratio"], {}, ["text"])
    with pytest.raises(InputError, match="not a valid regular expression"):
        build_filters(["truncated_reasoning"], {"truncated_reasoning": {"require_answer": "(("}}, ["answer"])
    with pytest.raises(InputError, match="min_ratio"):
        build_filters(["length_ratio"], {"length_ratio": {"min_ratio": 5, "max_ratio": 1}}, ["question", "answer"])


def gsm8k_rows(limit: int | None = None) -> list[dict]:
    lines = (bundled_data_dir() / "gsm8k" / "train.jsonl").read_text().splitlines()[:limit]
    return [{"id": f"gsm8k-{i}", **json.loads(line)} for i, line in enumerate(lines)]


def test_each_filter_catches_its_planted_gsm8k_rows_and_no_clean_one():
    data = plant(gsm8k_rows(400), per_kind=6, seed=3)
    kinds = [r["kind"] for r in data]
    rows = [{"question": r["question"], "answer": r["answer"]} for r in data]
    settings = {"truncated_reasoning": {"require_answer": ["gsm8k", "boxed"]},
                "language_mismatch": {"prompt_language": "en"}}
    for name in sorted(set(TARGETS.values())):
        reasons = decide(name, rows, ["question", "answer"], **settings.get(name, {}))
        caught = {k for k, r in zip(kinds, reasons, strict=True) if r}
        targets = {k for k, f in TARGETS.items() if f == name}
        assert all(r for k, r in zip(kinds, reasons, strict=True) if k in targets), name
        assert not caught & {"clean", *CONTROLS}, (name, caught)


def test_the_sft_config_keeps_gsm8k_train_and_catches_planted_rows(tmp_path):
    from workbench.cli import main

    config = str(bundled_data_dir().parent / "configs" / "curate-sft.yaml")
    clean = tmp_path / "train.jsonl"
    clean.write_text((bundled_data_dir() / "gsm8k" / "train.jsonl").read_text())
    assert main(["curate", str(clean), "--output", str(tmp_path / "clean"), "--config", config,
                 "--no-decontam"]) == 0
    manifest = json.loads((tmp_path / "clean" / "manifest.json").read_text())
    assert (manifest["rows_in"], manifest["rows_out"], manifest["dropped"]) == (7473, 7473, {})

    planted = [r for r in plant(gsm8k_rows(), per_kind=10, seed=7) if r["kind"] != "clean"]
    (tmp_path / "planted.jsonl").write_text("".join(json.dumps(r) + "\n" for r in planted))
    assert main(["curate", str(tmp_path / "planted.jsonl"), "--output", str(tmp_path / "bad"), "--config", config,
                 "--no-decontam", "--no-dedup"]) == 0
    removed = pq.read_table(tmp_path / "bad" / "removed.parquet")
    assert sorted(set(removed["kind"].to_pylist())) == sorted(TARGETS)
    assert removed.num_rows == 10 * len(TARGETS)
    assert pq.read_table(tmp_path / "bad" / "data.parquet")["kind"].to_pylist() == ["code_ok"] * 10
