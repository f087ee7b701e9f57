"""Staff pages for flows, under /campaigns/flows/ ("campaigns").

* ``flow_list`` -- the five flows: on or off, template, delay, on since, and what
  each sent, and how much of it was opened and clicked, in the last 30 days (one
  grouped query over the deliveries).
* ``flow_edit`` -- a flow's settings, saved through ``campaigns.flows.flow_update``
  (read-only without ``campaigns.change_flow``), and the flow's report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views import View
from django.views.generic import TemplateView

from campaigns.flows import flow_update, flows_ensure
from campaigns.forms import ChannelSelect, TemplateChoiceField
from campaigns.models import Channel, Delivery, Flow, MessageTemplate
from campaigns.selectors import attribution_help, flow_report, skipped_reasons
from campaigns.views import report_chart, report_rates
from consents.models import ConsentPurpose
from customers.forms import add_service_errors
from customers.views import StaffPageMixin

VIEW = "campaigns.view_flow"
CHANGE = "campaigns.change_flow"
VIEW_TEMPLATE = "campaigns.view_messagetemplate"

#: The list's figures cover the messages sent in this many last days.
RECENT_DAYS = 30

#: What fires each flow, in a sentence under its name.
TRIGGERS = {
    Flow.Kind.ABANDONED_CART: gettext_lazy(
        "A known customer left a cart with products and has not ordered since."
    ),
    Flow.Kind.REPLENISHMENT: gettext_lazy(
        "A product the customer bought is about to run out (by its replenishment days)."
    ),
    Flow.Kind.WIN_BACK: gettext_lazy(
        "The customer slipped into “at risk” or “can't lose them”."
    ),
    Flow.Kind.WELCOME: gettext_lazy("The customer confirmed the flow's consent."),
    Flow.Kind.REVIEW_REQUEST: gettext_lazy(
        "An order was delivered and the customer has no open complaint."
    ),
}


def delay_label(flow: Flow) -> str:
    """The flow's delay in words: hours after the trigger, or around running out."""
    hours = abs(flow.delay_hours)
    if flow.kind == Flow.Kind.REPLENISHMENT:
        if flow.delay_hours < 0:
            text = ngettext(
                "%(hours)d hour before running out",
                "%(hours)d hours before running out",
                hours,
            )
        else:
            text = ngettext(
                "%(hours)d hour after running out",
                "%(hours)d hours after running out",
                hours,
            )
    elif hours == 0:
        return _("Right after the trigger")
    else:
        text = ngettext(
            "%(hours)d hour after the trigger",
            "%(hours)d hours after the trigger",
            hours,
        )
    return text % {"hours": hours}


@dataclass
class FlowRow:
    """One line of the list: a flow and its last days' figures."""

    flow: Flow
    delay: str
    sent: int = 0
    opened: int = 0
    clicked: int = 0


def flow_rows(now: dt.datetime | None = None) -> list[FlowRow]:
    """Every flow with what it sent, and how much was opened and clicked, lately."""
    since = (now or timezone.now()) - dt.timedelta(days=RECENT_DAYS)
    flows = list(Flow.objects.select_related("template").order_by("kind"))
    figures = {
        row["flow"]: row
        for row in Delivery.objects.sent_since(since)
        .filter(flow__isnull=False)
        .values("flow")
        .annotate(
            sent=Count("pk"),
            opened=Count("pk", filter=Q(opened_at__isnull=False)),
            clicked=Count("pk", filter=Q(clicked_at__isnull=False)),
        )
        .order_by()
    }
    rows = []
    for flow in flows:
        counts = figures.get(flow.pk, {})
        rows.append(
            FlowRow(
                flow=flow,
                delay=delay_label(flow),
                sent=counts.get("sent", 0),
                opened=counts.get("opened", 0),
                clicked=counts.get("clicked", 0),
            )
        )
    return rows


class FlowListView(StaffPageMixin, TemplateView):
    """The five flows with their settings and the last 30 days' figures."""

    permission_required = VIEW
    template_name = "campaigns/flow_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        flows_ensure()
        context.update(rows=flow_rows(), days=RECENT_DAYS)
        return context


