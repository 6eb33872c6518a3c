"""The `wb` console script: one subcommand per stage.

Each command lives in the package that owns it as a module with `add_arguments(parser)` and
`run(args) -> int`; only the module of the command being run is imported, so `wb info` stays fast and
`wb inspect` never imports torch. User errors print one line and exit non-zero; `--debug` shows the
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from workbench.errors import WorkbenchError

# name -> (module with add_arguments/run, one-line help). Later stages add their rows here.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("workbench.commands.info", "versions of the key libraries, CPU/GPU, the workspace directory"),
    "inspect": ("workbench.commands.inspect", "detect a source's record kind and profile its columns"),
    "validate": ("workbench.commands.validate", "check every row of a source against its record kind"),
    "convert": ("workbench.commands.convert", "convert any supported source to parquet or jsonl"),
    "curate": ("curate.commands.curate", "filters, PII, decontamination, exact and near dedup in one run"),
    "dedup": ("curate.commands.dedup", "exact and MinHash near dedup with a keep policy (and --against a run)"),
    "decontam": ("curate.commands.decontam", "drop rows sharing n-grams with benchmark questions or answers"),
    "semdedup": ("curate.commands.semdedup", "semantic dedup: embed, k-means, drop near neighbours by cosine"),
    "select": ("curate.commands.select", "keep the top rows by length, classifier, LLM-judged difficulty or at random"),
    "mix": ("mixopt.cli", "RegMix mixture search: plan, run, fit, search, build, confirm"),
    "distill": ("distill_data.commands.distill", "generate (and verify) teacher answers; re-run to resume"),
    "serve": ("llm.commands.serve", "an OpenAI-compatible server over a local transformers model"),
    "eval": ("evals.commands.eval", "score a model on benchmarks (pass@k, maj@k, intervals); --compare runs"),
    "prefs": ("prefs.commands.prefs", "preference pairs (delta, best-vs-worst) or rejection-sampled SFT data"),
    "train": ("trainers.cli", "train a model on workbench data: sft, dpo, grpo, opd"),
    "runs": ("workbench.commands.runs", "every run below a workspace: state, rows, tokens, cost (--usage: totals)"),
    "lineage": ("workbench.commands.lineage", "the chain of a row back to its source file and row, or why it was "
                                              "dropped"),
    "tinker": ("trainers.tinker_service.cli", "a local Tinker-compatible training service (serve) and its usage"),
    "demo": ("demo.commands.demo", "run the stages that exist on the bundled data"),
    "ui": ("workbench.commands.ui", "the Streamlit workbench app over a workspace (127.0.0.1:8501)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="wb", description="Post-training data workbench: curate, mix, distil, pair and train.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
        sp.add_argument("--overwrite", action="store_true", default=argparse.SUPPRESS,
                        help="replace what the output directory holds (files that are not a wb run)")
        if name == command:
            importlib.import_module(module).add_arguments(sp)
    return parser


def _terminate(signum, frame) -> None:
    # SIGTERM unwinds like Ctrl-C, so atomic writers delete their temporary files on the way out
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run `wb ARGV` (default: sys.argv[1:]); return the exit code. Called in-process (`wb demo`, tests,
    scripts), each run records ARGV as its command; nothing process-wide changes but the SIGTERM handler."""
    given = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in given  # accepted anywhere, also after nested subcommands (`wb mix fit ... --debug`)
    overwrite = "--overwrite" in given  # likewise; it applies to every run directory the command writes
    parsed = [a for a in given if a not in ("--debug", "--overwrite")]
    command = next((a for a in parsed if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(parsed)
    # the run options every command's config carries (`workbench.config.RunOptions`); `build_config` takes them
    args.debug, args.overwrite, args.argv = debug, overwrite, ["wb", *given]
    if args.command is None:
        parser.print_help()
        return 0
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except WorkbenchError as exc:
        if args.debug:
            raise
        print(f"wb {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"wb {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `wb inspect ... | head`: the reader left; nothing to report
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug, not bad input: say so, keep it to one line unless --debug
        if args.debug:
            raise
        print(f"wb {args.command}: internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
