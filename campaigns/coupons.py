"""Unique coupon codes for recipients, and their redemption by the shop's orders.

A campaign or flow with a coupon prefix gives each recipient a code of their own,
``PREFIX-XXXXXXXX`` (eight characters from an alphabet people cannot misread:
no 0/O, 1/I/L). The shop must accept the codes (an import of them, or a rule on
the prefix); Kartoteka learns of a use from the order's ``coupon_code``.

Redemption follows the orders: the orders services and the orders import send
``customer_activity_changed`` inside their transaction, and
:func:`coupons_redeem_receiver` (connected in ``CampaignsConfig.ready``) matches
those customers' orders against the unredeemed codes in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import Campaign, Coupon, Delivery
from orders.models import Order

#: What the random part is drawn from: no 0/O, 1/I/L to misread on a receipt.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
# What a campaign or flow stores (well within the code's own length).
PREFIX_MAX_LENGTH = Campaign._meta.get_field("coupon_prefix").max_length
VALIDITY_MAX_DAYS = 3650
# 31**8 codes: a clash is rare, several in a row mean something else is wrong.
ISSUE_ATTEMPTS = 5
_PREFIX = re.compile(r"[A-Z0-9-]+")
# An order with one of these statuses does not use up its code (the shop gives a
# cancelled order's coupon back).
NOT_REDEEMING = (Order.Status.CANCELLED, Order.Status.RETURNED)


def coupon_prefix_clean(prefix: str) -> str:
    """The prefix upper-cased; ValidationError "invalid" unless A-Z, 0-9 and -."""
    # "LATO-" gives LATO-XXXXXXXX, not LATO--XXXXXXXX: the code adds its own hyphen.
    cleaned = str(prefix or "").strip().upper().strip("-")
    if not _PREFIX.fullmatch(cleaned) or len(cleaned) > PREFIX_MAX_LENGTH:
        raise ValidationError(
            {
                "coupon_prefix": ValidationError(
                    _(
                        "Use Latin letters, digits and hyphens "
                        "(at most %(limit)d characters)."
                    ),
                    code="invalid",
                    params={"limit": PREFIX_MAX_LENGTH},
                )
            }
        )
    return cleaned


def _validity(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int):
        days = -1
    if not 1 <= days <= VALIDITY_MAX_DAYS:
        raise ValidationError(
            {
                "coupon_validity_days": ValidationError(
                    _("A coupon is valid for 1 to %(limit)d days."),
                    code="invalid",
                    params={"limit": VALIDITY_MAX_DAYS},
                )
            }
        )
    return days


def coupon_code_generate(prefix: str) -> str:
    """A new random code with the (cleaned) prefix; not checked for uniqueness."""
    suffix = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{prefix}-{suffix}"


def coupon_issue(
    *,
    delivery: Delivery,
    prefix: str,
    validity_days: int,
    now: dt.datetime | None = None,
) -> Coupon:
    """The delivery's coupon: created, valid from ``now`` for ``validity_days``.

    Idempotent: a delivery that has a coupon gets it back unchanged (a retried
    send must not hand out a second code). Runs in the caller's transaction; each
    attempt has a savepoint, so a code taken meanwhile only costs another draw.
    """
    existing = Coupon.objects.filter(delivery=delivery).first()
    if existing is not None:
        return existing
    prefix = coupon_prefix_clean(prefix)
    validity_days = _validity(validity_days)
    now = now or timezone.now()
    for _attempt in range(ISSUE_ATTEMPTS):
        coupon = Coupon(
            code=coupon_code_generate(prefix),
            customer_id=delivery.customer_id,
            delivery=delivery,
            valid_from=now,
            valid_until=now + dt.timedelta(days=validity_days),
        )
        try:
            with transaction.atomic():
                coupon.save(force_insert=True)
        except IntegrityError:
            # The code was taken, or a concurrent send issued this delivery's
            # coupon: that one is the delivery's coupon then.
            existing = Coupon.objects.filter(delivery=delivery).first()
            if existing is not None:
                return existing
            continue
        return coupon
    raise IntegrityError(
        f"No free coupon code with prefix {prefix} after {ISSUE_ATTEMPTS} attempts"
    )


# Orders placed with a code, then cancelled, returned or given another code, give
# the coupon back: the shop lets it be used again, and the report must not count it.
_RELEASE_SQL = """
UPDATE campaigns_coupon c
SET redeemed_at = NULL, order_id = NULL
FROM orders_order o
WHERE c.order_id = o.id
    AND o.customer_id = ANY(%(ids)s)
    AND (o.status = ANY(%(not_redeeming)s) OR upper(btrim(o.coupon_code)) <> c.code)
"""

# Each unredeemed coupon goes to the first order that used it within its validity.
# The order may be another customer's (the recipient shared the code): it counts
# all the same, since the code was unique to our recipient and the message brought
# the sale.
_REDEEM_SQL = """
WITH used AS (
    SELECT DISTINCT ON (c.id) c.id AS coupon_id, o.id AS order_id, o.placed_at
    FROM orders_order o
    JOIN campaigns_coupon c ON c.code = upper(btrim(o.coupon_code))
    WHERE o.customer_id = ANY(%(ids)s)
        AND o.coupon_code <> ''
        AND o.status <> ALL(%(not_redeeming)s)
        AND c.redeemed_at IS NULL
        AND o.placed_at BETWEEN c.valid_from AND c.valid_until
    ORDER BY c.id, o.placed_at, o.id
)
UPDATE campaigns_coupon c
SET redeemed_at = used.placed_at, order_id = used.order_id
FROM used
WHERE c.id = used.coupon_id AND c.redeemed_at IS NULL
"""


def coupons_redeem(*, customer_ids: Iterable[int]) -> int:
    """Match these customers' orders to the coupons they used; returns how many new.

    Set-based: two statements whatever the number of customers (an import sends
    thousands). A coupon whose order was cancelled, returned or changed its code
    is released first, and may go to another order of the same code.
    """
    ids = sorted({int(pk) for pk in customer_ids if pk is not None})
    if not ids:
        return 0
    params: dict[str, Any] = {
        "ids": ids,
        "not_redeeming": [str(status) for status in NOT_REDEEMING],
    }
    # No savepoint of its own: the receiver runs on every order upsert, inside it.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(_RELEASE_SQL, params)
        cursor.execute(_REDEEM_SQL, params)
        return cursor.rowcount


def coupons_redeem_receiver(*, customer_ids: Iterable[int], **kwargs: Any) -> None:
    """customer_activity_changed: redeem coupons in the sender's transaction."""
    coupons_redeem(customer_ids=customer_ids)
