"""Read any supported dataset source as a stream of Arrow tables, and write parquet or jsonl atomically.

Sources: `.jsonl`/`.ndjson`, `.json` (an array of objects, or JSON lines under that name), `.parquet`,
`.csv`, `.txt` (one row per blank-line-separated paragraph), a directory of such shards, a
`datasets.save_to_disk` directory, a run directory written by `wb`, and a hub dataset (`hf://owner/name`).

Everything streams in chunks, so a file larger than memory can pass through a step. Problems are
raised as `InputError` naming the file and line (or row) and what was expected.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from workbench.errors import InputError
from workbench.runfiles import INCOMPLETE, MANIFEST, read_json, temp_path

CHUNK_BYTES = 16 << 20  # text formats are parsed this many bytes at a time
BATCH_ROWS = 8192

SUFFIX_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".txt": "txt",
    ".arrow": "arrow",
}
WRITE_FORMATS = ("parquet", "jsonl")


@dataclass
class Source:
    """A readable dataset: what it is called, how it is stored, and the files that hold it.

    `format` is one of jsonl, json, parquet, csv, txt, arrow, hf_disk, run, hub.
    """

    spec: str
    format: str
    files: list[Path] = field(default_factory=list)
    split: str | None = None
    _schema: pa.Schema | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.rstrip("/").split("/")[-1] or self.spec

    def schema(self) -> pa.Schema:
        """The unified schema of every file (for JSON lines this reads the whole source once)."""
        if self._schema is None:
            if self.format == "hub":
                first = next(self._hub_tables(limit=100), None)
                self._schema = first.schema if first is not None else pa.schema([])
            else:
                schemas = [_file_schema(path, _file_format(self, path)) for path in self.files]
                try:
                    self._schema = pa.unify_schemas(schemas, promote_options="permissive")
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    raise InputError(f"{self.spec}: the files disagree on column types: {exc}") from exc
        return self._schema

    def iter_tables(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Yield the rows as Arrow tables of at most about BATCH_ROWS rows, all with `schema()`."""
        schema = self.schema()
        if columns is not None:
            missing = [c for c in columns if c not in schema.names]
            if missing:
                raise InputError(f"{self.spec}: no column {missing[0]!r}; columns are {schema.names}")
            schema = pa.schema([schema.field(c) for c in columns])
        if self.format == "hub":
            for table in self._hub_tables():
                yield conform(table, schema, self.spec)
            return
        for path in self.files:
            for table in _iter_file(path, _file_format(self, path)):
                yield conform(table, schema, str(path))

    def iter_rows_with_file(self) -> Iterator[tuple[Path, int, pa.Table]]:
        """Yield (file, index of the table's first row in that file, table); for row-level errors."""
        schema = self.schema()
        for path in self.files:
            offset = 0
            for table in _iter_file(path, _file_format(self, path)):
                yield path, offset, conform(table, schema, str(path))
                offset += table.num_rows

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The whole source as one table (for sources that fit in memory)."""
        tables = list(self.iter_tables(columns))
        if not tables:
            return self.schema().empty_table()
        return pa.concat_tables(tables)

    def count_rows(self) -> int:
        if self.format in ("parquet", "run") and all(p.suffix in (".parquet", ".pq") for p in self.files):
            return sum(pq.ParquetFile(p).metadata.num_rows for p in self.files)
        return sum(t.num_rows for t in self.iter_tables())

    def fingerprint(self) -> str:
        """A content hash of every file (names and bytes), or the hub id and revision."""
        if self.format == "hub":
            return f"hub:{self.spec}"
        digest = hashlib.blake2b(digest_size=16)
        for path in self.files:
            digest.update(path.name.encode())
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()

    def describe(self) -> dict:
        """What a manifest records about an input."""
        return {"path": self.spec, "format": self.format, "files": len(self.files), "fingerprint": self.fingerprint()}

    def _hub_tables(self, limit: int | None = None) -> Iterator[pa.Table]:
        from workbench.hub import iter_hub_tables

        yield from iter_hub_tables(self.spec, self.split, BATCH_ROWS, limit)


def source_name(path: Path) -> str:
    """The `source` value of rows read from `path`: its stem, with the folder for generic names
    (`gsm8k/test.jsonl` -> `gsm8k_test`)."""
    return path.stem if path.stem not in ("data", "train", "test") else f"{path.parent.name}_{path.stem}"


def row_ids(path: Path, first_row: int, n: int) -> list[str]:
    """The ids stages give rows that have none: `<source name>-<row in file>`, so an id names its row."""
    stem = source_name(path)
    return [f"{stem}-{first_row + i}" for i in range(n)]


def open_source(spec: str | os.PathLike, split: str | None = None, hub: bool = False) -> Source:
    """Work out what `spec` is and return a `Source` for it; raise `InputError` if it cannot be read."""
    spec = str(spec)
    if hub or spec.startswith("hf://"):
        return Source(spec.removeprefix("hf://"), "hub", split=split)
    path = Path(spec)
    if not path.exists():
        raise InputError(f"{spec}: no such file or directory")
    if path.is_file():
        fmt = SUFFIX_FORMATS.get(path.suffix.lower())
        if fmt is None:
            known = ", ".join(sorted(SUFFIX_FORMATS))
            raise InputError(f"{spec}: unknown format {path.suffix or '(no suffix)'!r}; expected one of {known}")
        if path.stat().st_size == 0:
            raise InputError(f"{spec}: the file is empty")
        return Source(spec, fmt, [path])
    return _open_directory(spec, path, split)


def _open_directory(spec: str, path: Path, split: str | None) -> Source:
    from workbench.rundir import run_data_files

    if (path / MANIFEST).exists() or (path / INCOMPLETE).exists():
        return Source(spec, "run", run_data_files(path))
    datasets_dict = read_json(path / "dataset_dict.json")  # a `datasets` save_to_disk directory
    if datasets_dict is not None:
        splits = datasets_dict["splits"]
        chosen = split or ("train" if "train" in splits else splits[0])
        if chosen not in splits:
            raise InputError(f"{spec}: no split {chosen!r}; splits are {splits}")
        path = path / chosen
    if (path / "state.json").exists() and (path / "dataset_info.json").exists():
        state = read_json(path / "state.json") or {}
        files = [path / f["filename"] for f in state.get("_data_files", [])]
        return Source(spec, "hf_disk", files or sorted(path.glob("*.arrow")), split=split)
    files = sorted(
        p for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in SUFFIX_FORMATS and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )
    if not files:
        raise InputError(f"{spec}: the directory holds no data files (expected {', '.join(sorted(SUFFIX_FORMATS))})")
    formats = {SUFFIX_FORMATS[p.suffix.lower()] for p in files}
    if len(formats) > 1:
        raise InputError(f"{spec}: the directory mixes formats {sorted(formats)}; point at one kind of shard")
    empty = next((p for p in files if p.stat().st_size == 0), None)
    if empty is not None:
        raise InputError(f"{empty}: the file is empty")
    return Source(spec, formats.pop(), files)


def _file_format(source: Source, path: Path) -> str:
    if source.format in ("run", "hf_disk"):
        return SUFFIX_FORMATS.get(path.suffix.lower(), "arrow")
    return source.format


# ---------------------------------------------------------------------------------------------------
# Per-format readers. Each yields Arrow tables for one file and raises InputError naming the file.


def _iter_file(path: Path, fmt: str) -> Iterator[pa.Table]:
    if fmt == "parquet":
        yield from _iter_parquet(path)
    elif fmt == "jsonl":
        yield from _iter_jsonl(path)
    elif fmt == "json":
        yield from _iter_json(path)
    elif fmt == "csv":
        yield from _iter_csv(path)
    elif fmt == "txt":
        yield from _iter_txt(path)
    elif fmt == "arrow":
        yield from _iter_arrow(path)
    else:  # pragma: no cover - formats are closed above
        raise InputError(f"{path}: cannot read format {fmt!r}")


def _file_schema(path: Path, fmt: str) -> pa.Schema:
    if fmt == "parquet":
        try:
            return pq.read_schema(path)
        except pa.ArrowException as exc:
            raise InputError(f"{path}: not a readable parquet file ({exc})") from exc
    if fmt == "arrow":
        return _open_ipc(path).schema
    schemas = [t.schema for t in _iter_file(path, fmt)]
    if not schemas:
        raise InputError(f"{path}: holds no rows")
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"{path}: a column changes type part-way through the file: {exc}") from exc


def _iter_parquet(path: Path) -> Iterator[pa.Table]:
    try:
        file = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps every read range until the end
        for batch in file.iter_batches(batch_size=BATCH_ROWS):
            yield pa.Table.from_batches([batch])
    except pa.ArrowException as exc:
        raise InputError(f"{path}: not a readable parquet file ({exc})") from exc


def _open_ipc(path: Path):
    try:
        return pa.ipc.open_stream(pa.memory_map(str(path)))
    except pa.ArrowInvalid:
        try:
            return pa.ipc.open_file(pa.memory_map(str(path)))
        except pa.ArrowInvalid as exc:
            raise InputError(f"{path}: not an Arrow IPC file ({exc})") from exc


def _iter_arrow(path: Path) -> Iterator[pa.Table]:
    reader = _open_ipc(path)
    if isinstance(reader, pa.ipc.RecordBatchFileReader):
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
    else:
        batches = iter(reader)
    for batch in batches:
        for start in range(0, batch.num_rows, BATCH_ROWS):
            yield pa.Table.from_batches([batch.slice(start, BATCH_ROWS)])


def iter_line_chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (number of the chunk's first line, bytes) in chunks of whole lines, checked to be UTF-8."""
    line_no = 1
    carry = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK_BYTES)
            data = carry + block
            if not block:
                if data:
                    _check_utf8(path, data, line_no)
                    yield line_no, data
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            chunk, carry = data[:cut], data[cut:]
            _check_utf8(path, chunk, line_no)
            yield line_no, chunk
            line_no += chunk.count(b"\n")


