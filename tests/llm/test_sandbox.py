"""The code-verification sandbox: each escape found in review is tried and must be blocked.

Every program below attempts an escape and then asserts that it failed, so a verdict of "tests passed"
means the sandbox held. The CI installs bubblewrap (`.ci/run`).
"""

from __future__ import annotations

import os
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


@pytest.fixture
def listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("name", list(ESCAPES))
def test_escape_is_blocked(name, tmp_path, listener):
    host = tmp_path / "host"
    host.mkdir()
    program = ESCAPES[name].format(host=host, port=listener)
    passed, detail = run_tests(program, "", timeout=10)
    assert passed, f"{name}: {detail}"
    assert not (host / "escaped.txt").exists()


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


def test_an_escaped_child_holding_stderr_cannot_stall_the_verdict(tmp_path):
    """`fork(); setsid()` then sleep with stderr open: the verdict still comes at the time limit (the old
    code waited for the pipe). Unconfined, so the child really escapes; the test kills it by pid."""
    pidfile = tmp_path / "child.pid"
    program = (f"import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    open({str(pidfile)!r}, 'w')"
               f".write(str(os.getpid()))\n    sys.stderr.write('x')\n    time.sleep(120)\n    os._exit(0)\n"
               f"time.sleep(120)\n")
    started = time.monotonic()
    try:
        passed, detail = run_tests(program, "", timeout=2, sandbox="none")
    finally:
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text():
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
                break
            time.sleep(0.05)
    assert not passed and detail.startswith("time limit")
    assert time.monotonic() - started < 60  # the child sleeps 120 s: waiting on it would take that long


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
