"""Every `wb` command in one static table: the CLI's parser, the app's New job forms and the README's command
table are all built from `COMMANDS`, so no other list of command names exists.

    python -m workbench.registry --markdown          # print the README's command table
    python -m workbench.registry --readme README.md  # rewrite it between the README's marker comments

Modules and config classes are strings, imported only by whoever needs them (the CLI imports the module of
the one command being run), so this module imports nothing of the project.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Command:
    """One `wb` command or subcommand."""

    path: tuple[str, ...]  # ("train", "sft") is `wb train sft`
    help: str  # one line, shown by `wb --help`, as the form's caption and in the README
    group: str  # the heading `wb --help` and the README list it under
    # the module holding `add_arguments(parser)` and `run(args) -> int`; None: a namespace whose subcommands run
    module: str | None = None
    # "module:Class" config dataclasses whose fields describe the flags (help, defaults, ranges) in the app's
    # form; the first one owns `--config`
    configs: tuple[str, ...] = ()
    # why the app does not offer this command as a New job form; None: it does, and its form must build
    # (tests/app/test_job_forms.py fails on a command that is neither)
    cli_only: str | None = None

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def app(self) -> bool:
        """Whether the app's New job page offers this command."""
        return self.module is not None and self.cli_only is None


NO_RUN = "prints to the terminal; no run directory for a job to write"

