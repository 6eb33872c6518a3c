"""System packages some tests need (bubblewrap for `--verify code`, Chromium for the app's browser tests).

A test that needs one is marked `@pytest.mark.needs("bubblewrap")` (or calls `require`); on a machine
without the package it is skipped with one line naming the package and the command that installs it, and
`make test` ends with a one-line summary of what was skipped and why, so a green run never hides that the
sandbox or the browser went unexercised. `.ci/run` sets WB_REQUIRE_SYSTEM_PACKAGES=1: there a missing
package fails the test instead, so CI cannot pass without running everything.

WB_TEST_HIDE=bubblewrap[,chromium] tries the suite as on a machine without them: the session's PATH is
replaced by a shadow directory of links to every other program, so the product's own lookups (and the
`wb` subprocesses the tests start) do not find the hidden ones either.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Package:
    """A Debian package, the program the tests look for, and the command that installs it."""

    program: str
    install: str


PACKAGES = {
    "bubblewrap": Package("bwrap", "apt-get install bubblewrap"),
    "chromium": Package("chromium", "apt-get install chromium fonts-liberation"),
}
SKIP_PREFIX = "needs system package "


def hidden() -> set[str]:
    """Packages WB_TEST_HIDE hides (comma-separated names from PACKAGES)."""
    names = {n.strip() for n in os.environ.get("WB_TEST_HIDE", "").split(",") if n.strip()}
    unknown = names - set(PACKAGES)
    if unknown:
        raise pytest.UsageError(f"WB_TEST_HIDE: unknown package {sorted(unknown)[0]!r}; known: {', '.join(PACKAGES)}")
    return names


def shadow_path(hide: set[str], root: Path) -> str:
    """A PATH of one directory holding links to every program on PATH except the hidden packages' ones."""
    programs = {PACKAGES[name].program for name in hide}
    shadow = root / "bin"
    shadow.mkdir(parents=True, exist_ok=True)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = shadow / entry.name
            if entry.name in programs or link.exists() or link.is_symlink():
                continue  # the first directory on PATH wins, as a lookup would
            link.symlink_to(entry.path)
    return str(shadow)


def hide_packages() -> None:
    """Apply WB_TEST_HIDE to this process (called once, when the test session starts)."""
    hide = hidden()
    if hide:
        os.environ["PATH"] = shadow_path(hide, Path(tempfile.mkdtemp(prefix="wb-test-path-")))


def executable(name: str) -> str | None:
    """The package's program on this machine, or None (hidden packages are never found)."""
    if name in hidden():
        return None
    return shutil.which(PACKAGES[name].program)


def require(name: str) -> str:
    """The package's program, else skip the test naming the install command (fail under CI's setting)."""
    found = executable(name)
    if found:
        return found
    message = f"{SKIP_PREFIX}{name} ({PACKAGES[name].program} not found): {PACKAGES[name].install}"
    if os.environ.get("WB_REQUIRE_SYSTEM_PACKAGES"):
        pytest.fail(f"{message} (WB_REQUIRE_SYSTEM_PACKAGES is set: CI runs every test)", pytrace=False)
    pytest.skip(message)


def skipped_summary(skipped_reports: list) -> str | None:
    """One line saying which system packages were missing and how many tests that skipped, or None."""
    counts: Counter[str] = Counter()
    for report in skipped_reports:
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(SKIP_PREFIX):
            counts[reason[len(SKIP_PREFIX):].split(" ", 1)[0]] += 1
    if not counts:
        return None
    parts = [f"{name} ({n} test{'s' * (n != 1)}; {PACKAGES[name].install})" for name, n in sorted(counts.items())]
    return "skipped for missing system packages: " + "; ".join(parts)
