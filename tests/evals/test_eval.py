"""`wb eval` end to end against the scripted server (known answers, so every metric has a known value),
resume without new requests, user verifiers, `--compare`, the hf backend, and one-line errors."""

from __future__ import annotations

import json

import polars as pl
import pytest

from workbench.cli import main
from workbench.rundir import read_manifest

# item -> (scripted replies for samples 0, 1, 2; reference answer)
ITEMS = {
    "a": ("[replies:#### 5|#### 5|#### 6]", "#### 5"),  # 2 of 3 right; the majority is right
    "b": ("[replies:#### 7|#### 8|#### 8]", "#### 7"),  # 1 of 3 right; the majority is wrong
    "c": ("[reply:#### 0011]", "#### 011"),  # a string answer: exact says wrong, math says equal numbers
    "d": ("[length]", "#### 1"),  # cut at the token budget: truncated, so wrong
}


def _bench(tmp_path, tag: str):
    path = tmp_path / f"toy-{tag}.jsonl"
    path.write_text("".join(json.dumps({"id": k, "question": f"{tag} {k} {q}", "gold": a}) + "\n"
                            for k, (q, a) in ITEMS.items()))
    return path


def _eval(mock, bench, out, *flags):
    return main(["eval", "--base-url", mock.url, "--model", "m", "--benchmark", str(bench),
                 "--prompt-field", "question", "--answer-field", "gold", "--n", "3", "--temperature", "1",
                 "--progress-seconds", "0", "--output", str(out), *map(str, flags)])


def test_metrics_have_their_known_values_and_rows_are_per_sample(tmp_path, mock, capsys):
    bench = _bench(tmp_path, "known")
    assert _eval(mock, bench, tmp_path / "exact", "--verify", "exact") == 0
    m = read_manifest(tmp_path / "exact")["metrics"]["toy-known"]
    assert m["items"] == 4 and m["samples_per_item"] == 3
    assert m["accuracy"] == pytest.approx((2 / 3 + 1 / 3) / 4) and m["pass@1"] == pytest.approx(m["accuracy"])
    assert m["pass@3"] == pytest.approx(0.5) and m["maj@3"] == pytest.approx(0.25)
    assert m["truncation_rate"] == pytest.approx(3 / 12) and m["ci95"][0] <= m["accuracy"] <= m["ci95"][1]
    assert "toy-known: accuracy 25.0%" in capsys.readouterr().out
    rows = pl.read_parquet(tmp_path / "exact" / "data.parquet")
    assert rows.height == 12 and rows["benchmark"].unique().to_list() == ["toy-known"]
    got = {(r["item_id"], r["sample_index"]): (r["extracted_answer"], r["correct"]) for r in rows.to_dicts()}
    assert got[("a", 2)] == ("6", False) and got[("b", 0)] == ("7", True) and got[("c", 1)] == ("0011", False)
    assert got[("d", 0)] == (None, False)
    # the math verifier compares numbers: item c becomes right, the rest stay as they were
    assert _eval(mock, bench, tmp_path / "math", "--verify", "math") == 0
    assert read_manifest(tmp_path / "math")["metrics"]["toy-known"]["accuracy"] == pytest.approx(0.5)

    capsys.readouterr()
    assert main(["eval", "--compare", str(tmp_path / "exact"), str(tmp_path / "math")]) == 0
    table = capsys.readouterr().out
    line = next(x for x in table.splitlines() if x.startswith("toy-known"))
    assert "+25.0" in line and line.split()[2] == "4"


def test_a_base_url_means_http_without_backend(tmp_path, serve_url):
    """`wb eval --model M --base-url URL` calls the server, as distill does (it once looked for a directory M)."""
    out = tmp_path / "served"
    assert main(["eval", "--model", "tiny", "--base-url", serve_url, "--benchmark", "gsm8k", "--limit", "3",
                 "--max-tokens", "4", "--progress-seconds", "0", "--output", str(out)]) == 0
    manifest = read_manifest(out)
    assert manifest["backend"] == "openai" and manifest["config"]["backend"] == "auto"
    assert manifest["metrics"]["gsm8k"]["items"] == 3 and manifest["status_counts"]["failed"] == 0
    assert manifest["usage"]["requests"] == 3 and 0 < manifest["usage"]["sampled_tokens"] <= 12


