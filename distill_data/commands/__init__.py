"""CLI entry points of distill_data: `wb distill` and `wb serve`."""
