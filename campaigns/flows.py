"""Flows: one message per trigger (an abandoned cart, a product running out, ...).

Every few minutes (``flows_run``, the beat's "flows-run") each flow that is on turns
the triggers that came due into Delivery rows, one INSERT ... SELECT per flow, with
the reason for everyone who may not receive the message (as a campaign's audience);
``flow_send_task`` then sends the waiting ones exactly once (``campaigns.sending``,
which checks consent, rights and the frequency cap again right before each message).

A trigger fires once per flow: its key ("cart:12", "line:34", ...) is unique per
flow (``delivery_flow_trigger_unique``) and the INSERT skips the keys already
there, so repeated runs, overlapping windows and two beats at once send nothing
twice.

A trigger is due when its moment (the cart's last change, the delivery, ...) plus
the flow's delay has passed. Only moments from ``Flow.activated_at`` on count:
switching a flow on does not mail the whole history. A trigger due more than
STALE_DAYS ago is not sent any more (a beat that was down for weeks does not send
last month's reminders).

The triggers, by kind:

- abandoned_cart, "cart:<id>": an open cart with a value and a known customer, last
  changed ``delay`` hours ago, and no order of that customer placed since. One
  reminder per cart, as shops expect: a cart the store keeps and the customer
  fills and leaves again later is not reminded of twice; another cart is.
- replenishment, "line:<id>": an order line of a product with replenishment days
  in a paid, shipped or delivered order; the product runs out ``days x quantity``
  after the order and the reminder is due ``delay`` hours from then (negative:
  before). Not when the customer bought the product again in a later order, and
  never for sensitive products or categories.
- win_back, "move:<id>": the customer moved into "at risk" or "can't lose them"
  (from outside those two; a move between them is the same slide) ``delay`` hours
  ago, and is in one of them still, without having left them since.
- welcome, "doi:<id>": a double opt-in for the flow's consent confirmed ``delay``
  hours ago.
- review_request, "order:<id>": an order delivered ``delay`` hours ago, while the
  customer has no open complaint (the request goes out once it is resolved, if
  that is within STALE_DAYS).

The figures of a flow are ``campaigns.selectors.flow_report``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from campaigns.models import Channel, Delivery, Flow, MessageTemplate
from campaigns.sending import sms_resume_at
from campaigns.services import (
    acting_user,
    coupon_fields_clean,
    deliveries_insert_params,
    deliveries_insert_sql,
    deliveries_suppress,
    purpose_for_template,
    purpose_pairing_error,
)
from consents.models import ConsentPurpose
from customers.models import Interaction
from orders.models import Order
from segments.models import RfmSegment

logger = logging.getLogger(__name__)

Kind = Flow.Kind

#: The delay of a new flow, in hours after its trigger (replenishment: after the
#: product runs out; negative, before).
FLOW_DEFAULTS: dict[str, int] = {
    Kind.ABANDONED_CART: 4,
    Kind.REPLENISHMENT: -72,
    Kind.WIN_BACK: 24,
    Kind.WELCOME: 0,
    Kind.REVIEW_REQUEST: 168,
}
#: The delay a flow may have, in hours (30 days either way).
MAX_DELAY_HOURS = 720
#: A trigger due longer ago than this is not sent any more.
STALE_DAYS = 30
#: The RFM segments a win-back reaches: customers slipping away.
WIN_BACK_SEGMENTS = [RfmSegment.Code.AT_RISK, RfmSegment.Code.CANT_LOSE_THEM]


def flows_ensure(apps: Any = None) -> None:
    """Create the five flows where they are missing: off, no template, email consent.

    Run by the data migration, by ``flows_run`` and by the staff pages (a flushed
    test database has none). Existing flows are left alone. Without the seeded
    email marketing purpose there is nothing to create them with: skipped.
    """
    if apps is None:
        from django.apps import apps as registry

        apps = registry
    flow_model = apps.get_model("campaigns", "Flow")
    if flow_model.objects.count() >= len(FLOW_DEFAULTS):
        return
    purpose = (
        apps.get_model("consents", "ConsentPurpose")
        .objects.filter(code=ConsentPurpose.Code.EMAIL_MARKETING)
        .first()
    )
    if purpose is None:
        return
    for kind, delay in FLOW_DEFAULTS.items():
        flow_model.objects.get_or_create(
            kind=str(kind), defaults={"purpose": purpose, "delay_hours": delay}
        )


# --- Changing a flow ------------------------------------------------------------


def _delay_range(kind: str) -> tuple[int, int]:
    low = -MAX_DELAY_HOURS if kind == Kind.REPLENISHMENT else 0
    return low, MAX_DELAY_HOURS


def _check(
    *,
    kind: str,
    active: bool,
    template: MessageTemplate | None,
    purpose: ConsentPurpose,
    delay_hours: int | None,
    pairing: bool,
) -> None:
    errors: dict[str, ValidationError] = {}
    if delay_hours is not None:
        low, high = _delay_range(kind)
        if (
            isinstance(delay_hours, bool)
            or not isinstance(delay_hours, int)
            or not low <= delay_hours <= high
        ):
            errors["delay_hours"] = ValidationError(
                _("Between %(low)d and %(high)d hours."),
                code="invalid",
                params={"low": low, "high": high},
            )
    if active and template is None:
        errors["template"] = ValidationError(
            _("Choose a template before switching the flow on."), code="required"
        )
    # A flow that is off may stay mismatched (its template's channel changed):
    # switching it off, or changing its delay, always works.
    error = pairing and purpose_pairing_error(
        template=template, purpose=purpose, need_active=active
    )
    if error:
        errors["purpose"] = error
    if errors:
        raise ValidationError(errors)


def flow_update(
    *,
    flow: Flow,
    actor: Any,
    is_active: bool | None = None,
    template: MessageTemplate | None = None,
    delay_hours: int | None = None,
    purpose: ConsentPurpose | None = None,
    coupon_prefix: str | None = None,
    coupon_validity_days: int | None = None,
) -> Flow:
    """Change a flow; None leaves a setting as it is. Raises ValidationError.

    Switching on sets ``activated_at`` to now: only triggers from then on are acted
    upon, so a flow switched on does not mail the whole history. Switching off
    clears it and cancels the messages still waiting; switched on again, the flow
    starts afresh from that moment (what fired while it was off is never sent). A
    template of another channel brings that channel's marketing consent along
    unless ``purpose`` is given. A user's change is kept in the admin's history.
    """
    coupon: dict[str, Any] = {}
    if coupon_prefix is not None:
        coupon["coupon_prefix"] = coupon_prefix
    if coupon_validity_days is not None:
        coupon["coupon_validity_days"] = coupon_validity_days
    values: dict[str, Any] = coupon_fields_clean(coupon)
    with transaction.atomic():
        locked = (
            Flow.objects.select_for_update(of=("self",))
            .select_related("template", "purpose")
            .get(pk=flow.pk)
        )
        if template is not None:
            values["template"] = template
            if purpose is None and template.channel != locked.purpose.channel:
                purpose = purpose_for_template(template)
        if purpose is not None:
            values["purpose"] = purpose
        if delay_hours is not None:
            values["delay_hours"] = delay_hours
        active = locked.is_active if is_active is None else bool(is_active)
        _check(
            kind=locked.kind,
            active=active,
            template=values.get("template", locked.template),
            purpose=values.get("purpose", locked.purpose),
            delay_hours=delay_hours,
            pairing=active or "template" in values or "purpose" in values,
        )
        changed = [
            field for field, value in values.items() if getattr(locked, field) != value
        ]
        for field in changed:
            setattr(locked, field, values[field])
        switched = active != locked.is_active
        if switched:
            changed.append("is_active")
            locked.is_active = active
            locked.activated_at = timezone.now() if active else None
        if not changed:
            return locked
        locked.save(update_fields=[*changed, "activated_at", "updated_at"])
        if switched and not active:
            # Never sent: switched on again, the flow starts afresh, and these
            # would go out late.
            Delivery.objects.filter(flow=locked, status=Delivery.Status.PENDING).update(
                status=Delivery.Status.SKIPPED, reason=Delivery.Reason.CANCELLED
            )
        _log_change(locked, actor, changed)
    return locked


def _log_change(flow: Flow, actor: Any, fields: list[str]) -> None:
    """The change in the admin's history of the flow (flows have no event table)."""
    user = acting_user(actor)
    if user is None:
        return
    # The form labels, untranslated, as the admin stores them: LogEntry
    # translates them when shown.
    with translation.override(None):
        labels = [
            str(capfirst(Flow._meta.get_field(field).verbose_name)) for field in fields
        ]
    LogEntry.objects.log_actions(
        user_id=user.pk,
        queryset=[flow],
        action_flag=CHANGE,
        change_message=[{"changed": {"fields": labels}}],
        single_object=True,
    )


