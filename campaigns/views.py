"""Staff pages for campaigns and message templates, under /campaigns/ ("campaigns").

* ``list`` -- every campaign: channel, segment, status, when, audience, sent and,
  for the sent ones, the open and click rates (one grouped query over the page's
  deliveries).
* ``template_list``, ``template_create`` / ``template_edit`` -- the template
  editor: merge tags inserted at the cursor, the SMS counter, a live preview
  (``template_preview``: the check's errors and the subject, swapped in by htmx as
  staff type; the email itself in a sandboxed iframe, ``template_frame``), "preview
  as" a customer and "send me a test".
* ``create`` / ``edit`` -- the campaign editor with the audience estimate
  (``audience``) and the template's preview; Save, Schedule, Send now (``send``, a
  confirmation page) and Back to draft (``unschedule``).
* ``detail`` -- status, the actions allowed now (``pause``, ``resume``, ``cancel``
  with a confirmation page), the sending progress (``progress``, polled by htmx
  every 2 s while sending), the report with its chart and the audit trail.

Every write goes through ``campaigns.services`` (and ``campaigns.previews`` for
test sends); sending runs in the worker. Previewing as a customer reads their data:
``message_preview`` writes it to the access log.

The email preview is an iframe loaded from ``template_frame``, not ``srcdoc``: a
srcdoc document inherits the staff page's Content Security Policy, which must not
allow the inline styles and remote images emails are made of. The frame's response
has a policy of its own (sandboxed: no script, no form, no plugin, an opaque
origin; styles and https images only) and may be framed by our pages alone. The
text being typed reaches it as a POST of the editor's form into the iframe
(``static/js/campaigns.js``), so nothing unsaved is stored anywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.forms.utils import flatatt
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views import View
from django.views.generic import TemplateView

from campaigns.forms import CampaignFilterForm, CampaignForm, TemplateForm
from campaigns.models import (
    Campaign,
    CampaignEvent,
    Channel,
    Delivery,
    MessageTemplate,
)
from campaigns.previews import message_preview, message_test_send
from campaigns.rendering import MERGE_TAGS, RenderedEmail, template_check
from campaigns.selectors import (
    MessageReport,
    ReportDay,
    attribution_help,
    campaign_report,
    skipped_reasons,
)
from campaigns.services import (
    campaign_cancel,
    campaign_create,
    campaign_pause,
    campaign_resume,
    campaign_schedule,
    campaign_start,
    campaign_transition,
    campaign_update,
    purpose_for_template,
    template_save,
)
from campaigns.sms import sms_counter_attrs
from config.clients import client_ip
from consents.models import ConsentPurpose, ConsentState
from customers.forms import add_service_errors
from customers.models import Customer
from customers.views import StaffPageMixin, paginate_without_count
from segments.models import Segment, SegmentMembership
from segments.views import axis_ceiling

VIEW = "campaigns.view_campaign"
ADD = "campaigns.add_campaign"
CHANGE = "campaigns.change_campaign"
SEND = "campaigns.send_campaign"
VIEW_EVENTS = "campaigns.view_campaignevent"
VIEW_TEMPLATE = "campaigns.view_messagetemplate"
ADD_TEMPLATE = "campaigns.add_messagetemplate"
CHANGE_TEMPLATE = "campaigns.change_messagetemplate"
VIEW_CUSTOMER = "customers.view_customer"

Status = Campaign.Status

#: Campaigns (and templates) on one page of their lists.
PER_PAGE = 50
#: How often the progress fragment asks again while a campaign is sending.
PROGRESS_POLL = "2s"
#: The preview iframe's own policy: an opaque origin with no script, form or
#: plugin; the email's inline styles and https images, nothing else; framed by our
#: own pages only.
FRAME_POLICY = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "font-src https:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)


def _number(value: Any) -> int | None:
    """A primary key from a query string, or None (junk or out of range)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


def _percent(rate: float | None) -> float | None:
    """A rate (0..1) as a percentage for ``floatformat``; None stays None."""
    return None if rate is None else 100 * rate


# --- Templates -------------------------------------------------------------------


