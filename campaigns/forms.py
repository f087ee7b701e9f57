"""Forms of the campaigns staff pages: the shape of the input, nothing more.

What makes a template or a campaign valid (known merge tags, a consent of the
template's channel, a moment in the future) is ``campaigns.services``' and
``campaigns.rendering``'; a view hands the cleaned values to the service and shows
its ``ValidationError`` on the form with ``customers.forms.add_service_errors``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Q
from django.utils import formats
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext_lazy

from campaigns.models import Campaign, Channel, CouponSettings, MessageTemplate
from consents.models import ConsentPurpose
from segments.models import Segment

#: What a datetime-local input sends (seconds only when the browser adds them).
LOCAL_INPUT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]


class ChannelSelect(forms.Select):
    """A select whose options say their channel (``data-channel``) for the editor."""

    def create_option(self, name, value, *args: Any, **kwargs: Any) -> dict:
        option = super().create_option(name, value, *args, **kwargs)
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["attrs"]["data-channel"] = instance.channel
        return option


class SegmentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Segment) -> str:
        return ngettext(
            "%(name)s (%(size)s member)", "%(name)s (%(size)s members)", obj.size
        ) % {
            "name": obj.name,
            "size": formats.number_format(obj.size, force_grouping=True),
        }


class TemplateChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: MessageTemplate) -> str:
        return f"{obj.name} ({obj.get_channel_display()})"


class TemplateForm(forms.Form):
    """A message template; the fields of the other channel are ignored on save."""

    name = forms.CharField(
        label=pgettext_lazy("object name", "Name"),
        max_length=MessageTemplate._meta.get_field("name").max_length,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    channel = forms.ChoiceField(
        label=_("Channel"),
        choices=Channel.choices,
        initial=Channel.EMAIL,
        widget=forms.RadioSelect(attrs={"data-template-channel": ""}),
    )
    subject = forms.CharField(
        label=_("Subject"),
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "data-merge-target": ""}),
    )
    html = forms.CharField(
        label=_("HTML body"),
        required=False,
        strip=False,
        widget=forms.Textarea(
            attrs={
                "rows": 18,
                "spellcheck": "false",
                "class": "codearea",
                "data-merge-target": "",
            }
        ),
        help_text=_(
            "Simple HTML: paragraphs, headings, links, images, lists and tables. "
            "Scripts, forms and style sheets are removed; every email needs a link "
            "to {{ unsubscribe_url }}."
        ),
    )
    text = forms.CharField(
        label=_("SMS text"),
        required=False,
        widget=forms.Textarea(
            attrs={
                "rows": 5,
                "data-sms-counter": "sms-count",
                "aria-describedby": "sms-count",
                "data-merge-target": "",
            }
        ),
    )
    preview_as = forms.CharField(
        label=_("Preview as"),
        required=False,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": _("sample customer"),
            }
        ),
        help_text=_("A customer's email or number (#123); empty: sample values."),
    )

    def __init__(
        self,
        *args: Any,
        template: MessageTemplate | None = None,
        read_only: bool = False,
        **kwargs: Any,
    ):
        if template is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": template.name,
                    "channel": template.channel,
                    "subject": template.subject,
                    "html": template.html,
                    "text": template.text,
                },
            )
        super().__init__(*args, **kwargs)
        self.template = template
        if read_only:
            for field in self.fields.values():
                field.disabled = True
            del self.fields["preview_as"]

    @property
    def chosen_channel(self) -> str:
        """The channel the form shows: posted, else the template's, else email."""
        value = self["channel"].value()
        return value if value in Channel.values else Channel.EMAIL

    def draft(self) -> MessageTemplate:
        """The template as typed, never saved: for previews and test sends.

        Call after ``is_valid()``; a preview needs no name, so fields that did not
        validate count as empty.
        """
        data = self.cleaned_data
        channel = data.get("channel") or Channel.EMAIL
        email = channel == Channel.EMAIL
        return MessageTemplate(
            # previews.preview_context reads the template's campaigns (for their
            # coupon prefix), which an unsaved row cannot have: 0 matches none.
            pk=self.template.pk if self.template is not None else 0,
            name=data.get("name") or "",
            channel=channel,
            subject=data.get("subject", "") if email else "",
            html=data.get("html", "") if email else "",
            text="" if email else data.get("text", "").replace("\r\n", "\n"),
        )

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "channel": data["channel"],
            "subject": data["subject"],
            "html": data["html"],
            "text": data["text"],
        }


