"""Every write of the campaigns app: templates, campaigns and their status, audiences.

A campaign's life: created as a draft, scheduled (or started at once), its audience
chosen (``campaign_prepare``: one Delivery row per segment member, the ones who may
not receive it marked with the reason), sent in batches (``campaigns.sending``),
then sent, or paused, resumed or cancelled on the way. Status changes only through
``campaign_transition``, along ``Campaign.TRANSITIONS``, each recorded as a
CampaignEvent with the acting user.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.coupons import coupon_prefix_clean
from campaigns.models import (
    Campaign,
    CampaignEvent,
    Channel,
    Delivery,
    MessageTemplate,
)
from campaigns.rendering import html_sanitise, template_check
from consents.models import ConsentPurpose, Suppression
from consents.services import suppression_hash
from segments.models import Segment, SegmentRebuild
from segments.services import segment_rebuild

Status = Campaign.Status

# --- Templates -----------------------------------------------------------------------


def template_save(
    *,
    actor: Any,
    template: MessageTemplate | None = None,
    name: str,
    channel: str,
    subject: str = "",
    html: str = "",
    text: str = "",
) -> MessageTemplate:
    """Create or change a template; its merge tags and HTML are checked first.

    The HTML is stored sanitised, so what staff preview is what recipients get.
    """
    if channel not in Channel.values:
        raise ValidationError(
            {"channel": ValidationError(_("Choose email or SMS."), code="invalid")}
        )
    if not name.strip():
        raise ValidationError(
            {"name": ValidationError(_("Give the template a name."), code="required")}
        )
    if channel == Channel.EMAIL:
        text = ""
    else:
        # Browsers send a textarea's line breaks as CRLF: each would cost two
        # characters of the message.
        text = text.replace("\r\n", "\n")
        subject = html = ""
    template_check(channel=channel, subject=subject, html=html, text=text)
    if template is None:
        template = MessageTemplate(created_by=acting_user(actor))
    elif template.channel != channel and (
        template.campaigns.exists() or template.flows.exists()
    ):
        raise ValidationError(
            {
                "channel": ValidationError(
                    _("Campaigns or flows use it: its channel cannot change."),
                    code="in_use",
                )
            }
        )
    template.name = name.strip()
    template.channel = channel
    template.subject = subject.strip()
    template.html = html_sanitise(html) if html else ""
    template.text = text
    template.save()
    return template


# --- Campaigns -----------------------------------------------------------------------


def acting_user(actor: Any) -> Any:
    """The user to record as acting: None for tasks, the beat and anonymous."""
    return actor if getattr(actor, "is_authenticated", False) else None


def purpose_pairing_error(
    *,
    template: MessageTemplate | None,
    purpose: ConsentPurpose,
    need_active: bool = True,
) -> ValidationError | None:
    """The consent must be a marketing one of the template's channel, and on.

    Campaigns and flows both send a template on one consent. With no template
    yet (a flow not set up), only the purpose itself is checked.
    """
    channel = template.channel if template is not None else purpose.channel
    if (
        not purpose.is_marketing
        or purpose.channel != channel
        or channel not in Channel.values
    ):
        return ValidationError(
            _("Choose a marketing consent for the %(channel)s channel."),
            code="purpose_mismatch",
            params={
                "channel": (template or purpose).get_channel_display(),
            },
        )
    if need_active and not purpose.is_active:
        return ValidationError(
            _("This consent purpose is switched off."), code="inactive"
        )
    return None


def _check(
    *, template: MessageTemplate, purpose: ConsentPurpose, segment: Segment
) -> None:
    """The template's channel and the purpose asked for must match."""
    errors: dict[str, ValidationError] = {}
    error = purpose_pairing_error(template=template, purpose=purpose)
    if error:
        errors["purpose"] = error
    if not segment.is_active:
        errors["segment"] = ValidationError(
            _("This segment is switched off."), code="inactive"
        )
    if errors:
        raise ValidationError(errors)


