"""`wb demo`: run the stages that exist so far on the bundled data, offline, in a minute on a CPU.

Today: profile and validate GSM8K, convert it to a run directory as SFT messages, and build the tiny
offline model to render a chat prompt and generate from it. Later stages add their steps here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from workbench.inspection import format_report, profile
from workbench.io import open_source, write_tables
from workbench.rundir import RunDir
from workbench.schemas import validate_tables
from workbench.workspace import bundled_data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="runs/demo", help="directory for the demo's runs (default: runs/demo)")


def gsm8k_as_messages(table: pa.Table, prefix: str, first_row: int) -> pa.Table:
    """GSM8K rows as SFT records: question -> user turn, worked answer -> assistant turn."""
    messages = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        for q, a in zip(table["question"].to_pylist(), table["answer"].to_pylist(), strict=True)
    ]
    ids = [f"{prefix}-{first_row + i:06d}" for i in range(table.num_rows)]
    final = pc.struct_field(pc.extract_regex(table["answer"], r"####\s*(?P<final>.+)$"), "final")
    return pa.table({"id": ids, "messages": messages, "answer": final, "source": [prefix] * table.num_rows})


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    test = open_source(bundled_data_dir() / "gsm8k" / "test.jsonl")
    print("== 1. inspect the bundled GSM8K test split")
    print(format_report(profile(test)))

    print("\n== 2. convert it to SFT messages in a run directory")
    sft_dir = out / "gsm8k-sft"
    with RunDir(sft_dir, "demo-convert", {"mapping": "question->user, answer->assistant"}, inputs=[test]) as run_dir:
        def tables():
            for _, first_row, table in test.iter_rows_with_file():
                yield gsm8k_as_messages(table, "gsm8k_test", first_row)
        rows = write_tables(tables(), run_dir.product)
        run_dir.finish(rows_in=rows, rows_out=rows)
    sft = open_source(sft_dir)
    valid = validate_tables(sft.iter_rows_with_file(), "sft")
    print(f"wrote {rows:,} rows to {run_dir.product}; {valid:,} valid SFT records")

    print("\n== 3. a tiny offline model renders a chat prompt and generates (random weights: gibberish)")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from workbench.fixtures import tiny_model_path

    hf_logging.disable_progress_bar()
    path = tiny_model_path("llama")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    first = sft.read().slice(0, 1).to_pylist()[0]
    prompt = tokenizer.apply_chat_template(first["messages"][:1], add_generation_prompt=True, return_dict=True,
                                           return_tensors="pt")
    output = model.generate(**prompt, max_new_tokens=16, do_sample=False)
    print(f"model      {path}  ({sum(p.numel() for p in model.parameters()):,} parameters)")
    print(f"prompt     {tokenizer.decode(prompt['input_ids'][0])!r}"[:200])
    print(f"generated  {tokenizer.decode(output[0, prompt['input_ids'].shape[1]:])!r}")
    print(f"\ndemo finished; runs are under {out}/")
    return 0
