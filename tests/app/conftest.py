"""A small real workspace for the app's tests, made once per session by calling the `wb` CLI: dedup and
curate runs (with duplicates and a contaminated row), two tiny SFT runs, a distill run, a prefs run and a
RegMix chain. Tests that change the workspace copy what they need."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.app.rows import text_rows, write_jsonl
from workbench.workspace import bundled_data_dir


def wb(*args: object) -> None:
    from workbench.cli import main

    code = main([str(a) for a in args])
    assert code == 0, f"wb {' '.join(map(str, args))} exited {code}"


@pytest.fixture(scope="session")
def small_jsonl(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("src") / "small.jsonl", text_rows())


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, small_jsonl, tiny_model_dir) -> Path:
    """runs: dd (dedup), cur (curate: decontam + dedup), sft, sft-short, distill, prefs, mix-plan/-fit/-search."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("workspace")
    src = small_jsonl.parent
    gsm8k = bundled_data_dir() / "gsm8k"
    questions = [json.loads(line) for line in (gsm8k / "test.jsonl").read_text().splitlines()[:3]]
    qa = [{"id": f"q{i}", "question": r["question"], "answer": r["answer"]}
          for i, r in enumerate(json.loads(line) for line in (gsm8k / "train.jsonl").read_text().splitlines()[:40])]
    qa += [{"id": "leak0", "question": questions[0]["question"], "answer": questions[0]["answer"]},
           {"id": "copy-q0", "question": qa[0]["question"], "answer": qa[0]["answer"]}]
    write_jsonl(src / "qa.jsonl", qa)
    wb("dedup", small_jsonl, "--output", root / "dd", "--threshold", 0.7)
    wb("curate", src / "qa.jsonl", "--output", root / "cur", "--benchmark", "gsm8k")
    for name, steps in (("sft", 4), ("sft-short", 2)):
        wb("train", "sft", "--model", tiny_model_dir, "--data", root / "cur", "--prompt-field", "question",
           "--completion-field", "answer", "--max-steps", steps, "--batch-size", 4, "--max-length", 256,
           "--log-every", 1, "--output", root / name)
    wb("distill", src / "qa.jsonl", "--backend", "hf", "--model", tiny_model_dir, "--prompt-field", "question",
       "--answer-field", "answer", "--limit", 2, "--n", 2, "--max-tokens", 8, "--seed", 1, "--verify", "math",
       "--output", root / "distill")
    wb("prefs", src / "qa.jsonl", "--strong-model", root / "sft" / "model", "--strong-backend", "hf",
       "--weak-model", tiny_model_dir, "--weak-backend", "hf", "--prompt-field", "question", "--answer-field",
       "answer", "--limit", 2, "--max-tokens", 8, "--seed", 1, "--verify", "math", "--output", root / "prefs")
    # the random tiny models never stop, so every prefs pair is dropped as truncated: pairs for the Pairs
    # page come from a preference file made into a run by `wb convert`
    write_jsonl(src / "pairs.jsonl", [
        {"id": f"p{i}", "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
         "chosen": [{"role": "assistant", "content": f"{i} + {i} = {2 * i}. The answer is {2 * i}."}],
         "rejected": [{"role": "assistant", "content": f"{3 * i}"}],
         "verdict": "chosen_verified" if i % 2 else "both_wrong"} for i in range(6)])
    wb("convert", src / "pairs.jsonl", root / "pairs")
    return root


@pytest.fixture(scope="session")
def mix_workspace(tmp_path_factory) -> Path:
    """A small RegMix chain: plan (4 proxies), run, fit, search."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("mixspace")
    domains = bundled_data_dir().parent / "mixopt" / "domains.yaml"
    wb("mix", "plan", domains, "--output", root / "mix-plan", "--runs", 4, "--tokens-per-run", 4000)
    wb("mix", "run", root / "mix-plan", "--tokens-per-run", 4000, "--workers", 1)
    wb("mix", "fit", root / "mix-plan" / "results.parquet", "--output", root / "mix-fit", "--folds", 2)
    wb("mix", "search", root / "mix-fit", "--output", root / "mix-search", "--samples", 2000, "--top-k", 10)
    return root


@pytest.fixture(scope="module")
def app_url(workspace, tmp_path_factory):
    """`wb ui` over a copy of the module's `workspace` (jobs launched by the tests write there): (URL, root)."""
    import shutil

    from tests.app.e2e_support import serve_app

    root = tmp_path_factory.mktemp("e2e") / "ws"
    shutil.copytree(workspace, root, ignore=shutil.ignore_patterns("model", "checkpoints"))
    with serve_app(root, root.parent / "ui.log") as url:
        yield url, root


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright's Python package (skipped, naming the package, without it)."""
    from tests.system_packages import require

    chromium = require("chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()
