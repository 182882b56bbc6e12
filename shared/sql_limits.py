"""Limits of the database columns, counted the way the database counts them.

SQL Server's ``NVARCHAR(n)`` holds ``n`` UTF-16 code units, not ``n`` characters: a character
outside the Basic Multilingual Plane (most emoji) takes two. ``INT`` holds -2**31..2**31-1. The
validators check client input against these limits with the helpers here, so what passes
validation fits on SQL Server as well as on SQLite (which would store anything).
"""

from __future__ import annotations

INT_MAX = 2**31 - 1

# NVARCHAR lengths of the schema (migrations/0001_initial.tsql.sql).
PRODUCT_NAME_UNITS = 1000
URL_UNITS = 2048
IDEMPOTENCY_KEY_UNITS = 200
ERROR_UNITS = 1000  # shared.errors.MAX_ERROR_CHARS must not exceed it (a test checks)


def utf16_units(text: str) -> int:
    """The length of ``text`` in UTF-16 code units (what NVARCHAR(n) counts)."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def too_long(text: str, units: int) -> str | None:
    """A problem message when ``text`` needs more than ``units`` UTF-16 code units, else None."""
    length = utf16_units(text)
    if length <= units:
        return None
    return f"is longer than {units} UTF-16 code units ({length}; characters outside the BMP count twice)"


def truncate_utf16(text: str, units: int) -> str:
    """``text`` cut to at most ``units`` UTF-16 code units, never splitting a character."""
    if utf16_units(text) <= units:
        return text
    kept, used = [], 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > units:
            break
        kept.append(ch)
        used += width
    return "".join(kept)


def int_problem(value: int, low: int = 1, high: int = INT_MAX) -> str | None:
    """A problem message when ``value`` is outside ``low..high`` (an INT column), else None."""
    if low <= value <= high:
        return None
    return f"must be between {low} and {high}, got {value}"
