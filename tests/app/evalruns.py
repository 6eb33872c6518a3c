"""Two `wb eval` runs for the eval page's tests, made by the CLI against the scripted mock server: `eval-weak`
answers items 0-3 of ten right, `eval-strong` items 0-7 (so the paired difference is +40 points)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from workbench.cli import main


def make_eval_runs(root: Path) -> Path:
    """Write the benchmark file and both runs under `root`; return `root`."""
    from tests.mock_server import MockServer

    def script(text: str, request: dict) -> str:
        i = int(re.search(r"What is (\d+)", text).group(1))
        right = i < (8 if request.get("model") == "strong" else 4)
        return f"{text} [reply:{2 * i if right else 2 * i + 1}]"

    root.mkdir(parents=True, exist_ok=True)
    bench = root / "sums.jsonl"
    bench.write_text("".join(json.dumps({"id": f"s{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                             for i in range(10)))
    server = MockServer(script=script).start()
    try:
        for model in ("weak", "strong"):
            argv = ["eval", "--model", model, "--base-url", server.url, "--benchmark", bench, "--prompt-field",
                    "question", "--answer-field", "answer", "--verify", "exact", "--max-attempts", 1,
                    "--output", root / f"eval-{model}"]
            assert main([str(a) for a in argv]) == 0, f"wb {' '.join(map(str, argv))} failed"
    finally:
        server.stop()
    return root
