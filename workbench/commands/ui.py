"""`wb ui [--workspace DIR] [--port 8501] [--host 127.0.0.1]`: the Streamlit workbench app over a workspace.

The app lists the runs under the workspace, launches the same `wb` commands as jobs and reads and writes
files only under it. It binds 127.0.0.1 unless told otherwise (another host prints a warning: the app
has no login and can start jobs). Streamlit's XSRF protection and CORS checks are always switched on
on the command line, which beats a config file or environment that turns them off: another web page the
user opens cannot drive the app.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from workbench.errors import InputError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", default="runs", help="directory whose runs the app shows (default: runs)")
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default: 8501)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")


def streamlit_argv(host: str, port: int) -> list[str]:
    app = Path(__file__).resolve().parents[2] / "app" / "main.py"
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--client.toolbarMode", "minimal", "--server.enableXsrfProtection", "true", "--server.enableCORS", "true"]


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port}: must be between 1 and 65535")
    workspace = Path(args.workspace)
    if workspace.exists() and not workspace.is_dir():
        raise InputError(f"{workspace}: exists and is not a directory; give a workspace directory")
    workspace.mkdir(parents=True, exist_ok=True)
    if args.host not in LOCAL_HOSTS:
        print(f"wb ui: warning: binding {args.host} lets other machines open the app; it has no login and can "
              "start jobs and read the workspace", file=sys.stderr)
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "WB_UI_WORKSPACE": str(workspace.resolve()),
           "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)}
    print(f"workbench app on http://{args.host}:{args.port} over {workspace.resolve()} (Ctrl-C stops it)", flush=True)
    argv = streamlit_argv(args.host, args.port)
    os.execve(argv[0], argv, env)  # the server replaces this process, so Ctrl-C and SIGTERM reach it directly
    return 0  # not reached
