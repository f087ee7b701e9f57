"""Cells for CSV files people open in a spreadsheet."""

from __future__ import annotations

# A spreadsheet runs a cell starting with one of these as a formula
# (CSV injection): such a cell gets a leading apostrophe and stays text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(text: str) -> str:
    """``text`` as a cell a spreadsheet shows and never evaluates."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