def _check_utf8(path: Path, data: bytes, first_line: int) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        raise InputError(
            f"{path}: line {line}: bytes are not valid UTF-8 (byte 0x{data[exc.start]:02x}); re-encode the file as UTF-8"
        ) from None


def _iter_jsonl(path: Path) -> Iterator[pa.Table]:
    import pyarrow.json as pj

    for first_line, chunk in iter_line_chunks(path):
        if not chunk.strip():
            continue
        try:
            table = _read_json_chunk(pj, chunk)
        except pa.ArrowInvalid as exc:
            _diagnose_json_lines(path, chunk, first_line)
            raise InputError(f"{path}: could not parse JSON lines near line {first_line}: {exc}") from exc
        yield from _split(table)


def _read_json_chunk(pj, chunk: bytes) -> pa.Table:
    """Parse a chunk of JSON lines; a line longer than pyarrow's 1 MB block gets one block for the chunk."""
    try:
        return pj.read_json(io.BytesIO(chunk))
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc):
            raise
        return pj.read_json(io.BytesIO(chunk), read_options=pj.ReadOptions(block_size=len(chunk) + 1))


def _diagnose_json_lines(path: Path, chunk: bytes, first_line: int) -> None:
    """Find the first bad line of a chunk pyarrow refused and raise an error naming it."""
    kinds: dict[str, tuple[int, type]] = {}
    for offset, raw in enumerate(chunk.split(b"\n")):
        line = first_line + offset
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {line}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise InputError(f"{path}: line {line}: expected a JSON object, got {type(value).__name__}")
        for key, item in value.items():
            if item is None:
                continue
            kind = _json_kind(item)
            seen = kinds.setdefault(key, (line, kind))
            if seen[1] is not kind:
                raise InputError(f"{path}: line {line}: field {key!r} is {_JSON_NAMES.get(kind, kind.__name__)}, "
                                 f"but line {seen[0]} has {_JSON_NAMES.get(seen[1], seen[1].__name__)}")