def test_rerun_resumes_without_new_requests(tmp_path, mock):
    bench = _bench(tmp_path, "resume")
    assert _eval(mock, bench, tmp_path / "run", "--verify", "exact") == 0
    before = sum(v for k, v in mock.counts.items() if k.startswith("resume "))
    first = read_manifest(tmp_path / "run")
    assert _eval(mock, bench, tmp_path / "run", "--verify", "exact") == 0
    again = read_manifest(tmp_path / "run")
    assert sum(v for k, v in mock.counts.items() if k.startswith("resume ")) == before
    assert again["metrics"] == first["metrics"] and again["usage"] == first["usage"]
    assert first["usage"]["sampled_tokens"] > 0 and first["usage"]["requests"] >= 4


def test_user_verifier_module_function(tmp_path, mock, monkeypatch, capsys):
    (tmp_path / "my_checks.py").write_text(
        "def ends_in_5(prompts, completions, answer):\n"
        "    return [c.strip().endswith('5') for c in completions]\n"
        "def broken(prompts, completions, answer):\n"
        "    return [1]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    bench = _bench(tmp_path, "user")
    assert _eval(mock, bench, tmp_path / "u", "--verify", "my_checks:ends_in_5") == 0
    m = read_manifest(tmp_path / "u")["metrics"]["toy-user"]
    assert m["accuracy"] == pytest.approx((2 / 3) / 4)  # only item a's two "#### 5" replies
    assert _eval(mock, bench, tmp_path / "b", "--verify", "my_checks:broken") == 2
    assert "must return a list of" in capsys.readouterr().err
    assert _eval(mock, bench, tmp_path / "c", "--verify", "no_such_mod:f") == 2
    assert "cannot import module 'no_such_mod'" in capsys.readouterr().err


def test_bad_input_is_one_line(tmp_path, mock, capsys):
    bench = _bench(tmp_path, "bad")
    assert main(["eval", "--model", "m", "--benchmark", "nope.jsonl", "--output", str(tmp_path / "x")]) == 2
    assert "not a bundled benchmark" in capsys.readouterr().err
    assert _eval(mock, bench, tmp_path / "y", "--verify", "fuzzy") == 2
    assert "--verify fuzzy" in capsys.readouterr().err
    assert main(["eval", "--base-url", mock.url, "--model", "m", "--benchmark", str(bench),
                 "--prompt-field", "question", "--output", str(tmp_path / "z")]) == 2
    assert "'answer' is not a column" in capsys.readouterr().err
    assert main(["eval", "--compare", str(tmp_path)]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_hf_backend_on_a_bundled_benchmark(tmp_path, tiny_model_dir):
    out = tmp_path / "hf"
    assert main(["eval", "--model", str(tiny_model_dir), "--benchmark", "gsm8k", "--limit", "3", "--max-tokens", "6",
                 "--progress-seconds", "0", "--output", str(out)]) == 0
    manifest = read_manifest(out)
    assert manifest["backend"] == "hf" and manifest["config"]["backend"] == "auto"  # no --base-url: in-process
    m = manifest["metrics"]["gsm8k"]
    assert m["items"] == 3 and 0.0 <= m["accuracy"] <= 1.0 and m["mean_response_tokens"] <= 7
    assert manifest["benchmarks"]["gsm8k"]["verifier"] == "math" and manifest["usage"]["prefill_tokens"] > 0
    rows = pl.read_parquet(out / "data.parquet")
    assert rows["prompt_tokens"].min() > 0 and rows["item_id"].to_list() == ["0", "1", "2"]