class TemplateListView(StaffPageMixin, TemplateView):
    """Every template by name, with its channel and how many campaigns use it."""

    permission_required = VIEW_TEMPLATE
    template_name = "campaigns/template_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        page = paginate_without_count(
            MessageTemplate.objects.annotate(uses=Count("campaigns")).order_by(
                "name", "pk"
            ),
            self.request.GET.get("page"),
            PER_PAGE,
        )
        context.update(
            page=page,
            templates=page.object_list,
            known_total=page.known_total,
            can_add=self.request.user.has_perm(ADD_TEMPLATE),
        )
        return context


def customer_lookup(query: str) -> tuple[Customer | None, str]:
    """The one customer "preview as" names, or why there is none (a message).

    A number ("123" or "#123") is the customer's id; anything else goes through
    the search box's rule (``CustomerQuerySet.search``) and must match one.
    """
    query = (query or "").strip()
    if not query:
        return None, ""
    digits = query.removeprefix("#")
    if digits.isascii() and digits.isdigit() and len(digits) <= 18:
        customer = Customer.objects.filter(pk=int(digits)).first()
        if customer is not None:
            return customer, ""
    found = list(Customer.objects.search(query).order_by("pk")[:2])
    if len(found) == 1:
        return found[0], ""
    if found:
        return None, _(
            "More than one customer matches: type the whole email or the number."
        )
    return None, _("No customer matches “%(query)s”.") % {"query": query}


def preview_customer(request: HttpRequest, query: str) -> tuple[Customer | None, str]:
    """``customer_lookup`` for those who may see customers; a message otherwise."""
    if not (query or "").strip():
        return None, ""
    if not request.user.has_perm(VIEW_CUSTOMER):
        return None, _("Previewing as a customer needs access to customers.")
    return customer_lookup(query)


def can_write_templates(user: Any) -> bool:
    return user.has_perm(ADD_TEMPLATE) or user.has_perm(CHANGE_TEMPLATE)


class TemplateFormView(StaffPageMixin, View):
    """The editor: GET shows it, POST saves (or sends a test of what is typed)."""

    template_name = "campaigns/template_form.html"
    write_permission = ADD_TEMPLATE

    def get_template(self) -> MessageTemplate | None:
        return None

    def can_write(self) -> bool:
        return self.request.user.has_perm(self.write_permission)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        template = self.get_template()
        form = TemplateForm(template=template, read_only=not self.can_write())
        return self.render(form, template)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not self.can_write():
            raise PermissionDenied
        template = self.get_template()
        form = TemplateForm(request.POST, template=template)
        if request.POST.get("action") == "test":
            self.test_send(form)
            return self.render(form, template)
        if form.is_valid():
            try:
                with transaction.atomic():
                    saved = template_save(
                        actor=request.user, template=template, **form.service_kwargs()
                    )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(
                    request, _("“%(name)s” is saved.") % {"name": saved.name}
                )
                return redirect("campaigns:template_edit", pk=saved.pk)
        return self.render(form, template)

    def test_send(self, form: TemplateForm) -> None:
        """Send what is typed to the staff member's own address; errors on the form."""
        request = self.request
        if not form.is_valid():
            return
        draft = form.draft()
        customer, problem = preview_customer(request, form.cleaned_data["preview_as"])
        if problem:
            form.add_error("preview_as", problem)
            return
        try:
            template_check(
                channel=draft.channel,
                subject=draft.subject,
                html=draft.html,
                text=draft.text,
            )
            address = message_test_send(
                template=draft,
                actor=request.user,
                customer=customer,
                ip_address=client_ip(request),
            )
        except ValidationError as error:
            add_service_errors(form, error)
            return
        messages.success(
            request, _("A test was sent to %(address)s.") % {"address": address}
        )

    def render(
        self, form: TemplateForm, template: MessageTemplate | None
    ) -> HttpResponse:
        query = f"?template={template.pk}" if template is not None else ""
        context = {
            "form": form,
            "template": template,
            "channel": form.chosen_channel,
            "read_only": not self.can_write(),
            "merge_tags": [
                (name, str(help_text)) for name, help_text in MERGE_TAGS.items()
            ],
            "sms_counter": flatatt(sms_counter_attrs()),
            "preview_url": reverse("campaigns:template_preview") + query,
            "frame_url": reverse("campaigns:template_frame") + query,
            "can_preview_as": self.can_write()
            and self.request.user.has_perm(VIEW_CUSTOMER),
        }
        return render(self.request, self.template_name, context)


