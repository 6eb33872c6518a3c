"""The data browser's queries: polars lazy scans, so a million-row file is never loaded whole.

A page is `scan -> filters -> slice(offset, n)`; polars pushes the slice into the parquet reader, which
skips whole row groups, so the last page of a large file costs about as much as the first. Counts, drop
reasons and column statistics are aggregations over the same lazy frame. The pages cache the results
keyed on (path, modification time, filters).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from workbench.errors import InputError
from workbench.runfiles import MIXTURES, PARETO, PRODUCT, PRODUCT_JSONL, REMOVED, RESULTS, SFT, temp_path

BROWSABLE = (PRODUCT, REMOVED, SFT, RESULTS, MIXTURES, PARETO, PRODUCT_JSONL)
SUFFIXES = (".parquet", ".jsonl", ".ndjson", ".csv")
OPS = ("==", "!=", "contains", ">=", "<=", "is null", "is not null")
CELL_CHARS = 200  # characters of a text cell shown in the grid; the row panel shows everything


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: str = ""


def browsable_files(run_dir: Path) -> list[Path]:
    """The tables of a run directory the browser can open (product first, then removed rows, shards)."""
    run_dir = Path(run_dir)
    files = [run_dir / n for n in BROWSABLE if (run_dir / n).is_file()]
    if (run_dir / "data").is_dir():
        files += sorted((run_dir / "data").glob("*.parquet"))
    return files


def scan(path: Path) -> pl.LazyFrame:
    """A lazy frame over a parquet, jsonl or csv file, or over a run directory's shards."""
    path = Path(path)
    if path.is_dir():
        files = browsable_files(path)
        if not files:
            raise InputError(f"{path}: holds no data.parquet or data/*.parquet to browse")
        path = files[0] if files[0].name != "data" else path / "data"
    suffix = path.suffix.lower()
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        if suffix == ".parquet":
            return pl.scan_parquet(path)
        if suffix in (".jsonl", ".ndjson"):
            return pl.scan_ndjson(path, infer_schema_length=1000)
        if suffix == ".csv":
            return pl.scan_csv(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: cannot be read ({_first_line(exc)})") from None
    raise InputError(f"{path}: the browser reads {', '.join(SUFFIXES)} files")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def schema(path: Path) -> dict[str, pl.DataType]:
    """Column name -> type; `InputError` naming the file when it is not readable."""
    try:
        return dict(scan(path).collect_schema())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: cannot be read ({_first_line(exc)})") from None


def _expr(f: Filter, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(f.column)
    if f.op == "is null":
        return col.is_null()
    if f.op == "is not null":
        return col.is_not_null()
    if f.op == "contains":
        return col.cast(pl.String).str.contains(f.value, literal=True)
    value: object = f.value
    if dtype.is_numeric():
        try:
            value = float(f.value)
        except ValueError:
            raise InputError(f"filter on {f.column}: {f.value!r} is not a number") from None
    elif dtype == pl.Boolean:
        value = f.value.strip().lower() in ("true", "1", "yes")
    elif dtype != pl.String:
        col = col.cast(pl.String)
    return {"==": col == value, "!=": col != value, ">=": col >= value, "<=": col <= value}[f.op]


def filtered(path: Path, filters: tuple[Filter, ...] = (), reasons: tuple[str, ...] = ()) -> pl.LazyFrame:
    """The lazy frame with the column filters and (for removed rows) the drop-reason filter applied."""
    lf = scan(path)
    cols = schema(path)
    for f in filters:
        if f.column not in cols:
            raise InputError(f"filter: {path.name if isinstance(path, Path) else path} has no column {f.column!r}")
        if f.op not in OPS:
            raise InputError(f"filter on {f.column}: unknown operator {f.op!r}; use one of {list(OPS)}")
        lf = lf.filter(_expr(f, cols[f.column]))
    if reasons:
        if "reason" not in cols:
            raise InputError(f"{path}: has no `reason` column to filter by")
        lf = lf.filter(pl.col("reason").is_in(list(reasons)))
    return lf


def _collect(lf: pl.LazyFrame, path: Path) -> pl.DataFrame:
    try:
        return lf.collect()
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{path}: {_first_line(exc)}") from None


def count_rows(path: Path, filters: tuple[Filter, ...] = (), reasons: tuple[str, ...] = ()) -> int:
    return int(_collect(filtered(path, filters, reasons).select(pl.len()), path).item())


def read_page(path: Path, page: int, page_size: int = 100, filters: tuple[Filter, ...] = (),
              reasons: tuple[str, ...] = ()) -> pl.DataFrame:
    """Rows [page * page_size, (page + 1) * page_size) of the filtered table, with a `_row` position column."""
    lf = filtered(path, filters, reasons).with_row_index("_row")
    return _collect(lf.slice(max(0, page) * page_size, page_size), path)


def last_page(rows: int, page_size: int) -> int:
    return max(0, (rows - 1) // page_size)


def for_grid(frame: pl.DataFrame, chars: int = CELL_CHARS) -> pl.DataFrame:
    """A page fit for the grid: long texts cut to `chars`, lists and structs shown as short JSON."""
    out = {}
    for name, series in frame.to_dict().items():
        if series.dtype == pl.String:
            out[name] = series.str.slice(0, chars)
        elif isinstance(series.dtype, pl.List | pl.Struct | pl.Array):
            out[name] = pl.Series(name, [_short(v, chars) for v in series.to_list()], dtype=pl.String)
        else:
            out[name] = series
    return pl.DataFrame(out)


def _short(value: object, chars: int) -> str | None:
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= chars else text[:chars] + "…"


def reason_counts(path: Path, filters: tuple[Filter, ...] = ()) -> list[tuple[str, int]]:
    """(reason, rows) of a removed-rows table, most frequent first; [] when it has no `reason` column."""
    lf = filtered(path, filters)
    if "reason" not in schema(path):
        return []
    counts = _collect(lf.group_by("reason").len().sort(["len", "reason"], descending=[True, False]), path)
    return [(r, int(n)) for r, n in counts.iter_rows()]


def column_stats(path: Path, filters: tuple[Filter, ...] = (), reasons: tuple[str, ...] = ()) -> pl.DataFrame:
    """One row per column: type, nulls, distinct values, and min / mean / max (of characters for texts)."""
    lf = filtered(path, filters, reasons)
    cols = schema(path)
    exprs: list[pl.Expr] = []
    for name, dtype in cols.items():
        col = pl.col(name)
        exprs.append(col.null_count().alias(f"{name}\0nulls"))
        if dtype == pl.String:
            measure = col.str.len_chars()
        elif dtype.is_numeric():
            measure = col
        elif isinstance(dtype, pl.List):
            measure = col.list.len()
        else:
            measure = None
        if dtype == pl.String or dtype.is_numeric() or dtype == pl.Boolean:
            exprs.append(col.n_unique().alias(f"{name}\0distinct"))
        if measure is not None:
            exprs += [measure.min().cast(pl.Float64).alias(f"{name}\0min"),
                      measure.mean().cast(pl.Float64).alias(f"{name}\0mean"),
                      measure.max().cast(pl.Float64).alias(f"{name}\0max")]
    values = _collect(lf.select(exprs), path).row(0, named=True) if exprs else {}
    rows = []
    for name, dtype in cols.items():
        of = "characters" if dtype == pl.String else "items" if isinstance(dtype, pl.List) else "value"
        rows.append({"column": name, "type": str(dtype), "nulls": values.get(f"{name}\0nulls"),
                     "distinct": values.get(f"{name}\0distinct"), "measure": of,
                     "min": values.get(f"{name}\0min"), "mean": values.get(f"{name}\0mean"),
                     "max": values.get(f"{name}\0max")})
    return pl.DataFrame(rows, schema={"column": pl.String, "type": pl.String, "nulls": pl.Int64,
                                      "distinct": pl.Int64, "measure": pl.String, "min": pl.Float64,
                                      "mean": pl.Float64, "max": pl.Float64})


def full_row(path: Path, position: int, filters: tuple[Filter, ...] = (), reasons: tuple[str, ...] = ()) -> dict:
    """The row at `position` of the filtered table, every field whole."""
    frame = _collect(filtered(path, filters, reasons).slice(position, 1), path)
    if frame.height == 0:
        raise InputError(f"{path}: no row {position} (the filtered table has fewer rows)")
    return frame.row(0, named=True)


def save_filtered(path: Path, out_dir: Path, filters: tuple[Filter, ...] = (), reasons: tuple[str, ...] = ()) -> dict:
    """Write the filtered rows as a new run directory (`data.parquet` + manifest); return the manifest."""
    from workbench.rundir import RunDir

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir}: exists and is not empty; choose a new run directory")
    rows_in = count_rows(path, ())
    config = {"source": str(path), "filters": [asdict(f) for f in filters], "reasons": list(reasons)}
    argv = ["wb", "app-select", str(path)]
    with RunDir(out_dir, "select", config, inputs=[str(path)], argv=argv) as run:
        tmp = temp_path(run.product)
        filtered(path, filters, reasons).sink_parquet(tmp)
        tmp.replace(run.product)
        rows_out = count_rows(run.product)
        return run.finish(rows_in=rows_in, rows_out=rows_out, dropped={"filtered_out": rows_in - rows_out})