COMMANDS: tuple[Command, ...] = (
    Command(path=("info",), group="look at data", module="workbench.commands.info",
            help="versions of the key libraries, CPU/GPU, the workspace directory", cli_only=NO_RUN),
    Command(path=("inspect",), group="look at data", module="workbench.commands.inspect",
            help="detect a source's record kind and profile its columns",
            cli_only=NO_RUN + " (the Data browser profiles columns)"),
    Command(path=("validate",), group="look at data", module="workbench.commands.validate",
            help="check every row of a source against its record kind", cli_only=NO_RUN),
    Command(path=("convert",), group="look at data", module="workbench.commands.convert",
            help="convert any supported source to parquet or jsonl",
            cli_only="its output is a positional path, often a single file, not a run directory"),

    Command(path=("curate",), group="curate", module="curate.commands.curate",
            help="filters, PII, decontamination, exact and near dedup in one run",
            configs=("curate.config:CurateConfig", "curate.dedup:DedupConfig")),
    Command(path=("dedup",), group="curate", module="curate.commands.dedup",
            help="exact and MinHash near dedup with a keep policy (and --against a run)",
            configs=("curate.dedup:DedupConfig",)),
    Command(path=("decontam",), group="curate", module="curate.commands.decontam",
            help="drop rows sharing n-grams with benchmark questions or answers",
            configs=("curate.decontam:DecontamConfig",)),
    Command(path=("semdedup",), group="curate", module="curate.commands.semdedup",
            help="semantic dedup: embed, k-means, drop near neighbours by cosine",
            configs=("curate.semdedup:SemDedupConfig",)),
    Command(path=("search",), group="curate", module="curate.commands.search",
            help="semantic search: the rows nearest in meaning to a query, by encoder embeddings",
            configs=("curate.search:SearchConfig",),
            cli_only=NO_RUN + " (the Data browser's semantic search runs it)"),
    Command(path=("select",), group="curate", module="curate.commands.select",
            help="keep the top rows by length, classifier, LLM-judged difficulty or at random",
            configs=("curate.select:SelectConfig",)),
    Command(path=("select", "train-classifier"), group="curate", module="curate.commands.train_classifier",
            help="train the fastText good/bad classifier that `select --strategy classifier` ranks by",
            configs=("curate.classifier:TrainClassifierConfig",)),

    Command(path=("mix",), group="mix", help="RegMix mixture search: plan, run, merge, fit, search, predict, build, confirm"),
    Command(path=("mix", "plan"), group="mix", module="mixopt.commands.plan",
            help="read domains, store byte tokens, sample proxy mixtures", configs=("mixopt.plan:PlanConfig",)),
    Command(path=("mix", "run"), group="mix", module="mixopt.commands.run",
            help="train one proxy per mixture (resumable)", configs=("mixopt.proxy:ProxyConfig",)),
    Command(path=("mix", "merge"), group="mix", module="mixopt.commands.merge",
            help="join the shards of a `wb mix run --shard i/n` sweep into results.parquet",
            cli_only="joins shards that cluster nodes trained, where their files are, after their array job"),
    Command(path=("mix", "fit"), group="mix", module="mixopt.commands.fit",
            help="fit LightGBM and a linear baseline from weights to metrics", configs=("mixopt.fit:FitConfig",)),
    Command(path=("mix", "search"), group="mix", module="mixopt.commands.search",
            help="simulate mixtures, predict, average the top k", configs=("mixopt.search:SearchConfig",)),
    Command(path=("mix", "predict"), group="mix", module="mixopt.commands.predict",
            help="score mixtures in a table with a saved fit (and check against results)",
            configs=("mixopt.predict:PredictConfig",)),
    Command(path=("mix", "build"), group="mix", module="mixopt.commands.build",
            help="materialise the mixed corpus (text, or SFT rows sized by --rows)",
            configs=("mixopt.build:BuildConfig",)),
    Command(path=("mix", "confirm"), group="mix", module="mixopt.commands.confirm",
            help="train on chosen, natural and uniform mixtures and compare", configs=("mixopt.proxy:ProxyConfig",)),

    Command(path=("distill",), group="generate", module="distill_data.commands.distill",
            help="generate (and verify) teacher answers; re-run to resume",
            configs=("distill_data.config:DistillConfig",)),
    Command(path=("prefs",), group="generate", module="prefs.commands.prefs",
            help="preference pairs (delta, best-vs-worst) or rejection-sampled SFT data",
            configs=("prefs.config:PrefsConfig",)),
    Command(path=("eval",), group="evaluate", module="evals.commands.eval",
            help="score a model on benchmarks (pass@k, maj@k, intervals); --compare runs",
            configs=("evals.config:EvalConfig",)),

    Command(path=("train",), group="train", help="train a model on workbench data: sft, dpo, grpo, opd"),
    Command(path=("train", "sft"), group="train", module="trainers.sft",
            help="supervised fine-tuning on messages or prompt/completion rows", configs=("trainers.sft:SFTConfig",)),
    Command(path=("train", "dpo"), group="train", module="trainers.dpo",
            help="direct preference optimisation on prompt/chosen/rejected rows", configs=("trainers.dpo:DPOConfig",)),
    Command(path=("train", "grpo"), group="train", module="trainers.grpo",
            help="GRPO family (grpo/bnpo/dr_grpo/dapo, GSPO, DAPO sampling, GFPO) on prompts",
            configs=("trainers.grpo:GRPOConfig",)),
    Command(path=("train", "opd"), group="train", module="trainers.opd",
            help="on-policy distillation: the student samples, a teacher scores its tokens",
            configs=("trainers.opd:OPDConfig",)),

    Command(path=("model",), group="serve", help="bring a model in: import a GGUF file (Ollama, llama.cpp)"),
    Command(path=("model", "import"), group="serve", module="llm.commands.model_import",
            help="a GGUF file to a transformers model directory with its tokenizer and chat template",
            cli_only="its output is a model directory, not a run directory"),
    Command(path=("serve",), group="serve", module="llm.commands.serve",
            help="an OpenAI-compatible server over a local transformers model",
            cli_only="a server that runs until stopped; start it in a terminal"),
    Command(path=("cache",), group="serve", help="the response cache runs share: prune what no run has used lately"),
    Command(path=("cache", "prune"), group="serve", module="llm.commands.cache",
            help="drop response-cache samples unused for --older-than (7d, 12h)",
            cli_only="maintenance of the shared response cache; prints to the terminal"),
    Command(path=("tinker",), group="serve", help="a local Tinker-compatible training service and its usage"),
    Command(path=("tinker", "serve"), group="serve", module="trainers.tinker_service.server",
            help="serve Tinker's API over a local model (LoRA training, sampling, metering)",
            configs=("trainers.tinker_service.server:ServeConfig",),
            cli_only="a server that runs until stopped; start it in a terminal"),
    Command(path=("tinker", "usage"), group="serve", module="trainers.tinker_service.usage",
            help="tokens and cost per session and model of a running service", cli_only=NO_RUN),

    Command(path=("runs",), group="watch", module="workbench.commands.runs",
            help="every run below a workspace: state, rows, tokens, cost (--usage: totals)",
            cli_only="the Runs page shows this table, live"),
    Command(path=("lineage",), group="watch", module="workbench.commands.lineage",
            help="the chain of a row back to its source file and row, or why it was dropped",
            cli_only=NO_RUN + " (the Data browser shows drop reasons)"),
    Command(path=("ui",), group="watch", module="workbench.commands.ui",
            help="the Streamlit workbench app over a workspace (127.0.0.1:8501)", cli_only="it starts the app"),
    Command(path=("recipe",), group="recipes", help="a whole loop as one YAML file: run, plan its cost, status"),
    Command(path=("recipe", "run"), group="recipes", module="workbench.commands.recipe_run",
            help="run a recipe's steps in order; reuse unchanged steps, resume interrupted ones, cap the cost",
            cli_only="the Recipe page starts and stops recipes"),
    Command(path=("recipe", "plan"), group="recipes", module="workbench.commands.recipe_plan",
            help="requests, tokens and cost per step and in total (low-high) before anything runs",
            cli_only=NO_RUN + " (the Recipe page shows the plan)"),
    Command(path=("recipe", "status"), group="recipes", module="workbench.commands.recipe_status",
            help="each step: reused / to run / running / done / failed, and why",
            cli_only=NO_RUN + " (the Recipe page draws it)"),
    Command(path=("demo",), group="demo", module="demo.commands.demo",
            help="the whole loop on a toy task, every stage scored, one table of results",
            cli_only="it runs every stage itself into a workspace of its own; open that with `wb ui --workspace`"),
    Command(path=("demo", "data"), group="demo", module="demo.commands.data",
            help="the demo's raw data, benchmark, prompts and random toy model as one run (the demo recipe)",
            cli_only="a step of examples/recipes/demo.yaml"),
    Command(path=("demo", "domains"), group="demo", module="demo.commands.domains",
            help="a curated run split by domain, with the domains.yaml `wb mix plan` reads (the demo recipe)",
            cli_only="a step of examples/recipes/demo.yaml"),
    Command(path=("demo", "report"), group="demo", module="demo.commands.report",
            help="the demo's result table from its runs (the demo recipe's last step)",
            cli_only="a step of examples/recipes/demo.yaml"),
)

