"""The pinned Tinker SDK: the server borrows its generated protobuf module, so it needs the package."""

from __future__ import annotations

SDK_SPEC = "tinker>=0.38,<0.39"


def require_sdk():
    """Import `tinker`, or raise MissingExtraError naming the install command."""
    from workbench.errors import require

    return require("tinker", extra="tinker")
