"""The history of file imports: who imported what, when, and what came of it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from customers.models.customer import Store


class ImportJob(models.Model):
    """One uploaded file on its way through the import wizard.

    The wizard checks the file (a dry run whose counts land in ``checked``), then a
    Celery task imports it, reporting progress in ``rows_done``. The file is kept
    under ``file`` (private storage: it holds personal data) with its SHA-256,
    which the consent ledger records as the proof's source.
    """

    class Kind(models.TextChoices):
        CUSTOMERS = "customers", _("Customers")
        ORDERS = "orders", _("Orders")
        CONSENTS = "consents", _("Consents")

    class Status(models.TextChoices):
        UPLOADED = "uploaded", _("Uploaded")
        CHECKING = "checking", _("Checking")
        CHECKED = "checked", _("Checked")
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Importing")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    class OnError(models.TextChoices):
        ABORT = "abort", _("All or nothing")
        SKIP = "skip", _("Skip bad rows")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.UPLOADED
    )
    on_error = models.CharField(
        _("bad rows"), max_length=8, choices=OnError.choices, default=OnError.ABORT
    )
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/", max_length=300)
    filename = models.CharField(_("file name"), max_length=255)
    size = models.BigIntegerField(_("size in bytes"), default=0)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True, db_index=True)
    # What the user asked for ("auto" by default) and what the reader found.
    requested_format = models.CharField(
        _("requested format"), max_length=32, default="auto"
    )
    format = models.CharField(_("format"), max_length=32, blank=True)
    variant = models.CharField(_("variant"), max_length=64, blank=True)
    encoding = models.CharField(_("encoding"), max_length=32, blank=True)
    delimiter = models.CharField(_("delimiter"), max_length=4, blank=True)
    # The dry run's counts: {"rows", "created", "updated", "unchanged", "merged",
    # "errors", "bad_rows", ...}; null until checked.
    checked = models.JSONField(_("dry-run counts"), null=True, blank=True)
    rows_done = models.PositiveIntegerField(_("rows read"), default=0)
    rows = models.PositiveIntegerField(_("rows"), default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    merged = models.PositiveIntegerField(_("merged"), default=0)
    errors = models.PositiveIntegerField(_("errors"), default=0)
    # Counts a kind adds beyond the common ones, e.g. {"consents": 120}.
    extra = models.JSONField(_("other counts"), default=dict, blank=True)
    rows_per_second = models.FloatField(_("rows per second"), null=True, blank=True)
    error_report = models.FileField(
        _("error report"), upload_to="imports/%Y/%m/", max_length=300, blank=True
    )
    message = models.TextField(_("message"), blank=True)
    task_id = models.CharField(_("task id"), max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("imported by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["customers", "orders", "consents"]),
                name="importjob_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(on_error__in=["abort", "skip"]),
                name="importjob_on_error_valid",
            ),
        ]
        indexes = [models.Index(fields=["-created_at"], name="importjob_recent")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.filename}"
