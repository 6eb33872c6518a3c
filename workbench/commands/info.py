"""`wb info`: versions of the key libraries, the CPU and GPU found, the optional system programs (bubblewrap
for `--verify code`, Chromium for the app's browser tests) and the workspace directory."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess

from workbench.rundir import library_versions
from workbench.workspace import workspace_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")


def gpus() -> list[str]:
    """GPU names from nvidia-smi (no torch import needed); empty on CPU machines."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


# program -> (Debian package, what needs it): optional system packages, looked up on PATH
SYSTEM_PROGRAMS = {
    "bwrap": ("bubblewrap", "--verify code (its sandbox)"),
    "chromium": ("chromium", "the app's browser tests"),
}


def system_programs() -> dict[str, str | None]:
    """Each optional system program's path on PATH, or None when it is not installed."""
    return {program: shutil.which(program) for program in SYSTEM_PROGRAMS}


def facts() -> dict:
    return {
        "versions": library_versions(),
        "cpus": os.cpu_count(),
        "gpus": gpus(),
        "system": system_programs(),
        "workspace": str(workspace_dir()),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"),
    }


def run(args: argparse.Namespace) -> int:
    info = facts()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("libraries")
    for name, version in info["versions"].items():
        print(f"  {name:<24} {version or 'not installed'}")
    print(f"cpus       {info['cpus']}")
    print(f"gpus       {', '.join(info['gpus']) or 'none found (CPU only)'}")
    for program, path in info["system"].items():
        package, needed_by = SYSTEM_PROGRAMS[program]
        found = path or f"not installed: apt-get install {package} (needed by {needed_by})"
        print(f"{program:<10} {found}")
    print(f"workspace  {info['workspace']}  (set WB_HOME to move it)")
    print(f"hub        {'offline (HF_HUB_OFFLINE=1)' if info['hf_hub_offline'] else 'online if the network allows'}")
    return 0
