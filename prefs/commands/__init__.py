"""CLI entry point of prefs: `wb prefs`."""