def coupon_fields_clean(changes: dict[str, Any]) -> dict[str, Any]:
    """The coupon settings among ``changes``, checked (campaigns and flows)."""
    fields = {}
    if "coupon_prefix" in changes:
        prefix = changes["coupon_prefix"] or ""
        fields["coupon_prefix"] = coupon_prefix_clean(prefix) if prefix else ""
    if "coupon_validity_days" in changes:
        days = changes["coupon_validity_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
            raise ValidationError(
                {
                    "coupon_validity_days": ValidationError(
                        _("Between 1 and 3650 days."), code="invalid"
                    )
                }
            )
        fields["coupon_validity_days"] = days
    return fields


def purpose_for_template(template: MessageTemplate) -> ConsentPurpose:
    """The marketing consent of the template's channel."""
    code = (
        ConsentPurpose.Code.SMS_MARKETING
        if template.channel == Channel.SMS
        else ConsentPurpose.Code.EMAIL_MARKETING
    )
    return ConsentPurpose.objects.get(code=code)


def campaign_create(
    *,
    actor: Any,
    name: str,
    template: MessageTemplate,
    segment: Segment,
    purpose: ConsentPurpose | None = None,
    **coupon: Any,
) -> Campaign:
    """A draft campaign; the consent needed defaults to the channel's marketing one."""
    purpose = purpose or purpose_for_template(template)
    _check(template=template, purpose=purpose, segment=segment)
    if not name.strip():
        raise ValidationError(
            {"name": ValidationError(_("Give the campaign a name."), code="required")}
        )
    with transaction.atomic():
        campaign = Campaign.objects.create(
            name=name.strip(),
            template=template,
            segment=segment,
            purpose=purpose,
            channel=template.channel,
            created_by=acting_user(actor),
            **coupon_fields_clean(coupon),
        )
        CampaignEvent.objects.create(
            campaign=campaign,
            kind=CampaignEvent.Kind.CREATED,
            new_status=campaign.status,
            actor=acting_user(actor),
        )
    return campaign


EDITABLE_FIELDS = frozenset(
    {"name", "template", "segment", "purpose", "coupon_prefix", "coupon_validity_days"}
)


def campaign_update(*, campaign: Campaign, actor: Any, **changes: Any) -> Campaign:
    """Change a draft or scheduled campaign; what changed goes into its audit trail."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"campaign_update() got unexpected fields: {sorted(unknown)}")
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if not campaign.is_editable():
            raise ValidationError(
                _("A campaign that has started cannot be changed."), code="not_editable"
            )
        values = coupon_fields_clean(changes)
        for field in ("name", "template", "segment", "purpose"):
            if field in changes:
                values[field] = changes[field]
        if "name" in values:
            values["name"] = values["name"].strip()
            if not values["name"]:
                raise ValidationError(
                    {
                        "name": ValidationError(
                            _("Give the campaign a name."), code="required"
                        )
                    }
                )
        template = values.get("template", campaign.template)
        if "template" in values and "purpose" not in values:
            if template.channel != campaign.channel:
                values["purpose"] = purpose_for_template(template)
        _check(
            template=template,
            purpose=values.get("purpose", campaign.purpose),
            segment=values.get("segment", campaign.segment),
        )
        changed = {}
        for field, value in values.items():
            old = getattr(campaign, field)
            if old != value:
                changed[field] = [str(old), str(value)]
                setattr(campaign, field, value)
        if not changed:
            return campaign
        campaign.channel = template.channel
        campaign.save()
        CampaignEvent.objects.create(
            campaign=campaign,
            kind=CampaignEvent.Kind.UPDATED,
            actor=acting_user(actor),
            data=changed,
        )
    return campaign


def campaign_transition(
    *, campaign: Campaign, status: str, actor: Any = None, data: dict | None = None
) -> Campaign:
    """Move a campaign to ``status`` if its TRANSITIONS allow; record who did it.

    Locks the campaign's row: the sender finishing and a person cancelling cannot
    both win. Raises ValidationError "invalid_transition" otherwise.
    """
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if not locked.can_change_to(status):
            raise ValidationError(
                _("A campaign that is %(old)s cannot become %(new)s."),
                code="invalid_transition",
                params={
                    "old": locked.get_status_display().lower(),
                    "new": Status(status).label.lower(),
                },
            )
        old = locked.status
        now = timezone.now()
        locked.status = status
        fields = ["status", "updated_at"]
        if status == Status.SENDING and locked.started_at is None:
            locked.started_at = now
            fields.append("started_at")
        if status in (Status.SENT, Status.CANCELLED):
            locked.finished_at = now
            fields.append("finished_at")
        if status == Status.DRAFT:
            locked.scheduled_at = None
            fields.append("scheduled_at")
        locked.save(update_fields=fields)
        CampaignEvent.objects.create(
            campaign=locked,
            kind=CampaignEvent.Kind.STATUS,
            old_status=old,
            new_status=status,
            actor=acting_user(actor),
            data=data or {},
        )
    campaign.refresh_from_db()
    return campaign


def campaign_schedule(*, campaign: Campaign, at: dt.datetime, actor: Any) -> Campaign:
    """Send the campaign at ``at`` (in the future); the beat starts it then."""
    if timezone.is_naive(at) or at <= timezone.now():
        raise ValidationError(
            {
                "scheduled_at": ValidationError(
                    _("Choose a moment in the future."), code="past"
                )
            }
        )
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status == Status.SCHEDULED:
            locked.scheduled_at = at
            locked.save(update_fields=["scheduled_at", "updated_at"])
            CampaignEvent.objects.create(
                campaign=locked,
                kind=CampaignEvent.Kind.UPDATED,
                actor=acting_user(actor),
                data={"scheduled_at": at.isoformat()},
            )
        else:
            locked.scheduled_at = at
            locked.save(update_fields=["scheduled_at"])
            campaign_transition(
                campaign=locked,
                status=Status.SCHEDULED,
                actor=actor,
                data={"scheduled_at": at.isoformat()},
            )
    campaign.refresh_from_db()
    return campaign


def campaign_start(*, campaign: Campaign, actor: Any = None) -> Campaign:
    """Start sending now: the audience is chosen and sent to by the workers."""
    from campaigns.tasks import campaign_prepare_task

    campaign = campaign_transition(
        campaign=campaign, status=Status.SENDING, actor=actor
    )
    campaign_prepare_task.delay_on_commit(campaign.pk)
    return campaign


def campaign_pause(*, campaign: Campaign, actor: Any) -> Campaign:
    """Stop sending after the message in hand; resume sends the rest."""
    return campaign_transition(campaign=campaign, status=Status.PAUSED, actor=actor)


def campaign_resume(*, campaign: Campaign, actor: Any) -> Campaign:
    """Go on sending a paused campaign."""
    from campaigns.tasks import campaign_send_after_commit

    campaign = campaign_transition(
        campaign=campaign, status=Status.SENDING, actor=actor
    )
    if campaign.prepared_at is None:
        from campaigns.tasks import campaign_prepare_task

        campaign_prepare_task.delay_on_commit(campaign.pk)
    else:
        campaign_send_after_commit(campaign)
    return campaign


def campaign_cancel(*, campaign: Campaign, actor: Any) -> Campaign:
    """Stop for good: whoever has not been sent to yet is not."""
    with transaction.atomic():
        campaign = campaign_transition(
            campaign=campaign, status=Status.CANCELLED, actor=actor
        )
        Delivery.objects.filter(
            campaign=campaign, status=Delivery.Status.PENDING
        ).update(status=Delivery.Status.SKIPPED, reason=Delivery.Reason.CANCELLED)
    return campaign


def campaigns_start_due(*, now: dt.datetime | None = None) -> list[Campaign]:
    """Start the scheduled campaigns whose moment has come (the beat, every minute)."""
    now = now or timezone.now()
    started = []
    for campaign in Campaign.objects.filter(
        status=Status.SCHEDULED, scheduled_at__lte=now
    ):
        try:
            started.append(campaign_start(campaign=campaign))
        except ValidationError:  # changed meanwhile (cancelled): nothing to start
            continue
    return started


# --- The audience ------------------------------------------------------------------


def deliveries_insert_sql(
    *, owner: str, purpose: ConsentPurpose, channel: str, recipients: str
) -> str:
    """SQL inserting a Delivery of campaign or flow %(owner)s per row of ``recipients``.

    ``recipients`` is a query of (customer_id, trigger). A row waits, or is not
    sent with its reason: erased, restricted, objected (marketing), no consent,
    no address, frequency cap; in that order, the order a person would look for
    them. Parameters: owner, channel, now, purpose, purpose_active, cap_since,
    cap, and those of ``recipients``. Only constants are formatted in.
    """
    if owner not in ("campaign", "flow"):
        raise ValueError(owner)
    if channel == Channel.EMAIL:
        address = "c.email IS NULL OR c.email = ''"
    else:
        address = "c.phone = ''"
    objection = (
        "WHEN c.marketing_objection_at IS NOT NULL THEN 'objected'"
        if purpose.is_marketing
        else ""
    )
    # The frequency counts are taken first (MATERIALIZED): read row by row, they
    # would scan the table this statement fills, with no statistics to plan by.
    # OFFSET 0 keeps each reason computed once (it is read twice).
    return f"""
    WITH recent AS MATERIALIZED (
        SELECT d.customer_id, count(*) AS n FROM campaigns_delivery d
        WHERE d.status = 'sent' AND d.sent_at >= %(cap_since)s
        GROUP BY d.customer_id
    )
    INSERT INTO campaigns_delivery
        ({owner}_id, customer_id, channel, trigger, status, reason, message_id,
         error, attempts, created_at)
    SELECT %(owner)s, x.customer_id, %(channel)s, x.trigger, CASE WHEN x.reason = ''
        THEN 'pending' ELSE 'skipped' END, x.reason, '', '', 0, %(now)s
    FROM (
        SELECT t.customer_id, t.trigger, CASE
            WHEN c.erased_at IS NOT NULL THEN 'erased'
            WHEN c.restricted_at IS NOT NULL THEN 'restricted'
            {objection}
            WHEN NOT %(purpose_active)s OR s.id IS NULL THEN 'no_consent'
            WHEN {address} THEN 'no_address'
            WHEN coalesce(r.n, 0) >= %(cap)s THEN 'frequency_cap'
            ELSE '' END AS reason
        FROM ({recipients}) t
        JOIN customers_customer c ON c.id = t.customer_id
        LEFT JOIN consents_consentstate s ON s.customer_id = c.id
            AND s.purpose_id = %(purpose)s AND s.granted
        LEFT JOIN recent r ON r.customer_id = c.id
        OFFSET 0
    ) x
    ON CONFLICT DO NOTHING
    """  # noqa: S608


def deliveries_insert_params(
    *, owner: Campaign | Any, purpose: ConsentPurpose, channel: str, now: dt.datetime
) -> dict[str, Any]:
    """The parameters deliveries_insert_sql needs, but those of its recipients."""
    return {
        "owner": owner.pk,
        "channel": channel,
        "now": now,
        "purpose": purpose.pk,
        "purpose_active": purpose.is_active,
        "cap_since": frequency_since(now),
        "cap": settings.CAMPAIGN_FREQUENCY_CAP,
    }


MEMBERS_SQL = """
    SELECT m.customer_id, '' AS trigger FROM segments_segmentmembership m
    WHERE m.segment_id = %(segment)s
"""


def frequency_since(now: dt.datetime) -> dt.datetime:
    """The start of the frequency cap's window ending at ``now``."""
    return now - dt.timedelta(days=settings.CAMPAIGN_FREQUENCY_DAYS)


def deliveries_suppress(*, deliveries: Any, channel: str, chunk: int = 5000) -> int:
    """Mark the pending ``deliveries`` to suppressed addresses as not sent.

    The suppression list holds keyed hashes, so they are compared in Python, a
    chunk at a time.
    """
    kind, field = (
        (Suppression.Kind.EMAIL, "customer__email")
        if channel == Channel.EMAIL
        else (Suppression.Kind.PHONE, "customer__phone")
    )
    if not Suppression.objects.filter(kind=kind).exists():
        return 0
    suppressed = 0
    rows = deliveries.filter(status=Delivery.Status.PENDING).values_list("pk", field)
    batch: list[tuple[int, str]] = []

    def flush() -> int:
        by_hash = {suppression_hash(kind, value): pk for pk, value in batch if value}
        found = Suppression.objects.filter(
            kind=kind, value_hash__in=list(by_hash)
        ).values_list("value_hash", flat=True)
        ids = [by_hash[h] for h in found]
        return Delivery.objects.filter(
            pk__in=ids, status=Delivery.Status.PENDING
        ).update(status=Delivery.Status.SKIPPED, reason=Delivery.Reason.SUPPRESSED)

    for row in rows.iterator(chunk_size=chunk):
        batch.append(row)
        if len(batch) >= chunk:
            suppressed += flush()
            batch = []
    if batch:
        suppressed += flush()
    return suppressed


def campaign_prepare(*, campaign: Campaign) -> int:
    """Choose the audience of a campaign that is sending: one Delivery per member.

    A dynamic segment is rebuilt first, so the audience is who matches now. Every
    member gets a row, the ones who may not receive the message with the reason
    (no consent, objection, restriction, suppressed address, frequency cap), so
    the report can say why. Returns the number of recipients waiting.
    """
    campaign = Campaign.objects.select_related("segment", "purpose").get(pk=campaign.pk)
    if campaign.prepared_at is not None or campaign.status != Status.SENDING:
        return 0
    if campaign.segment.is_dynamic:
        segment_rebuild(segment=campaign.segment, trigger=SegmentRebuild.Trigger.MANUAL)
    now = timezone.now()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.prepared_at is not None:
            return 0
        with connection.cursor() as cursor:
            cursor.execute(
                deliveries_insert_sql(
                    owner="campaign",
                    purpose=campaign.purpose,
                    channel=campaign.channel,
                    recipients=MEMBERS_SQL,
                ),
                {
                    **deliveries_insert_params(
                        owner=campaign,
                        purpose=campaign.purpose,
                        channel=campaign.channel,
                        now=now,
                    ),
                    "segment": campaign.segment_id,
                },
            )
        deliveries = Delivery.objects.filter(campaign=campaign)
        deliveries_suppress(deliveries=deliveries, channel=campaign.channel)
        waiting = deliveries.filter(status=Delivery.Status.PENDING).count()
        locked.prepared_at = now
        locked.audience_size = deliveries.count()
        locked.heartbeat_at = now
        locked.save(update_fields=["prepared_at", "audience_size", "heartbeat_at"])
    return waiting
