"""Errors a user can act on.

Every problem with a user's input is raised as a `WorkbenchError` whose message is one sentence naming
the file, row or field and what was expected. The CLI prints that sentence alone (no traceback unless
`--debug`) and exits non-zero.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """A problem the user can fix: bad input, a missing file, an unfinished run, a missing extra."""

    exit_code = 2


class RunFailed(WorkbenchError):
    """The run's work failed although its input was fine (every request to the model failed): the run
    directory keeps what it did and says failed; re-running the same command retries it."""

    exit_code = 1


class CostCapReached(RunFailed):
    """A run stopped because its ledger's cost reached `--max-cost`: what was done is kept, and raising the
    cap and re-running the same command continues from there."""


class InputError(WorkbenchError):
    """A source that cannot be read: missing, unknown format, malformed, empty, not UTF-8."""


class SchemaError(WorkbenchError):
    """Rows that do not match the record kind a step expects."""


class MissingExtraError(WorkbenchError):
    """An optional dependency is not installed; the message names the exact `pip install`."""


def require(module: str, extra: str | None = None, package: str | None = None):
    """Import an optional module, or raise `MissingExtraError` naming the install command.

    `extra` is this project's extra that provides it (`pip install -e ".[vllm]"`); `package` is the
    PyPI name when it differs from the module name.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f'pip install -e ".[{extra}]"' if extra else f"pip install {package or module}"
        raise MissingExtraError(f"{module} is not installed; install it with: {hint}") from exc


def is_interrupt(exc: BaseException | None) -> bool:
    """Whether `exc` is Ctrl-C or SIGTERM (the CLI raises KeyboardInterrupt for both), also when a task
    group (anyio's, asyncio's) wrapped it in a BaseExceptionGroup with nothing else."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(KeyboardInterrupt)[1] is None
    return False
