"""`wb tinker serve|usage`: run the local Tinker-compatible service, or read a running one's usage.

    wb tinker serve --base-model PATH [--port 8000] [--prices prices.yaml] [--token-budget N]
    wb tinker usage --url http://127.0.0.1:8000 [--prices prices.yaml] [--json]
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainers.tinker_service.server import ServeConfig
    from workbench.config import add_config_arguments

    sub = parser.add_subparsers(dest="tinker_command", metavar="SUBCOMMAND", required=True)
    sp = sub.add_parser("serve", help="serve Tinker's API over a local model (LoRA training, sampling, metering)",
                        description="serve Tinker's API over a local model (LoRA training, sampling, metering)")
    sp.add_argument("--config", help="YAML file of options; flags given here override it")
    add_config_arguments(sp, ServeConfig)
    up = sub.add_parser("usage", help="tokens and cost per session and model of a running service",
                        description="tokens and cost per session and model of a running service")
    up.add_argument("--url", required=True, help="the service's base URL, e.g. http://127.0.0.1:8000")
    up.add_argument("--prices", help="YAML with prefill, sample, train: USD per million tokens (re-prices the counts)")
    up.add_argument("--api-key", help="X-API-Key, when the service requires one")
    up.add_argument("--json", action="store_true", help="print the raw JSON report")


def run(args: argparse.Namespace) -> int:
    if args.tinker_command == "serve":
        from trainers.tinker_service.server import ServeConfig, serve
        from workbench.config import build_config

        manifest = serve(build_config(ServeConfig, args, args.config))
        print(f"stopped; usage: {json.dumps(manifest['usage'])}")
        return 0
    report = fetch_usage(args.url, args.api_key)
    if args.prices:
        report = reprice(report, args.prices)
    print(json.dumps(report, indent=2) if args.json else format_usage(report))
    return 0


def fetch_usage(url: str, api_key: str | None = None, timeout: float = 10.0) -> dict:
    """GET {url}/api/v1/usage; raise InputError when the service cannot be reached or answers badly."""
    import urllib.error
    import urllib.request

    from workbench.errors import InputError

    req = urllib.request.Request(url.rstrip("/") + "/api/v1/usage", headers={"X-API-Key": api_key or "tml-local"})
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
