"""`wb model import GGUF_FILE --output DIR`: a GGUF file (Ollama, llama.cpp) to a transformers model
directory with its tokenizer and chat template, which `wb serve`, `wb eval`, `wb distill` and the
trainers load like any checkpoint.

Example: `wb model import ~/models/SmolLM2-135M-Instruct.Q4_1.gguf --output models/smollm2`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gguf_file", help="the .gguf file to import (quantized tensors are dequantized)")
    parser.add_argument("--output", required=True, help="model directory to write (config, weights, tokenizer)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="dtype of the saved weights (default: float32, the dequantized values exactly; "
                             "bfloat16 halves the size)")
    parser.add_argument("--force", action="store_true", help="replace an existing --output directory")


def run(args: argparse.Namespace) -> int:
    from llm.gguf_import import import_gguf

    record = import_gguf(args.gguf_file, args.output, args.dtype, args.force)
    print(f"{args.output}: {record['architecture']}, {record['parameters'] / 1e6:.1f}M parameters in "
          f"{record['dtype']} (from {args.gguf_file}); try: wb serve {args.output}")
    return 0
