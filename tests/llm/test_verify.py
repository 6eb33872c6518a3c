"""Verifiers: math on GSM8K/MATH-style answers, the code sandbox's limits, the LLM judge plumbing."""

from __future__ import annotations

import asyncio
import json

import polars as pl
import pytest

from distill_data.pipeline import distill
from llm.verify.code import extract_code, run_tests, verify_code
from llm.verify.judge import parse_verdict
from llm.verify.math import as_number, check_math, final_answer, gold_answer, last_boxed, verify_math
from tests.distill_data.distill_helpers import fast_config
from workbench.workspace import bundled_data_dir


def test_gold_answers_from_gsm8k_and_math500():
    assert gold_answer("She makes 9 * 2 = $18.\n#### 18") == "18"
    assert gold_answer("so\n#### 1,000") == "1000"
    assert gold_answer(r"thus $\boxed{\frac{1}{2}}$. The answer is: \frac12") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{\left( 3, \frac{\pi}{2} \right)}") == r"\left( 3, \frac{\pi}{2} \right)"


def test_check_math_verdicts():
    gsm = "Janet sells 9 eggs.\n#### 18"
    assert check_math("She makes 9 * 2 = 18 dollars.\n#### 18", gsm)[0] is True
    assert check_math(r"The answer is $\boxed{18}$.", gsm)[0] is True
    assert check_math("#### 17", gsm)[0] is False
    assert check_math("", gsm)[0] is False and check_math("18", None)[0] is None
    assert check_math(r"\boxed{0.5}", r"so $\boxed{\frac{1}{2}}$")[0] is True
    assert check_math("so it is 1,000", "#### 1000")[0] is True and check_math(r"\boxed{7}", "#### 8")[0] is False


GSM24 = "She has 4 and buys 20.\n#### 24"
# (response, reference, verdict): every way found to be paid for a wrong or unstated answer is False
FOOLING_MATH = {
    "restates the question": ("4 + 20 = ?", GSM24, False),
    "restates with a wrong result": ("10 + 5 = +25", "#### 15", False),
    "restates the expression": ("4 + 20", GSM24, False),
    "restates the question, gold is its last number": ("What is 0 + 7?", "#### 7", False),
    "the expression as the marked answer": ("#### 4 + 20", GSM24, False),
    "retraction to the gold": ("24, no wait, 23", "#### 23", False),
    "retraction away from the gold": ("24, no wait, 23", GSM24, False),
    "hedge": ("19 or 21", "#### 19", False),
    "hedge in a box": (r"\boxed{19 \text{ or } 21}", "#### 19", False),
    "boxes then corrects": (r"\boxed{24} Hmm, actually \boxed{23}", "#### 23", False),
    "retracted after the answer": ("The answer is 24. Wait, no, it's 23.", GSM24, False),
    "the last of two #### lines counts": ("#### 24\n#### 19", GSM24, False),
    "gold inside a larger number": ("#### 240", GSM24, False),
    "gold as a digit of a decimal": ("#### 24.5", GSM24, False),
    "empty": ("", GSM24, False),
    "only reasoning": ("<think>It is 24.</think>", GSM24, False),
    "a rounded third": ("#### 0.333", r"\boxed{\frac{1}{3}}", False),
}
RIGHT_MATH = {
    "####": ("She pays 9 * 2 = 18.\n#### 18", "#### 18", True),
    "the last of two #### lines": ("#### 19\n#### 24", GSM24, True),
    "the answer is": ("The answer is 24.", GSM24, True),
    "final answer:": ("Final answer: 24", GSM24, True),
    "last boxed": (r"First \boxed{3}, so overall $\boxed{24}$.", GSM24, True),
    "result of the last equation": ("4 + 20 = 24", GSM24, True),
    "last number of the last sentence": ("She has 4 and gets 20 more, so 24 in total.", GSM24, True),
    "thousands separator": ("#### 1,200", "#### 1200", True),
    "dollar sign": ("The answer is $18.", "#### 18", True),
    "negative": ("The answer is −3.", "#### -3", True),
    "percentage": ("#### 25%", "#### 25", True),
    "decimal vs fraction": (r"\boxed{0.5}", r"\boxed{\frac{1}{2}}", True),
    "dfrac": (r"\boxed{\dfrac{1}{2}}", "#### 0.5", True),
    "frac without braces": (r"\boxed{\frac12}", "#### 0.5", True),
    "unit in text": (r"\boxed{18 \text{ dollars}}", "#### 18", True),
    "unit in words": ("The answer is 24 dollars", GSM24, True),
    "trailing sentences": ("The answer is 24. Hope this helps! Ask me 3 more.", GSM24, True),
    "a check after the answer": (r"\boxed{24}. Actually, let me check: 4 + 20 = 24.", GSM24, True),
    "a reason after the answer": ("The answer is 24 apples, since 4 + 20 = 24.", GSM24, True),
    "hesitation inside <think>": ("<think>maybe 23</think>The answer is 24.", GSM24, True),
    "trailing zero": ("#### 24.0", GSM24, True),
    "an expression (math-verify)": (r"$\boxed{\frac{\sqrt{3}}{2}}$", r"\boxed{\frac{\sqrt{3}}{2}}", True),
    "a tuple (math-verify)": (r"The answer is $\boxed{(3, 4)}$.", r"\boxed{(3,4)}", True),
}


