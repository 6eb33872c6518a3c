"""The kernel's own `wb` subcommands: info, inspect, validate, convert, demo."""