BY_PATH: dict[tuple[str, ...], Command] = {c.path: c for c in COMMANDS}
MARKERS = ("<!-- commands:start -->", "<!-- commands:end -->")


def subcommands(path: tuple[str, ...]) -> list[Command]:
    """The commands one word below `path`, in table order (() gives the top-level commands)."""
    return [c for c in COMMANDS if len(c.path) == len(path) + 1 and c.path[:len(path)] == path]


def runnable() -> list[Command]:
    """Every command that runs (namespaces such as `train` left out), in table order."""
    return [c for c in COMMANDS if c.module is not None]


def groups() -> dict[str, list[Command]]:
    """The runnable commands by help group, groups in the order they first appear."""
    out: dict[str, list[Command]] = {}
    for c in runnable():
        out.setdefault(c.group, []).append(c)
    return out


def markdown_table() -> str:
    """The README's command table: every runnable command, its group, what it does, and where it runs."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| command | group | what it does | app |", "|---|---|---|---|"]
    for c in runnable():
        where = "New job form" if c.app else f"CLI only: {c.cli_only}"
        lines.append(f"| `wb {c.name}` | {c.group} | {cell(c.help)} | {cell(where)} |")
    return "\n".join(lines)


def readme_table(text: str, path: str = "README.md") -> str:
    """The text between the README's command markers; raise ValueError when a marker is missing."""
    start, end = MARKERS
    if start not in text or end not in text:
        raise ValueError(f"{path}: no {start} ... {end} markers around the command table")
    return text.split(start, 1)[1].split(end, 1)[0].strip()


def write_readme(path: Path) -> None:
    """Replace the table between the README's command markers with `markdown_table()`."""
    text = path.read_text()
    readme_table(text, str(path))  # fail before writing when the markers are missing
    start, end = MARKERS
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    path.write_text(pattern.sub(lambda _: f"{start}\n{markdown_table()}\n{end}", text, count=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.registry", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the README's command table")
    parser.add_argument("--readme", type=Path, help="rewrite the command table of this README in place")
    args = parser.parse_args(argv)
    if args.readme:
        write_readme(args.readme)
    if args.markdown or not args.readme:
        print(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
