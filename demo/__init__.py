"""The demo: the whole loop on a toy task (`wb demo`), with the tiny models and tokenizers tests build.

`toytask` is the digit-sorting task and its data; `stages` runs each `wb` command of the loop; `report`
reads the stages' eval runs into one table; `commands.demo` is `wb demo`; `tiny_models` builds tiny
transformers models and tokenizers from a config (no hub).
"""