# --- The triggers ---------------------------------------------------------------

# Each selects (customer_id, trigger) for the moments in [since, until]; the
# moment of a replenishment is when the reminder is due (the delay included).
TRIGGERS_SQL: dict[str, str] = {
    Kind.ABANDONED_CART: """
        SELECT k.customer_id, 'cart:' || k.id AS trigger
        FROM orders_cart k
        WHERE k.converted_at IS NULL AND k.value > 0 AND k.customer_id IS NOT NULL
        AND k.updated_at >= %(since)s AND k.updated_at <= %(until)s
        AND NOT EXISTS (
            SELECT 1 FROM orders_order o
            WHERE o.customer_id = k.customer_id AND o.placed_at >= k.updated_at
        )
    """,
    Kind.REPLENISHMENT: """
        SELECT o.customer_id, 'line:' || l.id AS trigger
        FROM orders_product p
        JOIN orders_orderline l ON l.product_id = p.id
        JOIN orders_order o ON o.id = l.order_id
        CROSS JOIN LATERAL (SELECT o.placed_at
            + (p.replenishment_days * l.quantity)::float8 * interval '1 day'
            + %(delay)s * interval '1 hour' AS due) w
        WHERE p.replenishment_days IS NOT NULL AND NOT p.is_sensitive
        AND o.status = ANY(%(revenue)s)
        AND o.placed_at <= %(until)s
        AND w.due >= %(since)s AND w.due <= %(until)s
        AND NOT EXISTS (
            SELECT 1 FROM orders_category g
            WHERE g.id IN (p.category_id, l.category_id) AND g.is_sensitive
        )
        AND NOT EXISTS (
            SELECT 1 FROM orders_orderline b
            JOIN orders_order a ON a.id = b.order_id
            WHERE b.product_id = p.id AND a.customer_id = o.customer_id
            AND a.status = ANY(%(revenue)s) AND a.placed_at > o.placed_at
        )
    """,
    Kind.WIN_BACK: """
        SELECT mv.customer_id, 'move:' || mv.id AS trigger
        FROM segments_rfmsegmentmove mv
        JOIN segments_customermetrics m
            ON m.customer_id = mv.customer_id AND m.store_id IS NULL
        WHERE mv.to_segment = ANY(%(segments)s)
        AND NOT mv.from_segment = ANY(%(segments)s)
        AND m.rfm_segment = ANY(%(segments)s)
        AND mv.moved_at >= %(since)s AND mv.moved_at <= %(until)s
        AND NOT EXISTS (
            SELECT 1 FROM segments_rfmsegmentmove n
            WHERE n.customer_id = mv.customer_id AND n.moved_at > mv.moved_at
            AND NOT n.to_segment = ANY(%(segments)s)
        )
    """,
    Kind.WELCOME: """
        SELECT d.customer_id, 'doi:' || d.id AS trigger
        FROM consents_doubleoptin d
        WHERE d.purpose_id = %(purpose)s
        AND d.confirmed_at >= %(since)s AND d.confirmed_at <= %(until)s
    """,
    Kind.REVIEW_REQUEST: """
        SELECT o.customer_id, 'order:' || o.id AS trigger
        FROM orders_order o
        WHERE o.status = 'delivered'
        AND o.delivered_at >= %(since)s AND o.delivered_at <= %(until)s
        AND NOT EXISTS (
            SELECT 1 FROM customers_interaction i
            WHERE i.customer_id = o.customer_id AND i.kind = 'complaint'
            AND i.status = ANY(%(complaint_pending)s)
        )
    """,
}