_JSON_NAMES = {float: "a number", str: "a string", bool: "true/false", list: "a list", dict: "an object"}


def _json_kind(value: object) -> type:
    # ints and floats mix freely in JSON numbers; pyarrow promotes them (so both are named "a number")
    return float if isinstance(value, int | float) and not isinstance(value, bool) else type(value)


def _iter_json(path: Path) -> Iterator[pa.Table]:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if not head.startswith(b"["):
        yield from _iter_jsonl(path)  # many ".json" files are JSON lines
        return
    raw = path.read_bytes()
    _check_utf8(path, raw, 1)
    try:
        rows = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad is not None:
        raise InputError(f"{path}: row {bad + 1}: expected a JSON object, got {type(rows[bad]).__name__}")
    for start in range(0, len(rows), BATCH_ROWS):
        part = rows[start : start + BATCH_ROWS]
        try:
            yield pa.Table.from_pylist(part)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"{path}: rows {start + 1}-{start + len(part)}: inconsistent field types ({exc})") from exc


def _iter_csv(path: Path) -> Iterator[pa.Table]:
    import pyarrow.csv as pc

    with open(path, "rb") as f:
        _check_utf8(path, f.read(CHUNK_BYTES), 1)
    try:
        reader = pc.open_csv(path, read_options=pc.ReadOptions(block_size=CHUNK_BYTES))
        for batch in reader:
            yield from _split(pa.Table.from_batches([batch]))
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from exc


