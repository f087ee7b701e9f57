"""What the data quality scan (``customers.quality.quality_scan``) found.

The scan runs at night and on request from the quality page. Checking a million
customers' emails and phones takes seconds, too long for a page view, so the scan
keeps what each check found (``QualityFinding``) and its counts (``QualityScan``),
and the pages list those, saying when the scan ran.
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class QualityScanQuerySet(models.QuerySet):
    def finished(self) -> QualityScanQuerySet:
        """Scans that ran to the end (their figures are complete)."""
        return self.filter(finished_at__isnull=False)

    def running(self, *, since: dt.datetime) -> QualityScanQuerySet:
        """Scans started after ``since`` that have not finished (yet)."""
        return self.filter(finished_at__isnull=True, started_at__gte=since)


class QualityScan(models.Model):
    """One run of the data quality scan: when, how long, and what it found.

    ``duplicates`` holds the likely duplicate pairs per reason, ``counts`` the
    count of each registered check (``customers.quality.quality_checks``) by its
    code. A scan that failed keeps ``finished_at`` empty.
    """

    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duplicates = models.JSONField(_("likely duplicates per reason"), default=dict)
    counts = models.JSONField(_("count per check"), default=dict)
    duplicates_seconds = models.FloatField(
        _("duplicate scan time (s)"), null=True, blank=True
    )

    objects = QualityScanQuerySet.as_manager()

    class Meta:
        verbose_name = _("data quality scan")
        verbose_name_plural = _("data quality scans")
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M}"


class QualityFinding(models.Model):
    """A record a data quality check found at the last scan.

    ``code`` is the check's (``customers.quality.QualityCheck.code``);
    ``object_id`` the id of what it lists: a customer for most checks, an order
    for orders without a customer. No foreign key: checks of apps to the right
    of customers list their own models, and a finding of a deleted record simply
    finds nothing at the next scan. A finding that still holds keeps its
    ``found_at``.
    """

    code = models.SlugField(_("check"), max_length=40)
    object_id = models.BigIntegerField(_("record"))
    found_at = models.DateTimeField(_("found at"), default=timezone.now)

    class Meta:
        verbose_name = _("data quality finding")
        verbose_name_plural = _("data quality findings")
        constraints = [
            models.UniqueConstraint(
                fields=["code", "object_id"], name="quality_finding_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} #{self.object_id}"
