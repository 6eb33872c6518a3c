"""One threads and dtype policy for every command that loads a model (serve, eval/distill/prefs with
`--backend hf`, the trainers, the Tinker service), and the record of what each load resolved to.

`--dtype auto` is bfloat16 on a CUDA device that supports it and float32 everywhere else, for serving and
training alike, so a trainer's in-run eval and `wb eval` of the same checkpoint run the same arithmetic.
`--threads 0` (the default) is one thread fewer than the CPUs this process may use (at least 1; or
`OMP_NUM_THREADS` when set): on a loaded 2-core machine torch's own default of 2 threads made a decode
step 4.7x slower than 1 thread, because the server's HTTP loop and the tokenizer need a core too.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from workbench.config import option
from workbench.errors import InputError

DTYPES = ("auto", "float32", "bfloat16", "float16")
# the latest load of each model (path or hub id as given) in this process, for the run's manifest; runs in
# one process follow each other, so the latest load of a run's model is that run's
_LOADED: dict[str, dict] = {}
_LOCK = threading.Lock()


def dtype_option() -> Any:
    """The `--dtype` field of a config that loads a model."""
    return option("auto", "weights dtype when the model is loaded here: auto = bfloat16 on a CUDA GPU that "
                          "supports it, else float32 (the same for serving, eval and training)", choices=list(DTYPES))


def threads_option() -> Any:
    """The `--threads` field of a config that loads a model."""
    return option(0, "CPU threads torch uses; 0 = one fewer than the usable CPUs (at least 1), or "
                     "OMP_NUM_THREADS when set", min=0)


def resolve_dtype(name: str, device: str = "cpu") -> str:
    """The dtype `name` (one of `DTYPES`) means on `device`, as a torch attribute name; raise `InputError`
    for an unknown name."""
    if name not in DTYPES:
        raise InputError(f"--dtype {name!r}: must be one of {', '.join(DTYPES)}")
    if name != "auto":
        return name
    import torch

    cuda = str(device).startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "bfloat16" if cuda else "float32"


def torch_dtype(name: str, device: str = "cpu"):
    """The `torch.dtype` of `resolve_dtype(name, device)`."""
    import torch

    return getattr(torch, resolve_dtype(name, device))


def default_threads() -> int:
    """Threads when `--threads 0`: OMP_NUM_THREADS when set, else usable CPUs minus one (at least 1)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus - 1)


def apply_threads(threads: int = 0) -> int:
    """Set torch's intra-op threads to `threads` (0: `default_threads()`); return the number set."""
    import torch

    if threads < 0:
        raise InputError(f"--threads {threads}: must be 0 (automatic) or more")
    n = threads or default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def record_load(model: str, dtype: str, threads: int, device: str) -> dict:
    """Note that this process loaded `model` with the resolved `dtype`, `threads` and `device`; return
    the entry (`loaded_models()` gives it to the run's manifest)."""
    entry = {"model": str(model), "dtype": dtype, "threads": threads, "device": str(device)}
    with _LOCK:
        _LOADED[entry["model"]] = entry
    return entry


def loaded_models(*models: str | None) -> list[dict]:
    """The latest load of each of `models` (paths or hub ids as given) in this process, with its resolved
    dtype, threads and device: a run's manifest records them as `runtime`."""
    with _LOCK:
        return [dict(_LOADED[m]) for m in dict.fromkeys(str(m) for m in models if m) if m in _LOADED]


def spec_loads(*specs) -> list[dict]:
    """`loaded_models` of the in-process models among `specs` (`EndpointSpec`s); a model reached over HTTP
    was loaded by its server, so it is not listed."""
    return loaded_models(*(s.model for s in specs if not s.base_urls))
