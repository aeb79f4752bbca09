"""One error model: what a user can fix is a HydraNetError with a one-line reason.

Every module raises a subclass of HydraNetError for input it cannot use (a weights file, a
path, a bag, a setting, a missing GPU asked for): WeightsError, MediaError, BagError,
EngineError, ConfigError, ... The `hydranet` command prints it as one line,
``hydranet CMD: error: <reason>``, and exits 2 (``--debug`` shows the traceback too); the ROS node
logs the same line and stays up. Anything else that escapes is a bug, and shows its traceback.
"""

from __future__ import annotations

__all__ = ["HydraNetError", "UsageError", "first_line"]


class HydraNetError(Exception):
    """Input that cannot be used, told in one line: what (the file, the option) and why.

    The line shown is ``first_line(exc)``, so a cause quoted from a library (an OpenCV or
    sqlite message over several lines) still reads as one. Subclasses may carry a short
    machine key as ``reason`` (BagError, ConfigError) for counting.
    """


class UsageError(HydraNetError, ValueError):
    """A value given on the command line or to a constructor is impossible (a size of 0x0, an
    opacity of 3, negative threads). A ValueError too, for callers that check values that way."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (at most 200 characters), or its type's name when empty."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
