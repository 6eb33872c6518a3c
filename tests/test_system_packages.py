"""The suite on a machine without bubblewrap: its tests skip naming the package, the run says so at the end,
and under CI's WB_REQUIRE_SYSTEM_PACKAGES the same tests fail instead (tests/system_packages.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.system_packages import shadow_path

REPO = Path(__file__).resolve().parents[1]
# two bubblewrap tests and one that runs without it (the unconfined control)
SELECTED = ["tests/llm/test_sandbox.py::test_user_data_is_invisible",
            "tests/llm/test_sandbox.py::test_only_a_real_memory_error_is_a_memory_limit",
            "tests/llm/test_sandbox.py::test_missing_bubblewrap_names_the_package"]


def _pytest(extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WB_TEST_HIDE", "WB_REQUIRE_SYSTEM_PACKAGES")}
    env.update(extra_env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SELECTED],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_shadow_path_hides_only_the_named_programs(tmp_path):
    path = shadow_path({"bubblewrap"}, tmp_path)
    names = {p.name for p in Path(path).iterdir()}
    assert "bwrap" not in names and "sh" in names


def test_without_bubblewrap_its_tests_skip_and_the_run_says_so():
    run = _pytest({"WB_TEST_HIDE": "bubblewrap"})
    assert run.returncode == 0, run.stdout[-3000:]
    assert "2 passed, 2 skipped" in run.stdout  # the "none" sandbox case and the missing-package message run
    assert "needs system package bubblewrap (bwrap not found): apt-get install bubblewrap" in run.stdout
    assert "skipped for missing system packages: bubblewrap (2 tests; apt-get install bubblewrap)" in run.stdout


def test_ci_refuses_a_run_that_skipped_a_system_package_test():
    run = _pytest({"WB_TEST_HIDE": "bubblewrap", "WB_REQUIRE_SYSTEM_PACKAGES": "1"})
    assert run.returncode == 1
    assert "2 passed, 2 errors" in run.stdout  # failed in set-up, before the test body ran
    assert "WB_REQUIRE_SYSTEM_PACKAGES is set: CI runs every test" in run.stdout
