"""The code-verification sandbox: each escape found in review is tried and must be blocked.

Every program below attempts an escape and then asserts that it failed, so a verdict of "tests passed"
means the sandbox held. The CI installs bubblewrap (`.ci/run`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time

import pytest

from llm.verify import code
from llm.verify.code import SandboxError, check_sandbox, run_tests, seccomp_filter

ESCAPES = {
    "read /etc/passwd": """
try:
    leaked = open('/etc/passwd').read()
except OSError:
    leaked = ''
assert 'root' not in leaked
""",
    "write outside its directory": """
for target in ['{host}/escaped.txt', '/escaped.txt', '/usr/lib/escaped.txt']:
    try:
        open(target, 'w').write('x')
    except OSError:
        pass
""",
    "subprocess as root": """
import os, subprocess
assert os.getuid() != 0 and os.geteuid() != 0
try:
    out = subprocess.run(['/bin/sh', '-c', 'id -u'], capture_output=True).stdout
except OSError:
    out = b''
assert out == b''
try:
    os.setuid(0)
    became_root = True
except OSError:
    became_root = False
assert not became_root
""",
    "fork 50 times": """
import os, time
children = 0
for _ in range(50):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    children += 1
assert children == 0, children
""",
    "reload socket": """
import importlib, socket
importlib.reload(socket)
s = socket.socket()
s.settimeout(2)
try:
    s.connect(('127.0.0.1', {port}))
    connected = True
except OSError:
    connected = False
assert not connected
""",
    "write a huge file": """
written = 0
try:
    with open('/tmp/big', 'wb') as f:
        for _ in range(100):
            f.write(b'x' * (1 << 20))
            written += 1
except OSError:
    pass
assert written < 100
""",
    "open many files": """
files = []
try:
    for _ in range(2000):
        files.append(open('/tmp/program.py'))
except OSError:
    pass
