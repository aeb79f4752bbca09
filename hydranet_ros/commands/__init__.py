"""Subcommands of the `hydranet` CLI: each module has add_arguments(parser) and run(args) -> int."""
