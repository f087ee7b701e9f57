"""The support desk's staff pages, under /support/ in the "support" namespace.

* ``quick_log`` -- log what happened with a customer (a call, a complaint) in a
  few keystrokes: a fragment for htmx (the customer page, the search dropdown),
  a small page without JavaScript.
* ``queue`` -- complaints and returns waiting for an answer, overdue ones first
  (Polish consumer law deems a complaint accepted when not answered within 14
  days), with ``queue_export`` as a formula-safe CSV.
* ``interaction`` -- one interaction: its text, status changes along the allowed
  transitions, assignee, attachments and history.
* ``attachment`` -- a permission-checked download of an attached file.

Every write goes through ``customers.interactions``; the forms only check the
input's shape. Pages showing a customer's personal data report it to the access
log (``personal_data_accessed_send``), as the customer page does.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from customers.exports import ExportTable, export_response
from customers.forms import (
    AssignForm,
    AttachmentForm,
    QueueFilterForm,
    QuickLogForm,
    StatusChangeForm,
    add_service_errors,
    user_label,
)
from customers.interactions import (
    interaction_assign,
    interaction_attach,
    interaction_log,
    interaction_set_status,
)
from customers.models import Customer, Interaction, InteractionAttachment
from customers.signals import personal_data_accessed_send
from customers.views import StaffPageMixin, is_htmx, paginate_without_count

VIEW = "customers.view_interaction"
ADD = "customers.add_interaction"
CHANGE = "customers.change_interaction"
EXPORT = "customers.export_interaction"
VIEW_ATTACHMENT = "customers.view_interactionattachment"
ADD_ATTACHMENT = "customers.add_interactionattachment"
#: The event the quick log's htmx response triggers; the timeline reloads on it.
LOGGED_EVENT = "interactionLogged"


# --- Quick log -------------------------------------------------------------------


class QuickLogView(StaffPageMixin, View):
    """GET: the quick-log form for one customer; POST: log it through the service.

    With htmx the answer is the form fragment: on success empty again, with a
    confirmation, and the ``interactionLogged`` event for the timeline to reload.
    Without JavaScript a success goes back to the customer page and errors show
    on a small page of their own.
    """

    permission_required = ("customers.view_customer", ADD)
    fragment_template = "customers/support/_quick_log_form.html"
    page_template = "customers/support/quick_log.html"

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        self.customer = get_object_or_404(Customer, pk=pk)
        return self.respond(QuickLogForm(customer=self.customer))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        self.customer = get_object_or_404(Customer, pk=pk)
        form = QuickLogForm(request.POST, customer=self.customer)
        if form.is_valid():
            try:
                interaction = interaction_log(
                    customer=self.customer,
                    actor=request.user,
                    **form.service_kwargs(),
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                return self.logged(interaction)
        return self.respond(form)

    def logged(self, interaction: Interaction) -> HttpResponse:
        if not is_htmx(self.request):
            messages.success(self.request, logged_message(interaction))
            url = reverse("customers:detail", args=[self.customer.pk])
            return HttpResponseRedirect(f"{url}#timeline")
        response = self.respond(
            QuickLogForm(customer=self.customer), logged=interaction
        )
        response["HX-Trigger"] = json.dumps(
            {
                LOGGED_EVENT: {
                    "customer": self.customer.pk,
                    "interaction": interaction.pk,
                }
            }
        )
        return response

    def respond(
        self, form: QuickLogForm, *, logged: Interaction | None = None
    ) -> HttpResponse:
        htmx = is_htmx(self.request)
        context = {
            "customer": self.customer,
            "form": form,
            "logged": logged,
            "logged_message": logged_message(logged) if logged else "",
        }
        response = render(
            self.request,
            self.fragment_template if htmx else self.page_template,
            context,
        )
        patch_vary_headers(response, ["HX-Request"])
        # The form lists the customer's recent orders: their personal data.
        personal_data_accessed_send(
            sender=type(self),
            request=self.request,
            customer_ids=[self.customer.pk],
            action="view",
        )
        return response


def logged_message(interaction: Interaction) -> str:
    if interaction.has_status:
        return _("%(kind)s logged: answer due by %(due)s.") % {
            "kind": interaction.get_kind_display(),
            "due": formats.date_format(
                timezone.localtime(interaction.due_at), "SHORT_DATE_FORMAT"
            ),
        }
    return _("%(kind)s logged.") % {"kind": interaction.get_kind_display()}


# --- The complaints and returns queue -----------------------------------------------


def due_state(interaction: Interaction, now: dt.datetime) -> tuple[str, int]:
    """("overdue", days past), ("today", 0), ("left", days left) or ("closed", 0).

    Days are calendar days in the business's zone: due tomorrow is "1 day left"
    whatever the hour; a complaint past its moment is overdue by at least one day.
    """
    if not interaction.is_pending or interaction.due_at is None:
        return "closed", 0
    today = timezone.localdate(now)
    due = timezone.localdate(interaction.due_at)
    if interaction.due_at < now:
        return "overdue", max(1, (today - due).days)
    if due == today:
        return "today", 0
    return "left", (due - today).days


def queue_queryset(form: QueueFilterForm, now: dt.datetime) -> QuerySet:
    """Complaints and returns as filtered: pending ones by due date (overdue first)."""
    queryset = form.filter(Interaction.objects.with_status()).select_related(
        "customer", "order", "assignee", "store"
    )
    if form.chosen_status == QueueFilterForm.STATUS_PENDING:
        # Among pending ones the earliest due are the overdue ones: the partial
        # index on due_at serves this order as it is.
        return queryset.order_by("due_at", "pk")
    if form.chosen_status == QueueFilterForm.STATUS_CLOSED:
        return queryset.order_by("-resolved_at", "-pk")
    return queryset.annotate(
        queue_overdue=Case(
            When(status__in=Interaction.PENDING_STATUSES, due_at__lt=now, then=1),
            default=Value(0),
            output_field=IntegerField(),
        )
    ).order_by("-queue_overdue", "due_at", "pk")


class QueueFilterMixin:
    request: HttpRequest

    def get_filter_form(self) -> QueueFilterForm:
        form = QueueFilterForm(self.request.GET or None, user=self.request.user)
        # An invalid filter is shown as an error and left out (cleaned_data holds
        # only the valid ones); the others still apply.
        form.is_valid()
        return form


class QueueView(QueueFilterMixin, StaffPageMixin, TemplateView):
    """Complaints and returns to answer, overdue first, without counting them all."""

    permission_required = VIEW
    template_name = "customers/support/queue.html"
    per_page = 50

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        form = self.get_filter_form()
        page = paginate_without_count(
            queue_queryset(form, now), self.request.GET.get("page"), self.per_page
        )
        for interaction in page.object_list:
            interaction.due_state, interaction.due_days = due_state(interaction, now)
        context.update(
            form=form,
            page=page,
            interactions=page.object_list,
            known_total=page.known_total,
            narrowed=form.narrowed,
            can_export=self.request.user.has_perm(EXPORT),
        )
        return context


#: The queue export's columns (stable names, like the other exports' headers).
QUEUE_COLUMNS = (
    "id",
    "kind",
    "status",
    "received_at",
    "due_at",
    "days_overdue",
    "customer_id",
    "customer_name",
    "customer_email",
    "subject",
    "order_number",
    "assignee",
    "store",
    "channel",
)


def _queue_rows(interaction: Interaction, now: dt.datetime) -> list[dict[str, Any]]:
    state, days = due_state(interaction, now)
    customer = interaction.customer
    return [
        {
            "id": interaction.pk,
            "kind": interaction.kind,
            "status": interaction.status,
            "received_at": interaction.occurred_at,
            "due_at": interaction.due_at,
            "days_overdue": days if state == "overdue" else 0,
            "customer_id": customer.pk,
            "customer_name": customer.full_name,
            "customer_email": customer.email,
            "subject": interaction.subject,
            "order_number": interaction.order.number if interaction.order else "",
            "assignee": interaction.assignee.get_username()
            if interaction.assignee
            else "",
            "store": interaction.store.code if interaction.store else "",
            "channel": interaction.channel,
        }
    ]


class QueueExportView(QueueFilterMixin, StaffPageMixin, View):
    """The queue with its filters and order, every page of it, as CSV.

    Cells are formula-safe and each chunk's customers are logged as exported
    (``customers.exports``). Complaints of restricted or erased customers are
    left out, as in every other export (Art. 18).
    """

    permission_required = (VIEW, EXPORT)

    def get(self, request: HttpRequest) -> HttpResponse:
        now = timezone.now()
        queryset = queue_queryset(self.get_filter_form(), now).filter(
            customer__in=Customer.objects.processable()
        )
        table = ExportTable(
            name="complaints",
            columns=QUEUE_COLUMNS,
            queryset=queryset,
            rows=lambda interaction: _queue_rows(interaction, now),
            customer_id=lambda interaction: interaction.customer_id,
        )
        return export_response(
            table, file_format="csv", request=request, sender=type(self)
        )


# --- One interaction -------------------------------------------------------------


class InteractionView(StaffPageMixin, View):
    """One interaction: its text, status, assignee, attachments and history.

    POST with ``action`` = ``status``, ``assign`` or ``attach`` changes it
    through the service, then comes back here (errors show on the form).
    """

    permission_required = VIEW
    template_name = "customers/support/interaction.html"

    def get_interaction(self) -> Interaction:
        return get_object_or_404(
            Interaction.objects.select_related(
                "customer", "order", "order__store", "store", "assignee", "author"
            ),
            pk=self.kwargs["pk"],
        )

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self.render(self.get_interaction())

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        interaction = self.get_interaction()
        action = request.POST.get("action")
        handler = {
            "status": self.change_status,
            "assign": self.assign,
            "attach": self.attach,
        }.get(action or "")
        if handler is None:
            return HttpResponseBadRequest(_("Unknown action."))
        return handler(interaction)

    def change_status(self, interaction: Interaction) -> HttpResponse:
        self.require(CHANGE)
        if not interaction.has_status:
            raise Http404
        form = StatusChangeForm(self.request.POST, interaction=interaction)
        if form.is_valid():
            old = interaction.get_status_display()
            try:
                interaction_set_status(
                    interaction=interaction,
                    status=form.cleaned_data["status"],
                    actor=self.request.user,
                    note=form.cleaned_data["note"],
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(
                    self.request,
                    _("Status changed from “%(old)s” to “%(new)s”.")
                    % {"old": old, "new": interaction.get_status_display()},
                )
                return redirect("support:interaction", pk=interaction.pk)
        return self.render(interaction, status_form=form)

    def assign(self, interaction: Interaction) -> HttpResponse:
        self.require(CHANGE)
        if not interaction.has_status:
            raise Http404
        form = AssignForm(self.request.POST)
        if form.is_valid():
            assignee = form.cleaned_data["assignee"]
            try:
                changed = interaction_assign(
                    interaction=interaction, assignee=assignee, actor=self.request.user
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                if changed:
                    messages.success(
                        self.request,
                        _("Assigned to %(user)s.") % {"user": user_label(assignee)}
                        if assignee
                        else _("Nobody is assigned now."),
                    )
                return redirect("support:interaction", pk=interaction.pk)
        return self.render(interaction, assign_form=form)

    def attach(self, interaction: Interaction) -> HttpResponse:
        self.require(ADD_ATTACHMENT)
        form = AttachmentForm(self.request.POST, self.request.FILES)
        if form.is_valid():
            try:
                attachment = interaction_attach(
                    interaction=interaction,
                    upload=form.cleaned_data["file"],
                    actor=self.request.user,
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(
                    self.request,
                    _("“%(name)s” is attached.") % {"name": attachment.name},
                )
                return redirect("support:interaction", pk=interaction.pk)
        return self.render(interaction, attach_form=form)

    def require(self, permission: str) -> None:
        if not self.request.user.has_perm(permission):
            raise PermissionDenied

    def render(self, interaction: Interaction, **forms: Any) -> HttpResponse:
        user = self.request.user
        can_change = user.has_perm(CHANGE) and interaction.has_status
        status_form = forms.get("status_form") or (
            StatusChangeForm(interaction=interaction) if can_change else None
        )
        assign_form = forms.get("assign_form") or (
            AssignForm(initial={"assignee": interaction.assignee_id})
            if can_change
            else None
        )
        attach_form = forms.get("attach_form") or (
            AttachmentForm() if user.has_perm(ADD_ATTACHMENT) else None
        )
        now = timezone.now()
        state, days = due_state(interaction, now)
        context = {
            "interaction": interaction,
            "customer": interaction.customer,
            "due_state": state,
            "due_days": days,
            "attachments": list(interaction.attachments.select_related("uploaded_by")),
            "changes": _with_labels(interaction.changes.select_related("actor")),
            "status_form": status_form,
            "assign_form": assign_form,
            "attach_form": attach_form,
            "can_view_attachments": user.has_perm(VIEW_ATTACHMENT),
            "can_view_customer": user.has_perm("customers.view_customer"),
            "can_view_orders": user.has_perm("orders.view_order"),
        }
        response = render(self.request, self.template_name, context)
        # The page shows the customer's personal data: logged like their page.
        personal_data_accessed_send(
            sender=type(self),
            request=self.request,
            customer_ids=[interaction.customer_id],
            action="view",
        )
        return response


def _with_labels(changes: Any) -> list[Any]:
    """The history with status codes as their labels (what staff read)."""
    labels = dict(Interaction.Status.choices)
    result = list(changes)
    for change in result:
        if change.field == change.Field.STATUS:
            change.old_label = labels.get(change.old_value, change.old_value)
            change.new_label = labels.get(change.new_value, change.new_value)
        else:
            change.old_label, change.new_label = change.old_value, change.new_value
    return result


class AttachmentDownloadView(StaffPageMixin, View):
    """An attached file, as a download only: never rendered by the browser."""

    permission_required = VIEW_ATTACHMENT

    def get(self, request: HttpRequest, pk: int) -> FileResponse:
        attachment = get_object_or_404(
            InteractionAttachment.objects.select_related("interaction"), pk=pk
        )
        try:
            handle = attachment.file.storage.open(attachment.file.name, "rb")
        except FileNotFoundError:
            raise Http404(_("The file is no longer stored.")) from None
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=attachment.name,
            content_type=attachment.content_type,
        )
        response["X-Content-Type-Options"] = "nosniff"
        # Opened by mistake in a tab anyway, it can run nothing.
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = "private, no-store"
        # A copy of the customer's data leaves the system: logged as an export.
        personal_data_accessed_send(
            sender=type(self),
            request=request,
            customer_ids=[attachment.interaction.customer_id],
            action="export",
            purpose=f"interaction attachment #{attachment.pk}",
        )
        return response