@pytest.mark.parametrize("name", list(FOOLING_MATH) + list(RIGHT_MATH))
def test_math_grades_only_the_final_answer(name):
    response, reference, want = {**FOOLING_MATH, **RIGHT_MATH}[name]
    verdict, detail = check_math(response, reference)
    assert verdict is want, f"{name}: {detail}"


def test_final_answer_says_why_there_is_none():
    assert final_answer("19 or 21").problem == "hedged: 19 and 21 with 'or' between"
    assert final_answer("The answer is 24. Wait, no, it's 23.").problem.startswith("retracted: 24")
    assert final_answer("4 + 20").problem.endswith("is an operand, not a result")
    assert final_answer("").problem == "empty response"
    assert final_answer("#### 19\n#### 24").vote == "24" and final_answer(r"\boxed{\frac{2}{4}}").vote == "1/2"
    assert final_answer("19 or 21").vote is None
    assert as_number("$1,200") is not None and as_number("4 + 20") is None and as_number("(3, 4)") is None


def test_verify_math_in_process_pool():
    verdicts = asyncio.run(verify_math(["#### 3", "#### 4"], ["x\n#### 3", "x\n#### 3"], workers=2))
    assert [v for v, _ in verdicts] == [True, False]


def test_math_verification_end_to_end_on_gsm8k(tmp_path, mock):
    rows = [json.loads(line) for line in (bundled_data_dir() / "gsm8k" / "test.jsonl").open()][:4]
    golds = [r["answer"].rsplit("####", 1)[1].strip() for r in rows]
    replies = [f"Step by step... #### {golds[0]}", rf"So the total is $\boxed{{{golds[1]}}}$.",
               "#### 999999", f"<think>hmm</think>The answer is {golds[3]}."]
    src = tmp_path / "gsm.jsonl"
    src.write_text("".join(json.dumps({"question": f"{r['question']} [reply:{rep}]", "answer": r["answer"]}) + "\n"
                           for r, rep in zip(rows, replies, strict=True)))
    manifest = distill(fast_config(str(src), tmp_path / "run", mock.url, prompt_field="question",
                                   answer_field="answer", verify="math"))
    df = pl.read_parquet(tmp_path / "run" / "data.parquet")
    assert df["verified"].to_list() == [True, True, False, True]
    assert manifest["verified_counts"] == {"true": 3, "false": 1, "null": 0}
    only = distill(fast_config(str(src), tmp_path / "only", mock.url, prompt_field="question",
                               answer_field="answer", verify="math", only_verified=True))
    assert only["rows_out"] == 3 and only["dropped"]["not_verified"] == 1
    assert pl.read_parquet(tmp_path / "only" / "sft.parquet").height == 3


def test_code_sandbox_limits():
    assert run_tests("def add(a, b):\n    return a + b", "assert add(2, 3) == 5") == (True, "tests passed")
    passed, detail = run_tests("def add(a, b):\n    return a - b", "assert add(2, 3) == 5")
    assert not passed and "AssertionError" in detail
    passed, detail = run_tests("while True:\n    pass", "", timeout=1.5)
    assert not passed and detail.startswith("time limit")
    passed, detail = run_tests("hog = bytearray(4 * 1024 ** 3)", "", memory_mb=256)
    assert not passed and detail.startswith("memory limit")
    passed, detail = run_tests("import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9')", "")
    assert not passed and "network access is disabled" in detail


def test_verify_code_extracts_blocks():
    reply = "Here:\n```python\ndef sq(x):\n    return x * x\n```\nDone."
    assert extract_code(reply).strip().startswith("def sq")
    verdicts = asyncio.run(verify_code([reply, "no code", None], ["assert sq(3) == 9"] * 2 + [None], 5.0, 512))
    assert [v for v, _ in verdicts] == [True, False, None]


def test_judge_verdicts_through_the_backend(tmp_path, mock):
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"prompt": "jq1 [reply:fine. VERDICT: CORRECT]"}) + "\n"
                   + json.dumps({"prompt": "jq2 [reply:wrong. VERDICT: INCORRECT]"}) + "\n")
    distill(fast_config(str(src), tmp_path / "run", mock.url, verify="judge"))
    df = pl.read_parquet(tmp_path / "run" / "data.parquet")
    assert df["verified"].to_list() == [True, False] and "VERDICT" in df["verify_detail"][0]
    assert parse_verdict("blah") is None and parse_verdict("x\nverdict: correct") is True


def test_a_verified_cli_run_prints_no_worker_traceback(tmp_path, mock, capfd):
    """The math pool's workers are terminated after the pass; they must not print KeyboardInterrupt
    tracebacks (they used to inherit `wb`'s SIGTERM handler)."""
    import signal

    from workbench.cli import main

    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps({"question": f"q{i} [reply:#### {i}]", "answer": f"x\n#### {i}"}) + "\n"
                           for i in range(3)))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        rc = main(["distill", str(src), "--model", "mock", "--base-url", mock.url, "--prompt-field", "question",
                   "--answer-field", "answer", "--verify", "math", "--progress-seconds", "0",
                   "--output", str(tmp_path / "run")])
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capfd.readouterr().err
    assert rc == 0 and pl.read_parquet(tmp_path / "run" / "data.parquet")["verified"].to_list() == [True] * 3
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
