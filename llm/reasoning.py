"""Split a teacher's reply into `reasoning` and `content`, and render them back for SFT.

Servers expose reasoning as `reasoning_content` (DeepSeek, vLLM < 0.11.2) or `reasoning` (vLLM >= 0.11.2),
or leave `<think>...</think>` inside the content. Templates that pre-insert `<think>` give a content with
only the closing tag, which is handled too.
"""

from __future__ import annotations

import re

_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL)
THINK_FORMATS = ("think-tags", "openthoughts", "none")


def split_reasoning(content: str | None, reasoning: str | None = None) -> tuple[str | None, str | None]:
    """Return (reasoning, content): a server-side reasoning field wins; else a leading think block."""
    if reasoning:
        return reasoning, content
    if content is None:
        return None, None
    match = _THINK.match(content)
    if match:
        return match.group(1).strip(), content[match.end():]
    if "</think>" in content and "<think>" not in content:  # the template opened the block for the model
        head, _, tail = content.partition("</think>")
        return head.strip(), tail.lstrip()
    if content.lstrip().startswith("<think>"):  # opened and never closed: the budget ran out while thinking
        return content.lstrip()[len("<think>"):].strip(), ""
    return None, content


def render_reasoning(reasoning: str | None, content: str | None, think_format: str = "think-tags") -> str:
    """The assistant text for SFT with the reasoning rendered in `think_format` (see THINK_FORMATS)."""
    content = content or ""
    if not reasoning or think_format == "none":
        return content
    if think_format == "openthoughts":
        return (f"<|begin_of_thought|>\n\n{reasoning}\n\n<|end_of_thought|>\n\n"
                f"<|begin_of_solution|>\n\n{content}\n\n<|end_of_solution|>")
    return f"<think>\n{reasoning}\n</think>\n\n{content}"
