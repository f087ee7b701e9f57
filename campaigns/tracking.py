"""Opens, clicks, bounces and complaints: what happened to a message after sending.

The sender (``campaigns.sending``) adds the open pixel and routes the links
through ``click_url`` only for recipients who granted the "tracking" purpose; the
endpoints (``campaigns.public_views``) then accept any valid token.

Tokens are signed with SECRET_KEY and a salt per kind, so a click token is no
open token and nobody can forge one for another delivery or another address.
They do not expire: emails are opened and clicked for years. A click is sent on
only to an address the message itself links to (``click_url_allowed``), so even a
leaked signing key does not make the click endpoint an open redirect.

Bounces and complaints come from the mail provider's webhook
(``email_events_record``): a hard bounce or a complaint puts the address on the
suppression list and marks its waiting messages as not sent; a complaint also
withdraws the email marketing consent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import Channel, Delivery, DeliveryEvent
from campaigns.rendering import template_links
from consents.links import public_url, signer
from consents.models import ConsentEvent, ConsentPurpose
from consents.services import consent_set, suppression_add
from customers.models import Customer
from customers.validators import normalize_email
from orders.models import Product

CLICK_SALT = "kartoteka.campaigns.click"
OPEN_SALT = "kartoteka.campaigns.open"

# Mail clients and proxies fetch an image again on every view of the message: at
# most one open event per delivery within this window.
OPEN_REPEAT_WINDOW = dt.timedelta(minutes=1)

# The person marked a message as spam in their mailbox: a withdrawal of its own kind
# in the ledger, with the message id in the evidence.
COMPLAINT_SOURCE = ConsentEvent.Source.SPAM_COMPLAINT

Kind = DeliveryEvent.Kind
URL_MAX_LENGTH = DeliveryEvent._meta.get_field("url").max_length


# --- Signed links -----------------------------------------------------------------


def _invalid() -> ValidationError:
    return ValidationError(
        {"token": ValidationError(_("This link is not valid."), code="invalid")}
    )


def _load(token: str, salt: str) -> dict:
    try:
        payload = signer(salt).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError):
        raise _invalid() from None
    if not isinstance(payload, dict):
        raise _invalid()
    return payload


def _delivery_id(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _invalid()
    return value


def click_url(delivery_id: int, url: str) -> str:
    """The absolute tracking address that records a click and leads on to ``url``."""
    token = signer(CLICK_SALT).sign_object({"d": delivery_id, "u": url}, compress=True)
    return public_url("campaigns:click", token)


def open_url(delivery_id: int) -> str:
    """The absolute address of the open pixel (a 1x1 GIF) of a delivery."""
    token = signer(OPEN_SALT).sign_object({"d": delivery_id}, compress=True)
    return public_url("campaigns:open", token)


def read_click_token(token: str) -> tuple[int, str]:
    """The delivery id and address of a click token; ValidationError "invalid".

    Refused: a tampered or foreign token (an open token, an unsubscribe token).
    """
    payload = _load(token, CLICK_SALT)
    url = payload.get("u")
    if not isinstance(url, str) or not url:
        raise _invalid()
    return _delivery_id(payload.get("d")), url


def read_open_token(token: str) -> int:
    """The delivery id of an open token; ValidationError "invalid" otherwise."""
    return _delivery_id(_load(token, OPEN_SALT).get("d"))


# --- Where a click may lead -------------------------------------------------------


def delivery_allowed_urls(delivery: Delivery) -> set[str]:
    """The addresses the delivery's template links to (its campaign's or flow's).

    Product pages are allowed too (recommendations), but not listed here: there
    may be many, ``click_url_allowed`` asks about one.
    """
    owner = delivery.campaign if delivery.campaign_id else delivery.flow
    template = owner.template if owner is not None else None
    if template is None or not template.html:
        return set()
    return set(template_links(template.html))


def click_url_allowed(*, delivery: Delivery, url: str) -> bool:
    """Whether a click on ``delivery`` may lead to ``url``: the message links there.

    The template's own links, or a product's page (recommended products).
    """
    if not url.lower().startswith(("https://", "http://")):
        return False
    if url in delivery_allowed_urls(delivery):
        return True
    return Product.objects.filter(url=url).exists()


# --- Opens and clicks -------------------------------------------------------------


def _aware(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return timezone.now()
    return timezone.make_aware(at) if timezone.is_naive(at) else at


def delivery_opened(*, delivery_id: int, at: dt.datetime | None = None) -> bool:
    """Record that a delivery was opened; whether an event was added.

    The first open sets ``opened_at``. Repeats within a minute add nothing (mail
    clients fetch the pixel on every view). A missing delivery is a no-op.
    """
    at = _aware(at)
    with transaction.atomic():
        first = Delivery.objects.filter(pk=delivery_id, opened_at__isnull=True).update(
            opened_at=at
        )
        if not first:
            # The row lock queues concurrent fetches of one pixel, so each sees
            # the event the one before it added.
            if not Delivery.objects.select_for_update().filter(pk=delivery_id).exists():
                return False
            if DeliveryEvent.objects.filter(
                delivery_id=delivery_id,
                kind=Kind.OPEN,
                at__gt=at - OPEN_REPEAT_WINDOW,
                at__lt=at + OPEN_REPEAT_WINDOW,
            ).exists():
                return False
        DeliveryEvent.objects.create(delivery_id=delivery_id, kind=Kind.OPEN, at=at)
    return True


def delivery_clicked(
    *, delivery_id: int, url: str, at: dt.datetime | None = None
) -> bool:
    """Record a click on ``url``; whether it was recorded (False: no such delivery).

    The first click sets ``clicked_at``, and ``opened_at`` if still empty: the
    person read the message even if their mail client blocked the pixel.
    """
    at = _aware(at)
    with transaction.atomic():
        first = Delivery.objects.filter(pk=delivery_id, clicked_at__isnull=True).update(
            clicked_at=at
        )
        if not first and not Delivery.objects.filter(pk=delivery_id).exists():
            return False
        Delivery.objects.filter(pk=delivery_id, opened_at__isnull=True).update(
            opened_at=at
        )
        DeliveryEvent.objects.create(
            delivery_id=delivery_id, kind=Kind.CLICK, url=url[:URL_MAX_LENGTH], at=at
        )
    return True


# --- Bounces and complaints (the mail provider's webhook) -------------------------


def _message_ids(message_id: str) -> list[str]:
    # We send "<kartoteka.42@host>"; providers quote it with or without brackets.
    bare = message_id.strip().strip("<>").strip()
    return [bare, f"<{bare}>"] if bare else []


def _delivery_for(message_id: str) -> Delivery | None:
    ids = _message_ids(message_id or "")
    if not ids:
        return None
    # Locked: a provider retrying while the first request runs adds no second event.
    return (
        Delivery.objects.select_for_update()
        .filter(message_id__in=ids, channel=Channel.EMAIL)
        .order_by("id")
        .first()
    )


def _event_once(delivery: Delivery, kind: str, at: dt.datetime) -> bool:
    """Add a bounce or complaint event unless the delivery has one (webhook retries)."""
    if DeliveryEvent.objects.filter(delivery=delivery, kind=kind).exists():
        return False
    DeliveryEvent.objects.create(delivery=delivery, kind=kind, at=at)
    return True


def _complaint_withdraw(
    customers: Iterable[Customer], *, message_id: str, at: dt.datetime
) -> int:
    # Switched off or not, the purpose is withdrawn (as by an unsubscribe link).
    purpose = ConsentPurpose.objects.filter(
        code=ConsentPurpose.Code.EMAIL_MARKETING
    ).first()
    if purpose is None:
        return 0
    withdrawn = 0
    for customer in customers:
        _event, created = consent_set(
            customer=customer,
            purpose=purpose,
            granted=False,
            source=COMPLAINT_SOURCE,
            occurred_at=min(at, timezone.now()),
            evidence={"complaint": True, "message_id": message_id},
        )
        withdrawn += created
    return withdrawn


def email_events_record(*, events: list[dict[str, Any]]) -> dict[str, int]:
    """Apply the mail provider's bounces and complaints; counts of what changed.

    Each event: ``type`` ("bounce" or "complaint"), ``email``, and optionally
    ``message_id``, ``bounce_type`` ("hard" or "soft", bounces) and ``at``. A hard
    bounce or a complaint suppresses the address and marks its customers' waiting
    emails as not sent; a complaint also withdraws their email marketing consent.
    The delivery named by ``message_id`` gets a bounce or complaint event (a soft
    bounce: only that). Repeating an event changes nothing more.
    """
    counts = {
        "received": len(events),
        "bounces": 0,
        "complaints": 0,
        "delivery_events": 0,
        "unmatched": 0,
        "deliveries_skipped": 0,
        "consents_withdrawn": 0,
    }
    with transaction.atomic():
        for event in events:
            complaint = event["type"] == "complaint"
            email = normalize_email(event["email"])
            message_id = event.get("message_id") or ""
            at = _aware(event.get("at"))
            counts["complaints" if complaint else "bounces"] += 1

            delivery = _delivery_for(message_id)
            if delivery is None:
                counts["unmatched"] += bool(message_id)
            elif _event_once(
                delivery, Kind.COMPLAINT if complaint else Kind.BOUNCE, at
            ):
                counts["delivery_events"] += 1

            if not complaint and event.get("bounce_type") != "hard":
                continue  # A soft bounce (a full mailbox): the next message may pass.
            suppression_add(email=email, reason="complaint" if complaint else "bounce")
            customers = list(Customer.objects.not_erased().by_email(email))
            counts["deliveries_skipped"] += Delivery.objects.filter(
                customer__in=customers,
                channel=Channel.EMAIL,
                status=Delivery.Status.PENDING,
            ).update(status=Delivery.Status.SKIPPED, reason=Delivery.Reason.SUPPRESSED)
            if complaint:
                counts["consents_withdrawn"] += _complaint_withdraw(
                    customers, message_id=message_id, at=at
                )
    return counts
