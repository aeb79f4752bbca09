"""How an exception is told in one line: error messages and warnings name the cause, not a page."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (at most 200 characters), or its type's name when empty."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
