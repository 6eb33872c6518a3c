"""App settings kept in the workspace (`.wb-ui.yaml`): named endpoints with the *name* of the environment
variable that holds each API key. Key values are never stored or shown, only whether the variable is set."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from workbench.errors import InputError
from workbench.runfiles import write_atomic

SETTINGS = ".wb-ui.yaml"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load(root: Path) -> dict:
    path = Path(root) / SETTINGS
    if not path.exists():
        return {"endpoints": []}
    try:
        value = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(value, dict) or not isinstance(value.get("endpoints", []), list):
        raise InputError(f"{path}: expected `endpoints:` with a list of {{name, base_url, api_key_env}}")
    value.setdefault("endpoints", [])
    return value


def check_endpoint(endpoint: dict) -> dict:
    """Raise `InputError` for a missing name, a base URL that is not http(s), or a key that is not an
    environment variable *name* (a pasted key is refused, so it is never written to disk)."""
    name, url, env = (str(endpoint.get(k) or "").strip() for k in ("name", "base_url", "api_key_env"))
    if not name:
        raise InputError("endpoint: give it a name")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"endpoint {name}: base URL must start with http:// or https://")
    if env and not _ENV_NAME.match(env):
        raise InputError(f"endpoint {name}: {'the API key' if len(env) > 20 else repr(env)} is not an environment "
                         "variable name; give the variable's name (e.g. OPENAI_API_KEY), never the key")
    return {"name": name, "base_url": url, "api_key_env": env or None}


def save(root: Path, settings: dict) -> None:
    write_atomic(Path(root) / SETTINGS, yaml.safe_dump(settings, sort_keys=False))


def key_status(env: str | None) -> str:
    if not env:
        return "no key"
    return "set" if os.environ.get(env) else "not set"
