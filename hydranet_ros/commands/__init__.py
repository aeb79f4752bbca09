"""Subcommands of the `hydranet` command: one module each, with add_arguments(parser) and run(args)."""