class FlowForm(forms.Form):
    """A flow's settings; ``flow_update`` judges them."""

    is_active = forms.BooleanField(
        label=capfirst(Flow._meta.get_field("is_active").verbose_name), required=False
    )
    template = TemplateChoiceField(
        label=gettext_lazy("Template"),
        queryset=MessageTemplate.objects.order_by("name", "pk"),
        required=False,
        empty_label=gettext_lazy("No template yet"),
        widget=ChannelSelect,
    )
    delay_hours = forms.IntegerField(
        label=capfirst(Flow._meta.get_field("delay_hours").verbose_name),
        help_text=Flow._meta.get_field("delay_hours").help_text,
    )
    purpose = forms.ModelChoiceField(
        label=gettext_lazy("Consent needed"),
        queryset=ConsentPurpose.objects.filter(
            is_marketing=True, channel__in=Channel.values
        ).order_by("position", "code"),
        widget=ChannelSelect,
        help_text=gettext_lazy(
            "Only customers who gave this consent receive the message. Choosing a "
            "template of the other channel brings that channel's consent along."
        ),
    )
    coupon_prefix = forms.CharField(
        label=capfirst(Flow._meta.get_field("coupon_prefix").verbose_name),
        max_length=Flow._meta.get_field("coupon_prefix").max_length,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text=Flow._meta.get_field("coupon_prefix").help_text,
    )
    coupon_validity_days = forms.IntegerField(
        label=capfirst(Flow._meta.get_field("coupon_validity_days").verbose_name),
        min_value=1,
        max_value=3650,
        help_text=Flow._meta.get_field("coupon_validity_days").help_text,
    )

    def __init__(
        self, *args: Any, flow: Flow, read_only: bool = False, **kwargs: Any
    ) -> None:
        kwargs.setdefault(
            "initial",
            {
                "is_active": flow.is_active,
                "template": flow.template_id,
                "delay_hours": flow.delay_hours,
                "purpose": flow.purpose_id,
                "coupon_prefix": flow.coupon_prefix,
                "coupon_validity_days": flow.coupon_validity_days,
            },
        )
        super().__init__(*args, **kwargs)
        self.flow = flow
        # flow_update cannot take a template away (None leaves it as it is): once
        # chosen, one must stay.
        if flow.template_id is not None:
            self.fields["template"].required = True
            self.fields["template"].empty_label = None
        if read_only:
            for field in self.fields.values():
                field.disabled = True

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        values = {
            "is_active": data["is_active"],
            "template": data["template"],
            "delay_hours": data["delay_hours"],
            "coupon_prefix": data["coupon_prefix"],
            "coupon_validity_days": data["coupon_validity_days"],
        }
        # Unchanged, the consent is left to the service: a template of the other
        # channel then brings that channel's consent along.
        if data["purpose"].pk != self.flow.purpose_id:
            values["purpose"] = data["purpose"]
        return values


class FlowEditView(StaffPageMixin, View):
    """A flow: its settings (GET shows, POST saves) and its report."""

    permission_required = VIEW
    template_name = "campaigns/flow_form.html"

    def get_flow(self) -> Flow:
        return get_object_or_404(
            Flow.objects.select_related("template", "purpose"), pk=self.kwargs["pk"]
        )

    def can_write(self) -> bool:
        return self.request.user.has_perm(CHANGE)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        flow = self.get_flow()
        return self.render(FlowForm(flow=flow, read_only=not self.can_write()), flow)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.can_write():
            raise PermissionDenied
        flow = self.get_flow()
        form = FlowForm(request.POST, flow=flow)
        if form.is_valid():
            try:
                saved = flow_update(
                    flow=flow, actor=request.user, **form.service_kwargs()
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(
                    request, _("“%(name)s” is saved.") % {"name": str(saved)}
                )
                return redirect("campaigns:flow_edit", pk=saved.pk)
        return self.render(form, flow)

    def render(self, form: FlowForm, flow: Flow) -> HttpResponse:
        report = flow_report(flow)
        context = {
            "flow": flow,
            "form": form,
            "read_only": not self.can_write(),
            "trigger": TRIGGERS.get(flow.kind, ""),
            "delay": delay_label(flow),
            "report": report,
            "rates": report_rates(report),
            "skipped": skipped_reasons(report),
            "attribution": attribution_help(),
            "chart": report_chart(report),
            "currency": settings.DEFAULT_CURRENCY,
            "can_view_templates": self.request.user.has_perm(VIEW_TEMPLATE),
        }
        return render(self.request, self.template_name, context)
