"""`wb tinker usage --url URL [--prices prices.yaml] [--json]`: tokens and cost per session and model of a
running `wb tinker serve`, optionally re-priced.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the service's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--prices", help="YAML with prefill, sample, train: USD per million tokens (re-prices the "
                                         "counts)")
    parser.add_argument("--api-key", help="X-API-Key (default: $TINKER_API_KEY); a tenant's key shows its own "
                                          "sessions, the admin key all")
    parser.add_argument("--json", action="store_true", help="print the raw JSON report")


def run(args: argparse.Namespace) -> int:
    report = fetch_usage(args.url, args.api_key)
    if args.prices:
        report = reprice(report, args.prices)
    print(json.dumps(report, indent=2) if args.json else format_usage(report))
    return 0


def fetch_usage(url: str, api_key: str | None = None, timeout: float = 10.0) -> dict:
    """GET {url}/api/v1/usage as the tenant of `api_key` (default: $TINKER_API_KEY); raise InputError when
    the service cannot be reached or answers badly."""
    import os
    import urllib.error
    import urllib.request

    from workbench.errors import InputError

    req = urllib.request.Request(url.rstrip("/") + "/api/v1/usage", headers={"X-API-Key": api_key or os.environ.get("TINKER_API_KEY", "")})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: the service answered HTTP {exc.code} to /api/v1/usage") from None
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"{url}: cannot reach the service ({getattr(exc, 'reason', exc)})") from None
    except json.JSONDecodeError:
        raise InputError(f"{url}: /api/v1/usage did not return JSON; is this a wb tinker service?") from None


def reprice(report: dict, prices_path: str) -> dict:
    """The report with every cost recomputed from the prices file."""
    from trainers.tinker_service.metering import _usage, load_prices

    prices = load_prices(prices_path)

    def priced(u: dict) -> dict:
        return {**u, "cost_usd": round(prices.cost(_usage(u)), 6)}

    sessions = {sid: {"usage": priced(s["usage"]), "models": {m: priced(u) for m, u in s["models"].items()}}
                for sid, s in report.get("sessions", {}).items()}
    return {**report, "usage": priced(report["usage"]), "sessions": sessions,
            "prices": {"prefill": prices.prefill, "sample": prices.sample, "train": prices.train}}


def format_usage(report: dict) -> str:
    """A table: one row per model (indented under its session), then the total."""
    head = f"{'session / model':<44} {'requests':>9} {'prefill':>10} {'sampled':>10} {'trained':>10} {'cost_usd':>10}"
    lines = [head, "-" * len(head)]

    def row(name: str, u: dict) -> str:
        cost = "-" if u.get("cost_usd") is None else f"{u['cost_usd']:.6f}"
        return (f"{name:<44} {u['requests']:>9} {u['prefill_tokens']:>10} {u['sampled_tokens']:>10} "
                f"{u['trained_tokens']:>10} {cost:>10}")

    for sid, s in report.get("sessions", {}).items():
        lines.append(row(sid, s["usage"]))
        lines += [row("  " + m, u) for m, u in s["models"].items()]
    lines.append(row("total", report["usage"]))
    return "\n".join(lines)
