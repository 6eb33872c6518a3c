"""Domains of a mixture search: which sources each domain reads, and their byte-token arrays.

A DOMAINS.yaml names each domain's sources (files, shard directories or run directories) and the text
field to read; `validation` names extra held-out sets to evaluate on. Proxies are byte-level LMs, so a
domain's tokens are the UTF-8 bytes of its documents (bits per byte is then exactly loss / ln 2).

```yaml
domains:
  shakespeare: {sources: [examples/data/tinyshakespeare/input.txt]}
  gsm8k: {sources: [examples/data/gsm8k/train.jsonl], field: answer}
validation:
  math500: {sources: [examples/data/math500/test.jsonl], field: answer}
heldout_fraction: 0.05
max_weight: {shakespeare: 0.8}
max_epochs: 4
```
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.config import load_yaml
from workbench.errors import InputError
from workbench.io import open_source

DOC_SEPARATOR = b"\n\n"


@dataclass
class DomainSpec:
    """One domain (or validation set): a name, its sources, and the column holding the text."""

    name: str
    sources: list[str]
    field: str = "text"


@dataclass
class DomainsFile:
    """A parsed DOMAINS.yaml; relative source paths are resolved against the file's folder or the cwd."""

    domains: list[DomainSpec]
    validation: list[DomainSpec] = field(default_factory=list)
    heldout_fraction: float = 0.05
    min_weight: dict[str, float] = field(default_factory=dict)
    max_weight: dict[str, float] = field(default_factory=dict)
    max_epochs: float = 4.0


def _spec(name: str, value: object, where: Path) -> DomainSpec:
    if isinstance(value, str | list):
        value = {"sources": value}
    if not isinstance(value, dict) or "sources" not in value:
        raise InputError(f"{where}: domain {name!r} needs `sources:` (a path or a list of paths)")
    unknown = sorted(set(value) - {"sources", "field"})
    if unknown:
        raise InputError(f"{where}: domain {name!r} has unknown key {unknown[0]!r}; a domain takes sources and field "
                         "(weights and epochs go at the top level: min_weight, max_weight, max_epochs)")
    sources = value["sources"] if isinstance(value["sources"], list) else [value["sources"]]
    resolved = []
    for s in sources:
        path = Path(str(s))
        if not path.is_absolute() and not path.exists() and (where.parent / path).exists():
            path = where.parent / path
        resolved.append(str(path))
    return DomainSpec(name=str(name), sources=resolved, field=str(value.get("field", "text")))


def load_domains_file(path: str | Path) -> DomainsFile:
    """Parse DOMAINS.yaml; raise `InputError` naming the file and the bad entry."""
    path = Path(path)
    raw = load_yaml(path)
    known = {"domains", "validation", "heldout_fraction", "min_weight", "max_weight", "max_epochs"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"{path}: unknown key {unknown[0]!r}; expected {sorted(known)}")
    if not isinstance(raw.get("domains"), dict) or len(raw["domains"]) < 2:
        raise InputError(f"{path}: `domains:` must map at least two domain names to their sources")
    parsed = DomainsFile(
        domains=[_spec(k, v, path) for k, v in raw["domains"].items()],
        validation=[_spec(k, v, path) for k, v in (raw.get("validation") or {}).items()],
        heldout_fraction=float(raw.get("heldout_fraction", 0.05)),
        min_weight={str(k): float(v) for k, v in (raw.get("min_weight") or {}).items()},
        max_weight={str(k): float(v) for k, v in (raw.get("max_weight") or {}).items()},
        max_epochs=float(raw.get("max_epochs", 4.0)),
    )
    names = {d.name for d in parsed.domains}
    for key in ("min_weight", "max_weight"):
        stray = sorted(set(getattr(parsed, key)) - names)
        if stray:
            raise InputError(f"{path}: {key} names unknown domain {stray[0]!r}; domains are {sorted(names)}")
    if not 0 < parsed.heldout_fraction < 0.5:
        raise InputError(f"{path}: heldout_fraction must be between 0 and 0.5; got {parsed.heldout_fraction}")
    return parsed


def read_texts(spec: DomainSpec) -> pa.Array:
    """All non-empty texts of a domain's sources, as one Arrow string array."""
    return read_rows(spec).column("text").combine_chunks()


def source_columns(spec: DomainSpec) -> list[str]:
    """The columns every source of the domain has, in the first source's order."""
    names = [open_source(s).schema().names for s in spec.sources]
    return [n for n in names[0] if all(n in other for other in names[1:])] if names else []


def read_rows(spec: DomainSpec, columns: list[str] | tuple[str, ...] = ()) -> pa.Table:
    """The domain's rows with non-empty text: `text` (its field) followed by `columns` of its sources.

    A source lacking one of `columns` raises `InputError` naming it; columns whose types differ between
    sources are promoted where Arrow can (string and large_string, ints and floats) and refused otherwise.
    """
    tables = []
    for source_path in spec.sources:
        source = open_source(source_path)
        names = source.schema().names
        if spec.field not in names:
            raise InputError(f"{source_path}: domain {spec.name!r} reads field {spec.field!r}, "
                             f"but the columns are {names}")
        missing = [c for c in columns if c not in names]
        if missing:
            raise InputError(f"{source_path}: domain {spec.name!r} has no column {missing[0]!r} to keep; its "
                             f"columns are {names}")
        keep = [c for c in columns if c != spec.field]
        for table in source.iter_tables(columns=[spec.field, *keep]):
            column = table[spec.field]
            if pa.types.is_null(column.type):
                continue
            if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                raise InputError(f"{source_path}: field {spec.field!r} must hold text; got {column.type}")
            text = column.cast(pa.string())
            rows = pa.table({"text": text, **{c: table[c] for c in columns}})
            tables.append(rows.filter(pc.fill_null(pc.greater(pc.utf8_length(text), 0), False)))
    if not tables:
        return pa.table({"text": pa.array([], pa.string()), **{c: pa.array([], pa.null()) for c in columns}})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"domain {spec.name!r}: its sources disagree on a kept column's type ({exc})") from None


def is_heldout(texts: pa.Array, fraction: float) -> np.ndarray:
    """A stable train/held-out split: a document is held out by a hash of its text, not its position."""
    buckets = np.array([int.from_bytes(hashlib.blake2b(t.encode(), digest_size=4).digest(), "little")
                        for t in texts.to_pylist()], dtype=np.uint64)
    return (buckets % 10_000) < int(fraction * 10_000)


def to_bytes(texts: list[str]) -> np.ndarray:
    """Documents joined by a blank line, as a uint8 token array."""
    return np.frombuffer(DOC_SEPARATOR.join(t.encode("utf-8") for t in texts), dtype=np.uint8)
