"""The `wb` console script: one subcommand per stage, built from the table in `workbench/registry.py`.

Each command lives in the package that owns it as a module with `add_arguments(parser)` and
`run(args) -> int` (the registry names it); only the module of the command being run is imported, so
`wb info` stays fast and `wb inspect` never imports torch. User errors print one line and exit non-zero; `--debug` shows the
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import signal
import sys
import textwrap
import threading
import warnings

from workbench import registry
from workbench.errors import WorkbenchError, is_interrupt


def build_parser(path: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """The parser of every command in the registry; only the module of `path` (the command being run, e.g.
    ("train", "sft")) is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="wb", description="Post-training data workbench: curate, mix, distil, pair and train.",
        epilog=command_list(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                help="one of the commands below; `wb COMMAND --help` lists its options")
    for command in registry.subcommands(()):
        sp = sub.add_parser(command.name, description=command.help)  # no help=: command_list() lists them
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
        sp.add_argument("--overwrite", action="store_true", default=argparse.SUPPRESS,
                        help="replace what the output directory holds (files that are not a wb run)")
        _add_command(sp, command, path)
    return parser


def _add_command(parser: argparse.ArgumentParser, command: registry.Command, path: tuple[str, ...]) -> None:
    """The command's own arguments when it is the one being run, else its subcommands (`select` has both:
    its SOURCE... positional and a subcommand cannot share one parser, so only one of them is added)."""
    if command.path == path and command.module is not None:
        importlib.import_module(command.module).add_arguments(parser)
        return
    children = registry.subcommands(command.path)
    if not children:
        return
    sub = parser.add_subparsers(metavar="SUBCOMMAND", required=command.module is None)
    for child in children:
        _add_command(sub.add_parser(child.path[-1], help=child.help, description=child.help), child, path)


def command_list() -> str:
    """Every runnable command under its help group, for `wb --help`."""
    width = max(len(c.name) for c in registry.runnable()) + 2
    columns = shutil.get_terminal_size().columns - 2  # as argparse wraps its own help
    lines = []
    for group, commands in registry.groups().items():
        lines.append(f"{group}:")
        lines += [textwrap.fill(c.help, columns, initial_indent=f"  {c.name:<{width}}",
                                subsequent_indent=" " * (width + 2)) for c in commands]
    return "\n".join(lines)


def command_path(argv: list[str]) -> tuple[str, ...]:
    """The longest command path in the registry that argv's words (its arguments that are not flags) start
    with: ("train", "sft") for `train sft --model M`, () when argv names no command."""
    path: tuple[str, ...] = ()
    for word in (a for a in argv if not a.startswith("-")):
        if path + (word,) not in registry.BY_PATH:
            break
        path += (word,)
    return path


def _interrupt() -> None:
    import asyncio

    if not asyncio.all_tasks():  # the loop's work has ended (it is stopping): nothing is left to interrupt
        return
    raise KeyboardInterrupt


def _terminate(signum, frame) -> None:
    # SIGTERM unwinds like Ctrl-C, so atomic writers delete their temporary files on the way out. Ctrl-C
    # takes this path too: asyncio.run would otherwise turn it into a cancellation of its main task only,
    # which a library in the stack may swallow; an exception out of the event loop makes asyncio.run cancel
    # every task and wait for each to unwind.
    # Inside a running event loop the exception is raised from a callback of the loop, between callbacks:
    # raised at whatever bytecode the signal hit it can land in anyio's cancel-scope bookkeeping (httpx:
    # "Attempted to exit a cancel scope that isn't the current task's"), be wrapped in a task group's
    # BaseExceptionGroup, or be stored in a task ("Task exception was never retrieved") instead of
    # unwinding. call_soon_threadsafe also wakes a loop waiting in select(), which a signal alone does not.
    # uvicorn (`wb tinker serve`) re-raises the signal it handled as its server stops; by the time the
    # callback runs its loop has no task left, and the server's own shutdown stands.
    asyncio = sys.modules.get("asyncio")  # not imported at start-up: `wb` commands without a loop skip it
    if asyncio is not None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # plain code: unwind from where it is
            loop = None
        if loop is not None:
            loop.call_soon_threadsafe(_interrupt)
            return
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run `wb ARGV` (default: sys.argv[1:]); return the exit code. Called in-process (`wb demo`, tests,
    scripts), each run records ARGV as its command; nothing process-wide changes (SIGTERM and Ctrl-C unwind
    the command, and their handlers are put back on return)."""
    given = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in given  # accepted anywhere, also after nested subcommands (`wb mix fit ... --debug`)
    overwrite = "--overwrite" in given  # likewise; it applies to every run directory the command writes
    parsed = [a for a in given if a not in ("--debug", "--overwrite")]
    path = command_path(parsed)
    parser = build_parser(path)
    args = parser.parse_args(parsed)
    # the run options every command's config carries (`workbench.config.RunOptions`); `build_config` takes them
    args.debug, args.overwrite, args.argv = debug, overwrite, ["wb", *given]
    if args.command is None:
        parser.print_help()
        return 0
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _terminate)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where the caller ignores it
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _terminate)
    try:
        return _run(args, path)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(args: argparse.Namespace, path: tuple[str, ...]) -> int:
    """The command's `run(args)`, its errors turned into one line and an exit code."""
    try:
        return int(importlib.import_module(registry.BY_PATH[path].module).run(args) or 0)
    except WorkbenchError as exc:
        if args.debug:
            raise
        print(f"wb {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `wb inspect ... | head`: the reader left; nothing to report
        sys.stderr.close()
        return 0
    except BaseException as exc:
        # Ctrl-C / SIGTERM, also when a task group wrapped it in a BaseExceptionGroup
        if is_interrupt(exc):
            # coroutines the interrupted tasks created but never started (anyio's connection attempts) are
            # collected at exit; the warning about each would bury the one line that says what happened
            warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
            print(f"wb {args.command}: interrupted", file=sys.stderr)
            return 130
        if args.debug or not isinstance(exc, Exception):  # SystemExit and the like go on as they are
            raise
        # a bug, not bad input: say so, keep it to one line unless --debug
        print(f"wb {args.command}: internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
