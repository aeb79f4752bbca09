#!/usr/bin/env python3
"""The `hydranet` command: one entry point, one module per subcommand (hydranet_ros/commands/).

Exit status: 0 done; 2 the input could not be used (one line on stderr, ``hydranet CMD: error:
...``: a HydraNetError, an OSError on a path the user gave, or a bad option); 130 interrupted
(Ctrl-C); ended by SIGTERM after cleaning up. ``hydranet bag`` also exits 1 when a bag has
frames but none could be processed. Any other exception is a bug: it shows its traceback (exit 1).
``--debug`` shows the traceback of the one-line errors too.

Nothing here or in a subcommand module imports torch before the arguments, paths and weights
names are checked: a typo is answered at once, not after seconds of imports.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading

from hydranet_ros.commands.common import Parser, run_command

# name -> (module, one-line help). Modules are imported only when their subcommand runs, so
# `hydranet --help` stays quick and a missing optional extra breaks only its own subcommand.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "run the pipeline on sample frames with the best weights available"),
    "infer": ("infer", "image, folder or video -> labels, depth (mm) and previews"),
    "convert": ("convert", "published checkpoint -> .safetensors with metadata"),
    "weights": ("weights", "download and verify published weights, or list the cache"),
    "bench": ("bench", "per-stage latency of the pipeline"),
    "bag": ("bag", "replay a rosbag2 through the network into a new bag with the node's outputs"),
    "build-engine": ("build_engine", "build a TensorRT engine (or ONNX file) ahead of time into the engine cache"),
    "export-onnx": ("export_onnx", "export the network to ONNX and check it against PyTorch with onnxruntime"),
    "train": ("train", "train or resume training from a YAML config (config/train/)"),
    "eval": ("evaluate", "metrics of weights on a dataset: table, JSON, confusion matrix, depth errors"),
    "affinity": ("affinity", "which tasks help each other: single- vs multi-task training for a fixed budget"),
}


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the ``chosen`` subcommand's module is imported to add its options."""
    parser = Parser(prog="hydranet", description="HydraNet semantic segmentation and metric depth, without ROS.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the pipeline decides")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error as well as its one line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text)
        subparser.set_defaults(_module=module_name)
        if name == chosen:
            importlib.import_module(f"hydranet_ros.commands.{module_name}").add_arguments(subparser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(chosen if chosen in SUBCOMMANDS else None).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="hydranet: %(levelname)s: %(message)s")
    module = importlib.import_module(f"hydranet_ros.commands.{args._module}")
    previous = _unwind_on_sigterm()
    try:
        return run_command(args.command, module.run, args, debug=args.debug)
    except KeyboardInterrupt:
        print(f"hydranet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"hydranet {args.command}: terminated", file=sys.stderr)
        _die_by_sigterm()
        return 128 + signal.SIGTERM  # only if the signal did not end the process
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(BaseException):
    """SIGTERM arrived (systemd or docker stopping the job, a plain `kill`). A BaseException like
    KeyboardInterrupt, so that `except Exception` never swallows it and every `finally` runs: a
    bag replay removes its half-written output as it does on Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    # A second SIGTERM (a supervisor signalling the process group too) must not cut the clean-up
    # short; the default comes back before the process ends (_die_by_sigterm).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def _die_by_sigterm() -> None:
    """End by the signal itself, once cleaned up: systemd counts death by SIGTERM as a clean stop
    (exit status 143 would be a failure), and shells still see 143."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _unwind_on_sigterm():
    """Make SIGTERM unwind the command like Ctrl-C; returns the handler to restore, or None when
    left alone (not the main thread, or someone already handles SIGTERM)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


if __name__ == "__main__":
    sys.exit(main())