class CampaignForm(forms.Form):
    """A campaign's settings; ``scheduled_at`` only for the Schedule button."""

    name = forms.CharField(
        label=pgettext_lazy("object name", "Name"),
        max_length=Campaign._meta.get_field("name").max_length,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    template = TemplateChoiceField(
        label=_("Template"),
        queryset=MessageTemplate.objects.order_by("name", "pk"),
        widget=ChannelSelect(attrs={"data-campaign-template": ""}),
    )
    segment = SegmentChoiceField(
        label=_("Segment"),
        queryset=Segment.objects.filter(is_active=True).order_by("name", "pk"),
        help_text=_("A dynamic segment is rebuilt when sending starts."),
    )
    purpose = forms.ModelChoiceField(
        label=_("Consent needed"),
        queryset=ConsentPurpose.objects.filter(is_marketing=True, is_active=True)
        .filter(Q(channel=Channel.EMAIL) | Q(channel=Channel.SMS))
        .order_by("position", "code"),
        required=False,
        empty_label=_("The marketing consent of the template's channel"),
        widget=ChannelSelect(attrs={"data-campaign-purpose": ""}),
        help_text=_("Only customers who gave this consent receive the message."),
    )
    coupon_prefix = forms.CharField(
        label=capfirst(CouponSettings._meta.get_field("coupon_prefix").verbose_name),
        max_length=CouponSettings._meta.get_field("coupon_prefix").max_length,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text=CouponSettings._meta.get_field("coupon_prefix").help_text,
    )
    coupon_validity_days = forms.IntegerField(
        label=capfirst(
            CouponSettings._meta.get_field("coupon_validity_days").verbose_name
        ),
        min_value=1,
        max_value=3650,
        initial=30,
        help_text=CouponSettings._meta.get_field("coupon_validity_days").help_text,
    )
    scheduled_at = forms.DateTimeField(
        label=_("Send at (Warsaw time)"),
        required=False,
        input_formats=LOCAL_INPUT_FORMATS,
        widget=forms.DateTimeInput(
            attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
        ),
    )

    def __init__(self, *args: Any, campaign: Campaign | None = None, **kwargs: Any):
        if campaign is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": campaign.name,
                    "template": campaign.template_id,
                    "segment": campaign.segment_id,
                    "purpose": campaign.purpose_id,
                    "coupon_prefix": campaign.coupon_prefix,
                    "coupon_validity_days": campaign.coupon_validity_days,
                    "scheduled_at": campaign.scheduled_at,
                },
            )
        super().__init__(*args, **kwargs)
        self.campaign = campaign

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        values = {
            "name": data["name"],
            "template": data["template"],
            "segment": data["segment"],
            "coupon_prefix": data["coupon_prefix"],
            "coupon_validity_days": data["coupon_validity_days"],
        }
        # Empty: the channel's marketing consent, which the service picks for a new
        # campaign and when the template's channel changes; otherwise it stays.
        if data["purpose"] is not None:
            values["purpose"] = data["purpose"]
        elif self.campaign is None:
            values["purpose"] = None
        return values


class CampaignFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[("", _("Any status")), *Campaign.Status.choices],
        required=False,
    )

    @property
    def chosen_status(self) -> str:
        if self.is_bound and self.is_valid():
            return self.cleaned_data["status"]
        return ""
