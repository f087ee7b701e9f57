import pytest
from django.core.exceptions import ValidationError

from customers.validators import (
    format_phone,
    normalize_country,
    normalize_email,
    normalize_nip,
    normalize_phone,
    normalize_postcode,
)


@pytest.mark.parametrize(
    "raw",
    [
        "+48 601 234 567",
        "601234567",
        "0048601234567",
        "601-234-567",
        "(+48) 601 234 567",
    ],
)
def test_polish_phone_in_any_format_becomes_e164(raw):
    assert normalize_phone(raw) == "+48601234567"


def test_foreign_phone_keeps_its_country():
    assert normalize_phone("+49 30 901820") == "+4930901820"


@pytest.mark.parametrize("raw", ["", "12", "abc", "+48 123", "6012345678901"])
def test_bad_phone_is_a_clear_error(raw):
    with pytest.raises(ValidationError) as error:
        normalize_phone(raw)
    assert error.value.code == "invalid_phone"
    assert "+48" in str(error.value.message)


def test_phone_formatted_for_people():
    assert format_phone("+48601234567") == "601 234 567"
    assert format_phone("+4930901820") == "+49 30 901820"


def test_email_domain_lower_cased_local_part_kept():
    assert normalize_email("  Jan.Nowak@Poczta.ONET.pl ") == "Jan.Nowak@poczta.onet.pl"


@pytest.mark.parametrize("raw", ["", "jan", "jan@", "@onet.pl", "jan nowak@onet.pl"])
def test_bad_email(raw):
    with pytest.raises(ValidationError) as error:
        normalize_email(raw)
    assert error.value.code == "invalid_email"


def test_polish_postcode():
    assert normalize_postcode(" 00-950 ", "PL") == "00-950"
    assert normalize_postcode("00950", "PL") == "00-950"
    assert normalize_postcode("10117", "DE") == "10117"
    with pytest.raises(ValidationError) as error:
        normalize_postcode("0-950", "PL")
    assert error.value.code == "invalid_postcode"


def test_country_by_code_or_name():
    assert normalize_country("pl") == "PL"
    assert normalize_country("Germany") == "DE"
    with pytest.raises(ValidationError):
        normalize_country("XX")


def test_nip_checksum():
    assert normalize_nip("PL 526-000-12-46") == "5260001246"
    with pytest.raises(ValidationError) as error:
        normalize_nip("5260001247")
    assert error.value.code == "invalid_nip"


@pytest.mark.parametrize("region", ["PL", "DE", "CZ", "UA", "FR"])
def test_the_e164_shortcut_agrees_with_phonenumbers(region):
    """The parse-free check of numbers already in E.164 is phonenumbers' own rule."""
    import random

    import phonenumbers

    from customers.validators import _already_e164

    rng = random.Random(region)
    code = phonenumbers.country_code_for_region(region)
    taken = 0
    for _ in range(5000):
        raw = f"+{code}" + "".join(
            rng.choice("0123456789") for _ in range(rng.randint(5, 12))
        )
        try:
            number = phonenumbers.parse(raw, region)
            valid = phonenumbers.is_valid_number(number) and raw == (
                phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            )
        except phonenumbers.NumberParseException:
            valid = False
        shortcut = _already_e164(raw, region)
        assert not shortcut or valid, raw
        if valid and not raw.startswith(f"+{code}0"):
            assert shortcut, raw
        taken += shortcut
    assert taken > 0
    # Numbers in another region's code, or not in E.164, take the full parse.
    assert not _already_e164("+49301234567", "PL")
    assert not _already_e164("601 234 567", "PL")
