"""The data quality checks the consents app knows (``customers.quality``).

Registered from ``ConsentsConfig.ready()``: customers sits left of consents and
cannot look at the suppression list or the retention policy itself.

* ``undeliverable-email`` -- emails the mail provider reported as bouncing for
  good or as marking our messages as spam: they are on the suppression list
  (``Suppression``, reason "bounce" or "complaint"). The list holds keyed hashes
  (``consents.services.suppression_hash``), so every customer's email is hashed
  the same way in SQL (HMAC-SHA256 built from ``sha256()``, the key's pads
  computed here) and matched against it.
* ``stale-leads`` -- leads the retention policy says to erase now
  (``consents.retention.retention_stale_leads``: no order, no consent, not
  created or seen for ``RETENTION["lead_months"]`` months, not restricted, no
  open request); the nightly retention run erases them unless it runs dry.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.db.models import BinaryField, CharField, Func, OuterRef, QuerySet, Subquery
from django.db.models import Value as V
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consents.models import Suppression
from consents.retention import months_before, retention_stale_leads
from customers.models import Customer
from customers.quality import (
    CUSTOMER_COLUMNS,
    QualityCheck,
    QualityColumn,
    register_check,
    with_city,
)

#: Suppression reasons that say an address cannot take mail (not erasure).
UNDELIVERABLE_REASONS = ("bounce", "complaint")
REASON_LABELS = {"bounce": _("Bounced"), "complaint": _("Marked as spam")}
_HMAC_BLOCK = 64  # SHA-256's block size in bytes


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys (RFC 2104) for SHA-256."""
    if len(key) > _HMAC_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_HMAC_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def email_hash_expression(field: str = "email") -> Func:
    """SQL: ``suppression_hash("email", <field>)`` of a stored (normalised) email.

    HMAC(key, m) = SHA256(outer || SHA256(inner || m)), with m the lower-cased
    address in UTF-8; hex, as the suppression list stores it.
    """
    inner, outer = _hmac_pads(settings.SUPPRESSION_KEY.encode())
    message = Func(
        Lower(field), V("UTF8"), function="convert_to", output_field=BinaryField()
    )
    first = Func(
        V(inner, output_field=BinaryField()),
        message,
        function="sha256",
        arg_joiner=" || ",
        output_field=BinaryField(),
    )
    second = Func(
        V(outer, output_field=BinaryField()),
        first,
        function="sha256",
        arg_joiner=" || ",
        output_field=BinaryField(),
    )
    return Func(second, V("hex"), function="encode", output_field=CharField())


def _undeliverable() -> QuerySet:
    suppressed = Suppression.objects.filter(
        kind=Suppression.Kind.EMAIL, reason__in=UNDELIVERABLE_REASONS
    )
    if not suppressed.exists():  # most shops' first months: hash nobody
        return Customer.objects.none()
    return (
        Customer.objects.not_merged()
        .not_erased()
        .filter(email__isnull=False)
        .alias(quality_email_hash=email_hash_expression())
        .filter(quality_email_hash__in=suppressed.values("value_hash"))
    )


def _with_suppression(queryset: QuerySet) -> QuerySet:
    suppression = Suppression.objects.filter(
        kind=Suppression.Kind.EMAIL, value_hash=OuterRef("quality_email_hash")
    )
    return (
        with_city(queryset)
        .annotate(quality_email_hash=email_hash_expression())
        .annotate(
            quality_reason=Subquery(suppression.values("reason")[:1]),
            quality_since=Subquery(suppression.values("created_at")[:1]),
        )
    )


def _reason(customer: Any) -> str:
    return str(REASON_LABELS.get(customer.quality_reason, customer.quality_reason))


def stale_leads() -> QuerySet:
    """Leads past the retention period (``retention_stale_leads``), not merged."""
    before = months_before(timezone.now(), settings.RETENTION["lead_months"])
    return retention_stale_leads(before=before).not_merged()


def register() -> None:
    """Register the consents app's checks (from ``ConsentsConfig.ready``)."""
    register_check(
        QualityCheck(
            code="undeliverable-email",
            label=_("Undeliverable emails"),
            help_text=_(
                "Addresses the mail provider reported as bouncing for good or "
                "marking our messages as spam: they are on the suppression list "
                "and get no more email."
            ),
            model=Customer,
            rule=_undeliverable,
            prepare=_with_suppression,
            columns=(
                *CUSTOMER_COLUMNS[:3],
                QualityColumn(
                    "reason", _("Reported"), lambda c: c.quality_reason, _reason
                ),
                QualityColumn("reported_at", _("Since"), lambda c: c.quality_since),
                *CUSTOMER_COLUMNS[3:],
            ),
            position=30,
        )
    )
    register_check(
        QualityCheck(
            code="stale-leads",
            label=_("Stale leads"),
            help_text=_(
                "Leads who never ordered, gave no consent and have not been seen "
                "for the retention period: the nightly retention run erases them."
            ),
            model=Customer,
            rule=stale_leads,
            prepare=with_city,
            columns=(
                *CUSTOMER_COLUMNS[:-1],
                QualityColumn("last_seen_at", _("Last seen"), lambda c: c.last_seen_at),
                CUSTOMER_COLUMNS[-1],
            ),
            position=60,
        )
    )