class TemplateCreateView(TemplateFormView):
    permission_required = ADD_TEMPLATE


class TemplateEditView(TemplateFormView):
    permission_required = VIEW_TEMPLATE
    write_permission = CHANGE_TEMPLATE

    def get_template(self) -> MessageTemplate:
        return get_object_or_404(MessageTemplate, pk=self.kwargs["pk"])


class TemplatePreviewMixin:
    """A saved template (GET ``?template=``) or the editor's draft (POST)."""

    request: HttpRequest

    def saved_template(self) -> MessageTemplate:
        return get_object_or_404(
            MessageTemplate, pk=_number(self.request.GET.get("template"))
        )

    def posted(self) -> TemplateForm:
        """The editor's form as posted; the template it edits from ``?template=``."""
        if not can_write_templates(self.request.user):
            raise PermissionDenied
        pk = _number(self.request.GET.get("template"))
        template = MessageTemplate.objects.filter(pk=pk).first() if pk else None
        form = TemplateForm(self.request.POST, template=template)
        form.is_valid()
        return form

    def preview(
        self, template: MessageTemplate, customer: Customer | None
    ) -> RenderedEmail | str:
        return message_preview(
            template=template,
            customer=customer,
            actor=self.request.user,
            ip_address=client_ip(self.request),
        )


class TemplatePreviewView(TemplatePreviewMixin, StaffPageMixin, View):
    """The preview's words for htmx: the check's errors, the subject or the SMS.

    The email's body is the iframe's (``TemplateFrameView``).
    """

    permission_required = VIEW_TEMPLATE
    template_name = "campaigns/_template_preview.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        if not request.GET.get("template"):
            # The campaign editor before a template is chosen.
            return render(request, self.template_name, {"nothing": True})
        template = self.saved_template()
        frame_src = ""
        if template.channel == Channel.EMAIL:
            frame_src = f"{reverse('campaigns:template_frame')}?template={template.pk}"
        return self.render(template, customer=None, frame_src=frame_src)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = self.posted()
        draft = form.draft()
        errors: list[str] = []
        try:
            template_check(
                channel=draft.channel,
                subject=draft.subject,
                html=draft.html,
                text=draft.text,
            )
        except ValidationError as error:
            errors = error.messages
        customer, problem = preview_customer(
            request, form.cleaned_data.get("preview_as", "")
        )
        return self.render(
            draft, customer=customer, errors=errors, problem=problem, live=True
        )

    def render(
        self,
        template: MessageTemplate,
        *,
        customer: Customer | None,
        errors: Iterable[str] = (),
        problem: str = "",
        frame_src: str = "",
        live: bool = False,
    ) -> HttpResponse:
        preview = self.preview(template, customer)
        context = {
            "template": template,
            "is_email": template.channel == Channel.EMAIL,
            "subject": preview.subject if isinstance(preview, RenderedEmail) else "",
            "sms": preview if isinstance(preview, str) else "",
            "errors": list(errors),
            "customer": customer,
            "problem": problem,
            "frame_src": frame_src,
            "live": live,
        }
        response = render(self.request, self.template_name, context)
        response["Cache-Control"] = "no-store"
        return response


