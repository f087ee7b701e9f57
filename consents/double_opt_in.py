"""Double opt-in: a sign-up waits until the person confirms it from their inbox.

The confirmation link carries a signed, timestamped token (the sign-up's id).
The token is the only authority on the public page, so it must be unforgeable
(signed with SECRET_KEY and a salt of its own), expire
(DOUBLE_OPT_IN_LINK_DAYS) and work once (the sign-up row is locked and marked
confirmed in the same transaction as the grant it records).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from consents.models import ConsentEvent, ConsentPurpose, ConsentState, DoubleOptIn
from consents.services import consent_purpose, consent_record, consent_text_current
from customers.models import ApiKey, Customer, Store
from customers.services import customer_upsert

TOKEN_SALT = "consents.double_opt_in.confirm"  # noqa: S105 - a salt, not a secret
# A sign-up repeated this soon (a double click, a resubmitted form, a bot) reuses
# the pending one and sends nothing: the person's inbox is not flooded.
RESEND_AFTER = dt.timedelta(minutes=10)


# --- Starting ----------------------------------------------------------------------


def double_opt_in_start(
    *,
    customer: Customer,
    purpose: str | ConsentPurpose,
    store: Store | None,
    api_key: ApiKey | None,
    language: str | None,
    ip_address: str | None,
    user_agent: str,
    evidence: Mapping[str, Any] | None,
) -> DoubleOptIn:
    """Record a sign-up waiting for confirmation; email the link after commit.

    The text asked about is the purpose's current one in ``language`` (the
    customer's language if not given; Polish if the purpose has no text in it).
    A sign-up repeated within RESEND_AFTER returns the pending one, unsent again.
    """
    if customer.erased_at is not None:
        raise ValidationError(
            {"customer": ValidationError(_("The customer was erased."), "erased")}
        )
    if not customer.email:
        raise ValidationError(
            {
                "email": ValidationError(
                    _("A double opt-in needs the customer's email."), "required"
                )
            }
        )
    purpose = consent_purpose(purpose)
    text = consent_text_current(purpose=purpose, language=language or customer.language)
    now = timezone.now()
    with transaction.atomic():
        # One sign-up at a time per customer: the repeat check below is then exact.
        Customer.objects.select_for_update().filter(pk=customer.pk).exists()
        recent = (
            DoubleOptIn.objects.filter(
                customer=customer,
                purpose=purpose,
                text=text,
                confirmed_at__isnull=True,
                requested_at__gte=now - RESEND_AFTER,
            )
            .order_by("-requested_at")
            .first()
        )
        if recent is not None:
            return recent
        signup = DoubleOptIn.objects.create(
            customer=customer,
            purpose=purpose,
            text=text,
            store=store,
            api_key=api_key,
            requested_at=now,
            request_ip=ip_address or None,
            request_user_agent=(user_agent or "")[:500],
            evidence=dict(evidence or {}),
        )
        signup_id = signup.pk
        # robust: a mail server outage must not undo the committed sign-up; the
        # person can sign up again, and the failure is logged.
        transaction.on_commit(
            lambda: double_opt_in_send(signup_id=signup_id), robust=True
        )
    return signup


def newsletter_sign_up(
    *,
    store: Store,
    api_key: ApiKey | None,
    email: str,
    purpose: str = ConsentPurpose.Code.EMAIL_MARKETING,
    first_name: str | None = None,
    language: str | None = None,
    external_id: str | None = None,
    ip_address: str | None = None,
    user_agent: str = "",
    evidence: Mapping[str, Any] | None = None,
) -> DoubleOptIn | None:
    """A newsletter form's sign-up: find or create the customer, start a double opt-in.

    Returns None, sending nothing, when the customer already has ``purpose``
    granted. A suppressed (erased) contact may sign up: confirming the double
    opt-in is how they consent again.
    """
    purpose = consent_purpose(purpose)
    profile = {
        name: value
        for name, value in (("first_name", first_name), ("language", language))
        if value
    }
    with transaction.atomic():
        customer, _created = customer_upsert(
            store=store,
            external_id=external_id,
            email=email,
            actor=api_key,
            **profile,
        )
        if ConsentState.objects.filter(
            customer=customer, purpose=purpose, granted=True
        ).exists():
            return None
        return double_opt_in_start(
            customer=customer,
            purpose=purpose,
            store=store,
            api_key=api_key,
            language=language,
            ip_address=ip_address,
            user_agent=user_agent,
            evidence=evidence,
        )


# --- The link and its email --------------------------------------------------------


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=TOKEN_SALT)


def double_opt_in_token(signup: DoubleOptIn) -> str:
    """The signed, timestamped token of ``signup``'s confirmation link."""
    return _signer().sign(str(signup.pk))


def double_opt_in_link(signup: DoubleOptIn) -> str:
    """The absolute confirmation link (PUBLIC_URL) with a fresh token."""
    path = reverse("consents:double-opt-in-confirm", args=[double_opt_in_token(signup)])
    return f"{settings.PUBLIC_URL}{path}"


