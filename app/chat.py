"""Trying a model from the app: the chat targets (every endpoint in Settings, every trained run's model), one
OpenAI-compatible chat request, and `wb serve` over a run's model started on demand.

A served model is an ordinary app job (`app.jobs.launch`): `wb serve MODEL --host 127.0.0.1 --port P` in its
own process group, with its log and launch record in `.wb-ui/serve/<run>/` under the workspace (hidden, so
it is not listed as a run). A reload re-attaches to it from that record; Stop, and the app's own exit, stop
only the processes this app started, by their recorded pid and identity.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from app import jobs, settings
from app.runs import list_runs
from app.workspace import run_name, safe_path
from workbench.errors import InputError
from workbench.runfiles import JOB, LOG, pid_alive, read_json

SERVE_DIR = ".wb-ui/serve"
READY_SECONDS = 180.0  # loading a model on a busy CPU; a tiny one is ready in seconds
_started: set[Path] = set()  # servers this app process launched, stopped when it exits


@dataclass(frozen=True)
class Target:
    """Something to chat with: a Settings endpoint (base URL, key variable) or a trained run's model."""

    label: str
    base_url: str | None = None
    api_key_env: str | None = None
    model_dir: Path | None = None


def targets(root: Path) -> list[Target]:
    """Every endpoint in Settings, then every finished run holding a model directory (`model/config.json`)."""
    out = [Target(f"endpoint: {e['name']}", e["base_url"], e.get("api_key_env")) for e in settings.load(root)["endpoints"]]
    for row in list_runs(root):
        model = Path(root) / row["name"] / "model"
        if row["state"] == "complete" and (model / "config.json").is_file():
            out.append(Target(f"run: {row['name']}", model_dir=model))
    return out


def ask(base_url: str, model: str, messages: list[dict], api_key_env: str | None = None, max_tokens: int = 256,
        temperature: float = 0.7, timeout: float = 120.0) -> str:
    """The assistant's reply to `messages` from an OpenAI-compatible endpoint; `InputError` with the
    endpoint's own message (or the connection error) in one line when it fails."""
    body = json.dumps({"model": model, "messages": messages, "max_tokens": max_tokens,
                       "temperature": temperature}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key_env and os.environ.get(api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[api_key_env]}"
    url = base_url.rstrip("/") + "/chat/completions"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: HTTP {exc.code}: {_error_message(exc.read())}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    except json.JSONDecodeError:
        raise InputError(f"{url}: the reply is not JSON") from None
    try:
        return str(reply["choices"][0]["message"].get("content") or "")
    except (KeyError, IndexError, TypeError):
        raise InputError(f"{url}: the reply has no choices[0].message") from None


def _error_message(body: bytes) -> str:
    try:
        value = json.loads(body)
        error = value.get("error", value) if isinstance(value, dict) else value
        return str(error.get("message", error) if isinstance(error, dict) else error)[:300]
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body.decode("utf-8", "replace").strip()[:300] or "no message"


def first_model(base_url: str, api_key_env: str | None = None, timeout: float = 5.0) -> str | None:
    """The first model id `GET /models` lists, or None when the endpoint does not answer."""
    headers = {"Authorization": f"Bearer {os.environ[api_key_env]}"} if api_key_env and os.environ.get(api_key_env) else {}
    try:
        request = urllib.request.Request(base_url.rstrip("/") + "/models", headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.loads(response.read()).get("data") or []
        return str(data[0]["id"]) if data else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def server_dir(root: Path, model_dir: Path) -> Path:
    """Where the server over a run's model keeps its log and launch record."""
    name = run_name(root, Path(model_dir).parent).replace("/", "__")
    return Path(root) / SERVE_DIR / name


def served(root: Path, model_dir: Path) -> dict | None:
    """{pid, url, model} of the live server over `model_dir` this app started, else None."""
    record = read_json(server_dir(root, model_dir) / JOB) or {}
    if record.get("returncode") is not None or not pid_alive(record.get("pid"), record.get("process")):
        return None
    argv = record.get("argv") or []
    port = argv[argv.index("--port") + 1] if "--port" in argv else None
    name = argv[argv.index("--served-model-name") + 1] if "--served-model-name" in argv else None
    return {"pid": record["pid"], "url": f"http://127.0.0.1:{port}/v1", "model": name}


def start_server(root: Path, model_dir: Path, ready_seconds: float = READY_SECONDS) -> dict:
    """Start `wb serve` over a run's model on a free loopback port (or find the one already running) and wait
    until it answers; return {pid, url, model}. `InputError` with the log's last line when it fails."""
    model_dir = safe_path(root, model_dir)
    live = served(root, model_dir)
    if live is not None:
        return live
    folder = server_dir(root, model_dir)
    if folder.exists():  # a stopped server's old record and log: a new launch starts afresh
        for name in (JOB, LOG):
            (folder / name).unlink(missing_ok=True)
    name = run_name(root, model_dir.parent)
    argv = ["serve", str(model_dir), "--host", "127.0.0.1", "--port", str(_free_port()), "--served-model-name", name]
    jobs.launch(argv, folder)
    _started.add(folder)
    return wait_ready(root, model_dir, ready_seconds)


def wait_ready(root: Path, model_dir: Path, ready_seconds: float = READY_SECONDS) -> dict:
    """Wait until the server over `model_dir` answers `GET /models` (it is alive from launch, but loading the
    model takes a while, and a page rerun mid-load must not send it requests yet); return {pid, url, model}.
    `InputError` naming its log's last line if it exits first; stopped (and `InputError`) if not ready in time."""
    folder, name = server_dir(root, model_dir), run_name(root, Path(model_dir).parent)
    deadline = time.monotonic() + ready_seconds
    while time.monotonic() < deadline:
        live = served(root, model_dir)
        if live is None:
            tail = jobs.read_log(folder).strip().splitlines()
            raise InputError(f"wb serve {name}: exited before it was ready ({tail[-1] if tail else 'no log'})")
        if first_model(live["url"], timeout=2.0) is not None:
            return live
        time.sleep(0.5)
    stop_server(root, model_dir)
    raise InputError(f"wb serve {name}: not ready within {ready_seconds:.0f} s; see {folder / LOG}")


def stop_server(root: Path, model_dir: Path) -> str:
    """Stop the server over `model_dir` that this app started (its process group, by recorded pid)."""
    return jobs.stop(server_dir(root, Path(model_dir)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@atexit.register
def _stop_started() -> None:
    for folder in list(_started):
        jobs.stop(folder, grace_seconds=2.0)