class TemplateFrameView(TemplatePreviewMixin, StaffPageMixin, View):
    """The email preview's document, for a sandboxed iframe of our own pages.

    GET ``?template=``: the saved template; POST: the editor's form, submitted into
    the iframe by ``static/js/campaigns.js``.
    """

    permission_required = VIEW_TEMPLATE

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.document(self.saved_template(), customer=None)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = self.posted()
        customer, _problem = preview_customer(
            request, form.cleaned_data.get("preview_as", "")
        )
        return self.document(form.draft(), customer=customer)

    def document(
        self, template: MessageTemplate, *, customer: Customer | None
    ) -> HttpResponse:
        preview = self.preview(template, customer)
        if isinstance(preview, RenderedEmail):
            body = preview.html
        else:
            body = (
                '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
                f"<body><pre>{escape(preview)}</pre></body></html>"
            )
        response = HttpResponse(body, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = FRAME_POLICY
        # Only this response may be framed, and by our own pages only.
        response["X-Frame-Options"] = "SAMEORIGIN"
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
        return response


# --- The campaign list ---------------------------------------------------------------


@dataclass
class CampaignRow:
    """One line of the campaign list."""

    campaign: Campaign
    audience: int = 0
    sent: int = 0
    opens: int = 0
    clicks: int = 0

    @property
    def open_rate(self) -> float | None:
        return 100 * self.opens / self.sent if self.sent else None

    @property
    def click_rate(self) -> float | None:
        return 100 * self.clicks / self.sent if self.sent else None


def campaign_rows(campaigns: Iterable[Campaign]) -> list[CampaignRow]:
    """The list's figures for a page of campaigns: one grouped query, any page size."""
    rows = [CampaignRow(campaign=campaign) for campaign in campaigns]
    ids = [row.campaign.pk for row in rows]
    if not ids:
        return rows
    counts = {
        row["campaign_id"]: row
        for row in Delivery.objects.filter(campaign_id__in=ids)
        .values("campaign_id")
        .annotate(
            audience=Count("pk"),
            sent=Count("pk", filter=Q(status=Delivery.Status.SENT)),
            opens=Count("opened_at"),
            clicks=Count("clicked_at"),
        )
        .order_by()
    }
    for row in rows:
        found = counts.get(row.campaign.pk)
        if found:
            row.audience, row.sent = found["audience"], found["sent"]
            row.opens, row.clicks = found["opens"], found["clicks"]
    return rows


class CampaignListView(StaffPageMixin, TemplateView):
    """Every campaign, newest first, with its figures; filtered by status."""

    permission_required = VIEW
    template_name = "campaigns/campaign_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = CampaignFilterForm(self.request.GET or None)
        campaigns = Campaign.objects.select_related("segment").order_by(
            "-created_at", "-pk"
        )
        status = form.chosen_status
        if status:
            campaigns = campaigns.filter(status=status)
        page = paginate_without_count(campaigns, self.request.GET.get("page"), PER_PAGE)
        context.update(
            form=form,
            narrowed=bool(status),
            page=page,
            rows=campaign_rows(page.object_list),
            known_total=page.known_total,
            can_add=self.request.user.has_perm(ADD),
        )
        return context


# --- The audience estimate --------------------------------------------------------


@dataclass
class AudienceEstimate:
    """A segment's members, and how many of them have the consent now."""

    segment: Segment
    purpose: ConsentPurpose
    members: int
    consented: int


def audience_estimate(*, segment: Segment, purpose: ConsentPurpose) -> AudienceEstimate:
    """One count query over the segment's members (as of its last rebuild).

    An estimate: the audience is chosen when sending starts, from the members then,
    without those who objected, are restricted, have no address or a suppressed
    one, or had enough messages lately.
    """
    granted = ConsentState.objects.filter(
        customer_id=OuterRef("customer_id"), purpose=purpose, granted=True
    )
    counts = SegmentMembership.objects.filter(segment=segment).aggregate(
        members=Count("pk"), consented=Count("pk", filter=Q(Exists(granted)))
    )
    return AudienceEstimate(
        segment=segment,
        purpose=purpose,
        members=counts["members"],
        consented=counts["consented"],
    )


class AudienceView(StaffPageMixin, View):
    """The editor's estimate for the chosen segment, consent and template (htmx)."""

    permission_required = VIEW
    template_name = "campaigns/_audience.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        params = request.GET
        segment = Segment.objects.filter(pk=_number(params.get("segment"))).first()
        purpose = ConsentPurpose.objects.filter(
            pk=_number(params.get("purpose")), is_marketing=True
        ).first()
        if purpose is None:
            template = MessageTemplate.objects.filter(
                pk=_number(params.get("template"))
            ).first()
            purpose = purpose_for_template(template) if template else None
        estimate = None
        if segment is not None and purpose is not None:
            estimate = audience_estimate(segment=segment, purpose=purpose)
        response = render(request, self.template_name, {"estimate": estimate})
        response["Cache-Control"] = "no-store"
        return response


# --- The campaign editor ---------------------------------------------------------


class CampaignFormView(StaffPageMixin, View):
    """The editor: Save, Schedule, or save and go to the Send now confirmation.

    Saving and scheduling are one transaction: a moment in the past saves nothing.
    """

    template_name = "campaigns/campaign_form.html"

    def get_campaign(self) -> Campaign | None:
        return None

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        campaign = self.get_campaign()
        if campaign is not None and not campaign.is_editable():
            messages.info(request, _("A campaign that has started cannot be changed."))
            return redirect("campaigns:detail", pk=campaign.pk)
        return self.render(CampaignForm(campaign=campaign), campaign)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        campaign = self.get_campaign()
        action = request.POST.get("action") or "save"
        if action not in ("save", "schedule", "send"):
            action = "save"
        if action != "save" and not request.user.has_perm(SEND):
            raise PermissionDenied
        form = CampaignForm(request.POST, campaign=campaign)
        valid = form.is_valid()
        if valid and action == "save" and self.moved(form, campaign):
            # "Save changes" of a scheduled campaign with a new time: rescheduled.
            action = "schedule"
        if valid and action == "schedule" and not form.cleaned_data["scheduled_at"]:
            form.add_error("scheduled_at", _("Choose when to send it."))
            valid = False
        if valid:
            try:
                with transaction.atomic():
                    saved = self.save(form, campaign)
                    if action == "schedule":
                        saved = campaign_schedule(
                            campaign=saved,
                            at=form.cleaned_data["scheduled_at"],
                            actor=request.user,
                        )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                return self.done(saved, action)
        return self.render(form, campaign)

    def moved(self, form: CampaignForm, campaign: Campaign | None) -> bool:
        """Whether a scheduled campaign's time was changed (by one who may send)."""
        at = form.cleaned_data["scheduled_at"]
        if campaign is None or campaign.status != Status.SCHEDULED or at is None:
            return False
        if not self.request.user.has_perm(SEND):
            return False
        return at != campaign.scheduled_at.replace(second=0, microsecond=0)

    def save(self, form: CampaignForm, campaign: Campaign | None) -> Campaign:
        values = form.service_kwargs()
        if campaign is None:
            return campaign_create(actor=self.request.user, **values)
        return campaign_update(campaign=campaign, actor=self.request.user, **values)

    def done(self, campaign: Campaign, action: str) -> HttpResponse:
        if action == "send":
            return redirect("campaigns:send", pk=campaign.pk)
        if action == "schedule":
            when = formats.date_format(
                timezone.localtime(campaign.scheduled_at), "DATETIME_FORMAT"
            )
            messages.success(
                self.request,
                _("“%(name)s” will be sent on %(when)s.")
                % {"name": campaign.name, "when": when},
            )
        else:
            messages.success(
                self.request, _("“%(name)s” is saved.") % {"name": campaign.name}
            )
        return redirect("campaigns:detail", pk=campaign.pk)

    def render(self, form: CampaignForm, campaign: Campaign | None) -> HttpResponse:
        context = {
            "form": form,
            "campaign": campaign,
            "can_send": self.request.user.has_perm(SEND),
            "can_view_templates": self.request.user.has_perm(VIEW_TEMPLATE),
        }
        return render(self.request, self.template_name, context)


class CampaignCreateView(CampaignFormView):
    permission_required = ADD


class CampaignEditView(CampaignFormView):
    permission_required = (VIEW, CHANGE)

    def get_campaign(self) -> Campaign:
        return get_object_or_404(Campaign, pk=self.kwargs["pk"])


# --- One campaign ---------------------------------------------------------------------


@dataclass
class Progress:
    """Where sending stands: the deliveries by status."""

    status: str
    chosen: bool  # the audience has been chosen (Delivery rows exist)
    pending: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.sent + self.failed + self.skipped

    @property
    def done(self) -> int:
        return self.total - self.pending

    @property
    def sending(self) -> bool:
        return self.status == Status.SENDING

    @property
    def percent(self) -> float:
        return 100 * self.done / self.total if self.total else 0.0


def campaign_progress(campaign: Campaign) -> Progress:
    """The deliveries of ``campaign`` counted by status: one query."""
    progress = Progress(status=campaign.status, chosen=campaign.prepared_at is not None)
    for row in (
        Delivery.objects.filter(campaign=campaign)
        .values("status")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        if row["status"] in (Delivery.Status.PENDING, Delivery.Status.SENDING):
            # Claimed by a sender this very moment: still to go.
            progress.pending += row["n"]
        elif row["status"] == Delivery.Status.SENT:
            progress.sent = row["n"]
        elif row["status"] == Delivery.Status.FAILED:
            progress.failed = row["n"]
        else:
            progress.skipped = row["n"]
    return progress


@dataclass
class ChartSeries:
    key: str
    label: str
    points: str
    dots: list[tuple[float, float, ReportDay, int]]


@dataclass
class ReportChart:
    """The report's messages-per-day chart, as SVG coordinates the template draws."""

    days: list[ReportDay]
    step_days: int
    width: int
    height: int
    top: int
    bottom: int
    left: int
    right: int
    series: list[ChartSeries] = field(default_factory=list)
    gridlines: list[tuple[float, int]] = field(default_factory=list)
    start: dt.date | None = None
    end: dt.date | None = None


def report_chart(report: MessageReport) -> ReportChart | None:
    """Sent, opens and clicks per day (or per group of days) as lines with dots."""
    days = report.timeline
    if not days:
        return None
    width, height = 720, 220
    left, right, top, bottom = 56, 16, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    highest = axis_ceiling(max(max(day.sent, day.opens, day.clicks) for day in days))

    def x_of(index: int) -> float:
        if len(days) == 1:
            return round(left + plot_w / 2, 1)
        return round(left + plot_w * index / (len(days) - 1), 1)

    def y_of(value: int) -> float:
        return round(top + plot_h * (1 - value / highest), 1)

    labels = {
        "sent": pgettext("campaign figures", "Sent"),
        "opens": pgettext("campaign figures", "Opened"),
        "clicks": pgettext("campaign figures", "Clicked"),
    }
    series = []
    for key, label in labels.items():
        dots = [
            (x_of(index), y_of(getattr(day, key)), day, getattr(day, key))
            for index, day in enumerate(days)
        ]
        series.append(
            ChartSeries(
                key=key,
                label=label,
                points=" ".join(f"{x},{y}" for x, y, _day, _value in dots),
                dots=dots,
            )
        )
    steps = (0, highest // 2, highest) if highest % 2 == 0 else (0, highest)
    return ReportChart(
        days=days,
        step_days=report.timeline_step_days,
        width=width,
        height=height,
        top=top,
        bottom=top + plot_h,
        left=left,
        right=width - right,
        series=series,
        gridlines=[(y_of(value), value) for value in steps],
        start=days[0].day,
        end=days[-1].day,
    )


@dataclass
class EventRow:
    """One line of the audit trail: who did what, when."""

    event: CampaignEvent
    what: str
    details: list[str]


def _local(value: str) -> str:
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        return str(value)
    return formats.date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")


def event_rows(events: Iterable[CampaignEvent]) -> list[EventRow]:
    """The audit trail in words: status changes, what changed from what, tests."""
    statuses = dict(Status.choices)
    names = {
        name: str(Campaign._meta.get_field(name).verbose_name)
        for name in (
            "name",
            "template",
            "segment",
            "purpose",
            "coupon_prefix",
            "coupon_validity_days",
            "scheduled_at",
        )
    }
    rows = []
    for event in events:
        data = event.data or {}
        details: list[str] = []
        what = event.get_kind_display()
        if event.kind == CampaignEvent.Kind.STATUS:
            what = _("%(old)s → %(new)s") % {
                "old": statuses.get(event.old_status, event.old_status),
                "new": statuses.get(event.new_status, event.new_status),
            }
        elif event.kind == CampaignEvent.Kind.TEST_SENT and data.get("to"):
            details.append(_("to %(address)s") % {"address": data["to"]})
        for key, value in data.items():
            if key == "scheduled_at":
                details.append(f"{names[key]}: {_local(value)}")
            elif key in names and isinstance(value, list) and len(value) == 2:
                details.append(
                    _("%(field)s: %(old)s → %(new)s")
                    % {"field": names[key], "old": value[0] or "—", "new": value[1]}
                )
        rows.append(EventRow(event=event, what=what, details=details))
    return rows


class CampaignObjectMixin:
    kwargs: dict[str, Any]

    def get_campaign(self) -> Campaign:
        return get_object_or_404(
            Campaign.objects.select_related("segment", "template", "purpose"),
            pk=self.kwargs["pk"],
        )


def campaign_actions(campaign: Campaign, user: Any) -> dict[str, bool]:
    """The buttons a campaign's page offers ``user`` now."""
    can_send = user.has_perm(SEND)
    status = campaign.status
    return {
        "edit": campaign.is_editable() and user.has_perm(CHANGE),
        "send": can_send and status in (Status.DRAFT, Status.SCHEDULED),
        "schedule": can_send and campaign.is_editable() and user.has_perm(CHANGE),
        "unschedule": can_send and status == Status.SCHEDULED,
        "pause": can_send and campaign.can_change_to(Status.PAUSED),
        "resume": can_send and status == Status.PAUSED,
        "cancel": can_send and campaign.can_change_to(Status.CANCELLED),
        "test": user.has_perm(CHANGE),
    }


def estimate_for(campaign: Campaign) -> AudienceEstimate:
    return audience_estimate(segment=campaign.segment, purpose=campaign.purpose)


class CampaignDetailView(CampaignObjectMixin, StaffPageMixin, TemplateView):
    """A campaign: its status and actions, progress, report and audit trail."""

    permission_required = VIEW
    template_name = "campaigns/campaign_detail.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        user = self.request.user
        campaign = self.get_campaign()
        started = campaign.started_at is not None
        report = campaign_report(campaign) if started else None
        context.update(
            campaign=campaign,
            actions=campaign_actions(campaign, user),
            progress=campaign_progress(campaign) if started else None,
            poll=PROGRESS_POLL,
            estimate=estimate_for(campaign) if campaign.is_editable() else None,
            report=report,
            rates=report_rates(report) if report else None,
            skipped=skipped_reasons(report) if report else [],
            attribution=attribution_help(),
            chart=report_chart(report) if report else None,
            currency=settings.DEFAULT_CURRENCY,
            events=event_rows(campaign.events.select_related("actor"))
            if user.has_perm(VIEW_EVENTS)
            else None,
            can_view_templates=user.has_perm(VIEW_TEMPLATE),
        )
        return context


def report_rates(report: MessageReport) -> dict[str, float | None]:
    return {
        "open": _percent(report.open_rate),
        "click": _percent(report.click_through_rate),
        "click_to_open": _percent(report.click_to_open_rate),
    }


class CampaignProgressView(CampaignObjectMixin, StaffPageMixin, View):
    """The progress fragment; polled every 2 s while the campaign is sending.

    A poll that finds the campaign no longer sending reloads the page (htmx's
    HX-Refresh): the report and the buttons change with the status.
    """

    permission_required = VIEW

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = self.get_campaign()
        if request.GET.get("poll") and campaign.status != Status.SENDING:
            response = HttpResponse(status=204)
            response["HX-Refresh"] = "true"
            return response
        response = render(
            request,
            "campaigns/_progress.html",
            {
                "campaign": campaign,
                "progress": campaign_progress(campaign),
                "poll": PROGRESS_POLL,
            },
        )
        response["Cache-Control"] = "no-store"
        return response


class CampaignActionView(CampaignObjectMixin, StaffPageMixin, View):
    """A status button: POST, the service, back to the campaign with a message."""

    permission_required = (VIEW, SEND)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = self.get_campaign()
        try:
            with transaction.atomic():
                campaign = self.perform(campaign)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, self.done_message(campaign))
        return redirect("campaigns:detail", pk=campaign.pk)

    def perform(self, campaign: Campaign) -> Campaign:
        raise NotImplementedError

    def done_message(self, campaign: Campaign) -> str:
        raise NotImplementedError


class CampaignPauseView(CampaignActionView):
    def perform(self, campaign: Campaign) -> Campaign:
        return campaign_pause(campaign=campaign, actor=self.request.user)

    def done_message(self, campaign: Campaign) -> str:
        return _("Sending is paused: nobody else gets the message until you resume.")


class CampaignResumeView(CampaignActionView):
    def perform(self, campaign: Campaign) -> Campaign:
        return campaign_resume(campaign=campaign, actor=self.request.user)

    def done_message(self, campaign: Campaign) -> str:
        return _("Sending goes on.")


class CampaignUnscheduleView(CampaignActionView):
    def perform(self, campaign: Campaign) -> Campaign:
        return campaign_transition(
            campaign=campaign, status=Status.DRAFT, actor=self.request.user
        )

    def done_message(self, campaign: Campaign) -> str:
        return _("“%(name)s” is a draft again: it will not be sent.") % {
            "name": campaign.name
        }


class CampaignConfirmView(CampaignActionView):
    """An action that asks first: GET shows what it will do, POST does it."""

    template_name = "campaigns/campaign_confirm.html"
    kind = ""

    def allowed(self, campaign: Campaign) -> bool:
        raise NotImplementedError

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = self.get_campaign()
        if not self.allowed(campaign):
            messages.info(
                request,
                _("A campaign that is %(status)s cannot do that.")
                % {"status": campaign.get_status_display().lower()},
            )
            return redirect("campaigns:detail", pk=campaign.pk)
        context = {
            "campaign": campaign,
            "kind": self.kind,
            "estimate": estimate_for(campaign) if self.kind == "send" else None,
            "progress": campaign_progress(campaign) if self.kind == "cancel" else None,
            "can_view_templates": request.user.has_perm(VIEW_TEMPLATE),
        }
        return render(request, self.template_name, context)


class CampaignSendView(CampaignConfirmView):
    kind = "send"

    def allowed(self, campaign: Campaign) -> bool:
        return campaign.status in (Status.DRAFT, Status.SCHEDULED)

    def perform(self, campaign: Campaign) -> Campaign:
        if not self.allowed(campaign):
            raise ValidationError(
                _("Only a draft or a scheduled campaign can be sent now."),
                code="invalid_transition",
            )
        return campaign_start(campaign=campaign, actor=self.request.user)

    def done_message(self, campaign: Campaign) -> str:
        return _(
            "“%(name)s” is being sent: its audience is chosen first, then the "
            "messages go out in batches."
        ) % {"name": campaign.name}


class CampaignCancelView(CampaignConfirmView):
    kind = "cancel"

    def allowed(self, campaign: Campaign) -> bool:
        return campaign.can_change_to(Status.CANCELLED)

    def perform(self, campaign: Campaign) -> Campaign:
        return campaign_cancel(campaign=campaign, actor=self.request.user)

    def done_message(self, campaign: Campaign) -> str:
        return _("“%(name)s” is cancelled.") % {"name": campaign.name}


class CampaignTestView(CampaignObjectMixin, StaffPageMixin, View):
    """Send a test of a campaign's template to oneself; recorded in its audit trail."""

    permission_required = (VIEW, CHANGE)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = self.get_campaign()
        try:
            address = message_test_send(
                template=campaign.template,
                actor=request.user,
                campaign=campaign,
                ip_address=client_ip(request),
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(
                request, _("A test was sent to %(address)s.") % {"address": address}
            )
        return redirect("campaigns:detail", pk=campaign.pk)
