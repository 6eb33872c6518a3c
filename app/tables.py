"""The data browser's queries: polars lazy scans, so a million-row file is never loaded whole.

A page is `scan -> filters -> sort -> slice(offset, n)`; polars pushes the slice into the parquet reader,
which skips whole row groups, so the last page of a large file costs about as much as the first. Filters
and sorts work on the whole table, never on one page: `contains` searches a chat column's message
contents, and a sort or histogram can use a column's value or its length in characters (a chat column's
every turn, or its assistant turns only). Counts, drop reasons, histograms and column statistics are
aggregations over the same lazy frame. The pages cache the results keyed on (path, modification time,
filters, sort).
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


# What a sort or a histogram measures of a column: its value, or the characters of its text (of every
# message of a chat column, or of its assistant messages only), or the items of a list.
MEASURES = ("value", "characters", "assistant characters", "items")


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: str = ""


@dataclass(frozen=True)
class Sort:
    """Order the whole filtered table by `measure` of `column` (nulls last; ties keep file order)."""

    column: str
    measure: str = "value"
    descending: bool = False


def is_chat(dtype: pl.DataType) -> bool:
    """A list of {role, content} structs: a `messages`, `prompt`, `chosen` or `rejected` column."""
    inner = dtype.inner if isinstance(dtype, pl.List) else None
    return isinstance(inner, pl.Struct) and {"role", "content"} <= {f.name for f in inner.fields}


def measures_of(dtype: pl.DataType) -> list[str]:
    """The measures a column offers for sorting and histograms (none for a struct or a binary column)."""
    if dtype.is_numeric() or dtype.is_temporal() or dtype == pl.Boolean:
        return ["value"]
    if dtype == pl.String:
        return ["value", "characters"]
    if is_chat(dtype):
        return ["characters", "assistant characters", "items"]
    if isinstance(dtype, pl.List):
        return ["items"]
    return []


def text_expr(column: str, dtype: pl.DataType) -> pl.Expr:
    """The column as searchable text: a chat column's message contents joined by newlines, a list's items
    joined, a struct as JSON, anything else cast to a string."""
    col = pl.col(column)
    if dtype == pl.String:
        return col
    if is_chat(dtype):
        return col.list.eval(pl.element().struct.field("content").cast(pl.String)).list.join("\n")
    if isinstance(dtype, pl.List) and dtype.inner == pl.String:
        return col.list.join("\n")
    if isinstance(dtype, pl.List) and (dtype.inner.is_numeric() or dtype.inner == pl.Boolean):
        return col.cast(pl.List(pl.String)).list.join(" ")
    if isinstance(dtype, pl.Struct | pl.List | pl.Array):
        return col.map_elements(lambda v: json.dumps(v, ensure_ascii=False, default=str), return_dtype=pl.String)
    return col.cast(pl.String)


def measure_expr(column: str, dtype: pl.DataType, measure: str) -> pl.Expr:
    """`measure` of `column` as an expression; `InputError` when the column does not offer it."""
    if measure not in measures_of(dtype):
        offered = measures_of(dtype)
        raise InputError(f"{column}: cannot measure {measure!r} of a {dtype} column"
                         + (f"; it offers {', '.join(offered)}" if offered else ""))
    col = pl.col(column)
    if measure == "value":
        return col
    if measure == "items":
        return col.list.len()
    if dtype == pl.String:
        return col.str.len_chars()
    content = pl.element().struct.field("content").cast(pl.String).str.len_chars()
    if measure == "assistant characters":
        content = pl.element().filter(pl.element().struct.field("role") == "assistant").struct.field(
            "content").cast(pl.String).str.len_chars()
    return col.list.eval(content).list.sum()


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
    if f.op == "contains":  # case-insensitive, literal; a chat column is searched in its message contents
        return text_expr(f.column, dtype).str.to_lowercase().str.contains(f.value.lower(), literal=True)
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


def filtered(path: Path, filters: tuple[Filter, ...] = (), reasons: tuple[str, ...] = (),
             order: Sort | None = None) -> pl.LazyFrame:
    """The lazy frame with the column filters and (for removed rows) the drop-reason filter applied, sorted
    by `order` when one is given."""
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
    if order is not None:
        if order.column not in cols:
            raise InputError(f"sort: {Path(path).name} has no column {order.column!r}")
        key = measure_expr(order.column, cols[order.column], order.measure)
        lf = lf.sort(key, descending=order.descending, nulls_last=True, maintain_order=True)
    return lf


def _collect(lf: pl.LazyFrame, path: Path) -> pl.DataFrame:
    try:
        return lf.collect()
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{path}: {_first_line(exc)}") from None


def count_rows(path: Path, filters: tuple[Filter, ...] = (), reasons: tuple[str, ...] = ()) -> int:
    return int(_collect(filtered(path, filters, reasons).select(pl.len()), path).item())


def read_page(path: Path, page: int, page_size: int = 100, filters: tuple[Filter, ...] = (),
              reasons: tuple[str, ...] = (), order: Sort | None = None) -> pl.DataFrame:
    """Rows [page * page_size, (page + 1) * page_size) of the filtered (and sorted) table, with a `_row`
    position column."""
    lf = filtered(path, filters, reasons, order).with_row_index("_row")
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


def full_row(path: Path, position: int, filters: tuple[Filter, ...] = (), reasons: tuple[str, ...] = (),
             order: Sort | None = None) -> dict:
    """The row at `position` of the filtered (and sorted) table, every field whole."""
    frame = _collect(filtered(path, filters, reasons, order).slice(position, 1), path)
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


def histogram(path: Path, column: str, measure: str = "value", filters: tuple[Filter, ...] = (),
              reasons: tuple[str, ...] = (), bins: int = 30) -> pl.DataFrame:
    """Rows per bin of `measure` of `column` over the whole filtered table: columns start, end, rows (nulls
    are left out). A column with one distinct value is one bin, from half below it to half above."""
    import numpy as np

    cols = schema(path)
    if column not in cols:
        raise InputError(f"histogram: {Path(path).name} has no column {column!r}")
    expr = measure_expr(column, cols[column], measure).cast(pl.Float64).alias("v")
    values = _collect(filtered(path, filters, reasons).select(expr).drop_nulls(), path)["v"].to_numpy()
    empty = pl.DataFrame(schema={"start": pl.Float64, "end": pl.Float64, "rows": pl.Int64})
    if values.size == 0:
        return empty
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:  # one value: one bar a unit wide around it
        return pl.DataFrame({"start": [lo - 0.5], "end": [hi + 0.5], "rows": [int(values.size)]})
    if measure != "value" or np.all(values == np.round(values)):  # whole numbers: bins of whole widths
        bins = min(bins, int(hi - lo) + 1)
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    return pl.DataFrame({"start": edges[:-1], "end": edges[1:], "rows": counts.astype(np.int64)})


def restore_rows(removed: Path, ids: list[str], out_dir: Path) -> dict:
    """A new run directory holding the run's product plus the removed rows whose `id` is in `ids` (without
    the removal columns: reason, detail, duplicate_of, ...); return its manifest. `removed` is a run's
    `removed.parquet`; the run itself is left as it is."""
    from workbench.rundir import RunDir

    removed, out_dir = Path(removed), Path(out_dir)
    product = removed.parent / PRODUCT
    if removed.name != REMOVED or not product.exists():
        raise InputError(f"{removed}: restore works on a run's {REMOVED} beside its {PRODUCT}")
    if not ids:
        raise InputError("restore: choose at least one removed row")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir}: exists and is not empty; choose a new run directory")
    kept = pl.scan_parquet(product)
    keep_schema = kept.collect_schema()
    wanted = pl.scan_parquet(removed).filter(pl.col("id").cast(pl.String).is_in([str(i) for i in ids]))
    back = _collect(wanted, removed)
    missing = sorted(set(map(str, ids)) - set(back["id"].cast(pl.String).to_list()))
    if missing:
        raise InputError(f"{removed}: no removed row with id {missing[0]!r}")
    absent = [c for c in keep_schema if c not in back.columns]
    if absent:
        raise InputError(f"{removed}: the removed rows lack the product's column {absent[0]!r}")
    back = back.select([pl.col(c).cast(t) for c, t in keep_schema.items()])
    rows_in = count_rows(product)
    config = {"source": str(removed.parent), "restored_ids": [str(i) for i in ids]}
    argv = ["wb", "app-restore", str(removed)]
    with RunDir(out_dir, "restore", config, inputs=[str(removed.parent)], argv=argv) as run:
        tmp = temp_path(run.product)
        pl.concat([kept, back.lazy()], how="vertical").sink_parquet(tmp)
        tmp.replace(run.product)
        return run.finish(rows_in=rows_in, rows_out=count_rows(run.product), restored=len(back))
