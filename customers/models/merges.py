"""A clean base: likely duplicates found by the scan, and merges of duplicates.

``DuplicateCandidate`` is a pair of customers the duplicate scan
(``customers.quality``) took for one person, with why. ``CustomerMerge`` is the
audit record of one merge (``customers.merging.customers_merge``): who merged which
record into which, a snapshot of both as they were, and every row that moved, so
the merge can be undone within ``CustomerMerge.UNDO_DAYS``.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from customers.models.customer import Customer


class SnapshotEncoder(DjangoJSONEncoder):
    """JSON for snapshots: times to the microsecond, so an undo restores them.

    Django's encoder keeps milliseconds only.
    """

    def default(self, o):
        if isinstance(o, dt.datetime | dt.time):
            return o.isoformat()
        return super().default(o)


class DuplicateCandidate(models.Model):
    """Two customers the duplicate scan takes for the same person.

    ``customer`` is always the older record (the lower id), ``other`` the newer; a
    pair appears once per reason. ``key`` is what they share (the normalised email
    or phone, the postcode or street) and ``score`` how alike the names are (1 for
    an exact match).
    """

    class Reason(models.TextChoices):
        EMAIL = "email", _("Same email")
        PHONE = "phone", _("Same phone")
        NAME_POSTCODE = "name_postcode", _("Similar name, same postcode")
        NAME_STREET = "name_street", _("Similar name, same street")

    # Exact duplicates are the ones a batch merge may take without a person
    # comparing names.
    EXACT_REASONS = (Reason.EMAIL, Reason.PHONE)

    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # duplicate_pair_unique leads with it
    )
    other = models.ForeignKey(
        Customer,
        verbose_name=_("likely the same as"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    reason = models.CharField(_("why"), max_length=16, choices=Reason.choices)
    key = models.CharField(_("shared value"), max_length=254, blank=True)
    score = models.FloatField(_("name similarity"), default=1.0)
    found_at = models.DateTimeField(_("found at"), default=timezone.now)

    class Meta:
        verbose_name = _("likely duplicate")
        verbose_name_plural = _("likely duplicates")
        ordering = ["reason", "-score", "customer_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "other", "reason"], name="duplicate_pair_unique"
            ),
            models.CheckConstraint(
                condition=Q(customer__lt=F("other")), name="duplicate_pair_ordered"
            ),
            models.CheckConstraint(
                condition=Q(
                    reason__in=["email", "phone", "name_postcode", "name_street"]
                ),
                name="duplicate_reason_valid",
            ),
        ]
        indexes = [
            models.Index(
                # The duplicates page reads pairs in this order, straight from it.
                fields=["reason", "-score", "customer", "other"],
                name="duplicate_reason_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} ~ {self.other_id} ({self.reason})"


class CustomerMerge(models.Model):
    """One merge: ``merged`` was folded into ``survivor``; kept as the audit trail.

    ``survivor_before`` and ``merged_before`` hold both records' own fields as they
    were (the merged record's personal data lives only here once merged); ``changed``
    maps each survivor field the merge changed to its value before and after;
    ``moved`` lists, per ``app_label.model.field``, the ids of the rows that moved to
    the survivor; ``removed`` the rows taken away because the survivor already had
    their like (restored on undo); ``consent_events`` the ledger entries the merge
    appended to the survivor's ledger.
    """

    UNDO_DAYS = 30

    survivor = models.ForeignKey(
        Customer,
        verbose_name=_("surviving record"),
        on_delete=models.PROTECT,
        related_name="merges",
    )
    merged = models.ForeignKey(
        Customer,
        verbose_name=_("merged-away record"),
        on_delete=models.PROTECT,
        related_name="merged_away_in",
    )
    merged_at = models.DateTimeField(_("merged at"), default=timezone.now)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("merged by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    changed = models.JSONField(
        _("fields changed on the surviving record"),
        default=dict,
        encoder=SnapshotEncoder,
    )
    survivor_before = models.JSONField(
        _("surviving record before"), default=dict, encoder=SnapshotEncoder
    )
    merged_before = models.JSONField(
        _("merged-away record before"), default=dict, encoder=SnapshotEncoder
    )
    moved = models.JSONField(_("rows moved"), default=dict)
    removed = models.JSONField(_("rows removed"), default=dict, encoder=SnapshotEncoder)
    consent_events = models.JSONField(_("consent entries added"), default=list)
    undone_at = models.DateTimeField(_("undone at"), null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("undone by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("customer merge")
        verbose_name_plural = _("customer merges")
        ordering = ["-merged_at", "-id"]
        permissions = [("undo_customermerge", _("Can undo a merge of customers"))]
        constraints = [
            models.CheckConstraint(
                condition=~Q(survivor=F("merged")), name="merge_two_records"
            ),
            # A record is merged away once at a time: undo first to merge it again.
            models.UniqueConstraint(
                fields=["merged"],
                condition=Q(undone_at__isnull=True),
                name="merge_merged_once",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.merged_id} → #{self.survivor_id}"

    @property
    def undo_until(self) -> dt.datetime:
        return self.merged_at + dt.timedelta(days=self.UNDO_DAYS)

    @property
    def is_undoable(self) -> bool:
        return self.undone_at is None and timezone.now() < self.undo_until