def double_opt_in_send(*, signup_id: int) -> bool:
    """Email the confirmation link of a pending sign-up; False if there is none."""
    signup = (
        DoubleOptIn.objects.filter(pk=signup_id, confirmed_at__isnull=True)
        .select_related("customer", "purpose", "text", "store")
        .first()
    )
    if signup is None or not signup.customer.email or signup.customer.erased_at:
        return False
    # The email is in the language of the text it asks the person to agree to.
    with translation.override(signup.text.language):
        context = {
            "signup": signup,
            "customer": signup.customer,
            "purpose": signup.purpose,
            "text": signup.text,
            "store": signup.store,
            "link": double_opt_in_link(signup),
            "link_days": settings.DOUBLE_OPT_IN_LINK_DAYS,
        }
        subject = _("Confirm your subscription")
        if signup.store is not None:
            subject = f"{subject} – {signup.store.name}"
        message = EmailMultiAlternatives(
            subject=subject,
            body=render_to_string("consents/double_opt_in/email.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[signup.customer.email],
        )
        message.attach_alternative(
            render_to_string("consents/double_opt_in/email.html", context),
            "text/html",
        )
    message.send()
    return True


# --- Confirming --------------------------------------------------------------------


def _token_error(code: str) -> ValidationError:
    messages = {
        "invalid": _("This confirmation link is not valid."),
        "expired": _("This confirmation link has expired."),
        "used": _("This subscription is already confirmed."),
    }
    return ValidationError({"token": ValidationError(messages[code], code=code)})


def _signup_id(token: str) -> int:
    try:
        value = _signer().unsign(token)
    except signing.BadSignature:
        raise _token_error("invalid") from None
    if not value.isdigit():
        raise _token_error("invalid")
    return int(value)


def _check_age(token: str) -> None:
    try:
        _signer().unsign(
            token, max_age=dt.timedelta(days=settings.DOUBLE_OPT_IN_LINK_DAYS)
        )
    except signing.SignatureExpired:
        raise _token_error("expired") from None


def double_opt_in_lookup(token: str) -> DoubleOptIn:
    """The sign-up a token names, confirmed or not; reads only.

    Raises ValidationError keyed ``token`` with code "invalid" (tampered, or no
    such sign-up) or "expired" (an unconfirmed sign-up's link is too old).
    """
    signup = (
        DoubleOptIn.objects.filter(pk=_signup_id(token))
        .select_related("customer", "purpose", "text", "store")
        .first()
    )
    if signup is None or signup.customer.erased_at is not None:
        raise _token_error("invalid")
    if signup.confirmed_at is None:
        _check_age(token)
    return signup


def double_opt_in_confirm(
    *, token: str, ip_address: str | None, user_agent: str
) -> DoubleOptIn:
    """Confirm a sign-up: record its grant once, with the confirming request's evidence.

    Raises ValidationError keyed ``token`` with code "invalid" (tampered or
    unknown), "expired" or "used" (already confirmed: the link works once).
    """
    signup_id = _signup_id(token)
    with transaction.atomic():
        signup = (
            DoubleOptIn.objects.select_for_update(of=("self",))
            .select_related("customer", "purpose", "text", "store", "api_key")
            .filter(pk=signup_id)
            .first()
        )
        if signup is None or signup.customer.erased_at is not None:
            raise _token_error("invalid")
        if signup.confirmed_at is not None:
            raise _token_error("used")
        _check_age(token)
        now = timezone.now()
        event, _new = consent_record(
            customer=signup.customer,
            purpose=signup.purpose,
            action=ConsentEvent.Action.GRANT,
            source=ConsentEvent.Source.DOUBLE_OPT_IN,
            text=signup.text,
            occurred_at=now,
            store=signup.store,
            api_key=signup.api_key,
            ip_address=ip_address,
            user_agent=user_agent,
            evidence={
                "double_opt_in_id": signup.pk,
                "requested_at": signup.requested_at.isoformat(),
                "request_ip": signup.request_ip,
                "request_user_agent": signup.request_user_agent,
                "request_evidence": signup.evidence,
                "confirmed_at": now.isoformat(),
                "confirmed_by": "email_link",
            },
        )
        signup.confirmed_at = now
        signup.event = event
        signup.save(update_fields=["confirmed_at", "event"])
    return signup


# --- Retention ---------------------------------------------------------------------


def double_opt_in_purge(
    *, older_than: dt.timedelta | None = None, dry_run: bool = False
) -> int:
    """Delete sign-ups never confirmed, older than RETENTION's unconfirmed_signup_days.

    Returns how many were (or, with ``dry_run``, would be) deleted. Confirmed
    sign-ups stay: they are part of the grant's proof.
    """
    if older_than is None:
        older_than = dt.timedelta(days=settings.RETENTION["unconfirmed_signup_days"])
    stale = DoubleOptIn.objects.filter(
        confirmed_at__isnull=True, requested_at__lt=timezone.now() - older_than
    )
    if dry_run:
        return stale.count()
    with transaction.atomic():
        _total, by_model = stale.delete()
    return by_model.get(DoubleOptIn._meta.label, 0)