def _iter_txt(path: Path) -> Iterator[pa.Table]:
    carry = ""
    for _, chunk in iter_line_chunks(path):
        text = carry + chunk.decode("utf-8")
        parts = text.split("\n\n")
        carry = parts.pop()
        paragraphs = [p.strip() for p in parts if p.strip()]
        if paragraphs:
            yield pa.table({"text": pa.array(paragraphs, pa.string())})
    if carry.strip():
        yield pa.table({"text": pa.array([carry.strip()], pa.string())})


def _split(table: pa.Table) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, BATCH_ROWS):
        yield table.slice(start, BATCH_ROWS)


def conform(table: pa.Table, schema: pa.Schema, where: str) -> pa.Table:
    """Give `table` exactly `schema`: reorder, add missing columns as nulls, promote types."""
    if table.schema.equals(schema):
        return table
    columns = []
    for target in schema:
        if target.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, target.type))
            continue
        column = table[target.name]
        if column.type != target.type:
            try:
                column = column.cast(target.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise InputError(
                    f"{where}: column {target.name!r} holds {column.type}, which does not fit {target.type} ({exc})"
                ) from exc
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


# ---------------------------------------------------------------------------------------------------
# Writing. Everything goes to a hidden temporary name beside the target and is renamed into place only
# when complete, so a crash never leaves a file that looks finished.


def write_tables(tables: Iterable[pa.Table], path: str | os.PathLike, fmt: str | None = None,
                 schema: pa.Schema | None = None) -> int:
    """Write tables to `path` as parquet (default) or jsonl, atomically; return the number of rows.

    `fmt` defaults to the suffix of `path`. Raises `InputError` for an unsupported format.
    """
    path = Path(path)
    fmt = fmt or {"parquet": "parquet", "pq": "parquet", "jsonl": "jsonl", "ndjson": "jsonl"}.get(
        path.suffix.lstrip(".").lower(), "parquet")
    if fmt not in WRITE_FORMATS:
        raise InputError(f"{path}: cannot write format {fmt!r}; expected one of {', '.join(WRITE_FORMATS)}")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; name a file to write")
    from workbench.rundir import check_output_path

    check_output_path(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path.parent}: cannot create the directory ({exc.strerror})") from None
    tmp = temp_path(path)
    try:
        rows = _write_parquet(tables, tmp, schema) if fmt == "parquet" else _write_jsonl(tables, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def _write_parquet(tables: Iterable[pa.Table], tmp: Path, schema: pa.Schema | None) -> int:
    writer = None
    rows = 0
    try:
        for table in tables:
            if writer is None:
                schema = schema or table.schema
                writer = pq.ParquetWriter(tmp, schema, compression="zstd")
            writer.write_table(conform(table, schema, str(tmp)))
            rows += table.num_rows
        if writer is None:  # no rows at all: still a valid, empty parquet file
            writer = pq.ParquetWriter(tmp, schema or pa.schema([]), compression="zstd")
    finally:
        if writer is not None:
            writer.close()
    return rows


def _write_jsonl(tables: Iterable[pa.Table], tmp: Path) -> int:
    import polars as pl

    rows = 0
    with open(tmp, "wb") as f:
        for table in tables:
            if table.num_rows:
                pl.from_arrow(table).write_ndjson(f)
            rows += table.num_rows
        f.flush()
        os.fsync(f.fileno())
    return rows


def write_table(table: pa.Table, path: str | os.PathLike, fmt: str | None = None) -> int:
    """Write one in-memory table atomically (see `write_tables`)."""
    return write_tables([table], path, fmt, schema=table.schema)
