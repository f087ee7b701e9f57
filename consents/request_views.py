"""Staff pages for data-subject requests: the queue, one request, its actions.

Seeing needs ``consents.view_datasubjectrequest``, changing anything
``consents.change_datasubjectrequest`` (creating: ``add``), and erasing also
``customers.change_customer``. Every change is a POST to one small view that calls
the service and turns its ValidationError into a message.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Case, F, IntegerField, Value, When
from django.db.models.functions import Coalesce
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import DetailView, FormView, TemplateView

from consents.erasure import (
    customer_erase,
    customer_object,
    customer_objection_lift,
    customer_restrict,
    customer_restriction_lift,
)
from consents.export import customer_export
from consents.models import DataSubjectRequest
from consents.requests import (
    ALLOWED_TRANSITIONS,
    CLOSED,
    dsr_create,
    dsr_extend,
    dsr_max_extension,
    dsr_set_status,
)
from customers.forms import add_service_errors
from customers.models import Customer
from customers.views import StaffPageMixin, paginate_without_count

Kind = DataSubjectRequest.Kind
Status = DataSubjectRequest.Status

VIEW = "consents.view_datasubjectrequest"
CHANGE = "consents.change_datasubjectrequest"
ADD = "consents.add_datasubjectrequest"
ERASE = (CHANGE, "customers.change_customer")

EXPORT_KINDS = frozenset({Kind.ACCESS, Kind.PORTABILITY})
# Which customer actions a request of each kind offers on its page.
KIND_ACTIONS: dict[str, tuple[str, ...]] = {
    Kind.RESTRICTION: ("restrict", "restriction_lift"),
    Kind.OBJECTION_MARKETING: ("object_marketing", "objection_lift_marketing"),
    Kind.OBJECTION_PROFILING: ("object_profiling", "objection_lift_profiling"),
}
ACTIONS: dict[str, tuple[Any, dict[str, str], Any]] = {
    "restrict": (customer_restrict, {}, gettext_lazy("Restrict processing")),
    "restriction_lift": (
        customer_restriction_lift,
        {},
        gettext_lazy("Lift the restriction"),
    ),
    "object_marketing": (
        customer_object,
        {"to": "marketing"},
        gettext_lazy("Record the objection to direct marketing"),
    ),
    "objection_lift_marketing": (
        customer_objection_lift,
        {"to": "marketing"},
        gettext_lazy("Clear the objection to direct marketing"),
    ),
    "object_profiling": (
        customer_object,
        {"to": "profiling"},
        gettext_lazy("Record the objection to profiling"),
    ),
    "objection_lift_profiling": (
        customer_objection_lift,
        {"to": "profiling"},
        gettext_lazy("Clear the objection to profiling"),
    ),
}


def _error_text(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return " ".join(
            str(message) for errors in error.message_dict.values() for message in errors
        )
    return " ".join(str(message) for message in error.messages)


# --- Forms -----------------------------------------------------------------------


class RequestFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[
            ("", gettext_lazy("Any")),
            ("open", gettext_lazy("Open")),
            ("overdue", gettext_lazy("Overdue")),
            *Status.choices,
        ],
    )
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind"),
        required=False,
        choices=[("", gettext_lazy("Any")), *Kind.choices],
    )


class RequestCreateForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=Kind.choices)
    customer = forms.IntegerField(
        label=gettext_lazy("Customer number"),
        required=False,
        min_value=1,
        help_text=gettext_lazy("Leave empty while the person is not identified."),
    )
    received_at = forms.DateTimeField(
        label=gettext_lazy("Received at"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )
    channel = forms.CharField(label=gettext_lazy("Received by"), required=False)
    requester = forms.CharField(
        label=gettext_lazy("Requester"),
        required=False,
        help_text=gettext_lazy("How the person identified themselves."),
    )
    notes = forms.CharField(
        label=gettext_lazy("Notes"), required=False, widget=forms.Textarea
    )

    def clean_customer(self) -> Customer | None:
        number = self.cleaned_data.get("customer")
        if number is None:
            return None
        customer = Customer.objects.filter(pk=number).first()
        if customer is None:
            raise ValidationError(_("No customer with this number."), code="unknown")
        return customer


class StatusForm(forms.Form):
    status = forms.ChoiceField(label=gettext_lazy("New status"), choices=())
    outcome = forms.CharField(
        label=gettext_lazy("Outcome"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("What was done, or why the request is rejected."),
    )

    def __init__(self, *args: Any, request: DataSubjectRequest, **kwargs: Any):
        super().__init__(*args, **kwargs)
        allowed = ALLOWED_TRANSITIONS.get(request.status, frozenset())
        self.fields["status"].choices = [
            (value, label) for value, label in Status.choices if value in allowed
        ]


class ExtendForm(forms.Form):
    until = forms.DateField(
        label=gettext_lazy("Extend until"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    reason = forms.CharField(
        label=gettext_lazy("Reason"), widget=forms.Textarea(attrs={"rows": 2})
    )


class EraseForm(forms.Form):
    confirm = forms.CharField(label=gettext_lazy("Customer number"))


# --- Pages -----------------------------------------------------------------------


class RequestListView(StaffPageMixin, TemplateView):
    """The queue: open requests first, nearest deadline first."""

    permission_required = VIEW
    template_name = "consents/requests/list.html"
    per_page = 50

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = RequestFilterForm(self.request.GET or None)
        requests = DataSubjectRequest.objects.all()
        if form.is_valid():
            status = form.cleaned_data["status"]
            if status == "open":
                requests = requests.open()
            elif status == "overdue":
                requests = requests.overdue()
            elif status:
                requests = requests.filter(status=status)
            if form.cleaned_data["kind"]:
                requests = requests.filter(kind=form.cleaned_data["kind"])
        requests = (
            requests.select_related("customer", "handled_by")
            .annotate(
                closed=Case(
                    When(status__in=list(CLOSED), then=Value(1)),
                    default=Value(0),
                    output_field=IntegerField(),
                ),
                deadline_on=Coalesce(F("extended_until"), F("due_on")),
            )
            .order_by("closed", "deadline_on", "received_at", "pk")
        )
        page = paginate_without_count(
            requests, self.request.GET.get("page"), self.per_page
        )
        context.update(
            filter_form=form,
            page=page,
            requests=page.object_list,
            today=timezone.localdate(),
            can_add=self.request.user.has_perm(ADD),
        )
        return context


class RequestCreateView(StaffPageMixin, FormView):
    permission_required = ADD
    template_name = "consents/requests/create.html"
    form_class = RequestCreateForm

    def get_initial(self) -> dict[str, Any]:
        initial = {"received_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M")}
        if self.request.GET.get("customer", "").isdigit():
            initial["customer"] = self.request.GET["customer"]
        if self.request.GET.get("kind") in Kind.values:
            initial["kind"] = self.request.GET["kind"]
        return initial

    def form_valid(self, form: RequestCreateForm) -> HttpResponse:
        try:
            request = dsr_create(actor=self.request.user, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, _("The request is registered."))
        return HttpResponseRedirect(
            reverse("consents:request_detail", args=[request.pk])
        )


class RequestDetailView(StaffPageMixin, DetailView):
    permission_required = VIEW
    template_name = "consents/requests/detail.html"
    context_object_name = "dsr"
    queryset = DataSubjectRequest.objects.select_related("customer", "handled_by")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        dsr = self.object
        user = self.request.user
        is_open = dsr.status not in CLOSED
        context.update(
            customer=dsr.customer,
            is_open=is_open,
            can_change=user.has_perm(CHANGE),
            can_erase=user.has_perms(ERASE),
            status_form=StatusForm(request=dsr) if is_open else None,
            extend_form=ExtendForm() if is_open else None,
            max_extension=dsr_max_extension(dsr),
            can_export=dsr.kind in EXPORT_KINDS and dsr.customer_id is not None,
            offers_erasure=dsr.kind == Kind.ERASURE and dsr.customer_id is not None,
            actions=[
                (name, ACTIONS[name][2])
                for name in KIND_ACTIONS.get(dsr.kind, ())
                if dsr.customer_id is not None
            ],
        )
        return context


class _RequestPostView(StaffPageMixin, View):
    """A POST that changes something and goes back to the request's page."""

    permission_required: Any = CHANGE
    http_method_names = ["post"]

    def get_dsr(self) -> DataSubjectRequest:
        return get_object_or_404(
            DataSubjectRequest.objects.select_related("customer"), pk=self.kwargs["pk"]
        )

    def back(self, dsr: DataSubjectRequest) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("consents:request_detail", args=[dsr.pk]))


