"""The curation report: the funnel of a curate/dedup/decontam run and its LSH detection curve, from the
run's manifest (per-step counts) and `removed.parquet` (examples per drop reason)."""

from __future__ import annotations

DEDUP_REASONS = ("exact_duplicate", "near_duplicate")


def _group(reason: str) -> str:
    """The funnel step a drop reason belongs to: `length:too_short` -> `length`."""
    return reason.split(":", 1)[0]


def funnel(manifest: dict) -> list[dict]:
    """Rows in, then one row per step in the order the pipeline ran it (filters, PII, decontamination, exact
    dedup, near dedup), then kept: each with rows before, removed, rows after and the shares removed."""
    rows_in = int(manifest.get("rows_in") or 0)
    dropped = {str(k): int(v) for k, v in (manifest.get("dropped") or {}).items()}
    steps: list[tuple[str, int, list[str]]] = []
    for name, step in (manifest.get("steps") or {}).items():
        reasons = sorted((step.get("dropped") or {}).keys())
        steps.append((name, sum(int(v) for v in (step.get("dropped") or {}).values()), reasons))
    covered = {r for _, _, reasons in steps for r in reasons}
    for reason in DEDUP_REASONS:
        if reason in dropped or (manifest.get("dedup") and reason not in covered):
            steps.append((reason.replace("_duplicate", " dedup"), dropped.get(reason, 0), [reason]))
            covered.add(reason)
    others = sorted({_group(r) for r in dropped if r not in covered})
    for group in others:  # reasons no step listed (older manifests): one step per prefix
        reasons = [r for r in dropped if r not in covered and _group(r) == group]
        steps.append((group, sum(dropped[r] for r in reasons), reasons))
    table = [{"step": "rows in", "rows_before": rows_in, "removed": 0, "rows_after": rows_in,
              "removed_share_of_step": 0.0, "removed_share_of_input": 0.0, "reasons": ""}]
    current = rows_in
    for name, removed, reasons in steps:
        table.append({"step": name, "rows_before": current, "removed": removed, "rows_after": current - removed,
                      "removed_share_of_step": removed / current if current else 0.0,
                      "removed_share_of_input": removed / rows_in if rows_in else 0.0,
                      "reasons": ", ".join(reasons)})
        current -= removed
    kept = manifest.get("rows_out", current)
    table.append({"step": "kept", "rows_before": current, "removed": 0, "rows_after": kept,
                  "removed_share_of_step": 0.0, "removed_share_of_input": 0.0, "reasons": ""})
    return table


def lsh_curve(manifest: dict, points: int = 51) -> list[dict]:
    """P(a pair becomes a candidate | Jaccard s) = 1 - (1 - s^rows)^bands, for s in [0, 1]; [] without LSH."""
    lsh = (manifest.get("dedup") or {}).get("lsh") or {}
    bands, rows = lsh.get("bands"), lsh.get("rows")
    if not bands or not rows:
        return []
    return [{"jaccard": s, "p_candidate": 1 - (1 - s ** rows) ** bands}
            for s in (i / (points - 1) for i in range(points))]


def threshold(manifest: dict) -> float | None:
    cfg = manifest.get("config") or {}
    dedup = cfg.get("dedup") if isinstance(cfg.get("dedup"), dict) else cfg
    value = (manifest.get("minhash") or {}).get("threshold", (dedup or {}).get("threshold"))
    return float(value) if value is not None else None


def is_curation(manifest: dict) -> bool:
    return manifest.get("stage") in ("curate", "dedup", "decontam") or "steps" in manifest and "dedup" in manifest
