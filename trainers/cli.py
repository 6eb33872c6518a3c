"""`wb train sft|dpo ...`: the training commands (each takes `--config x.yaml` plus flag overrides).

    wb train sft --model PATH --data RUN_OR_FILE --output DIR
    wb train dpo --model PATH --data PAIRS --output DIR --loss-type sigmoid --beta 0.1
    wb train grpo --model PATH --prompts RUN_OR_FILE --output DIR --reward math format:0.2
    wb train opd --model STUDENT --teacher PATH_OR_URL --prompts RUN_OR_FILE --output DIR
"""

from __future__ import annotations

import argparse

# subcommand -> (module holding the config class and run_command, config class name, help)
SUBCOMMANDS = {
    "sft": ("trainers.sft", "SFTConfig", "supervised fine-tuning on messages or prompt/completion rows"),
    "dpo": ("trainers.dpo", "DPOConfig", "direct preference optimisation on prompt/chosen/rejected rows"),
    "grpo": ("trainers.grpo", "GRPOConfig", "GRPO family (grpo/bnpo/dr_grpo/dapo, GSPO, DAPO sampling, GFPO) on prompts"),
    "opd": ("trainers.opd", "OPDConfig", "on-policy distillation: the student samples, a teacher scores its tokens"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import importlib

    from workbench.config import add_config_arguments

    sub = parser.add_subparsers(dest="trainer", metavar="TRAINER", required=True)
    for name, (module, cls, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("--config", help="YAML file of options; flags given here override it")
        add_config_arguments(sp, getattr(importlib.import_module(module), cls))


def run(args: argparse.Namespace) -> int:
    import importlib

    return importlib.import_module(SUBCOMMANDS[args.trainer][0]).run_command(args)
