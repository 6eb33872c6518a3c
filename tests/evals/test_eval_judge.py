"""`wb eval --verify judge` end to end against the scripted server: a judge with deterministic verdicts gives
known accuracies, its tokens join the run's usage, per-sample rows hold its verdicts, a re-run asks nothing
again, a failed or unreachable judge marks rows (and a re-run asks again), and bad options are one line."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import polars as pl
import pytest

from evals import EvalConfig, evaluate
from llm.verify.judge import judge_messages
from tests.mock_server import MockServer
from tests.net import free_port
from trainers.bench_eval import load_bench_items
from workbench.cli import main
from workbench.errors import InputError
from workbench.rundir import read_manifest

# item -> (scripted replies for samples 0, 1, 2; reference answer). No string or math check grades these.
ITEMS = {
    "a": ("[replies:It is Paris.|paris, of course|Lyon]", "Paris"),  # 2 of 3 right, the majority right
    "b": ("[reply:I do not know]", "Berlin"),  # 0 of 3
    "c": ("[length]", "Rome"),  # truncated: never judged, wrong
    "d": ("[reply:Madrid, I think. MUMBLE]", "Madrid"),  # the judge gives no verdict line: wrong, unverified
}
_GRADED = re.compile(r"Reference answer \(may be empty\):\n(.*?)\n\nResponse:\n(.*?)\n\nJudge", re.DOTALL)


class Judge:
    """Grades by whether the reference appears in the response (case-insensitively); `down` makes every
    judge request a 400. Requests for the model under evaluation pass through unchanged."""

    def __init__(self) -> None:
        self.down = False

    def __call__(self, text: str, request: dict) -> str:
        if request.get("model") != "judge":
            return text
        reference, response = _GRADED.search(text).groups()
        if self.down:
            return f"judge {response} [400]"
        if "MUMBLE" in response:
            return f"judge {response} [reply:It depends.]"
        verdict = "CORRECT" if reference.lower() in response.lower() else "INCORRECT"
        return f"judge {response} [reply:Checked. VERDICT: {verdict}]"


@pytest.fixture(scope="module")
def judged():
    script = Judge()
    server = MockServer(retry_after=0.05, script=script).start()
    server.judge = script
    yield server
    server.stop()


def _bench(tmp_path, tag: str):
    path = tmp_path / f"open-{tag}.jsonl"
    path.write_text("".join(json.dumps({"id": k, "question": f"{tag} {k} {q}", "gold": a}) + "\n"
                            for k, (q, a) in ITEMS.items()))
    return path


def _eval(server, bench, out, *flags):
    return main(["eval", "--base-url", server.url, "--model", "m", "--benchmark", str(bench),
                 "--prompt-field", "question", "--answer-field", "gold", "--n", "3", "--temperature", "1",
                 "--max-attempts", "2", "--retry-base", "0.01", "--retry-max", "0.02", "--progress-seconds", "0",
                 "--output", str(out), *map(str, flags)])


def _judge_requests(server) -> int:
    return sum(v for k, v in server.counts.items() if k.startswith("judge "))


def test_judge_verdicts_give_known_metrics_usage_and_rows(tmp_path, judged, capsys):
    bench = _bench(tmp_path, "known")
    assert _eval(judged, bench, tmp_path / "exact", "--verify", "exact") == 0  # the same generation, no judge
    before = _judge_requests(judged)
    assert _eval(judged, bench, tmp_path / "judge", "--verify", "judge", "--judge-model", "judge") == 0
    manifest = read_manifest(tmp_path / "judge")
    m = manifest["metrics"]["open-known"]
    assert m["accuracy"] == pytest.approx((2 / 3) / 4) and m["pass@3"] == pytest.approx(0.25)
    assert m["maj@3"] == pytest.approx(0.25) and m["unverified"] == 3 and m["failed"] == 0
    assert manifest["benchmarks"]["open-known"] == {"source": str(bench), "verifier": "judge", "judge": "judge"}
    assert read_manifest(tmp_path / "exact")["metrics"]["open-known"]["accuracy"] == 0.0  # "It is Paris." != "Paris"

    rows = pl.read_parquet(tmp_path / "judge" / "data.parquet")
    got = {(r["item_id"], r["sample_index"]): (r["verified"], r["correct"]) for r in rows.to_dicts()}
    assert got[("a", 0)] == (True, True) and got[("a", 1)] == (True, True) and got[("a", 2)] == (False, False)
    assert got[("b", 1)] == (False, False) and got[("c", 0)] == (None, False) and got[("d", 2)] == (None, False)
    details = dict(zip(rows["id"].to_list(), rows["verify_detail"].to_list(), strict=True))
    assert details["open-known/a-0"].endswith("VERDICT: CORRECT") and "no verdict" in details["open-known/d-0"]

    # judge tokens are the run's usage: 9 judged samples (4 items x 3, less item c's truncated ones), the
    # mock counts 5 sampled tokens a request and one prefill token a word of the rubric it was sent
    ok = rows.filter(pl.col("status") == "ok")
    assert ok.height == 9 and _judge_requests(judged) - before == 9
    prefill = sum(len(judge_messages(r["prompt"], r["answer"], r["content"])[0]["content"].split())
                  for r in ok.to_dicts())
    plain, usage = read_manifest(tmp_path / "exact")["usage"], manifest["usage"]
    assert usage["requests"] == 9 and usage["sampled_tokens"] == 45 and usage["prefill_tokens"] == prefill
    # the generation is the exact run's, answered by the response cache: counted apart, not paid again
    assert (usage["cached_requests"], usage["cached_prefill_tokens"], usage["cached_sampled_tokens"]) == \
        (plain["requests"], plain["prefill_tokens"], plain["sampled_tokens"])

    # a re-run asks neither the model nor the judge again, and reports the same
    asked = sum(judged.counts.values())
    assert _eval(judged, bench, tmp_path / "judge", "--verify", "judge", "--judge-model", "judge") == 0
    again = read_manifest(tmp_path / "judge")
    assert sum(judged.counts.values()) == asked
    assert again["metrics"] == manifest["metrics"] and again["usage"] == manifest["usage"]


def test_a_failed_judge_marks_rows_and_a_rerun_asks_it_again(tmp_path, judged, capsys):
    bench = _bench(tmp_path, "down")
    cfg = EvalConfig(model="m", base_url=[judged.url], benchmark=[str(bench)],
                     prompt_field="question", answer_field="gold", n=3, temperature=1.0, verify="judge",
                     judge_model="judge", max_attempts=2, retry_base=0.01, retry_max=0.02, progress_seconds=0,
                     output=str(tmp_path / "run"))
    judged.judge.down = True
    try:
        first = evaluate(cfg)  # the Python API takes the same options
    finally:
        judged.judge.down = False
    m = first["metrics"]["open-down"]
    assert m["accuracy"] == 0.0 and m["unverified"] == 9 and first["status_counts"]["ok"] == 9
    rows = pl.read_parquet(tmp_path / "run" / "data.parquet")
    assert rows["verify_detail"].drop_nulls().str.starts_with("judge failed").sum() == 9
    assert first["usage"]["requests"] == read_manifest(tmp_path / "run")["usage"]["requests"]

    model_requests = sum(v for k, v in judged.counts.items() if k.startswith("down "))
    again = evaluate(cfg)
    assert sum(v for k, v in judged.counts.items() if k.startswith("down ")) == model_requests  # not regenerated
    assert again["metrics"]["open-down"]["accuracy"] == pytest.approx((2 / 3) / 4)
    assert again["metrics"]["open-down"]["unverified"] == 3  # item d's, which the judge answered without a verdict
    assert again["usage"]["sampled_tokens"] == first["usage"]["sampled_tokens"] + 9 * 5


def test_an_unreachable_judge_marks_rows_and_says_so(tmp_path, judged, capsys):
    bench = _bench(tmp_path, "gone")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    # one item and one attempt a request: the dead endpoint fails each request before it is marked down
    # (a down endpoint is probed after seconds, which a test need not wait for)
    flags = ["--limit", "1", "--max-attempts", "1", "--verify", "judge", "--judge-model", "judge"]
    assert _eval(judged, bench, tmp_path / "run", *flags, "--judge-base-url", dead) == 0
    out = capsys.readouterr().out
    assert "3 answered samples got no verdict" in out and "re-run the same command" in out
    rows = pl.read_parquet(tmp_path / "run" / "data.parquet")
    assert rows.height == 3 and rows["verified"].null_count() == 3
    assert rows["verify_detail"].str.starts_with("judge failed").all()
    assert read_manifest(tmp_path / "run")["metrics"]["open-gone"]["accuracy"] == 0.0
    # pointed at a live judge, the same run is graded without generating again
    model_requests = sum(v for k, v in judged.counts.items() if k.startswith("gone "))
    assert _eval(judged, bench, tmp_path / "run", *flags, "--judge-base-url", judged.url) == 0
    assert sum(v for k, v in judged.counts.items() if k.startswith("gone ")) == model_requests
    m = read_manifest(tmp_path / "run")["metrics"]["open-gone"]
    assert m["unverified"] == 0 and m["accuracy"] == pytest.approx(2 / 3)


def test_judge_options_are_checked_in_one_line(tmp_path, judged, capsys):
    bench = _bench(tmp_path, "bad")
    assert _eval(judged, bench, tmp_path / "x", "--verify", "judge") == 2
    err = capsys.readouterr().err
    assert "--verify judge needs --judge-model" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "config.json").write_text("{}")  # the model's options are checked before the judge's
    local = ["eval", "--model", str(tmp_path), "--benchmark", str(bench), "--prompt-field", "question",
             "--answer-field", "gold", "--verify", "judge", "--judge-model", "judge", "--output", str(tmp_path / "y")]
    assert main([*local, "--judge-backend", "openai"]) == 2
    assert "--judge-backend openai needs at least one --judge-base-url" in capsys.readouterr().err
    assert main(local) == 2  # the judge runs where the model does (in-process), so it must be a directory
    assert "--judge-model 'judge': not a local model directory; to call a served model give --judge-base-url" in \
        capsys.readouterr().err
    assert _eval(judged, bench, tmp_path / "z", "--verify", "judge", "--judge-model", "judge",
                 "--judge-base-url", "not-a-url") == 2
    assert "--judge-base-url 'not-a-url'" in capsys.readouterr().err
    assert main(["eval", "--model", "m", "--benchmark", "gsm8k", "--verify", "judge", "--judge-model", "judge",
                 "--output", str(tmp_path / "w")]) == 2
    assert "the bundled benchmarks are always checked with the math verifier" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in ("w", "x", "y", "z"))
    with pytest.raises(InputError, match="--eval-verify judge: an LLM judge does not run inside training"):
        load_bench_items(SimpleNamespace(eval_benchmark=[str(bench)], eval_verify="judge"), tokenizer=None)
