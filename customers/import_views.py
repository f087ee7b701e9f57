"""Staff pages of the import wizard: upload, check, progress, history, downloads.

Seeing imports needs ``customers.view_importjob`` (Manager, Data protection officer).
Uploading needs ``customers.add_importjob`` and the kind's own permission
(``registry.get(kind).permission``); checking again and confirming are for the
uploader only, cancelling also for whoever may change imports (see
:mod:`customers.imports`). Files are never served from a public URL: the error
report goes to anyone who may see imports, the uploaded file only to its uploader
or a Manager, both as attachments.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import FormView, TemplateView

from customers.forms import add_service_errors
from customers.importers.formats import AUTO
from customers.imports import (
    ACTIVE,
    ADD,
    CANCELLABLE,
    FINISHED,
    FORMAT_LABELS,
    VIEW,
    format_choices,
    import_job_can_act,
    import_job_can_cancel,
    import_job_can_download_file,
    import_job_cancel,
    import_job_confirm,
    import_job_create,
    import_job_preview,
    import_job_recheck,
    import_job_status,
    import_kinds_for,
)
from customers.models import ImportJob, Store
from customers.views import StaffPageMixin, paginate_without_count

Status = ImportJob.Status
OnError = ImportJob.OnError

DELIMITER_LABELS = {
    ",": gettext_lazy("comma ( , )"),
    ";": gettext_lazy("semicolon ( ; )"),
    "\t": gettext_lazy("tab"),
    "|": gettext_lazy("vertical bar ( | )"),
}


def _error_text(error: ValidationError) -> str:
    return " ".join(str(message) for message in error.messages)


# --- Forms -----------------------------------------------------------------------


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        widget=forms.FileInput(attrs={"accept": ".csv,.txt,text/csv,text/plain"}),
        help_text=gettext_lazy(
            "UTF-8 or Windows-1250; comma, semicolon, tab or vertical bar between "
            "columns. The encoding and the delimiter are detected."
        ),
    )
    kind = forms.ChoiceField(label=gettext_lazy("What the file holds"), choices=())
    store = forms.ModelChoiceField(
        label=gettext_lazy("Store"),
        queryset=Store.objects.filter(is_active=True),
        help_text=gettext_lazy("External ids in the file are this store's."),
    )
    format = forms.ChoiceField(
        label=gettext_lazy("Format"), choices=format_choices, initial=AUTO
    )
    on_error = forms.ChoiceField(
        label=gettext_lazy("Bad rows"),
        choices=OnError.choices,
        initial=OnError.ABORT,
        widget=forms.RadioSelect,
        help_text=gettext_lazy(
            "“All or nothing” imports nothing if any row is bad; “Skip bad rows” "
            "imports the others. Either way the check shows every bad row first."
        ),
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the kinds this user may import; a forged POST fails validation.
        self.fields["kind"].choices = [
            (kind.name, kind.label) for kind in import_kinds_for(user)
        ]
        stores = self.fields["store"].queryset
        if len(stores) == 1:
            self.fields["store"].initial = stores[0]


class OnErrorForm(forms.Form):
    on_error = forms.ChoiceField(
        label=gettext_lazy("Bad rows"),
        choices=OnError.choices,
        widget=forms.RadioSelect,
    )


# --- Pages -----------------------------------------------------------------------


class ImportListView(StaffPageMixin, TemplateView):
    """The history: newest first, with who, when, the file's hash and the counts."""

    permission_required = VIEW
    template_name = "customers/imports/list.html"
    per_page = 25

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        jobs = ImportJob.objects.select_related("store", "created_by").order_by(
            "-created_at", "-pk"
        )
        page = paginate_without_count(jobs, self.request.GET.get("page"), self.per_page)
        context.update(
            page=page,
            jobs=page.object_list,
            can_add=self.request.user.has_perm(ADD)
            and bool(import_kinds_for(self.request.user)),
            finished=FINISHED,
        )
        return context


class ImportUploadView(StaffPageMixin, FormView):
    permission_required = ADD
    template_name = "customers/imports/upload.html"
    form_class = ImportUploadForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "user": self.request.user}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["no_kinds"] = not context["form"].fields["kind"].choices
        return context

    def form_valid(self, form: ImportUploadForm) -> HttpResponse:
        upload = form.cleaned_data["file"]
        try:
            job = import_job_create(
                file=upload,
                filename=upload.name,
                kind=form.cleaned_data["kind"],
                store=form.cleaned_data["store"],
                requested_format=form.cleaned_data["format"],
                on_error=form.cleaned_data["on_error"],
                actor=self.request.user,
            )
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(
            self.request, _("The file is uploaded; it is being checked now.")
        )
        return redirect("imports:detail", pk=job.pk)


class _JobMixin:
    request: Any
    kwargs: dict[str, Any]

    def get_job(self) -> ImportJob:
        return get_object_or_404(
            ImportJob.objects.select_related("store", "created_by"),
            pk=self.kwargs["pk"],
        )


