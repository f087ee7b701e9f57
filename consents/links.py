"""Signed links for the public pages: the preference centre and unsubscribe.

A link carries a compact payload signed with SECRET_KEY and a salt of its own
(``{"c": customer id}`` for the preference centre, ``{"c": id, "p": purpose code,
"r": reference}`` for unsubscribing), so neither kind of token opens the other
page and nobody can forge one for another customer. Links in marketing emails
must keep working for years, so tokens do not expire. They stop working when:

- the customer is erased (``erased_at``), or no longer exists;
- SECRET_KEY changes without the old key in SECRET_KEY_FALLBACKS (rotate keys
  through SECRET_KEY_FALLBACKS and keep the old ones as long as sent emails
  may still be clicked).

Campaigns put one unsubscribe link per message and purpose in the headers, for
one-click unsubscribe (RFC 8058)::

    url = unsubscribe_url(customer, "email_marketing", reference=str(delivery.pk))
    headers = {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }

The mail provider then POSTs ``List-Unsubscribe=One-Click`` to the URL without
cookies; a GET (a person clicking, or a link scanner prefetching) only shows a
confirmation page and changes nothing. The same URL may also be the visible
"unsubscribe" link in the message body. The reference (the delivery id) comes back
in the withdrawal's evidence.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.translation import gettext as _

from consents.models import ConsentPurpose
from customers.models import Customer

PREFERENCE_SALT = "kartoteka.consents.preferences"
UNSUBSCRIBE_SALT = "kartoteka.consents.unsubscribe"


@functools.cache
def _cached_signer(salt: str, key: str, fallbacks: tuple[str, ...]) -> signing.Signer:
    # No timestamp: the links do not expire (see the module docstring).
    return signing.Signer(key=key, salt=salt, fallback_keys=list(fallbacks))


def signer(salt: str) -> signing.Signer:
    """The signer of one kind of link, built once per key.

    Campaigns sign several links in every message; keyed by the secrets, so a
    rotation (or a test overriding them) gets a new signer.
    """
    return _cached_signer(
        salt, settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS)
    )


_SLOT = "SLOT"


@functools.cache
def _cached_path(name: str, urlconf: Any, prefix: str) -> tuple[str, str]:
    before, _sep, after = reverse(name, urlconf=urlconf, args=[_SLOT]).partition(_SLOT)
    return before, after


def public_url(name: str, token: str) -> str:
    """The absolute address of the public page ``name`` for ``token``.

    reverse() costs more than the signing, so each name's path is resolved once;
    tokens need no quoting (base64 and ":").
    """
    urlconf = get_urlconf() or settings.ROOT_URLCONF
    before, after = _cached_path(name, urlconf, get_script_prefix())
    return f"{settings.PUBLIC_URL}{before}{token}{after}"


def _invalid() -> ValidationError:
    return ValidationError(
        {"token": ValidationError(_("This link is not valid."), code="invalid")}
    )


def _customer(customer_id: object) -> Customer:
    if not isinstance(customer_id, int) or isinstance(customer_id, bool):
        raise _invalid()
    customer = Customer.objects.filter(pk=customer_id, erased_at__isnull=True).first()
    if customer is None:
        raise _invalid()
    return customer


def _load(token: str, salt: str) -> dict:
    try:
        payload = signer(salt).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError):
        raise _invalid() from None
    if not isinstance(payload, dict):
        raise _invalid()
    return payload


# --- Preference centre ------------------------------------------------------------


def preference_token(customer: Customer) -> str:
    """The signed token of ``customer``'s preference centre."""
    return signer(PREFERENCE_SALT).sign_object({"c": customer.pk}, compress=True)


def preference_url(customer: Customer) -> str:
    """The absolute address of ``customer``'s preference centre."""
    return public_url("consents:preferences", preference_token(customer))


def read_preference_token(token: str) -> Customer:
    """The customer of a preference token; ValidationError "invalid" otherwise.

    Refused: a tampered or unknown token, one of another kind, an erased customer.
    """
    return _customer(_load(token, PREFERENCE_SALT).get("c"))


# --- Unsubscribe ------------------------------------------------------------------


def unsubscribe_token(
    customer: Customer, purpose_code: str | ConsentPurpose, *, reference: str = ""
) -> str:
    """The signed token that withdraws ``purpose_code`` for ``customer``."""
    code = getattr(purpose_code, "code", purpose_code)
    if code not in ConsentPurpose.Code.values:
        raise ValidationError(
            {
                "purpose": ValidationError(
                    _("Choose one of: %(choices)s."),
                    code="invalid_choice",
                    params={"choices": ", ".join(ConsentPurpose.Code.values)},
                )
            }
        )
    payload: dict[str, object] = {"c": customer.pk, "p": code}
    if reference:
        payload["r"] = str(reference)
    return signer(UNSUBSCRIBE_SALT).sign_object(payload, compress=True)


def unsubscribe_url(
    customer: Customer, purpose_code: str | ConsentPurpose, *, reference: str = ""
) -> str:
    """The absolute one-click unsubscribe address (for List-Unsubscribe too)."""
    token = unsubscribe_token(customer, purpose_code, reference=reference)
    return public_url("consents:unsubscribe", token)


def read_unsubscribe_token(token: str) -> tuple[Customer, ConsentPurpose, str]:
    """The customer, purpose and reference of an unsubscribe token.

    ValidationError "invalid" for a tampered or unknown token, an unknown purpose
    or an erased customer. A purpose switched off since the email was sent still
    resolves: withdrawing it must keep working.
    """
    payload = _load(token, UNSUBSCRIBE_SALT)
    code = payload.get("p")
    purpose = (
        ConsentPurpose.objects.filter(code=code).first()
        if isinstance(code, str)
        else None
    )
    if purpose is None:
        raise _invalid()
    customer = _customer(payload.get("c"))
    reference = payload.get("r", "")
    return customer, purpose, reference if isinstance(reference, str) else ""
