"""Across stages: a distill unit traced back to its prompt's file and row; `wb train sft` on a distill run
trains on its SFT product (ok rows, not those the verifier marked wrong); progress.json of a distill run."""

from __future__ import annotations

import json

from distill_data import distill
from tests.distill_data.distill_helpers import fast_config
from workbench.cli import main
from workbench.lineage import trace
from workbench.runfiles import read_progress


def _math_prompts(path):
    # rows 0 and 2 are answered right, row 1 wrong, row 3 is cut off (finish_reason length)
    rows = [("What is 2+2?", "#### 4", "The answer is 4.\n#### 4"),
            ("What is 3+3?", "#### 6", "#### 7"),
            ("What is 5+5?", "#### 10", "So it is 10.\n#### 10"),
            ("What is 1+1?", "#### 2", "[length]")]
    path.write_text("".join(json.dumps({"question": f"{q} [reply:{r}]" if not r.startswith("[") else f"{q} {r}",
                                        "answer": a}) + "\n" for q, a, r in rows))
    return path


def test_distill_units_trace_back_to_their_prompt_rows(tmp_path, mock, capsys):
    src = _math_prompts(tmp_path / "q.jsonl")
    result = distill(fast_config(str(src), tmp_path / "run", mock.url, prompt_field="question", answer_field="answer",
                                 verify="math", n=2))
    assert result.path == tmp_path / "run" and result["units"] == 8
    state = read_progress(tmp_path / "run")
    assert state["state"] == "complete" and state["done"] == state["total"] == 8 and state["unit"] == "units"
    assert state["usage"]["sampled_tokens"] == result["usage"]["sampled_tokens"] > 0

    hops = trace(tmp_path / "run", "2-1")
    assert [h.kind for h in hops] == ["kept", "source"]
    assert hops[0].parent_id == "2" and hops[0].stage == "distill"
    assert hops[1].path == str(src) and hops[1].row == 2 and "5+5" in hops[1].fields["question"]
    assert main(["lineage", str(tmp_path / "run"), "2-1"]) == 0
    out = capsys.readouterr().out
    assert "distill" in out and "q.jsonl row 2" in out


def test_train_sft_on_a_distill_run_reads_its_verified_sft_rows(tmp_path, mock, tiny_model_dir):
    from trainers import SFTConfig, train_sft

    src = _math_prompts(tmp_path / "q.jsonl")
    distill(fast_config(str(src), tmp_path / "run", mock.url, prompt_field="question", answer_field="answer",
                        verify="math"))
    result = train_sft(SFTConfig(model=str(tiny_model_dir), data=str(tmp_path / "run"), output=str(tmp_path / "sft"),
                                 max_steps=1, save_every=0, eval_fraction=0.0, lr=1e-3), log=lambda *_: None)
    # 4 units: 1 truncated (not in sft.parquet), 3 ok of which 1 is verified wrong -> 2 trained rows
    assert result["rows_in"] == 3 and result["rows_out"] == 2 and result["dropped"] == {"not_verified": 1}
    assert result["inputs"][0]["path"].endswith("sft.parquet")