class RequestStatusView(_RequestPostView):
    def post(self, request, pk: int) -> HttpResponse:
        dsr = self.get_dsr()
        form = StatusForm(request.POST, request=dsr)
        if not form.is_valid():
            messages.error(request, _("Choose one of the statuses offered."))
            return self.back(dsr)
        try:
            dsr_set_status(request=dsr, actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(
                request,
                _("The request is now: %(status)s.")
                % {"status": dsr.get_status_display()},
            )
        return self.back(dsr)


class RequestExtendView(_RequestPostView):
    def post(self, request, pk: int) -> HttpResponse:
        dsr = self.get_dsr()
        form = ExtendForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Give the new date and the reason."))
            return self.back(dsr)
        try:
            dsr_extend(request=dsr, actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(request, _("The deadline is extended."))
        return self.back(dsr)


class RequestExportView(_RequestPostView):
    """The access or portability ZIP, as a download; the access log records it."""

    def post(self, request, pk: int) -> HttpResponse:
        dsr = self.get_dsr()
        if dsr.kind not in EXPORT_KINDS or dsr.customer is None:
            return HttpResponseBadRequest(_("This request has no export."))
        content = customer_export(
            customer=dsr.customer, actor=request.user, purpose=str(dsr)
        )
        name = f"customer-{dsr.customer_id}-{timezone.localdate():%Y%m%d}.zip"
        response = HttpResponse(content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Cache-Control"] = "no-store"
        return response


class RequestEraseView(StaffPageMixin, TemplateView):
    """Erasure, after the DPO types the customer's number to confirm it."""

    permission_required = ERASE
    template_name = "consents/requests/erase.html"

    def get_dsr(self) -> DataSubjectRequest:
        return get_object_or_404(
            DataSubjectRequest.objects.select_related("customer"), pk=self.kwargs["pk"]
        )

    def get(self, request, pk: int) -> HttpResponse:
        dsr = self.get_dsr()
        if dsr.kind != Kind.ERASURE or dsr.customer is None:
            return HttpResponseBadRequest(_("This request is not an erasure."))
        return self.render_to_response(
            self.get_context_data(dsr=dsr, customer=dsr.customer, form=EraseForm())
        )

    def post(self, request, pk: int) -> HttpResponse:
        dsr = self.get_dsr()
        if dsr.kind != Kind.ERASURE or dsr.customer is None:
            return HttpResponseBadRequest(_("This request is not an erasure."))
        form = EraseForm(request.POST)
        typed = form.cleaned_data["confirm"] if form.is_valid() else ""
        if typed and typed.strip().lstrip("#") != str(dsr.customer_id):
            form.add_error(
                "confirm", _("Type the customer's number exactly to confirm.")
            )
        if not form.is_valid():
            return self.render_to_response(
                self.get_context_data(dsr=dsr, customer=dsr.customer, form=form)
            )
        try:
            customer_erase(customer=dsr.customer, actor=request.user, request=dsr)
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(
                request,
                _("Customer #%(id)s is erased; their orders stay for accounting.")
                % {"id": dsr.customer_id},
            )
        return HttpResponseRedirect(reverse("consents:request_detail", args=[dsr.pk]))


class RequestActionView(_RequestPostView):
    """Restrict, lift, object or clear an objection for the request's customer."""

    def post(self, request, pk: int) -> HttpResponse:
        dsr = self.get_dsr()
        name = request.POST.get("action", "")
        if name not in ACTIONS or dsr.customer is None:
            return HttpResponseBadRequest(_("Unknown action."))
        service, arguments, label = ACTIONS[name]
        try:
            changed = service(customer=dsr.customer, actor=request.user, **arguments)
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            if changed:
                messages.success(request, _("Done: %(action)s.") % {"action": label})
            else:
                messages.info(request, _("Nothing to change: it was already so."))
        return self.back(dsr)
