"""Previews and test sends: a template as one customer would receive it, for staff.

A preview never issues a coupon, never tracks and never carries a working
unsubscribe link: a member of staff clicking around a preview must not
unsubscribe the customer they chose. Choosing a real customer reads their
personal data, so it is written to the access log.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from campaigns import rendering
from campaigns.models import Campaign, CampaignEvent, Channel, MessageTemplate
from campaigns.recommendations import (
    Recommender,
    may_personalise,
    recommendations_for,
)
from campaigns.sending import email_message, message_values
from consents.access_log import access_log_record
from consents.models import AccessLog
from customers.models import Customer

# Where a preview's unsubscribe and preference links lead: the public page for a
# link that is not valid, which changes nothing.
PREVIEW_TAIL = "preview"


def _preview_link(kind: str) -> str:
    return f"{settings.PUBLIC_URL}/c/{kind}/{PREVIEW_TAIL}/"


def preview_context(
    *, template: MessageTemplate, customer: Customer | None = None
) -> rendering.MessageContext:
    """The merge tags as ``customer`` would get them, or sample values."""
    prefix = ""
    campaign = None
    if template.pk:  # an unsaved template (the editor's live preview) has none
        campaign = template.campaigns.exclude(coupon_prefix="").first()
    if campaign is not None:
        prefix = campaign.coupon_prefix
    coupon = f"{prefix or 'KOD'}-PODGLAD"
    valid_until = timezone.now() + dt.timedelta(
        days=campaign.coupon_validity_days if campaign else 30
    )
    if customer is None:
        sample = Customer(first_name=_("Anna"), last_name=_("Kowalska"))
        values = message_values(
            customer=sample,
            unsubscribe=_preview_link("unsubscribe"),
            preferences=_preview_link("preferences"),
            favourite_category=_("Dog food"),
            coupon_code=coupon,
            coupon_valid_until=valid_until,
        )
        recommendations = (
            Recommender().for_customer(sample)
            if "recommendations" in (template.html + template.text)
            else []
        )
        return rendering.MessageContext(values=values, recommendations=recommendations)
    recommendations = recommendations_for(customer)
    metrics = customer.metrics.filter(store__isnull=True).first()
    favourite = None
    if metrics and metrics.favourite_category_id and may_personalise(customer):
        favourite = metrics.favourite_category.name
    values = message_values(
        customer=customer,
        unsubscribe=_preview_link("unsubscribe"),
        preferences=_preview_link("preferences"),
        favourite_category=favourite,
        coupon_code=coupon,
        coupon_valid_until=valid_until,
    )
    return rendering.MessageContext(values=values, recommendations=recommendations)


def message_preview(
    *,
    template: MessageTemplate,
    customer: Customer | None = None,
    actor: Any = None,
    ip_address: str | None = None,
) -> rendering.RenderedEmail | str:
    """The rendered email (or SMS text) of ``template`` as ``customer`` sees it."""
    if customer is not None:
        access_log_record(
            customers=customer,
            action=AccessLog.Action.VIEW,
            user=actor,
            ip_address=ip_address,
            purpose="campaign preview",
        )
    language = customer.language if customer else translation.get_language()
    with translation.override(language or settings.LANGUAGE_CODE):
        context = preview_context(template=template, customer=customer)
        if template.channel == Channel.SMS:
            return rendering.render_sms(text=template.text, context=context)
        return rendering.prepare_email(template.subject, template.html).render(context)


def message_test_send(
    *,
    template: MessageTemplate,
    actor: Any,
    customer: Customer | None = None,
    campaign: Campaign | None = None,
    ip_address: str | None = None,
) -> str:
    """Send the preview to the staff member's own email address; returns it.

    An SMS template arrives as an email with the text, so nobody's phone is
    needed.
    """
    address = getattr(actor, "email", "")
    if not address:
        raise ValidationError(
            _("Your account has no email address to send the test to."),
            code="no_email",
        )
    preview = message_preview(
        template=template, customer=customer, actor=actor, ip_address=ip_address
    )
    if isinstance(preview, str):
        EmailMessage(
            subject=_("[Test] SMS: %(name)s") % {"name": template.name},
            body=preview,
            to=[address],
        ).send()
    else:
        rendered = rendering.RenderedEmail(
            subject=_("[Test] %(subject)s") % {"subject": preview.subject},
            html=preview.html,
            text=preview.text,
        )
        email_message(
            rendered=rendered,
            to=address,
            message_id=f"<kartoteka.test.{timezone.now().timestamp()}@localhost>",
            unsubscribe=_preview_link("unsubscribe"),
        ).send()
    if campaign is not None:
        CampaignEvent.objects.create(
            campaign=campaign,
            kind=CampaignEvent.Kind.TEST_SENT,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            data={"to": address, "customer": customer.pk if customer else None},
        )
    return address
