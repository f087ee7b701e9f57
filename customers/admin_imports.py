"""The import history in the Django admin: read-only, the wizard does the work.

Imports are started, checked, confirmed and cancelled on the wizard's pages
(``/imports/``), which go through :mod:`customers.imports`; here they can only be
looked up and filtered. Files are linked to the wizard's permission-checked
downloads, never to a media URL.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

# customers.admin imports this module last: what it defines is there already.
from customers.admin import ReadOnlyAdmin
from customers.models import ImportJob


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "filename",
        "kind",
        "store",
        "status",
        "created_by",
        "rows",
        "created",
        "updated",
        "unchanged",
        "errors",
        "short_hash",
    )
    list_filter = ("status", "kind", "on_error", "store", "created_at")
    list_select_related = ("store", "created_by")
    search_fields = ("filename", "=sha256")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = (
        ("kind", "store", "status"),
        ("filename", "size"),
        "sha256",
        ("requested_format", "format", "variant"),
        ("encoding", "delimiter", "on_error"),
        "checked",
        ("rows", "rows_done", "rows_per_second"),
        ("created", "updated", "unchanged", "merged", "errors"),
        "extra",
        "message",
        "downloads",
        "task_id",
        "created_by",
        ("created_at", "started_at", "finished_at"),
    )
    readonly_fields = tuple(
        name
        for entry in fields
        for name in (entry if isinstance(entry, tuple) else (entry,))
    )

    @admin.display(description=_("SHA-256"), ordering="sha256")
    def short_hash(self, job: ImportJob) -> str:
        return format_html('<span title="{}">{}…</span>', job.sha256, job.sha256[:12])

    @admin.display(description=_("files"))
    def downloads(self, job: ImportJob) -> str:
        links = [format_html('<a href="{}">{}</a>', self._page(job), _("wizard page"))]
        if job.error_report:
            links.append(
                format_html(
                    '<a href="{}">{}</a>',
                    reverse("imports:error_report", args=[job.pk]),
                    _("error report"),
                )
            )
        if job.file:
            links.append(
                format_html(
                    '<a href="{}">{}</a>',
                    reverse("imports:file", args=[job.pk]),
                    _("uploaded file"),
                )
            )
        return format_html(" · ".join(["{}"] * len(links)), *links)

    @staticmethod
    def _page(job: ImportJob) -> str:
        return reverse("imports:detail", args=[job.pk])