class ImportDetailView(StaffPageMixin, _JobMixin, TemplateView):
    """One import: the check's findings (when checked), else its progress or result."""

    permission_required = VIEW

    def get_template_names(self) -> list[str]:
        if self.job.status == Status.CHECKED:
            return ["customers/imports/check.html"]
        return ["customers/imports/progress.html"]

    def get(self, request, *args: Any, **kwargs: Any) -> HttpResponse:
        self.job = self.get_job()
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        job = self.job
        user = self.request.user
        checked = job.checked or {}
        context.update(
            job=job,
            checked=checked,
            active=job.status in ACTIVE,
            phase="run" if job.status in (Status.QUEUED, Status.RUNNING) else "check",
            format_label=FORMAT_LABELS.get(job.format, job.format),
            delimiter_label=DELIMITER_LABELS.get(job.delimiter, job.delimiter),
            can_act=import_job_can_act(user, job),
            can_cancel=job.status in CANCELLABLE and import_job_can_cancel(user, job),
            can_download_file=bool(job.file.name)
            and import_job_can_download_file(user, job),
            blocked=job.on_error == OnError.ABORT and bool(checked.get("errors")),
            earlier=self.earlier(job),
        )
        extra = checked.get("extra") if job.status == Status.CHECKED else job.extra
        # A kind's own counts (e.g. "consents_unchanged"), named by their keys.
        context["extra_counts"] = [
            (name.replace("_", " "), value) for name, value in (extra or {}).items()
        ]
        if job.status == Status.CHECKED:
            context.update(
                preview=import_job_preview(job),
                on_error_form=OnErrorForm(initial={"on_error": job.on_error}),
            )
        if job.started_at and job.finished_at:
            context["duration"] = (job.finished_at - job.started_at).total_seconds()
        return context

    def earlier(self, job: ImportJob) -> QuerySet:
        """Finished imports of the same file (by SHA-256), newest first."""
        return (
            ImportJob.objects.filter(sha256=job.sha256, status=Status.DONE)
            .exclude(pk=job.pk)
            .select_related("created_by")
            .order_by("-created_at")[:5]
        )


class ImportStatusView(StaffPageMixin, _JobMixin, View):
    """The progress page polls this: status, rows read, rows per second, counts."""

    permission_required = VIEW

    def get(self, request, pk: int) -> JsonResponse:
        response = JsonResponse(import_job_status(self.get_job()))
        response["Cache-Control"] = "no-store"
        return response


class _JobPostView(StaffPageMixin, _JobMixin, View):
    """A POST that changes the job, then back to its page with a message."""

    permission_required = VIEW
    http_method_names = ["post"]

    def back(self, job: ImportJob) -> HttpResponse:
        return redirect("imports:detail", pk=job.pk)


class ImportRecheckView(_JobPostView):
    def post(self, request, pk: int) -> HttpResponse:
        job = self.get_job()
        if not import_job_can_act(request.user, job):
            raise PermissionDenied
        form = OnErrorForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Choose what to do with bad rows."))
            return self.back(job)
        try:
            import_job_recheck(
                job=job, on_error=form.cleaned_data["on_error"], actor=request.user
            )
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            messages.info(request, _("The file is being checked again."))
        return self.back(job)


class ImportConfirmView(_JobPostView):
    def post(self, request, pk: int) -> HttpResponse:
        job = self.get_job()
        if not import_job_can_act(request.user, job):
            raise PermissionDenied
        try:
            import_job_confirm(job=job, actor=request.user)
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(request, _("The import has started."))
        return self.back(job)


class ImportCancelView(_JobPostView):
    def post(self, request, pk: int) -> HttpResponse:
        job = self.get_job()
        if not import_job_can_cancel(request.user, job):
            raise PermissionDenied
        try:
            import_job_cancel(job=job, actor=request.user)
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            messages.info(request, _("The import is cancelled; the file is deleted."))
        return self.back(job)


# --- Downloads ---------------------------------------------------------------------


def _attachment(stored: Any, filename: str) -> FileResponse:
    try:
        handle = stored.storage.open(stored.name, "rb")
    except FileNotFoundError:
        raise Http404(_("The file is no longer stored.")) from None
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=filename,
        content_type="text/csv; charset=utf-8",
    )
    response["Cache-Control"] = "private, no-store"
    return response


def _stem(job: ImportJob) -> str:
    name = job.filename.rsplit(".", 1)[0] if "." in job.filename else job.filename
    return name or f"import-{job.pk}"


class ImportErrorReportView(StaffPageMixin, _JobMixin, View):
    """The error report CSV: line, column, value, reason (formula-safe)."""

    permission_required = VIEW

    def get(self, request, pk: int) -> FileResponse:
        job = self.get_job()
        if not job.error_report.name:
            raise Http404(_("This import has no error report."))
        return _attachment(job.error_report, f"{_stem(job)}-errors.csv")


class ImportFileView(StaffPageMixin, _JobMixin, View):
    """The uploaded file itself: for its uploader and for whoever may change imports."""

    permission_required = VIEW

    def get(self, request, pk: int) -> FileResponse:
        job = self.get_job()
        if not import_job_can_download_file(request.user, job):
            raise PermissionDenied
        if not job.file.name:
            raise Http404(_("The file is no longer stored."))
        return _attachment(job.file, job.filename)
