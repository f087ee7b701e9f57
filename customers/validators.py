"""Normalisers and validators for customer data.

Each ``normalize_*`` function returns the canonical form or raises
``ValidationError`` with a code, so that the API, imports, admin and staff pages all
report bad input the same way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.utils.translation import gettext_lazy as _
from django_countries import countries


class _EmailValidator(EmailValidator):
    """Django's email validator, with its answers for domains remembered.

    A shop's customers share a few hundred domains (gmail.com, wp.pl, onet.pl), and
    an import checks a million addresses: each domain is matched once. The user
    part's pattern is compiled once, not looked up through a lazy object per call.
    """

    user_regex = re.compile(
        EmailValidator.user_regex.pattern, EmailValidator.user_regex.flags
    )

    def validate_domain_part(self, domain_part: str) -> bool:
        return _valid_domain(domain_part)


_valid_domain = functools.lru_cache(maxsize=4096)(EmailValidator().validate_domain_part)
_email_validator = _EmailValidator()
POSTCODE_PL_RE = re.compile(r"^\d{2}-\d{3}$")
NIP_WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)


def normalize_email(value: str) -> str:
    """Trim, lower-case the domain and validate; the local part keeps its case."""
    value = (value or "").strip()
    local, sep, domain = value.rpartition("@")
    if not sep or not local or not domain:
        raise ValidationError(
            _("Enter a valid email address."),
            code="invalid_email",
            params={"value": value},
        )
    value = f"{local}@{domain.lower()}"
    try:
        _email_validator(value)
    except ValidationError:
        raise ValidationError(
            _("Enter a valid email address."),
            code="invalid_email",
            params={"value": value},
        ) from None
    return value


def normalize_phone(value: str, region: str | None = None) -> str:
    """Parse a phone number written any common way and return it in E.164."""
    region = region or settings.PHONENUMBER_DEFAULT_REGION
    raw = (value or "").strip()
    if _already_e164(raw, region):
        return raw
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValidationError(
            _("Enter a valid phone number, e.g. +48 601 234 567."),
            code="invalid_phone",
            params={"value": raw},
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# The number types phonenumbers' is_valid_number accepts, in its own order.
PHONE_NUMBER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


@functools.cache
def _e164_checker(region: str) -> tuple[str, Callable[[str], bool]] | None:
    """For ``region``: its "+<code>" and a validity test of a national number.

    The same test as ``phonenumbers.is_valid_number`` (the general pattern, then
    any number type's lengths and pattern), built from phonenumbers' own metadata,
    without parsing: an import checks a million numbers already written in E.164,
    where parsing was half the cost of cleaning a row. None for a region whose
    country code other regions share (then the region needs the full parse).
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None
    code = metadata.country_code
    if len(phonenumbers.region_codes_for_country_code(code)) != 1:
        return None

    def matcher(desc: Any) -> Callable[[str], bool] | None:
        if desc is None or not desc.national_number_pattern:
            return None
        pattern = re.compile(desc.national_number_pattern)
        lengths = frozenset(desc.possible_length or ())

        def matches(national: str) -> bool:
            if lengths and len(national) not in lengths:
                return False
            return pattern.fullmatch(national) is not None

        return matches

    general = matcher(metadata.general_desc)
    descs = (getattr(metadata, kind) for kind in PHONE_NUMBER_TYPES)
    types = [m for m in (matcher(desc) for desc in descs) if m]
    if general is None:
        return None

    def valid(national: str) -> bool:
        return general(national) and any(match(national) for match in types)

    return f"+{code}", valid


_E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")


def _already_e164(raw: str, region: str) -> bool:
    """Whether ``raw`` is a valid number of ``region`` written exactly in E.164."""
    if not _E164_RE.fullmatch(raw):
        return False
    checker = _e164_checker(region)
    if checker is None:
        return False
    prefix, valid = checker
    national = raw[len(prefix) :]
    # A national number starting with 0 (Italy's leading zero) takes the full parse.
    return raw.startswith(prefix) and not national.startswith("0") and valid(national)


def format_phone(value: str) -> str:
    """Format E.164 for people: national for Polish numbers, else international."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if phonenumbers.region_code_for_number(number)
        == settings.PHONENUMBER_DEFAULT_REGION
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, fmt)


def normalize_country(value: str) -> str:
    """Return the ISO 3166-1 alpha-2 code for a code or an English/Polish name."""
    raw = (value or "").strip()
    code = countries.by_name(raw) or raw.upper()
    if code == "UK":
        code = "GB"
    if code not in countries:
        raise ValidationError(
            _("Enter a valid ISO country code, e.g. PL."),
            code="invalid_country",
            params={"value": raw},
        )
    return code


def normalize_postcode(value: str, country: str) -> str:
    """Trim a postcode; a Polish one must be NN-NNN (NNNNN is reformatted)."""
    raw = (value or "").strip()
    if country != "PL":
        return raw.upper()
    if re.fullmatch(r"\d{5}", raw):
        raw = f"{raw[:2]}-{raw[2:]}"
    if not POSTCODE_PL_RE.fullmatch(raw):
        raise ValidationError(
            _("Enter a Polish postcode in the form NN-NNN, e.g. 00-950."),
            code="invalid_postcode",
            params={"value": raw},
        )
    return raw


def normalize_nip(value: str) -> str:
    """Return a Polish tax number (NIP) as ten digits, checking its checksum."""
    raw = (value or "").strip()
    digits = re.sub(r"[\s-]", "", raw)
    if digits.upper().startswith("PL"):
        digits = digits[2:]
    if not re.fullmatch(r"\d{10}", digits) or (
        sum(int(d) * w for d, w in zip(digits, NIP_WEIGHTS, strict=False)) % 11
        != int(digits[9])
    ):
        raise ValidationError(
            _("Enter a valid ten-digit NIP."), code="invalid_nip", params={"value": raw}
        )
    return digits


def validate_postcode_pl(value: str) -> None:
    """Model-field validator for Polish postcodes."""
    normalize_postcode(value, "PL")


def validate_nip(value: str) -> None:
    """Model-field validator for NIP."""
    normalize_nip(value)


def validate_phone(value: str) -> None:
    """Model-field validator: the value must be a valid number already in E.164."""
    if normalize_phone(value) != value:
        raise ValidationError(
            _("Store phone numbers in E.164, e.g. +48601234567."), code="invalid_phone"
        )
