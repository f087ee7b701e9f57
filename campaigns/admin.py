"""Django admin for the campaigns app: templates, campaigns, flows and what was sent.

Every write with rules goes through the services, and each form asks its service
first (``customers.forms.add_service_dry_run_errors``: a savepoint that is rolled
back), so the service's errors show on the form's fields: a template is saved by
``template_save`` (merge tags checked, HTML sanitised), a campaign created and
changed by ``campaign_create`` / ``campaign_update`` while it is editable, its
status moved only by the send, pause, resume and cancel actions, a flow changed by
``campaigns.flows.flow_update``.

Deliveries, their events, coupons and the campaigns' audit trail are written by
the sender and the services: the admin lists them, read-only, never counts the
big tables in full, and writes to the access log when a page shows a customer's
message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.forms.utils import flatatt
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from campaigns.flows import flow_update
from campaigns.models import (
    Campaign,
    CampaignEvent,
    Coupon,
    Delivery,
    DeliveryEvent,
    Flow,
    MessageTemplate,
)
from campaigns.previews import message_preview
from campaigns.services import (
    campaign_cancel,
    campaign_create,
    campaign_pause,
    campaign_resume,
    campaign_start,
    campaign_update,
    template_save,
)
from campaigns.sms import sms_counter_attrs, sms_parts
from consents.admin import ReadOnlyAdmin
from consents.models import ConsentPurpose
from customers.admin import (
    AccessLoggedChangeViewMixin,
    ReadOnlyTabularInline,
    admin_object_become,
    customer_search_filter,
)
from customers.forms import add_service_dry_run_errors
from customers.paginators import EstimatedCountPaginator

# How tall the email preview is drawn: most newsletters scroll within it.
PREVIEW_HEIGHT = 640


# --- Templates -----------------------------------------------------------------------

TEMPLATE_FIELDS = ("name", "channel", "subject", "html", "text")


def _template_write(
    template_id: int | None, data: dict[str, Any], *, actor: Any
) -> MessageTemplate:
    """Create or change a template through template_save, from a form's values."""
    # The stored row, not the form's instance: the form has already put the new
    # channel on that one, and template_save compares the two.
    template = (
        MessageTemplate.objects.get(pk=template_id) if template_id is not None else None
    )
    return template_save(
        actor=actor,
        template=template,
        name=data.get("name") or "",
        channel=data.get("channel") or "",
        subject=data.get("subject") or "",
        html=data.get("html") or "",
        text=data.get("text") or "",
    )


class SmsTextarea(forms.Textarea):
    """The SMS text with the live length counter (static/js/sms-counter.js)."""

    class Media:
        js = ("js/sms-counter.js",)

    def render(self, name, value, attrs=None, renderer=None):
        attrs = dict(attrs or {})
        output_id = f"{attrs.get('id') or name}-sms-count"
        attrs["data-sms-counter"] = output_id
        textarea = super().render(name, value, attrs, renderer)
        counter = format_html(
            '<output id="{}" aria-live="polite"{}></output>',
            output_id,
            flatatt(sms_counter_attrs()),
        )
        return format_html("{}<br>{}", textarea, counter)


