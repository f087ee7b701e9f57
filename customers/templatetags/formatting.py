"""Template filters that format data for people in the active language.

``{% load formatting %}`` then ``{{ order.total|money:order.currency }}``,
``{{ customer.phone|phone }}``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django import template
from django.utils import formats, translation

from customers.validators import format_phone

register = template.Library()

# Symbols used after the amount in Polish ("1 234,56 zł"). Other languages, and
# currencies not listed, show the ISO code, which is never ambiguous.
CURRENCY_SYMBOLS = {"pl": {"PLN": "zł"}}
NBSP = "\u00a0"
HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@register.filter
def money(amount, currency: str = "") -> str:
    """An amount with two decimals, local separators and its currency after it."""
    if amount is None or amount == "":
        return ""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    number = formats.number_format(value, 2, use_l10n=True, force_grouping=True)
    # A non-breaking space keeps "1 234,56 zł" on one line in narrow table cells.
    number = number.replace(" ", NBSP)
    if not currency:
        return number
    language = (translation.get_language() or "pl").split("-")[0]
    symbol = CURRENCY_SYMBOLS.get(language, {}).get(currency, currency)
    return f"{number}{NBSP}{symbol}"


@register.filter
def phone(value: str) -> str:
    """An E.164 number as people write it (national for Polish numbers)."""
    return format_phone(value or "")


# How many of a phone's last digits a masked list shows (enough to tell two
# callers apart, not enough to call them).
MASK_PHONE_DIGITS = 3
MASK = "•••"


@register.filter
def phone_masked(value: str) -> str:
    """A phone for a list its reader need not see in full: its last digits only."""
    digits = "".join(ch for ch in (value or "") if ch.isdigit())
    if not digits:
        return ""
    return f"{MASK} {MASK} {digits[-MASK_PHONE_DIGITS:]}"


@register.filter
def email_masked(value: str) -> str:
    """An email for a list its reader need not see in full: first letter, domain."""
    local, at, domain = (value or "").rpartition("@")
    if not at:
        return MASK if value else ""
    return f"{local[:1]}{MASK}@{domain}"


@register.filter
def quantity(value) -> str:
    """A quantity without trailing zeros: 2, 0,5, 1,25."""
    if value is None:
        return ""
    value = Decimal(str(value))
    places = max(0, -value.normalize().as_tuple().exponent)
    return formats.number_format(value, places, use_l10n=True)


@register.filter
def css_color(value: str, default: str = "#64748b") -> str:
    """A #rrggbb colour safe to put in a style attribute, or the default grey."""
    return value if isinstance(value, str) and HEX_COLOR.fullmatch(value) else default
