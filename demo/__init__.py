"""The demo: the whole loop on a toy task (`wb demo`), with the tiny models and tokenizers tests build.

`toytask` is the digit-sorting task and its data; `tiny_models` builds tiny transformers models and
tokenizers from a config (no hub); `commands.demo` runs every stage and prints one table.
"""