assert len(files) < 2000
""",
}


NEEDS_BWRAP = pytest.mark.needs("bubblewrap")


@pytest.fixture
def listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@NEEDS_BWRAP
@pytest.mark.parametrize("name", list(ESCAPES))
def test_escape_is_blocked(name, tmp_path, listener):
    host = tmp_path / "host"
    host.mkdir()
    program = ESCAPES[name].format(host=host, port=listener)
    passed, detail = run_tests(program, "", timeout=10)
    assert passed, f"{name}: {detail}"
    assert not (host / "escaped.txt").exists()


@NEEDS_BWRAP
def test_user_data_is_invisible(tmp_path):
    secret = tmp_path / "ledger.sqlite"
    secret.write_text("prompt ids and answers")
    passed, detail = run_tests(f"import os\nassert not os.path.exists({str(secret)!r})\n"
                               "assert not os.path.exists('/work') and not os.path.exists('/etc')", "")
    assert passed, detail


def test_the_unconfined_mode_is_a_real_control(tmp_path):
    """Without the sandbox the same escapes work, so the tests above test the sandbox."""
    passed, _ = run_tests(ESCAPES["read /etc/passwd"], "", sandbox="none")
    assert not passed
    passed, _ = run_tests(f"open({str(tmp_path / 'escaped.txt')!r}, 'w').write('x')", "", sandbox="none")
    assert passed and (tmp_path / "escaped.txt").exists()


_SETSID_CHILD = ("import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    open({pidfile!r}, 'w')"
                 ".write(str(os.getpid()))\n    sys.stderr.write('x')\n    time.sleep(120)\n    os._exit(0)\n"
                 "time.sleep(120)\n")


def test_unconfined_answers_cannot_start_processes(tmp_path):
    """`--sandbox none`: the harness refuses `fork`, so no child can escape into its own session."""
    pidfile = tmp_path / "child.pid"
    passed, detail = run_tests(_SETSID_CHILD.format(pidfile=str(pidfile)), "", timeout=5, sandbox="none")
    assert not passed and "os.fork is disabled in the sandbox" in detail
    assert not pidfile.exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_an_escaped_child_neither_stalls_nor_outlives_the_verdict(tmp_path, monkeypatch):
    """`fork(); setsid()` then sleep with stderr open, with the harness's refusals taken out (as if an
    answer found a way round them): the verdict still comes at the time limit (the old code waited for the
    pipe), and the child, outside the process group, is killed by its environment marker (it used to live
    on). Unconfined, so the child really escapes; the test kills it by pid if the code did not."""
    monkeypatch.setattr(code, "_HARNESS", code._HARNESS.replace("    _lock_down(os, sys)\n", ""))
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    passed, detail = run_tests(_SETSID_CHILD.format(pidfile=str(pidfile)), "", timeout=2, sandbox="none")
    child = int(pidfile.read_text()) if pidfile.exists() and pidfile.read_text() else None
    try:
        assert not passed and detail.startswith("time limit")
        assert time.monotonic() - started < 60  # the child sleeps 120 s: waiting on it would take that long
        assert child is not None
        for _ in range(100):  # SIGKILL is delivered asynchronously
            if not _alive(child):
                break
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


def test_kill_marked_kills_only_marked_processes():
    import subprocess

    marked = subprocess.Popen(["sleep", "60"], env={"WB_SANDBOX_RUN": "abc123", "PATH": "/usr/bin:/bin"},
                              start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], env={"WB_SANDBOX_RUN": "other", "PATH": "/usr/bin:/bin"})
    try:
        assert code.kill_marked("abc123") == 1
        assert marked.wait(timeout=10) == -signal.SIGKILL and other.poll() is None
    finally:
        for proc in (marked, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


CRASHES = {
    "segfault": ("import faulthandler\nfaulthandler._sigsegv()", "SIGSEGV"),
    "self-SIGKILL": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "SIGKILL"),
}


@pytest.mark.parametrize("sandbox", [pytest.param("bwrap", marks=NEEDS_BWRAP), "none"])
@pytest.mark.parametrize("name", list(CRASHES))
def test_crashes_are_not_called_memory_limits(name, sandbox):
    program, signal_name = CRASHES[name]
    passed, detail = run_tests(program, "pass", sandbox=sandbox)
    assert not passed and detail.startswith("the tests did not finish: the program ")
    assert signal_name in detail and "memory" not in detail


@pytest.mark.parametrize("sandbox", [pytest.param("bwrap", marks=NEEDS_BWRAP), "none"])
def test_only_a_real_memory_error_is_a_memory_limit(sandbox):
    passed, detail = run_tests("raise ValueError('MemoryError is only my text')", "pass", sandbox=sandbox)
    assert (passed, detail) == (False, "the answer raised ValueError: MemoryError is only my text before the "
                                       "tests ran")
    passed, detail = run_tests("def grow():\n    return bytearray(4 * 1024 ** 3)", "grow()", memory_mb=256,
                               sandbox=sandbox)
    assert (passed, detail) == (False, "memory limit: tests.py line 1: MemoryError (address space capped at "
                                       "256 MiB)")


@NEEDS_BWRAP
def test_a_bwrap_outside_usr_bin_is_the_one_run(tmp_path, monkeypatch):
    """bwrap found on the user's PATH runs by that path (the sandbox's own PATH is /usr/bin:/bin); it used
    to be looked up there again and reported as 'user namespaces may be disabled'."""
    real = shutil.which("bwrap")
    bin_dir, marker = tmp_path / "bin", tmp_path / "ran"
    bin_dir.mkdir()
    wrapper = bin_dir / "bwrap"
    wrapper.write_text(f"#!/bin/sh\necho ran >> {marker}\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    code._bwrap_probe.cache_clear()
    try:
        check_sandbox("bwrap")
        assert run_tests("def f():\n    return 1", "assert f() == 1") == (True, "tests passed")
    finally:
        code._bwrap_probe.cache_clear()
    assert marker.read_text().count("ran") == 2  # the probe and the run


def test_an_unrunnable_bwrap_is_named(tmp_path, monkeypatch):
    fake = tmp_path / "bwrap"
    fake.write_text("not a program")  # found, but not executable
    monkeypatch.setattr(code.shutil, "which", lambda name: str(fake))
    code._bwrap_probe.cache_clear()
    try:
        with pytest.raises(SandboxError, match=rf"cannot run {fake}: .*Permission denied"):
            check_sandbox("bwrap")
    finally:
        code._bwrap_probe.cache_clear()


@NEEDS_BWRAP
def test_the_sandbox_kills_its_whole_pid_namespace_at_the_time_limit():
    passed, detail = run_tests("import time\ntime.sleep(120)", "", timeout=1.5)
    assert not passed and detail == "time limit: killed after 1.5s"


def test_missing_bubblewrap_names_the_package(monkeypatch):
    monkeypatch.setattr(code.shutil, "which", lambda name: None)
    with pytest.raises(SandboxError, match=r"`bubblewrap` package .*--sandbox none"):
        check_sandbox("bwrap")


def test_sandbox_none_warns(capsys):
    check_sandbox("none")
    assert "runs unconfined" in capsys.readouterr().err


def test_seccomp_filter_layout():
    bpf = seccomp_filter("x86_64")
    assert len(bpf) % 8 == 0 and len(bpf) // 8 == 14
    assert seccomp_filter("aarch64") and seccomp_filter("riscv64") is None


def test_distill_refuses_code_verification_without_bubblewrap(tmp_path, monkeypatch, capsys):
    from workbench.cli import main

    src = tmp_path / "p.jsonl"
    src.write_text('{"prompt": "x", "tests": "assert True"}\n')
    monkeypatch.setattr(code.shutil, "which", lambda name: None)
    rc = main(["distill", str(src), "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--verify", "code",
               "--tests-field", "tests", "--output", str(tmp_path / "run")])
    assert rc == 2 and "bubblewrap" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