def flow_window(flow: Flow, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The moments whose triggers are due at ``now``: [since, until]."""
    if flow.kind == Kind.REPLENISHMENT:
        until = now  # the moment is already the due one, the delay included
    else:
        until = now - dt.timedelta(hours=flow.delay_hours)
    since = until - dt.timedelta(days=STALE_DAYS)
    if flow.activated_at is not None:
        since = max(since, flow.activated_at)
    return since, until


def flow_run(*, flow: Flow, now: dt.datetime | None = None) -> int:
    """Create the deliveries of ``flow``'s triggers due at ``now``; how many are new.

    Queues the flow's sending once the transaction commits when any message
    waits (not in the SMS quiet hours: the first run after them does).
    """
    from campaigns.tasks import flow_send_task

    now = now or timezone.now()
    with transaction.atomic():
        # Locked: a run and a change of the flow (switching off) do not overlap.
        flow = (
            Flow.objects.select_for_update(of=("self",))
            .select_related("template", "purpose")
            .filter(pk=flow.pk, is_active=True)
            .first()
        )
        if flow is None or flow.template is None:
            return 0
        channel = flow.template.channel
        if channel != flow.purpose.channel:
            # The template's channel was changed after the flow was set up.
            logger.warning("Flow %s: template and consent channels differ", flow.kind)
            return 0
        since, until = flow_window(flow, now)
        inserted = 0
        if since <= until:
            with connection.cursor() as cursor:
                cursor.execute(
                    deliveries_insert_sql(
                        owner="flow",
                        purpose=flow.purpose,
                        channel=channel,
                        recipients=TRIGGERS_SQL[flow.kind],
                    ),
                    {
                        **deliveries_insert_params(
                            owner=flow, purpose=flow.purpose, channel=channel, now=now
                        ),
                        "since": since,
                        "until": until,
                        "delay": flow.delay_hours,
                        "revenue": [str(s) for s in Order.REVENUE_STATUSES],
                        "segments": [str(s) for s in WIN_BACK_SEGMENTS],
                        "complaint_pending": list(Interaction.PENDING_STATUSES),
                    },
                )
                inserted = cursor.rowcount
        if inserted:
            deliveries_suppress(
                deliveries=Delivery.objects.filter(flow=flow, created_at=now),
                channel=channel,
            )
        # Rows a dead sender held ("sending") count: the next sender takes them back.
        waiting = Delivery.objects.filter(
            flow=flow, status__in=(Delivery.Status.PENDING, Delivery.Status.SENDING)
        ).exists()
        quiet = channel == Channel.SMS and sms_resume_at(timezone.now()) is not None
        if waiting and not quiet:
            flow_send_task.delay_on_commit(flow.pk)
    return inserted


def flows_run(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Every few minutes: each flow that is on acts on its due triggers.

    Returns the new deliveries per kind (waiting or not sent, with the reason);
    0 for a flow that is off or has no template.
    """
    now = now or timezone.now()
    flows_ensure()
    counts = dict.fromkeys(Kind.values, 0)
    for flow in Flow.objects.filter(is_active=True, template__isnull=False):
        counts[flow.kind] = flow_run(flow=flow, now=now)
    return counts
