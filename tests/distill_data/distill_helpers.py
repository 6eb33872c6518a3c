"""Helpers shared by the distill tests: prompt files and a fast-retry config."""

from __future__ import annotations

import json

from distill_data.config import DistillConfig


def write_prompts(path, prompts: list, **columns) -> str:
    with open(path, "w") as f:
        for j, p in enumerate(prompts):
            f.write(json.dumps({"prompt": p, **{k: v[j] for k, v in columns.items()}}) + "\n")
    return str(path)


def fast_config(prompts: str, output, url: str, **kw) -> DistillConfig:
    """A config with short backoffs so fault tests stay fast."""
    base = dict(prompts=prompts, output=str(output), model="mock", base_url=[url], retry_base=0.01,
                retry_max=0.05, max_attempts=4, progress_seconds=0, max_concurrency=8)
    base.update(kw)
    return DistillConfig(**base)