class MessageTemplateAdminForm(forms.ModelForm):
    """A template's fields, checked (merge tags, HTML) by template_save."""

    class Meta:
        model = MessageTemplate
        fields = TEMPLATE_FIELDS
        widgets = {
            "html": forms.Textarea(
                attrs={"rows": 20, "class": "vLargeTextField", "spellcheck": "false"}
            ),
            "text": SmsTextarea(attrs={"rows": 4, "class": "vLargeTextField"}),
        }
        help_texts = {
            "subject": _("Email templates only."),
            "html": _(
                "Email templates only. Merge tags such as {{ first_name }} are "
                "filled in for each customer; every email needs a link to "
                "{{ unsubscribe_url }}. The HTML is cleaned when saved."
            ),
            "text": _("SMS templates only."),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            template_id = self.instance.pk
            add_service_dry_run_errors(
                self, lambda: _template_write(template_id, cleaned, actor=None)
            )
        return cleaned


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    """Templates; saved by template_save, shown rendered with sample values."""

    form = MessageTemplateAdminForm
    list_display = ("name", "channel", "updated_at")
    list_filter = ("channel",)
    search_fields = ("name", "subject")
    READ_ONLY = ("preview", "created_by", "created_at", "updated_at")

    def get_fields(self, request: HttpRequest, obj: MessageTemplate | None = None):
        if obj is None:
            return TEMPLATE_FIELDS
        return (*TEMPLATE_FIELDS, "preview", ("created_by", "created_at", "updated_at"))

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return () if obj is None else self.READ_ONLY

    @admin.display(description=_("preview"))
    def preview(self, template: MessageTemplate) -> str:
        """The template rendered with sample values, never as staff HTML on the page."""
        rendered = message_preview(template=template)
        if isinstance(rendered, str):
            length = sms_parts(rendered)
            # The live counter's words (campaigns.sms.sms_counter_attrs).
            summary = ngettext(
                "{characters} / {limit} · {parts} SMS · {encoding}",
                "{characters} / {limit} · {parts} SMS · {encoding}",
                length.parts,
            ).format(
                characters=length.characters,
                limit=length.limit,
                parts=length.parts,
                encoding=length.encoding,
            )
            return format_html(
                '<pre class="prewrap">{}</pre><p>{}</p>',
                rendered,
                summary,
            )
        # An empty sandbox: no script, no form, no access to this page; the HTML is
        # escaped into the attribute and read back by the browser as a document.
        return format_html(
            '<p><strong>{}</strong> {}</p><iframe sandbox="" srcdoc="{}" '
            'title="{}" width="100%" height="{}"></iframe><p class="help">{}</p>',
            _("Subject:"),
            rendered.subject,
            rendered.html,
            _("Email preview"),
            PREVIEW_HEIGHT,
            _(
                "With sample values: a customer named Anna Kowalska, a sample coupon "
                "code and recommendations. The unsubscribe link does nothing here."
            ),
        )

    def save_model(self, request: HttpRequest, obj: MessageTemplate, form, change):
        saved = _template_write(
            obj.pk if change else None, form.cleaned_data, actor=request.user
        )
        admin_object_become(obj, saved)


# --- Campaigns -----------------------------------------------------------------------

CAMPAIGN_FIELDS = (
    "name",
    "template",
    "segment",
    "purpose",
    "coupon_prefix",
    "coupon_validity_days",
)


def _campaign_write(
    campaign_id: int | None, data: dict[str, Any], changed: list[str], *, actor: Any
) -> Campaign:
    """Create or change a campaign through its services, from a form's values.

    The consent purpose is passed only when chosen: left empty (or unchanged while
    the template changes channel) the service takes the channel's marketing one.
    """
    values = {name: data[name] for name in CAMPAIGN_FIELDS if name in data}
    purpose = values.pop("purpose", None)
    if campaign_id is None:
        return campaign_create(actor=actor, purpose=purpose, **values)
    campaign = Campaign.objects.get(pk=campaign_id)
    if purpose is not None and "purpose" in changed:
        values["purpose"] = purpose
    return campaign_update(campaign=campaign, actor=actor, **values)


class CampaignAdminForm(forms.ModelForm):
    """A campaign's settings, checked by campaign_create / campaign_update."""

    class Meta:
        model = Campaign
        fields = CAMPAIGN_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "purpose" in self.fields:
            field = self.fields["purpose"]
            field.required = False
            field.queryset = ConsentPurpose.objects.filter(is_marketing=True)
            field.help_text = _(
                "Leave empty for the marketing consent of the template's channel."
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            campaign_id = self.instance.pk
            changed = list(self.changed_data)
            add_service_dry_run_errors(
                self,
                lambda: _campaign_write(campaign_id, cleaned, changed, actor=None),
            )
        return cleaned


class CampaignEventInline(ReadOnlyTabularInline):
    model = CampaignEvent
    verbose_name_plural = _("history")
    fields = ("at", "kind", "old_status", "new_status", "actor", "data")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("actor")


CampaignService = Callable[..., Campaign]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """Campaigns; changed while a draft or scheduled, sent by the actions."""

    form = CampaignAdminForm
    list_display = (
        "name",
        "status",
        "channel",
        "segment",
        "scheduled_at",
        "audience_size",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", "channel", "segment")
    list_select_related = ("segment",)
    search_fields = ("name",)
    date_hierarchy = "created_at"
    actions = ("send_now", "pause", "resume", "cancel")
    inlines = [CampaignEventInline]
    READ_ONLY = (
        "status",
        "channel",
        "staff_page",
        "scheduled_at",
        "audience_size",
        "started_at",
        "prepared_at",
        "finished_at",
        "created_by",
        "created_at",
        "updated_at",
    )

    def get_fields(self, request: HttpRequest, obj: Campaign | None = None):
        if obj is None:
            return CAMPAIGN_FIELDS
        return (
            "name",
            ("status", "channel"),
            "staff_page",
            "template",
            "segment",
            "purpose",
            ("coupon_prefix", "coupon_validity_days"),
            ("scheduled_at", "audience_size"),
            ("started_at", "prepared_at", "finished_at"),
            ("created_by", "created_at", "updated_at"),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Campaign | None = None):
        return () if obj is None else self.READ_ONLY

    def get_inlines(self, request: HttpRequest, obj: Campaign | None = None):
        return self.inlines if obj is not None else []

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # A campaign that has started is a record of what was sent: shown only.
        if obj is not None and not obj.is_editable():
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Its deliveries (who was sent what, on which consent) go with a campaign.
        if obj is not None and not obj.is_editable():
            return False
        return super().has_delete_permission(request, obj)

    def has_send_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("campaigns.send_campaign")

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        # The bulk delete would not ask each campaign whether it may go.
        actions.pop("delete_selected", None)
        return actions

    def get_deleted_objects(self, objs, request: HttpRequest):
        # Only a draft or scheduled campaign may go (has_delete_permission), and its
        # audit trail with it: nobody may delete the events one by one, and the
        # default check would refuse every campaign for that.
        objs = list(objs)
        to_delete = [
            format_html(
                '{}: <a href="{}">{}</a>',
                capfirst(Campaign._meta.verbose_name),
                reverse("admin:campaigns_campaign_change", args=[obj.pk]),
                obj,
            )
            for obj in objs
        ]
        model_count = {
            Campaign._meta.verbose_name_plural: len(objs),
            CampaignEvent._meta.verbose_name_plural: (
                CampaignEvent.objects.filter(campaign__in=objs).count()
            ),
        }
        return to_delete, model_count, set(), []

    @admin.display(description=_("campaign page"))
    def staff_page(self, campaign: Campaign) -> str:
        try:
            url = reverse("campaigns:detail", args=[campaign.pk])
        except NoReverseMatch:  # the staff pages are not installed
            return "-"
        return format_html(
            '<a href="{}">{}</a>', url, _("Progress and report on the campaign page")
        )

    def save_model(self, request: HttpRequest, obj: Campaign, form, change: bool):
        saved = _campaign_write(
            obj.pk if change else None,
            form.cleaned_data,
            list(form.changed_data),
            actor=request.user,
        )
        admin_object_become(obj, saved)

    def _act(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        service: CampaignService,
        done: str,
    ) -> None:
        """Call ``service`` for each campaign; say what became of each one."""
        for campaign in queryset.order_by("pk"):
            try:
                service(campaign=campaign, actor=request.user)
            except ValidationError as error:
                self.message_user(
                    request,
                    _("“%(name)s”: %(error)s")
                    % {"name": campaign.name, "error": " ".join(error.messages)},
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request, done % {"name": campaign.name}, messages.SUCCESS
                )

    @admin.action(description=_("Send now"), permissions=("send",))
    def send_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._act(
            request,
            queryset,
            campaign_start,
            _("“%(name)s”: sending started."),
        )

    @admin.action(description=_("Pause"), permissions=("send",))
    def pause(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._act(request, queryset, campaign_pause, _("“%(name)s”: paused."))

    @admin.action(description=_("Resume"), permissions=("send",))
    def resume(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._act(request, queryset, campaign_resume, _("“%(name)s”: sending resumed."))

    @admin.action(description=_("Cancel"), permissions=("send",))
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._act(request, queryset, campaign_cancel, _("“%(name)s”: cancelled."))


@admin.register(CampaignEvent)
class CampaignEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "campaign", "kind", "old_status", "new_status", "actor")
    list_filter = ("kind",)
    list_select_related = ("campaign", "actor")
    search_fields = ("campaign__name",)
    date_hierarchy = "at"


# --- Flows ---------------------------------------------------------------------------

FLOW_FIELDS = (
    "is_active",
    "template",
    "delay_hours",
    "purpose",
    "coupon_prefix",
    "coupon_validity_days",
)


def _flow_write(
    flow_id: int, data: dict[str, Any], changed: list[str], *, actor: Any
) -> Flow:
    """Change a flow through flow_update, from a form's values.

    The consent purpose is passed only when chosen: unchanged while the template
    changes channel, the service takes that channel's marketing one.
    """
    flow = Flow.objects.get(pk=flow_id)  # as stored: switching on is told from it
    values = {name: data[name] for name in FLOW_FIELDS if name in data}
    if "purpose" not in changed:
        values.pop("purpose", None)
    return flow_update(flow=flow, actor=actor, **values)


class FlowAdminForm(forms.ModelForm):
    """A flow's settings, checked by flow_update."""

    class Meta:
        model = Flow
        fields = FLOW_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "purpose" in self.fields:
            self.fields["purpose"].queryset = ConsentPurpose.objects.filter(
                is_marketing=True
            )
        if "template" in self.fields and self.instance.template_id is not None:
            # flow_update changes a template, never takes it away.
            self.fields["template"].required = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors and self.instance.pk is not None:
            flow_id = self.instance.pk
            changed = list(self.changed_data)
            add_service_dry_run_errors(
                self, lambda: _flow_write(flow_id, cleaned, changed, actor=None)
            )
        return cleaned


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    """The five automations: switched on and off and set up, never added or deleted."""

    form = FlowAdminForm
    list_display = (
        "kind",
        "is_active",
        "template",
        "delay_hours",
        "purpose",
        "activated_at",
    )
    list_select_related = ("template", "purpose")
    fields = ("kind", *FLOW_FIELDS, ("activated_at", "updated_at"))
    readonly_fields = ("kind", "activated_at", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one flow per kind, created by the migration

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Flow, form, change: bool):
        saved = _flow_write(
            obj.pk, form.cleaned_data, list(form.changed_data), actor=request.user
        )
        admin_object_become(obj, saved)

    def log_change(self, request: HttpRequest, obj: Flow, message: Any) -> None:
        pass  # flow_update writes the history entry, with what really changed


# --- What was sent -------------------------------------------------------------------


# Django 6 reads an address without a scheme as https: say so now (and be quiet).
URL_FIELD = {models.URLField: {"assume_scheme": "https"}}


class DeliveryEventInline(ReadOnlyTabularInline):
    model = DeliveryEvent
    formfield_overrides = URL_FIELD
    fields = ("at", "kind", "url")
    readonly_fields = fields


@admin.register(Delivery)
class DeliveryAdmin(AccessLoggedChangeViewMixin, ReadOnlyAdmin):
    """Every message to every customer, as the sender recorded it."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    list_display = (
        "customer",
        "source",
        "channel",
        "status",
        "reason",
        "sent_at",
        "opened_at",
        "clicked_at",
    )
    list_filter = ("status", "reason", "channel", "campaign", "flow")
    list_select_related = ("customer", "campaign", "flow")
    # Newest first by the primary key (indexed); sorting millions of rows by an
    # unindexed time takes seconds on every page.
    ordering = ("-pk",)
    sortable_by = ()
    search_fields = ("customer__email",)
    search_help_text = _("The customer's email, phone or name.")
    fields = (
        "customer",
        ("campaign", "flow", "trigger"),
        ("channel", "status", "reason"),
        ("created_at", "sent_at", "attempts"),
        ("opened_at", "clicked_at"),
        "coupon_code",
        "message_id",
        "error",
    )
    readonly_fields = ("coupon_code",)
    inlines = [DeliveryEventInline]

    @admin.display(description=_("campaign or flow"))
    def source(self, delivery: Delivery) -> str:
        return str(delivery.campaign or delivery.flow)

    @admin.display(description=_("coupon"))
    def coupon_code(self, delivery: Delivery) -> str:
        coupon = Coupon.objects.filter(delivery=delivery).first()
        return coupon.code if coupon else "-"

    def get_search_results(self, request, queryset, search_term):
        return customer_search_filter(queryset, search_term)


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(AccessLoggedChangeViewMixin, ReadOnlyAdmin):
    """Opens, clicks, bounces, complaints, unsubscribes."""

    access_log_customer = "delivery__customer_id"
    formfield_overrides = URL_FIELD
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_display = ("at", "kind", "delivery", "url")
    list_filter = ("kind",)
    ordering = ("-pk",)
    sortable_by = ()


@admin.register(Coupon)
class CouponAdmin(AccessLoggedChangeViewMixin, ReadOnlyAdmin):
    """The codes given to recipients, and the orders that used them."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_display = (
        "code",
        "customer",
        "valid_from",
        "valid_until",
        "redeemed_at",
        "order",
    )
    list_filter = (("redeemed_at", admin.EmptyFieldListFilter),)
    list_select_related = ("customer", "order")
    ordering = ("-pk",)
    sortable_by = ()
    search_fields = ("code",)
    search_help_text = _("The whole code.")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().upper()
        if not term:
            return queryset, False
        return queryset.filter(code=term), False  # the unique index
