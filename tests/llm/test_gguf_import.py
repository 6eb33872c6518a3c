"""`wb model import`: one-line errors for files that are not GGUF, truncated GGUF files and architectures
transformers cannot load, an existing output kept; the SmolLM2 pin shared by the Makefile and the hint.
(The import of a real GGUF runs in tests/real/, where every real-model test uses its output.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.cli import main

gguf = pytest.importorskip("gguf", reason='`wb model import` needs the `real` extra: pip install -e ".[real]"')
ROOT = Path(__file__).resolve().parents[2]


def _write_gguf(path: Path, arch: str) -> Path:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _import_error(capsys, src: Path, out: Path, *flags: str) -> str:
    assert main(["model", "import", str(src), "--output", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_unsupported_architecture_is_named(tmp_path, capsys):
    src = _write_gguf(tmp_path / "m.gguf", "madeupformer")
    err = _import_error(capsys, src, tmp_path / "out")
    assert f"{src}: architecture 'madeupformer' is not supported" in err and "llama" in err
    assert not (tmp_path / "out").exists()


def test_not_gguf_and_truncated_files_are_refused(tmp_path, capsys):
    (tmp_path / "notes.gguf").write_text("hello")
    assert "not a GGUF file" in _import_error(capsys, tmp_path / "notes.gguf", tmp_path / "a")
    whole = _write_gguf(tmp_path / "whole.gguf", "llama").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(whole[: len(whole) // 2])
    assert f"{tmp_path / 'cut.gguf'}: corrupt GGUF file" in _import_error(capsys, tmp_path / "cut.gguf", tmp_path / "b")
    assert "no such GGUF file" in _import_error(capsys, tmp_path / "missing.gguf", tmp_path / "c")
    assert not any((tmp_path / d).exists() for d in "abc")


def test_existing_output_is_kept_without_force(tmp_path, capsys):
    src = _write_gguf(tmp_path / "m.gguf", "llama")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert "already exists; choose another --output or pass --force" in _import_error(capsys, src, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_the_smollm2_pin_is_the_makefiles():
    from llm.gguf_import import SMOLLM2_WHEEL

    assert f"SMOLLM2 ?= {SMOLLM2_WHEEL}\n" in (ROOT / "Makefile").read_text()
